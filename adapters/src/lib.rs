//! Adapters: the layer through which every prompt leaves troupe.
//!
//! This crate alone knows HTTP clients, subprocesses and provider wire formats. It owns the
//! agent configuration model ([`config`]); the agent contract, the CLI and HTTP adapters and
//! the resilience wrappers grow here.

pub mod config;

pub use config::{AgentConfig, AgentKind, CliFlavor, Role};
pub mod which;
