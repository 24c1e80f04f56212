//! The one error type of this crate, classified by what the caller must do next.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process has the store open. sled allows one process per database: stop the
    /// other process (or wait for it to finish) and try again.
    #[error(
        "the context store at {} is in use by another troupe process{}{}; \
         wait for it to finish or stop it, then try again",
        path.display(),
        match owner { Some(o) => format!(" ({o})"), None => String::new() },
        match waited { Some(w) => format!(", still after waiting {} s for it", w.as_secs_f64().round()), None => String::new() }
    )]
    Locked {
        /// The store folder.
        path: PathBuf,
        /// Who holds it, as the holder recorded when it opened the store (absent when the
        /// holder recorded nothing yet).
        owner: Option<Owner>,
        /// How long [`crate::Store::open_waiting`] waited for it before giving up.
        waited: Option<std::time::Duration>,
    },

    /// This process has the store open already: share that [`crate::Store`] (it is cheap
    /// to clone) instead of opening the folder twice.
    #[error(
        "the context store at {} is already open in this process; share the open Store (it is cheap to clone)",
        path.display()
    )]
    AlreadyOpen {
        /// The store folder.
        path: PathBuf,
    },

    /// A node, edge, project or record does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `node 0192…`.
        what: String,
    },

    /// The caller passed something unusable (an empty title, an unknown node type, an id
    /// that belongs to another project, …). Fix the input; retrying will not help.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The embedding model cannot be used (assets missing, ONNX Runtime not loadable, …).
    /// Only returned when embeddings were explicitly asked for; hybrid search degrades to
    /// BM25 instead.
    #[error("embeddings are unavailable: {reason}")]
    EmbeddingUnavailable {
        /// Why, and what to do (usually: run `scripts/setup.sh --assets-only`).
        reason: String,
    },

    /// The embedding model failed on some input.
    #[error("embedding failed: {0}")]
    Embedding(String),

    /// The graph database failed (disk full, permissions, corruption). Check the disk and
    /// the store folder.
    #[error("context database error: {0}")]
    Database(#[from] sled::Error),

    /// The search index failed. `troupe context reindex` rebuilds it from the graph.
    #[error("search index error: {0} (`troupe context reindex` rebuilds the index from the graph)")]
    Index(String),

    /// A stored record could not be decoded: the store was written by an incompatible
    /// version or is damaged.
    #[error("corrupt record in {what}: {reason}")]
    Corrupt {
        /// Which record.
        what: String,
        /// The decoder's complaint.
        reason: String,
    },

    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The operating system's complaint.
        #[source]
        source: std::io::Error,
    },

    /// A value could not be serialised to or from JSON.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<tantivy::TantivyError> for Error {
    fn from(e: tantivy::TantivyError) -> Self {
        Error::Index(e.to_string())
    }
}

impl From<sled::transaction::TransactionError<Error>> for Error {
    fn from(e: sled::transaction::TransactionError<Error>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => Error::Database(e),
        }
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn not_found(what: impl fmt::Display) -> Error {
        Error::NotFound { what: what.to_string() }
    }

    pub(crate) fn corrupt(what: impl fmt::Display, reason: impl fmt::Display) -> Error {
        Error::Corrupt { what: what.to_string(), reason: reason.to_string() }
    }
}

/// Who has the store open: written to `owner.json` by the process holding the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// The holder's command line, as far as it could tell.
    pub command: String,
    /// When it opened the store (RFC 3339).
    pub since: String,
    /// Whether that process is still running, checked when the lock failed (`None` when the
    /// platform cannot tell).
    #[serde(skip)]
    pub alive: Option<bool>,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}, `{}`, since {}", self.pid, self.command, self.since)?;
        if self.alive == Some(false) {
            write!(f, "; that process has exited, so another one is opening the store right now")?;
        }
        Ok(())
    }
}
