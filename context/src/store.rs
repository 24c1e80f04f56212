//! The store: one sled database and the tantivy index beside it, in `<data_dir>/store/`.
//!
//! [`Store`] composes the parts, each its own type that knows nothing of the others: the
//! [`Graph`] (the sled trees, `graph.rs`), the BM25 [`SearchIndex`] (`index.rs`), the
//! in-memory vector matrices ([`VectorCache`], `vectors.rs`), the embedder and the
//! runtime's [`crate::Collection`]s. Here: opening, the embedding model check and stats;
//! keeping the index in step with the graph and reindexing are `sync.rs`. The public API lives
//! beside the part it is about (`nodes.rs`, `search/`, `memory.rs`, `project.rs`).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;

use crate::collection::Collection;
use crate::embed::{Embedder, EmbedderSlot, EmbedderSource, EmbeddingStatus};
use crate::error::{Error, Owner, Result};
use crate::graph::Graph;
use crate::index::SearchIndex;
use crate::keys::{decode_seq, encode_seq, id_prefix, project_prefix, split_by_project_key};
use crate::model::{NodeId, NodeType, ProjectId, Scope};
use crate::vectors::VectorCache;

/// How to open a [`Store`].
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    pub(crate) embedder: EmbedderSource,
    /// Test fault injection: leave graph writes unindexed (see
    /// `StoreOptions::crash_before_index_commits`).
    pub(crate) skip_index_updates: bool,
}

impl StoreOptions {
    /// Embeddings from the real model under `assets_dir` (`Config::assets_dir()`), loaded on
    /// first use. When the files are missing, hybrid search degrades to BM25 with a
    /// warning and [`Store::embedding_status`] says why.
    pub fn with_assets(assets_dir: impl Into<PathBuf>) -> StoreOptions {
        StoreOptions {
            embedder: EmbedderSource::Assets(assets_dir.into()),
            ..StoreOptions::default()
        }
    }

    /// Embeddings from this embedder (tests use `HashEmbedder`, behind the `test-utils` feature).
    pub fn with_embedder(embedder: Arc<dyn Embedder>) -> StoreOptions {
        StoreOptions { embedder: EmbedderSource::Given(embedder), ..StoreOptions::default() }
    }

    /// No embeddings: BM25 only.
    pub fn without_embeddings() -> StoreOptions {
        StoreOptions { embedder: EmbedderSource::Disabled, ..StoreOptions::default() }
    }

    /// Fault injection for tests: graph writes are never followed by their index commit,
    /// as if the process died between the two every time. The next normal open repairs
    /// the index.
    #[cfg(any(test, feature = "test-utils"))]
    pub fn crash_before_index_commits(mut self) -> StoreOptions {
        self.skip_index_updates = true;
        self
    }
}

/// The on-disk format this code writes; refuse newer ones.
const FORMAT: u64 = 1;

/// How long [`Store::open_waiting`] waits for a store another process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockWait {
    /// Give up after this long (zero: do not wait).
    pub limit: std::time::Duration,
    /// Say whom it waits for once it has waited this long.
    pub notice_after: std::time::Duration,
}

impl LockWait {
    /// Do not wait: fail at once, as [`Store::open`] does.
    pub const NONE: LockWait =
        LockWait { limit: std::time::Duration::ZERO, notice_after: std::time::Duration::ZERO };
}

/// The process's mark on the store: written once the lock is held, removed on close.
#[derive(Debug)]
struct OwnerFile {
    path: PathBuf,
}

impl OwnerFile {
    fn write(path: PathBuf) -> OwnerFile {
        let command: String =
            std::env::args().collect::<Vec<_>>().join(" ").chars().take(200).collect();
        let owner = Owner {
            pid: std::process::id(),
            command,
            since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            alive: None,
        };
        // Best effort: without it a second process still gets a clear (if less specific)
        // message.
        if let Ok(json) = serde_json::to_vec_pretty(&owner) {
            let tmp = path.with_extension("json.tmp");
            if std::fs::write(&tmp, json).and_then(|_| std::fs::rename(&tmp, &path)).is_err() {
                tracing::debug!("cannot write {}", path.display());
            }
        }
        OwnerFile { path }
    }

