//! Workflows: the configuration model (`troupe.toml`) and the workflow model.
//!
//! [`config`] loads, merges and validates configuration, reporting every problem at once
//! with its file, line and column. The workflow engine (steps, iteration, review verdicts,
//! the dynamic planner) grows here; it knows no transport and no actor system.

pub mod config;
pub mod error;

pub use config::{Config, LoadedConfig, Problem, Problems, Settings, StepConfig, WorkflowConfig};
pub use error::{Error, Result};
