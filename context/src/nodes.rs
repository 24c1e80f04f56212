//! The store's node and edge API: upsert (embedded, indexed, on disk when it returns),
//! get, list, link, neighbours, delete. Each write is one [`crate::graph::Graph`]
//! transaction under the store's write guard, then the vector cache and the search index
//! follow.

use chrono::{DateTime, Utc};

use crate::chunk::{Embedded, PassageSource, embed_passages};
use crate::error::{Error, Result};
use crate::graph::EdgeValue;
use crate::model::{Direction, Edge, EdgeType, NewNode, Node, NodeId, NodeType, ProjectId, Scope};
use crate::store::Store;

impl Store {
    /// Store one node: a new one, or (same id) an update that keeps its edges and
    /// `created_at`. Embedded (when the model is available), indexed, and on disk when
    /// this returns.
    pub fn upsert_node(&self, node: NewNode) -> Result<Node> {
        let mut out = self.upsert_nodes(vec![node])?;
        out.pop().ok_or_else(|| Error::Index("upsert returned nothing".into()))
    }

    /// Store many nodes in one transaction: embedded in batches, one index commit, one
    /// flush. The fast path for bulk ingestion.
    pub fn upsert_nodes(&self, nodes: Vec<NewNode>) -> Result<Vec<Node>> {
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        for n in &nodes {
            n.validate()?;
        }
        let ids: Vec<NodeId> =
            nodes.iter().map(|n| n.id.clone().unwrap_or_else(NodeId::generate)).collect();
        let embeddings = self.embed_nodes(&nodes)?;
        let guard = self.write_guard();
        let (stored, last_seq) =
            self.graph().write_nodes(&nodes, &ids, embeddings.as_deref(), Utc::now())?;
        self.flush()?;
        for (i, node) in stored.iter().enumerate() {
            let v = embeddings.as_ref().and_then(|e| e.get(i));
            self.inner.vectors.apply(
                &node.project,
                &node.id,
                v.map(|(_, v)| (node.node_type, v.as_slice())),
            );
        }
        self.index_after_write(&ids, last_seq);
        drop(guard);
        Ok(stored)
    }

