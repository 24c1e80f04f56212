//! The agent configuration types of troupe: plain data, shared by the crates that run
//! agents (`troupe-adapters`) and the ones that configure and plan with them
//! (`troupe-workflows`), so that configuring an agent does not mean depending on HTTP
//! clients, subprocesses and provider wire formats.
//!
//! - [`config`]: one `[agents.NAME]` table ([`AgentConfig`]), its kind, role and settings.
//! - [`generation`]: the generation settings of a request ([`GenerationOptions`]) and the
//!   shape of its answer ([`OutputFormat`]).
//! - [`tokens`]: [`Tokens`], the one type for token counts (a call's, a run's, a project's).
//! - [`catalog`]: the table of local models troupe knows by name.
//! - [`edit_format`]: [`EditFormat`], how a model is asked to write its edits.
//!
//! Nothing here does I/O beyond reading the machine's CPU count.

pub mod catalog;
pub mod config;
pub mod edit_format;
pub mod generation;
pub mod tokens;

pub use config::{AgentConfig, AgentKind, CliFlavor, Role};
pub use edit_format::EditFormat;
pub use generation::{GenerationOptions, OutputFormat};
pub use tokens::Tokens;
