//! Whether an agent can be called now, and if not, why: the one vocabulary `troupe agents`,
//! the shell's `/agents` and `GET /api/agents` all show.

use serde::Serialize;

use crate::config::{AgentConfig, AgentKind};
use crate::which::find_program;

/// Whether an agent can be called now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum Availability {
    /// `enabled = false`.
    Disabled,
    /// Offline mode is on and the agent is not on this machine.
    RefusedOffline,
    /// Its adapter could not be built: why.
    Unusable(String),
    /// A CLI agent whose program is not on `PATH`.
    NotInstalled,
    /// Its circuit breaker is open after repeated failures.
    BreakerOpen,
    /// Usable: a local model server troupe starts on demand.
    ManagedServer,
    /// Usable: a CLI agent whose program is on `PATH`.
    Installed,
    /// Usable: an HTTP endpoint (reachability is checked by the first call).
    Http,
}

impl Availability {
    /// What the configuration alone says (no registry, no breaker): disabled, refused
    /// offline, a missing program, else how it is reached.
    pub fn of(agent: &AgentConfig, offline: bool) -> Availability {
        if !agent.enabled {
            return Availability::Disabled;
        }
        if offline && !agent.is_local() {
            return Availability::RefusedOffline;
        }
        match agent.kind {
            AgentKind::Cli => match agent.command.as_deref().and_then(find_program) {
                Some(_) => Availability::Installed,
                None => Availability::NotInstalled,
            },
            _ if agent.server.is_some() => Availability::ManagedServer,
            _ => Availability::Http,
        }
    }

    /// Whether a call may be made.
    pub fn is_usable(&self) -> bool {
        matches!(self, Availability::ManagedServer | Availability::Installed | Availability::Http)
    }
}

impl std::fmt::Display for Availability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Availability::Disabled => f.write_str("disabled"),
            Availability::RefusedOffline => f.write_str("refused (offline)"),
            Availability::Unusable(why) => write!(f, "unusable: {why}"),
            Availability::NotInstalled => f.write_str("not installed"),
            Availability::BreakerOpen => f.write_str("breaker open"),
            Availability::ManagedServer => f.write_str("managed server"),
            Availability::Installed => f.write_str("installed"),
            Availability::Http => f.write_str("http"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn agent(json: serde_json::Value) -> AgentConfig {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_configuration_decides_in_order() {
        let cloud = agent(serde_json::json!({
            "kind": "openai", "base_url": "https://api.example.com/v1", "model": "m"
        }));
        assert_eq!(Availability::of(&cloud, false), Availability::Http);
        assert_eq!(Availability::of(&cloud, true), Availability::RefusedOffline);
        let mut off = cloud.clone();
        off.enabled = false;
        assert_eq!(Availability::of(&off, true), Availability::Disabled);
        let cli = agent(serde_json::json!({
            "kind": "cli", "command": "surely-no-such-program-troupe"
        }));
        assert_eq!(Availability::of(&cli, false), Availability::NotInstalled);
        assert!(!Availability::NotInstalled.is_usable());
        assert!(Availability::Http.is_usable());
        assert_eq!(Availability::RefusedOffline.to_string(), "refused (offline)");
        assert_eq!(Availability::Unusable("no key".into()).to_string(), "unusable: no key");
    }
}
