//! Exit codes shared by every command and front-end.

use std::process::ExitCode;

/// Success.
pub const OK: u8 = 0;
/// The work failed (a failed run, a failed check).
pub const FAILED: u8 = 1;
/// Bad usage or configuration.
pub const USAGE: u8 = 2;

/// Turn one of these codes into an [`ExitCode`].
pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}
