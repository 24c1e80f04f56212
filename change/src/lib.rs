//! The change workspace: what a run produces is a verified change, not text.
//!
//! - [`workspace`]: each run works in its own git worktree (or a git-initialised copy of a
//!   project that is not a repository, or the project itself with a checkpoint for
//!   `--in-place`); commits per step, the diff against the base, apply into the user's
//!   tree, revert, discard, cleanup. [`git`] is the one module that runs `git`.
//! - [`edit`]: the edit formats a model answers in (whole files, SEARCH/REPLACE blocks),
//!   a lenient parser and exact errors for an edit that does not apply; [`safety`]: the
//!   rules an edit must pass before it touches the workspace.
//! - [`validate`]: the project's tests and linters, detected or configured, run as
//!   subprocesses with a timeout; their results are the review's evidence.

pub mod edit;
pub mod error;
pub mod git;
pub mod safety;
pub mod validate;
pub mod workspace;

#[cfg(test)]
mod testing;

pub use error::{Error, Result};
