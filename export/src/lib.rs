//! troupe's project memory in other tools' formats. Today: an [Obsidian](https://obsidian.md)
//! vault — one Markdown note per node in a folder per kind, YAML frontmatter, the edges as
//! `[[wikilinks]]`, a map of content (`_Index.md`) and a graph view coloured by kind.
//!
//! Export is presentation, not memory: this crate reads a [`troupe_context::Store`] and
//! writes files; the context crate knows nothing of it.
//!
//! ```no_run
//! use troupe_export::{ExportOptions, export};
//! use troupe_context::{NodeType, Scope, Store, StoreOptions};
//! # fn main() -> troupe_export::Result<()> {
//! let store = Store::open("/home/me/.local/share/troupe".as_ref(), StoreOptions::without_embeddings())?;
//! let options = ExportOptions::new("/home/me/vault", Scope::All)
//!     .types([NodeType::Decision, NodeType::Pattern]);
//! let summary = export(&store, &options)?;
//! println!("{} notes written, {} unchanged", summary.written, summary.unchanged);
//! # Ok(()) }
//! ```
//!
//! Exporting again into the same folder is incremental. A manifest
//! ([`MANIFEST`], paths and content hashes) says which notes troupe wrote: a note is
//! rewritten only when what troupe would write into it changed, notes of nodes that are no
//! longer selected (deleted, or filtered out) are removed, and files troupe did not write
//! are never touched. In each note troupe owns its frontmatter properties (id, title,
//! type, project, created, updated, tags, aliases, metadata) and the text between [`BEGIN`]
//! and [`END`]; the user's own properties and whatever the user writes outside the markers
//! are kept on every rewrite (and a note whose node is gone is kept, without troupe's
//! part, when the user wrote in it). A node keeps its file name across exports as long as
//! its title does not change.
//!
//! One file per concern: the note kinds (`kinds.rs`: folder, colour and link headings —
//! add a kind there), file names (`names.rs`), the YAML frontmatter writer
//! (`frontmatter.rs`), Markdown escaping (`markdown.rs`), merging troupe's part of a note
//! with the user's (`note.rs`), the manifest (`manifest.rs`), the map of content
//! (`index_note.rs`), the `.obsidian/` settings (`settings.rs`) and the orchestration
//! (`export.rs`).

mod error;
mod export;
mod files;
mod frontmatter;
mod index_note;
mod kinds;
mod manifest;
mod markdown;
mod names;
mod note;
mod placed;
mod settings;

pub use error::{Error, Result};
pub use export::{ExportOptions, ExportSummary, export};
pub use frontmatter::yaml_string;
pub use kinds::{NoteKind, colour, folder, kind, link_heading};
pub use manifest::MANIFEST;
pub use names::{MAX_STEM_BYTES, obsidian_tag, safe_file_stem};
pub use note::{BEGIN, END};

/// The map of content, in the vault's root.
pub const INDEX: &str = "_Index.md";
