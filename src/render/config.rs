//! Agents and workflows as `troupe agents --json`, the shell and `GET /api/agents` /
//! `GET /api/workflows` show them.

use serde::Serialize;
use troupe_adapters::{AgentConfig, AgentKind, Availability, Role};
use troupe_workflows::Config;
use troupe_workflows::config::StepConfig;

/// An agent's listing: what the configuration says and whether it can be called now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    /// Its name (`[agents.NAME]`).
    pub name: String,
    /// Its transport.
    pub kind: AgentKind,
    /// What it is best at.
    pub role: Option<Role>,
    /// `enabled` in the configuration.
    pub enabled: bool,
    /// Whether it runs on this machine.
    pub local: bool,
    /// Whether a call may be made now.
    pub usable: bool,
    /// Why it can or cannot be called: `disabled`, `refused (offline)`, `unusable: …`,
    /// `not installed`, `breaker open`, `managed server`, `installed`, `http`.
    pub availability: String,
    /// Its URL or command.
    pub endpoint: String,
    /// The model it asks for.
    pub model: Option<String>,
    /// Agents tried when it fails.
    pub fallback: Vec<String>,
    /// A one-line description.
    pub description: Option<String>,
}

impl AgentView {
    /// The listing of agent `name`.
    pub fn new(name: &str, a: &AgentConfig, availability: &Availability) -> AgentView {
        AgentView {
            name: name.to_string(),
            kind: a.kind,
            role: a.role,
            enabled: a.enabled,
            local: a.is_local(),
            usable: availability.is_usable(),
            availability: availability.to_string(),
            endpoint: a.endpoint(),
            model: a.model.clone(),
            fallback: a.fallback.clone(),
            description: a.description.clone(),
        }
    }
}

/// A workflow's listing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowView {
    /// Its name (`[workflows.NAME]`).
    pub name: String,
    /// A one-line description.
    pub description: Option<String>,
    /// Most write/review rounds.
    pub max_iterations: u32,
    /// Whether it is `settings.default_workflow`.
    pub default: bool,
    /// Its steps in order.
    pub steps: Vec<StepConfig>,
}

/// The workflows, for `troupe workflows --json` and `GET /api/workflows`.
pub fn workflows(config: &Config) -> Vec<WorkflowView> {
    config
        .workflows
        .iter()
        .map(|(name, w)| WorkflowView {
            name: name.clone(),
            description: w.description.clone(),
            max_iterations: w.max_iterations,
            default: *name == config.settings.default_workflow,
            steps: w.steps.clone(),
        })
        .collect()
}
