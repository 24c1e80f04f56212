//! Workflows: the configuration model (`troupe.toml`) and the pure parts of the workflow
//! engine.
//!
//! - [`config`] loads, merges and validates configuration, reporting every problem at once
//!   with its file, line and column.
//! - [`template`]: the role prompt templates (implement, review, refine, document, plan),
//!   overridable by file.
//! - [`verdict`]: review verdicts parsed robustly from model output.
//! - [`plan`]: the dynamic planner's routing policy and plan parsing.
//! - [`problem`]: what is wrong with a configuration, with its file, line and column.
//!
//! This crate knows no transport and no actor system: the runtime drives it.

pub mod config;
pub mod engine;
pub mod error;
pub mod extract;
pub mod plan;
pub mod problem;
pub mod template;
pub mod verdict;

pub use config::{Config, LoadedConfig, Problem, Problems, Settings, StepConfig, WorkflowConfig};
pub use error::{Error, Result};
