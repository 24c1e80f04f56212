//! One module per command group; each returns the process exit code.

pub mod audit;
pub mod change;
pub mod config;
pub mod context;
pub mod doctor;
pub mod export;
pub mod models;
pub mod plan;
pub mod run;
pub mod test_agent;
pub mod usage;
pub mod via_api;

pub(crate) use crate::exit;
pub use crate::open::{open_runtime, open_store};
