//! The store: one sled database and the tantivy index beside it, in `<data_dir>/store/`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use sled::Transactional;

use crate::embed::{Embedder, EmbedderSlot, EmbedderSource, EmbeddingStatus};
use crate::error::{Error, Owner, Result};
use crate::index::{IndexDoc, SearchIndex, Watermark};
use crate::model::{Node, NodeId, NodeType};
use crate::progress::Progress;
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

/// sled trees (the graph's "tables"). Keys use `\0` as separator: ids never contain it.
#[derive(Debug, Clone)]
pub(crate) struct Trees {
    /// node id → `Node` (JSON).
    pub nodes: sled::Tree,
    /// project `\0` type code, node id → (): a project's nodes by type.
    pub by_project: sled::Tree,
    /// from `\0` edge code, to → `EdgeValue` (JSON).
    pub edges_out: sled::Tree,
    /// to `\0` edge code, from → (): the mirror, for incoming edges.
    pub edges_in: sled::Tree,
    /// project `\0` node id → type code, `f32` LE…: the node's embedding.
    pub vectors: sled::Tree,
    /// node id → searched-only text (a file's content).
    pub content: sled::Tree,
    /// sequence (u64 BE) → node id: the node changes the index may not have yet.
    pub changes: sled::Tree,
    /// Store-wide facts: `store_id`, `format`, `embedding_model`.
    pub meta: sled::Tree,
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
    pub trees: Trees,
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
    skip_index_updates: bool,
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

/// Nodes embedded per batch by [`Store::reindex`].
const REINDEX_BATCH: usize = 64;

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
        let trees = Trees {
            nodes: db.open_tree("nodes")?,
            by_project: db.open_tree("by_project")?,
            edges_out: db.open_tree("edges_out")?,
            edges_in: db.open_tree("edges_in")?,
            vectors: db.open_tree("vectors")?,
            content: db.open_tree("content")?,
            changes: db.open_tree("changes")?,
            meta: db.open_tree("meta")?,
        };
        let store_id = store_id(&trees.meta)?;
        db.flush()?;
        let (index, watermark) = SearchIndex::open(&root.join("index"))?;
        let store = Store {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                _owner: owner,
                trees,
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
        let pruned = match store.inner.trees.meta.get("pruned_upto")? {
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
                if !store.inner.trees.nodes.is_empty() || store.inner.index.num_docs() > 0 {
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

    pub(crate) fn trees(&self) -> &Trees {
        &self.inner.trees
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
        let t = self.trees();
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

    /// Apply the logged changes above `seq` to the index. Returns how many nodes changed.
    pub(crate) fn replay_changes(&self, seq: u64) -> Result<usize> {
        let _guard = self.write_guard();
        self.replay_changes_locked(seq)
    }

    fn replay_changes_locked(&self, seq: u64) -> Result<usize> {
        let t = self.trees();
        let mut ids: Vec<NodeId> = Vec::new();
        let mut last = seq;
        for item in t.changes.range(seq.saturating_add(1).to_be_bytes()..) {
            let (k, v) = item?;
            last = last.max(decode_seq(&k)?);
            let id = NodeId::from_trusted(String::from_utf8_lossy(&v).into_owned());
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        if last == seq {
            self.inner.index_behind.store(false, Ordering::SeqCst);
            return Ok(0);
        }
        self.index_nodes(&ids, last)?;
        Ok(ids.len())
    }

    /// Bring the index up to date with `ids` (their current state in the graph) and record
    /// `seq` as applied. On failure the changes stay logged and are replayed later.
    pub(crate) fn index_nodes(&self, ids: &[NodeId], seq: u64) -> Result<()> {
        let t = self.trees();
        let mut nodes: Vec<(NodeId, Option<NodeWithContent>)> = Vec::with_capacity(ids.len());
        for id in ids {
            let node = match t.nodes.get(id.as_str())? {
                Some(bytes) => {
                    let node = decode_node(id, &bytes)?;
                    let content = t
                        .content
                        .get(id.as_str())?
                        .map(|c| String::from_utf8_lossy(&c).into_owned());
                    Some((node, content))
                }
                None => None,
            };
            nodes.push((id.clone(), node));
        }
        let changes: Vec<(NodeId, Option<IndexDoc<'_>>)> = nodes
            .iter()
            .map(|(id, n)| {
                (id.clone(), n.as_ref().map(|(node, content)| index_doc(node, content.as_deref())))
            })
            .collect();
        match self.inner.index.apply(&changes, &Watermark::new(&self.inner.store_id, seq)) {
            Ok(()) => {
                self.inner.index_behind.store(false, Ordering::SeqCst);
                self.prune_changes(seq)?;
                Ok(())
            }
            Err(e) => {
                self.inner.index_behind.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// After a graph write: index it, or remember that the index is behind. The graph
    /// write is durable either way, so an index failure is logged, not returned.
    pub(crate) fn index_after_write(&self, ids: &[NodeId], seq: u64) {
        if self.inner.skip_index_updates {
            return;
        }
        if self.inner.index_behind.load(Ordering::SeqCst) {
            // Earlier changes are pending too: replay them all, in order.
            let from = self.inner.index.watermark().map(|w| w.seq).unwrap_or(0);
            if let Err(e) = self.replay_changes_locked(from) {
                tracing::error!("search index update failed; will retry: {e}");
            }
            return;
        }
        if let Err(e) = self.index_nodes(ids, seq) {
            tracing::error!("search index update failed; will retry: {e}");
        }
    }

    /// Replay pending changes if an earlier index update failed.
    pub(crate) fn ensure_index_current(&self) -> Result<()> {
        if self.inner.index_behind.load(Ordering::SeqCst) {
            let from = self.inner.index.watermark().map(|w| w.seq).unwrap_or(0);
            self.replay_changes(from)?;
        }
        Ok(())
    }

    /// Forget the logged changes up to `upto` (the index has them), remembering how far
    /// the log was pruned: an index older than that cannot be repaired by replay.
    fn prune_changes(&self, upto: u64) -> Result<()> {
        let t = self.trees();
        let mut keys = Vec::new();
        for item in t.changes.range(..=upto.to_be_bytes()).keys() {
            keys.push(item?);
        }
        (&t.changes, &t.meta).transaction(|(tc, tm)| {
            let old = match tm.get("pruned_upto")? {
                Some(v) => decode_seq(&v)
                    .map_err(sled::transaction::ConflictableTransactionError::Abort)?,
                None => 0,
            };
            tm.insert("pruned_upto", &old.max(upto).to_be_bytes())?;
            for k in &keys {
                tc.remove(k)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Rebuild the whole index from the graph. Call with the write guard held.
    pub(crate) fn rebuild_index(&self, progress: &dyn Progress) -> Result<u64> {
        let t = self.trees();
        // Every change logged so far gets a lower sequence number, and is in the graph
        // state read below.
        let seq = self.inner.db.generate_id()?;
        let total = t.nodes.len() as u64;
        progress.start("indexing", total);
        let mut docs: Vec<(Node, Option<String>)> = Vec::new();
        for item in t.nodes.iter() {
            let (k, v) = item?;
            let id = NodeId::from_trusted(String::from_utf8_lossy(&k).into_owned());
            let node = decode_node(&id, &v)?;
            let content = t.content.get(&k)?.map(|c| String::from_utf8_lossy(&c).into_owned());
            docs.push((node, content));
        }
        let mut count = 0u64;
        let mut each = || {
            count += 1;
            progress.advance(1);
        };
        self.inner.index.rebuild(
            docs.iter().map(|(n, c)| Ok(index_doc(n, c.as_deref()))),
            &Watermark::new(&self.inner.store_id, seq),
            &mut each,
        )?;
        progress.finish();
        self.inner.index_behind.store(false, Ordering::SeqCst);
        self.prune_changes(seq)?;
        Ok(total)
    }

    /// Rebuild the search index from the graph and compute the embeddings nodes lack (all
    /// of them after a model change) or hold in an older passage scheme (which upgrades a
    /// store written before passages). Safe to run any time; writes wait meanwhile.
    pub fn reindex(&self, progress: &dyn Progress) -> Result<ReindexReport> {
        let embedder = self.embedder();
        let _guard = self.write_guard();
        let indexed = self.rebuild_index(progress)?;
        let embedder = match embedder {
            Ok(e) => e,
            Err(reason) => {
                return Ok(ReindexReport {
                    indexed,
                    embedded: 0,
                    embeddings_unavailable: Some(reason),
                });
            }
        };
        let t = self.trees();
        // Nodes without vectors, and nodes whose vectors predate passages (one vector of
        // the head of the node): an older store is upgraded here.
        let mut stale: Vec<Node> = Vec::new();
        for item in t.nodes.iter() {
            let (k, v) = item?;
            let id = NodeId::from_trusted(String::from_utf8_lossy(&k).into_owned());
            let node = decode_node(&id, &v)?;
            let current = t
                .vectors
                .get(vector_key(&node.project, &node.id))?
                .and_then(|bytes| crate::vectors::decode(&bytes))
                .is_some_and(|s| s.scheme >= crate::vectors::SCHEME);
            if !current {
                stale.push(node);
            }
        }
        progress.start("embedding", stale.len() as u64);
        let mut embedded = 0u64;
        for chunk in stale.chunks(REINDEX_BATCH) {
            let contents: Vec<Option<String>> = chunk
                .iter()
                .map(|n| {
                    t.content
                        .get(n.id.as_str())
                        .map(|c| c.map(|c| String::from_utf8_lossy(&c).into_owned()))
                })
                .collect::<std::result::Result<_, _>>()?;
            let sources: Vec<crate::chunk::PassageSource<'_>> = chunk
                .iter()
                .zip(&contents)
                .map(|(n, c)| crate::chunk::PassageSource {
                    title: &n.title,
                    tags: &n.tags,
                    text: c.as_deref().unwrap_or(&n.body),
                    summary: c.as_ref().map(|_| n.body.as_str()),
                })
                .collect();
            let vectors = crate::chunk::embed_passages(embedder.as_ref(), &sources)?;
            let mut batch = sled::Batch::default();
            for (node, (passages, v)) in chunk.iter().zip(&vectors) {
                batch.insert(
                    vector_key(&node.project, &node.id),
                    crate::vectors::encode(node.node_type, passages, v),
                );
            }
            t.vectors.apply_batch(batch)?;
            self.flush()?;
            embedded += chunk.len() as u64;
            progress.advance(chunk.len() as u64);
        }
        progress.finish();
        self.inner.vectors.clear();
        Ok(ReindexReport { indexed, embedded, embeddings_unavailable: None })
    }

    /// Counts of nodes, edges, vectors and disk use, for one project or all.
    pub fn stats(&self, scope: &crate::Scope) -> Result<Stats> {
        let t = self.trees();
        let mut nodes = std::collections::BTreeMap::new();
        let mut total = 0u64;
        let mut edges = 0u64;
        let mut projects = std::collections::BTreeSet::new();
        let prefix = match scope {
            crate::Scope::Project(p) => project_prefix(p),
            crate::Scope::All => Vec::new(),
        };
        for item in t.by_project.scan_prefix(&prefix) {
            let (k, _) = item?;
            let Some((project, node_type, id)) = split_by_project_key(&k) else { continue };
            projects.insert(project.to_string());
            *nodes.entry(node_type).or_insert(0u64) += 1;
            total += 1;
            let mut out = id.as_bytes().to_vec();
            out.push(0);
            edges += t.edges_out.scan_prefix(&out).count() as u64;
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
    pub fn project_ids(&self) -> Result<Vec<crate::ProjectId>> {
        let mut out = Vec::new();
        let mut start: Vec<u8> = Vec::new();
        while let Some(k) = self.trees().by_project.range(start.clone()..).keys().next() {
            let k = k?;
            let Some(sep) = k.iter().position(|b| *b == 0) else { break };
            out.push(crate::ProjectId::from_trusted(
                String::from_utf8_lossy(&k[..sep]).into_owned(),
            ));
            // Keys are `project \0 …`: `project \1` is past all of them.
            start = k[..sep].to_vec();
            start.push(1);
        }
        Ok(out)
    }

    /// A named collection of JSON documents (see [`crate::Collection`]).
    pub fn collection(&self, name: &str) -> Result<crate::Collection> {
        crate::collection::Collection::open(self.clone(), name)
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
        meta.insert("format", &FORMAT.to_be_bytes())?;
    }
    if let Some(id) = meta.get("store_id")? {
        return Ok(String::from_utf8_lossy(&id).into_owned());
    }
    let id = uuid::Uuid::new_v4().to_string();
    meta.insert("store_id", id.as_bytes())?;
    Ok(id)
}

/// A node and its searched-only text.
type NodeWithContent = (Node, Option<String>);

pub(crate) fn decode_seq(bytes: &[u8]) -> Result<u64> {
    let arr: [u8; 8] =
        bytes.try_into().map_err(|_| Error::corrupt("sequence number", "not 8 bytes"))?;
    Ok(u64::from_be_bytes(arr))
}

pub(crate) fn decode_node(id: &NodeId, bytes: &[u8]) -> Result<Node> {
    serde_json::from_slice(bytes).map_err(|e| Error::corrupt(format!("node {id}"), e))
}

pub(crate) fn index_doc<'a>(node: &'a Node, content: Option<&'a str>) -> IndexDoc<'a> {
    IndexDoc {
        id: &node.id,
        project: &node.project,
        node_type: node.node_type,
        title: &node.title,
        body: &node.body,
        tags: &node.tags,
        content,
    }
}

/// `project \0`: the prefix of a project's keys in `by_project` and `vectors`.
pub(crate) fn project_prefix(project: &crate::ProjectId) -> Vec<u8> {
    let mut k = project.as_str().as_bytes().to_vec();
    k.push(0);
    k
}

/// `project \0 type-code id`.
pub(crate) fn by_project_key(
    project: &crate::ProjectId,
    node_type: NodeType,
    id: &NodeId,
) -> Vec<u8> {
    let mut k = project_prefix(project);
    k.push(node_type.code());
    k.extend_from_slice(id.as_str().as_bytes());
    k
}

pub(crate) fn split_by_project_key(key: &[u8]) -> Option<(&str, NodeType, &str)> {
    let sep = key.iter().position(|b| *b == 0)?;
    let project = std::str::from_utf8(&key[..sep]).ok()?;
    let code = *key.get(sep + 1)?;
    let id = std::str::from_utf8(key.get(sep + 2..)?).ok()?;
    Some((project, NodeType::from_code(code)?, id))
}

/// `project \0 id`.
pub(crate) fn vector_key(project: &crate::ProjectId, id: &NodeId) -> Vec<u8> {
    let mut k = project_prefix(project);
    k.extend_from_slice(id.as_str().as_bytes());
    k
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
