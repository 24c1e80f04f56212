//! How one agent is configured: the `[agents.NAME]` table of `troupe.toml`.
//!
//! The types are plain data of the leaf crate `troupe-agent-config`, named here too;
//! building a running agent from an [`AgentConfig`] is the job of this crate.

pub use troupe_agent_config::config::*;
