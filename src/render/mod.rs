//! The binary's printers: what commands, the shell and the server show of runs, changes,
//! agents, workflows and search hits. Front-ends call into here; nothing here calls a
//! front-end.

pub mod change;
pub mod config;
pub mod context;
pub mod events;
pub mod plan;
pub mod table;

pub use events::EventPrinter;
pub use table::Table;

/// Shorten an id for tables (UUIDv7: the first 13 characters are the creation time).
pub fn short_id(id: &str) -> &str {
    id.get(..13).unwrap_or(id)
}

/// Milliseconds as seconds with one decimal: `1.5s`.
pub fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}
