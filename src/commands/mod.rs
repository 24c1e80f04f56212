//! One module per command group; each returns the process exit code.

pub mod config;
pub mod context;
pub mod doctor;
pub mod export;
pub mod models;
pub mod run;
pub mod test_agent;

use std::process::ExitCode;

/// Exit codes shared by every command.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The work failed (a failed run, a failed check).
    pub const FAILED: u8 = 1;
    /// Bad usage or configuration.
    pub const USAGE: u8 = 2;
}

/// Turn one of [`exit`]'s codes into an [`ExitCode`].
pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}
