//! troupe's project memory: what was tried, decided, broken and learned, per project,
//! found again in milliseconds and put into the next prompt.
//!
//! One [`Store`] per data folder (`<data_dir>/store/`): a sled database holding a graph of
//! [`Node`]s and [`Edge`]s (plus the runtime's [`Collection`]s of JSON documents), and a
//! tantivy BM25 index beside it that is repaired from the graph whenever it falls behind.
//! Nodes are embedded with all-MiniLM-L6-v2 ([`OnnxEmbedder`]) when the model is installed,
//! as overlapping passages that fit the model's window ([`Passage`]); search is BM25,
//! vector, or both fused ([`SearchQuery`], [`Fusion`]).
//!
//! ```no_run
//! use troupe_context::{Store, StoreOptions, SearchQuery, TaskRecord};
//! # fn main() -> troupe_context::Result<()> {
//! let store = Store::open("/home/me/.local/share/troupe".as_ref(),
//!                         StoreOptions::with_assets("/home/me/.local/share/troupe/assets"))?;
//! let project = store.ensure_project(".".as_ref())?;          // scans on first use
//! store.store_task(&project, &TaskRecord {
//!     task: "Add rate limiting".into(), outcome: "token bucket per agent".into(),
//!     success: true, ..TaskRecord::default() })?;
//! let hits = store.search(&SearchQuery::new("rate limit", &project))?;
//! let block = store.relevant_context(&project, "tune the rate limiter", 1500)?;
//! # Ok(()) }
//! ```
//!
//! Everything here is synchronous and may block (disk, the embedding model): the runtime
//! decides where it runs (`spawn_blocking`, a `SyncArbiter`).

mod chunk;
mod collection;
mod embed;
mod error;
mod graph;
mod index;
mod keys;
mod memory;
mod model;
mod nodes;
mod progress;
mod project;
mod search;
mod similarity;
mod store;
mod sync;
mod text;
mod vectors;

pub use chunk::Passage;
pub use collection::{CasConflict, Collection};
#[cfg(any(test, feature = "test-utils"))]
pub use embed::HashEmbedder;
pub use embed::{
    DEFAULT_BATCH_SIZE, Embedder, EmbeddingAssets, EmbeddingStatus, MAX_MODEL_TOKENS, OnnxEmbedder,
    SETUP_HINT,
};
pub use error::{Error, Owner, Result};
pub use memory::{
    ContextBlock, DecisionRecord, MistakeRecord, PatternRecord, TaskRecord, TokenCounting,
    TurnRecord, UsedNode,
};
pub use model::{
    Direction, Edge, EdgeType, MAX_ID_LEN, NewNode, Node, NodeId, NodeType, ProjectId, Scope,
};
pub use progress::{NoProgress, Progress};
pub use project::{
    LanguageShare, ProjectInfo, ScanReport, file_node_id, project_files, project_id_for,
    project_id_of_canonical,
};
pub use search::{
    DEFAULT_FUSION, DEFAULT_RRF_K, FoundBy, Fusion, GraphHop, Ranked, Recency, SearchHit,
    SearchMode, SearchQuery, SearchResults,
};
pub use store::{LockWait, ReindexReport, Stats, Store, StoreOptions};
