//! Adapters: the layer through which every prompt leaves troupe.
//!
//! This crate alone knows HTTP clients, subprocesses and provider wire formats.
//!
//! - [`config`]: the agent configuration model (`[agents.NAME]`), plain data of the leaf
//!   crate `troupe-agent-config`, named here too (as are [`GenerationOptions`] and
//!   [`Tokens`]).
//! - [`agent`]: the contract: [`Agent`], [`AgentRequest`] in, [`AgentResponse`] out, text
//!   chunks and [`AgentEvent`]s delivered through the [`CallContext`].
//! - [`error`]: [`AdapterError`], classified by what the caller must do next.
//! - [`http`] and [`cli`]: the adapters (OpenAI-compatible, llama.cpp, Ollama; Claude Code,
//!   Codex, Gemini, Copilot and generic CLIs).
//! - [`resilience`]: rate limit, retry, circuit breaker, fallback and offline guard, as
//!   wrappers around any agent.
//! - [`server`]: managed local model servers; [`models`]: local model management.
//! - [`registry`]: every configured agent with its full stack — what the runtime uses.
//! - [`telemetry`]: the trace spans of calls, attempts and fallbacks (emitted only).

pub mod agent;
pub mod availability;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod models;
pub mod registry;
pub mod resilience;
pub mod server;
pub mod speed;
pub mod telemetry;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
pub mod which;

pub use agent::{
    Agent, AgentEvent, AgentInfo, AgentRequest, AgentResponse, CallContext, ChunkSink, EventSink,
    GenerationOptions, Layer, Message, MessageRole, OutputFormat, Tokens,
};
pub use availability::Availability;
pub use config::{AgentConfig, AgentKind, CliFlavor, Role};
pub use error::{AdapterError, AgentFailure, Result};
/// Cancels a call ([`CallContext::cancel`]); re-exported so callers need not name tokio-util.
pub use tokio_util::sync::CancellationToken;
