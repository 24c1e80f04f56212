//! The errors of the runtime.

/// What went wrong running work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store (project memory and run records) failed.
    #[error(transparent)]
    Context(#[from] troupe_context::Error),
    /// A run record could not be encoded or decoded.
    #[error("a stored run record is unreadable: {0}")]
    Record(#[from] serde_json::Error),
    /// No run has that id.
    #[error("no run with id `{0}`; list runs with `troupe runs`")]
    NoSuchRun(String),
    /// The run cannot do what was asked in its state.
    #[error("run `{id}` is {state}; {hint}")]
    WrongState {
        /// The run.
        id: String,
        /// Its state.
        state: crate::model::RunState,
        /// What can be done instead.
        hint: &'static str,
    },
    /// The request cannot be run (unknown workflow, no usable agent, …).
    #[error("{0}")]
    Invalid(String),
    /// Prompt templates are broken.
    #[error("prompt templates have errors:\n{0}")]
    Templates(String),
    /// Agents could not be set up.
    #[error(transparent)]
    Adapter(#[from] troupe_adapters::AdapterError),
    /// A workspace, edit or validator operation failed (a conflicting apply, a revert of
    /// files changed since, git missing, …).
    #[error(transparent)]
    Change(#[from] troupe_change::Error),
    /// The run-record writer could not store records.
    #[error(
        "the run records could not be written: {0}; check the data folder's disk space and permissions"
    )]
    Write(String),
    /// A blocking task died.
    #[error("an internal task failed: {0}")]
    Join(String),
}

/// The runtime's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