    /// The passages of `nodes` and their embeddings when a model is available (`None`
    /// without one: the nodes are stored without vectors, and hybrid search uses BM25 for
    /// them). A node's passages cut its searched text (a file's content, with its summary
    /// body as one more passage) or else its body.
    fn embed_nodes(&self, nodes: &[NewNode]) -> Result<Option<Vec<Embedded>>> {
        let embedder = match self.embedder() {
            Ok(e) => e,
            Err(reason) => {
                if !self.inner.embedder.is_disabled()
                    && !self.inner.degraded_warned.swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    tracing::warn!(
                        "no embedding model: nodes are stored without vectors and searched with BM25 \
                         (`troupe context reindex` embeds them once the model is installed): {reason}"
                    );
                }
                return Ok(None);
            }
        };
        let sources: Vec<PassageSource<'_>> = nodes
            .iter()
            .map(|n| PassageSource {
                title: n.title.trim(),
                tags: &n.tags,
                text: n.content.as_deref().unwrap_or(&n.body),
                summary: n.content.as_ref().map(|_| n.body.as_str()),
            })
            .collect();
        Ok(Some(embed_passages(embedder.as_ref(), &sources)?))
    }

    /// A node by id.
    pub fn get_node(&self, id: &NodeId) -> Result<Option<Node>> {
        self.graph().get_node(id)
    }

    /// A node by id, or [`Error::NotFound`].
    pub fn node(&self, id: &NodeId) -> Result<Node> {
        self.get_node(id)?.ok_or_else(|| Error::not_found(format!("node {id}")))
    }

    /// The searched-only text stored with a node (a file's content), if any.
    pub fn node_content(&self, id: &NodeId) -> Result<Option<String>> {
        self.graph().node_content(id)
    }

    /// The node whose id is `prefix` or starts with it (for ids typed by people).
    pub fn resolve_id(&self, prefix: &str) -> Result<NodeId> {
        self.graph().resolve_id(prefix)
    }

    /// The nodes of `scope`, optionally of one type, newest first, at most `limit`.
    pub fn list_nodes(
        &self,
        scope: &Scope,
        node_type: Option<NodeType>,
        limit: usize,
    ) -> Result<Vec<Node>> {
        let ids = self.ids_in(scope, node_type)?;
        let mut nodes = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(n) = self.get_node(&id)? {
                nodes.push(n);
            }
        }
        nodes.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.id.cmp(&b.id)));
        nodes.truncate(limit);
        Ok(nodes)
    }

    /// Ids of the nodes in `scope` (of one type, when given).
    pub(crate) fn ids_in(&self, scope: &Scope, node_type: Option<NodeType>) -> Result<Vec<NodeId>> {
        self.graph().ids_in(scope, node_type)
    }

    /// Link `from` → `to` (both must exist; self-links are refused). Linking again with
    /// the same type replaces the weight and metadata. Durable when this returns.
    pub fn link(
        &self,
        from: &NodeId,
        to: &NodeId,
        edge_type: EdgeType,
        weight: f32,
        metadata: serde_json::Value,
    ) -> Result<Edge> {
        if from == to {
            return Err(Error::InvalidInput(format!("cannot link node {from} to itself")));
        }
        if !weight.is_finite() || weight < 0.0 {
            return Err(Error::InvalidInput(format!(
                "edge weight must be a finite number ≥ 0, not {weight}"
            )));
        }
        if !(metadata.is_object() || metadata.is_null()) {
            return Err(Error::InvalidInput("edge metadata must be a JSON object".into()));
        }
        let value = EdgeValue { weight, metadata, created_at: Utc::now() };
        let guard = self.write_guard();
        self.graph().link(from, to, edge_type, &value)?;
        self.flush()?;
        drop(guard);
        Ok(Edge {
            from: from.clone(),
            to: to.clone(),
            edge_type,
            weight: value.weight,
            metadata: value.metadata,
            created_at: value.created_at,
        })
    }

    /// Remove the edge `from` → `to` of `edge_type`; whether it existed.
    pub fn unlink(&self, from: &NodeId, to: &NodeId, edge_type: EdgeType) -> Result<bool> {
        let guard = self.write_guard();
        let existed = self.graph().unlink(from, to, edge_type)?;
        self.flush()?;
        drop(guard);
        Ok(existed)
    }

    /// The edges of `id` in `direction`, of one type or all.
    pub fn edges(
        &self,
        id: &NodeId,
        direction: Direction,
        edge_type: Option<EdgeType>,
    ) -> Result<Vec<Edge>> {
        self.graph().edges(id, direction, edge_type)
    }

    /// The nodes one edge away from `id`, with the edge.
    pub fn neighbours(
        &self,
        id: &NodeId,
        direction: Direction,
        edge_type: Option<EdgeType>,
    ) -> Result<Vec<(Edge, Node)>> {
        let mut out = Vec::new();
        for edge in self.edges(id, direction, edge_type)? {
            let other = if &edge.from == id { &edge.to } else { &edge.from };
            if let Some(node) = self.get_node(other)? {
                out.push((edge, node));
            }
        }
        Ok(out)
    }

    /// Delete a node and every edge touching it; whether it existed.
    pub fn delete_node(&self, id: &NodeId) -> Result<bool> {
        Ok(self.delete_nodes(std::slice::from_ref(id))? == 1)
    }

    /// Delete a whole project (its nodes, their edges, vectors and index documents) in one
    /// transaction: after a crash either all of it or none of it is gone. Returns the
    /// number of nodes deleted.
    pub fn delete_project(&self, project: &ProjectId) -> Result<usize> {
        let ids = self.ids_in(&Scope::Project(project.clone()), None)?;
        let n = self.delete_nodes(&ids)?;
        self.inner.vectors.forget(project);
        Ok(n)
    }

    /// Delete every node of `node_type` in `scope` last updated before `before`, in one
    /// transaction. Returns the number of nodes deleted.
    pub fn delete_older_than(
        &self,
        scope: &Scope,
        node_type: NodeType,
        before: DateTime<Utc>,
    ) -> Result<usize> {
        let mut old = Vec::new();
        for id in self.ids_in(scope, Some(node_type))? {
            if let Some(n) = self.get_node(&id)?
                && n.updated_at < before
            {
                old.push(id);
            }
        }
        self.delete_nodes(&old)
    }

    /// Delete these nodes and their edges in one transaction; returns how many existed.
    pub fn delete_nodes(&self, ids: &[NodeId]) -> Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        // Gathered and deleted under the write guard: no one else writes meanwhile.
        let guard = self.write_guard();
        let (nodes, last_seq) = self.graph().delete(ids)?;
        if nodes.is_empty() {
            return Ok(0);
        }
        self.flush()?;
        for node in &nodes {
            self.inner.vectors.apply(&node.project, &node.id, None);
        }
        let deleted: Vec<NodeId> = nodes.iter().map(|n| n.id.clone()).collect();
        self.index_after_write(&deleted, last_seq);
        drop(guard);
        Ok(nodes.len())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::graph::fault;
    use crate::{HashEmbedder, SearchMode, SearchQuery, StoreOptions};

    fn troupe_stats_without_disk(store: &Store) -> crate::Stats {
        let mut s = store.stats(&Scope::All).unwrap();
        s.disk_bytes = 0;
        s
    }

    #[test]
    fn a_bulk_delete_that_fails_part_way_deletes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::open(dir.path(), StoreOptions::with_embedder(Arc::new(HashEmbedder::new(16))))
                .unwrap();
        let p = ProjectId::new("p").unwrap();
        let nodes: Vec<NewNode> = (0..10)
            .map(|i| NewNode::new(&p, NodeType::Task, format!("task {i}"), "atomic delete"))
            .collect();
        let ids: Vec<NodeId> =
            store.upsert_nodes(nodes).unwrap().into_iter().map(|n| n.id).collect();
        for pair in ids.windows(2) {
            store
                .link(&pair[1], &pair[0], EdgeType::Follows, 1.0, serde_json::Value::Null)
                .unwrap();
        }
        let stats = || troupe_stats_without_disk(&store);
        let before = stats();

        fault::fail_after(Some(5));
        let e = store.delete_project(&p).unwrap_err();
        fault::fail_after(None);
        assert!(e.to_string().contains("injected failure"), "{e}");
        assert_eq!(stats(), before, "nothing was deleted");
        for id in &ids {
            assert!(store.get_node(id).unwrap().is_some());
        }
        assert_eq!(store.edges(&ids[5], Direction::Both, None).unwrap().len(), 2);
        let bm25 = SearchQuery::new("atomic delete", &p).mode(SearchMode::Bm25).limit(20);
        assert_eq!(store.search(&bm25).unwrap().hits.len(), 10);

        assert_eq!(store.delete_project(&p).unwrap(), 10);
        let after = store.stats(&Scope::All).unwrap();
        assert_eq!(
            (after.total_nodes, after.edges, after.embedded, after.index_docs),
            (0, 0, 0, 0)
        );
    }
}
