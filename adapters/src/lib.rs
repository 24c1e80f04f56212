//! Adapters: the layer through which every prompt leaves troupe.
//!
//! This crate alone knows HTTP clients, subprocesses and provider wire formats. It owns the
//! agent configuration model ([`config`]); the agent contract, the CLI and HTTP adapters and
//! the resilience wrappers grow here.

pub mod agent;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod resilience;
pub mod which;

pub use agent::{
    Agent, AgentEvent, AgentInfo, AgentRequest, AgentResponse, CallContext, ChunkSink, EventSink,
    GenerationOptions, Message, MessageRole, OutputFormat, Usage,
};
pub use config::{AgentConfig, AgentKind, CliFlavor, Role};
pub use error::{AdapterError, AgentFailure, Result};