    fn read(path: &Path) -> Option<Owner> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut owner: Owner = serde_json::from_str(&text).ok()?;
        owner.alive = process_alive(owner.pid);
        Some(owner)
    }
}

impl Drop for OwnerFile {
    fn drop(&mut self) {
        // Still holding the lock here (the database closes after this field drops), so the
        // file is ours.
        if OwnerFile::read(&self.path).is_some_and(|o| o.pid == std::process::id()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn process_alive(pid: u32) -> Option<bool> {
    if cfg!(target_os = "linux") {
        Some(Path::new("/proc").join(pid.to_string()).exists())
    } else {
        None
    }
}

pub(crate) struct Inner {
    pub root: PathBuf,
    /// Dropped first, while the database lock is still held.
    _owner: OwnerFile,
    pub graph: Graph,
    pub db: sled::Db,
    pub index: SearchIndex,
    pub store_id: String,
    pub embedder: EmbedderSlot,
    pub vectors: VectorCache,
    /// Serialises graph writes, so each write's graph transaction, vector cache update and
    /// index commit happen in the same order for everyone.
    write: Mutex<()>,
    /// An index update failed after its graph write succeeded: replay before searching.
    pub index_behind: AtomicBool,
    /// The "no embeddings, BM25 only" warning was logged.
    pub degraded_warned: AtomicBool,
    /// Test fault injection: graph writes are not indexed.
    pub skip_index_updates: bool,
    /// The loaded model was compared with the one the stored vectors come from.
    model_checked: std::sync::OnceLock<()>,
}

/// The project memory: graph, BM25 index, vectors and the runtime's document collections,
/// in one folder. Cheap to clone (shared); `Send + Sync`. Every method is synchronous and
/// may block on disk or on the embedding model: call it from a blocking context.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.inner.root).finish_non_exhaustive()
    }
}

/// What [`Store::reindex`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReindexReport {
    /// Nodes in the rebuilt index.
    pub indexed: u64,
    /// Nodes that got new embeddings (missing, or of an older passage scheme).
    pub embedded: u64,
    /// Why no embeddings were computed, when none could be.
    pub embeddings_unavailable: Option<String>,
}

/// Counts for `troupe context stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Nodes per type (in scope).
    pub nodes: std::collections::BTreeMap<NodeType, u64>,
    /// Nodes in scope.
    pub total_nodes: u64,
    /// Edges leaving nodes in scope.
    pub edges: u64,
    /// Nodes in scope with an embedding.
    pub embedded: u64,
    /// Documents in the search index (all projects).
    pub index_docs: u64,
    /// Graph changes the index has not applied yet (0 when healthy).
    pub index_pending: u64,
    /// Projects known.
    pub projects: u64,
    /// Bytes on disk of the whole store.
    pub disk_bytes: u64,
    /// Embedding model state.
    pub embedding: EmbeddingStatus,
}

impl Store {
    /// Open (or create) the store in `<data_dir>/store/`. When another process has it open,
    /// fails with [`Error::Locked`] naming that process. An index that is behind the graph
    /// (a crash between the two writes) is brought up to date; one that is missing or
    /// unreadable is rebuilt.
    pub fn open(data_dir: &Path, options: StoreOptions) -> Result<Store> {
        Store::open_in(&data_dir.join("store"), options)
    }

