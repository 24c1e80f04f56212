//! The errors of this crate.

use std::path::PathBuf;

use crate::problem::Problems;

/// What went wrong loading or using configuration and workflows.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration file named explicitly does not exist.
    #[error("configuration file {} (from {how}) does not exist; create one with `troupe init` or fix the path", path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
        /// How it was given (`--config` or `$TROUPE_CONFIG`).
        how: &'static str,
    },
    /// A file could not be read or written.
    #[error("cannot access {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A run or a session asked for a workflow the configuration does not have.
    #[error("no workflow named `{name}`; there are: {} (`{planned}` plans one for the task)", known.join(", "))]
    UnknownWorkflow {
        /// The name asked for.
        name: String,
        /// Every workflow that can be asked for, `dynamic` last.
        known: Vec<String>,
        /// The name that plans a workflow for the task (`dynamic`).
        planned: &'static str,
    },
    /// The configuration has errors; every one is listed.
    #[error("the configuration has {} error(s):\n{problems}", problems.errors().count())]
    Invalid {
        /// Every problem found (errors and warnings).
        problems: Problems,
    },
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
