//! The configuration a run's change work reads: validators, edit format and patch safety.
//! One place turns the configuration's plain data into `troupe-change`'s types.

use troupe_change::edit::EditFormat;
use troupe_change::safety::Policy;
use troupe_workflows::config::ValidateWhen;
use troupe_workflows::{Config, WorkflowConfig};

/// How the validators run for a workflow.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ValidateSettings {
    /// Whether validators run at all.
    pub enabled: bool,
    /// Configured commands (empty: detect from the project).
    pub commands: Vec<String>,
    /// Each command's timeout.
    pub timeout_secs: u64,
    /// After every step that changed files (else only before reviews and at the end).
    pub after_change: bool,
}

/// The validators' settings for `workflow` (its own `validate` over the global one).
pub(crate) fn validate(config: &Config, workflow: &WorkflowConfig) -> ValidateSettings {
    let v = config.validate_for(workflow);
    ValidateSettings {
        enabled: v.enabled,
        commands: v.commands,
        timeout_secs: v.timeout_secs,
        after_change: v.when == ValidateWhen::AfterChange,
    }
}

/// The edit format asked of HTTP models.
pub(crate) fn edit_format(config: &Config) -> EditFormat {
    config.edits.format
}

/// Patch safety for edits.
pub(crate) fn edit_policy(config: &Config) -> Policy {
    Policy {
        protected: config.edits.protected.clone(),
        max_files: config.edits.max_files,
        max_lines: config.edits.max_lines,
    }
}
