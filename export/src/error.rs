//! The export's one error enum.

use std::path::PathBuf;

/// What can go wrong while exporting, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the project memory failed (see the context error for what to do).
    #[error(transparent)]
    Context(#[from] troupe_context::Error),

    /// A file or folder of the vault could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The operating system's complaint.
        #[source]
        source: std::io::Error,
    },

    /// The vault's manifest cannot be read. Deleting it exports afresh (notes troupe wrote
    /// before are then kept as the user's).
    #[error(
        "cannot read {}: {reason} (delete it to export afresh; notes troupe wrote before are then kept as the user's)",
        path.display()
    )]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// The vault was exported by a newer troupe: upgrade troupe.
    #[error("{} was written by a newer troupe (format {format}); upgrade troupe", path.display())]
    NewerManifest {
        /// The manifest file.
        path: PathBuf,
        /// Its format.
        format: u32,
    },

    /// A value could not be serialised to JSON.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }
}

/// The export's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
