//! Keeping the search index in step with the graph, and rebuilding both derived parts.
//!
//! Every graph write logs its nodes in the `changes` tree in the same transaction; the
//! index commit after it records how far it got (its watermark). A failed or missed index
//! update is replayed from the log (before the next search, and when the store opens); an
//! index that cannot be repaired that way is rebuilt from the graph. `reindex` rebuilds the
//! index and computes the embeddings nodes lack or hold in an older passage scheme.

use std::sync::atomic::Ordering;

use sled::Transactional;

use crate::chunk::{PassageSource, embed_passages};
use crate::error::Result;
use crate::graph::decode_node;
use crate::index::{IndexDoc, Watermark};
use crate::keys::{decode_seq, encode_seq, vector_key};
use crate::model::{Node, NodeId};
use crate::progress::Progress;
use crate::store::{ReindexReport, Store};

/// Nodes embedded per batch by [`Store::reindex`].
const REINDEX_BATCH: usize = 64;

impl Store {
    /// Apply the logged changes above `seq` to the index. Returns how many nodes changed.
    pub(crate) fn replay_changes(&self, seq: u64) -> Result<usize> {
        let _guard = self.write_guard();
        self.replay_changes_locked(seq)
    }

    fn replay_changes_locked(&self, seq: u64) -> Result<usize> {
        let t = self.graph();
        let mut ids: Vec<NodeId> = Vec::new();
        let mut last = seq;
        for item in t.changes.range(encode_seq(seq.saturating_add(1))..) {
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
        let t = self.graph();
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
        let t = self.graph();
        let mut keys = Vec::new();
        for item in t.changes.range(..=encode_seq(upto)).keys() {
            keys.push(item?);
        }
        (&t.changes, &t.meta).transaction(|(tc, tm)| {
            let old = match tm.get("pruned_upto")? {
                Some(v) => decode_seq(&v)
                    .map_err(sled::transaction::ConflictableTransactionError::Abort)?,
                None => 0,
            };
            tm.insert("pruned_upto", &encode_seq(old.max(upto)))?;
            for k in &keys {
                tc.remove(k)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Rebuild the whole index from the graph. Call with the write guard held.
    pub(crate) fn rebuild_index(&self, progress: &dyn Progress) -> Result<u64> {
        let t = self.graph();
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
        let t = self.graph();
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
            let sources: Vec<PassageSource<'_>> = chunk
                .iter()
                .zip(&contents)
                .map(|(n, c)| PassageSource {
                    title: &n.title,
                    tags: &n.tags,
                    text: c.as_deref().unwrap_or(&n.body),
                    summary: c.as_ref().map(|_| n.body.as_str()),
                })
                .collect();
            let vectors = embed_passages(embedder.as_ref(), &sources)?;
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
}

/// A node and its searched-only text.
type NodeWithContent = (Node, Option<String>);

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