    /// Like [`Store::open`], but when another process holds the store, wait for it to close
    /// it, up to `wait.limit`, trying again every few tens of milliseconds. Once the wait
    /// passes `wait.notice_after`, `on_wait` is called (once) with the holder, so a
    /// front-end can say whom it waits for. Gives up with [`Error::Locked`] (naming the
    /// holder and how long it waited). Blocks the calling thread.
    pub fn open_waiting(
        data_dir: &Path,
        options: StoreOptions,
        wait: LockWait,
        mut on_wait: impl FnMut(Option<&Owner>),
    ) -> Result<Store> {
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(20);
        let mut told = false;
        loop {
            match Store::open(data_dir, options.clone()) {
                Err(Error::Locked { path, owner, .. }) => {
                    let waited = started.elapsed();
                    if waited >= wait.limit {
                        let waited = (!wait.limit.is_zero()).then_some(waited);
                        return Err(Error::Locked { path, owner, waited });
                    }
                    if !told && waited >= wait.notice_after {
                        told = true;
                        on_wait(owner.as_ref());
                    }
                    std::thread::sleep(pause.min(wait.limit - waited));
                    pause = (pause * 2).min(std::time::Duration::from_millis(250));
                }
                other => return other,
            }
        }
    }

    /// Open the store in exactly this folder.
    pub fn open_in(root: &Path, options: StoreOptions) -> Result<Store> {
        std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        let owner_path = root.join("owner.json");
        let db = match sled::Config::new().path(root.join("graph")).open() {
            Ok(db) => db,
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                let owner = OwnerFile::read(&owner_path);
                if owner.as_ref().is_some_and(|o| o.pid == std::process::id()) {
                    return Err(Error::AlreadyOpen { path: root.to_path_buf() });
                }
                return Err(Error::Locked { path: root.to_path_buf(), owner, waited: None });
            }
            Err(e) => return Err(e.into()),
        };
        let owner = OwnerFile::write(owner_path);
        let graph = Graph::open(&db)?;
        let store_id = store_id(&graph.meta)?;
        db.flush()?;
        let (index, watermark) = SearchIndex::open(&root.join("index"))?;
        let store = Store {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                _owner: owner,
                graph,
                db,
                index,
                store_id,
                embedder: EmbedderSlot::new(options.embedder),
                vectors: VectorCache::default(),
                write: Mutex::new(()),
                index_behind: AtomicBool::new(false),
                degraded_warned: AtomicBool::new(false),
                model_checked: std::sync::OnceLock::new(),
                skip_index_updates: options.skip_index_updates,
            }),
        };
        let pruned = match store.inner.graph.meta.get("pruned_upto")? {
            Some(v) => decode_seq(&v)?,
            None => 0,
        };
        match watermark {
            // Every change above the watermark is still logged: replay them.
            Some(w) if w.store == store.inner.store_id && w.seq >= pruned => {
                let replayed = store.replay_changes(w.seq)?;
                if replayed > 0 {
                    tracing::info!(
                        replayed,
                        "search index was behind the graph; brought up to date"
                    );
                }
            }
            _ => {
                if !store.inner.graph.nodes.is_empty() || store.inner.index.num_docs() > 0 {
                    tracing::info!(
                        "search index missing or from elsewhere; rebuilding it from the graph"
                    );
                }
                let _guard = store.write_guard();
                store.rebuild_index(&crate::progress::NoProgress)?;
            }
        }
        tracing::debug!(root = %root.display(), "context store open");
        Ok(store)
    }

    /// Who has the store in `<data_dir>/store/` open, as that process recorded it when it
    /// opened the store (`owner.json`), with whether it is still running. `None` when no
    /// process recorded itself (the store is closed, or its holder was killed before it
    /// could write the file). Reads a file only; never takes the lock.
    pub fn holder(data_dir: &Path) -> Option<Owner> {
        OwnerFile::read(&data_dir.join("store").join("owner.json"))
    }

    /// The store folder.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The graph's trees.
    pub(crate) fn graph(&self) -> &Graph {
        &self.inner.graph
    }

    pub(crate) fn write_guard(&self) -> MutexGuard<'_, ()> {
        self.inner.write.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn flush(&self) -> Result<()> {
        self.inner.db.flush()?;
        Ok(())
    }

    /// The embedder, loading it on first use; `Err(reason)` when there is none. Never call
    /// with the write guard held (the first call may take it).
    pub(crate) fn embedder(&self) -> std::result::Result<Arc<dyn Embedder>, String> {
        let embedder = self.inner.embedder.get()?;
        self.inner.model_checked.get_or_init(|| {
            if let Err(e) = self.check_embedding_model(embedder.model_id()) {
                tracing::error!("cannot check the stored vectors' model: {e}");
            }
        });
        Ok(embedder)
    }

    /// Vectors of another model are useless (and may have another size): drop them, so
    /// that vector search sees only comparable vectors and a reindex recomputes them.
    fn check_embedding_model(&self, model: &str) -> Result<()> {
        let _guard = self.write_guard();
        let t = self.graph();
        let stored = t.meta.get("embedding_model")?;
        match stored {
            Some(m) if m.as_ref() != model.as_bytes() => {
                let old = String::from_utf8_lossy(&m).into_owned();
                let dropped = t.vectors.len();
                t.vectors.clear()?;
                t.meta.insert("embedding_model", model.as_bytes())?;
                self.flush()?;
                self.inner.vectors.clear();
                tracing::warn!(
                    "the embedding model changed ({old} → {model}): dropped {dropped} stored vectors; \
                     run `troupe context reindex` to recompute them"
                );
            }
            Some(_) => {}
            None => {
                t.meta.insert("embedding_model", model.as_bytes())?;
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Whether embeddings work, loading the model to find out (for `troupe doctor`).
    pub fn embedding_status(&self) -> EmbeddingStatus {
        self.inner.embedder.status(true)
    }

    /// Counts of nodes, edges, vectors and disk use, for one project or all.
    pub fn stats(&self, scope: &Scope) -> Result<Stats> {
        let t = self.graph();
        let mut nodes = std::collections::BTreeMap::new();
        let mut total = 0u64;
        let mut edges = 0u64;
        let mut projects = std::collections::BTreeSet::new();
        let prefix = match scope {
            Scope::Project(p) => project_prefix(p),
            Scope::All => Vec::new(),
        };
        for item in t.by_project.scan_prefix(&prefix) {
            let (k, _) = item?;
            let Some((project, node_type, id)) = split_by_project_key(&k) else { continue };
            projects.insert(project.to_string());
            *nodes.entry(node_type).or_insert(0u64) += 1;
            total += 1;
            let id = NodeId::from_trusted(id.to_string());
            edges += t.edges_out.scan_prefix(id_prefix(&id)).count() as u64;
        }
        let embedded = t.vectors.scan_prefix(&prefix).count() as u64;
        let index_pending = t.changes.len() as u64;
        Ok(Stats {
            nodes,
            total_nodes: total,
            edges,
            embedded,
            index_docs: self.inner.index.num_docs(),
            index_pending,
            projects: projects.len() as u64,
            disk_bytes: dir_size(&self.inner.root),
            embedding: self.inner.embedder.status(false),
        })
    }

    /// Every project with at least one node.
    pub fn project_ids(&self) -> Result<Vec<ProjectId>> {
        self.graph().project_ids()
    }

    /// A named collection of JSON documents (see [`crate::Collection`]).
    pub fn collection(&self, name: &str) -> Result<Collection> {
        Collection::open(&self.inner.db, name)
    }

    /// Write everything to disk now (every write already does this before returning).
    pub fn sync(&self) -> Result<()> {
        self.flush()
    }
}

fn store_id(meta: &sled::Tree) -> Result<String> {
    if let Some(format) = meta.get("format")? {
        let format = decode_seq(&format)?;
        if format > FORMAT {
            return Err(Error::InvalidInput(format!(
                "the context store was written by a newer troupe (format {format}, this one reads {FORMAT}); \
                 upgrade troupe"
            )));
        }
    } else {
        meta.insert("format", &encode_seq(FORMAT))?;
    }
    if let Some(id) = meta.get("store_id")? {
        return Ok(String::from_utf8_lossy(&id).into_owned());
    }
    let id = uuid::Uuid::new_v4().to_string();
    meta.insert("store_id", id.as_bytes())?;
    Ok(id)
}

pub(crate) fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    for entry in entries.flatten() {
        match entry.metadata() {
            Ok(m) if m.is_dir() => total += dir_size(&entry.path()),
            Ok(m) => total += m.len(),
            Err(_) => {}
        }
    }
    total
}
