//! Nodes and edges: upsert, get, link, neighbours, delete (one, a project, old ones).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use crate::chunk::{Embedded, PassageSource, embed_passages};
use crate::error::{Error, Result};
use crate::model::{Direction, Edge, EdgeType, NewNode, Node, NodeId, NodeType, ProjectId};
use crate::store::{
    Store, by_project_key, decode_node, project_prefix, split_by_project_key, vector_key,
};
use crate::vectors;

/// Which projects a query covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One project (the normal case).
    Project(ProjectId),
    /// Every project (only when asked for explicitly).
    All,
}

impl Scope {
    pub(crate) fn project(&self) -> Option<&ProjectId> {
        match self {
            Scope::Project(p) => Some(p),
            Scope::All => None,
        }
    }

    pub(crate) fn contains(&self, project: &ProjectId) -> bool {
        self.project().is_none_or(|p| p == project)
    }
}

impl From<ProjectId> for Scope {
    fn from(p: ProjectId) -> Scope {
        Scope::Project(p)
    }
}

impl From<&ProjectId> for Scope {
    fn from(p: &ProjectId) -> Scope {
        Scope::Project(p.clone())
    }
}

/// What `edges_out` stores per edge (the endpoints and type are in the key).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EdgeValue {
    weight: f32,
    #[serde(default)]
    metadata: serde_json::Value,
    created_at: DateTime<Utc>,
}

/// `a \0 code b`: an edge key (out: a = from, b = to; in: a = to, b = from).
fn edge_key(a: &NodeId, edge_type: EdgeType, b: &NodeId) -> Vec<u8> {
    let mut k = a.as_str().as_bytes().to_vec();
    k.push(0);
    k.push(edge_type.code());
    k.extend_from_slice(b.as_str().as_bytes());
    k
}

fn split_edge_key(key: &[u8]) -> Option<(NodeId, EdgeType, NodeId)> {
    let sep = key.iter().position(|b| *b == 0)?;
    let a = std::str::from_utf8(&key[..sep]).ok()?;
    let code = *key.get(sep + 1)?;
    let b = std::str::from_utf8(key.get(sep + 2..)?).ok()?;
    Some((
        NodeId::from_trusted(a.into()),
        EdgeType::from_code(code)?,
        NodeId::from_trusted(b.into()),
    ))
}

fn id_prefix(id: &NodeId) -> Vec<u8> {
    let mut k = id.as_str().as_bytes().to_vec();
    k.push(0);
    k
}

pub(crate) fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

type Abort = ConflictableTransactionError<Error>;

fn abort(e: Error) -> Abort {
    ConflictableTransactionError::Abort(e)
}

fn tx_get_node(tn: &TransactionalTree, id: &NodeId) -> Result<Option<Node>, Abort> {
    match tn.get(id.as_str())? {
        Some(bytes) => decode_node(id, &bytes).map(Some).map_err(abort),
        None => Ok(None),
    }
}

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
        let now = Utc::now();
        let t = self.trees();
        let (stored, last_seq) = (&t.nodes, &t.by_project, &t.vectors, &t.content, &t.changes)
            .transaction(|(tn, tp, tv, tc, tch)| {
                let mut stored: Vec<Node> = Vec::with_capacity(nodes.len());
                let mut last_seq = 0;
                for (i, n) in nodes.iter().enumerate() {
                    let id = &ids[i];
                    let existing = tx_get_node(tn, id)?;
                    if let Some(old) = &existing {
                        if old.project != n.project {
                            return Err(abort(Error::InvalidInput(format!(
                                "node {id} belongs to project {}, not {}",
                                old.project, n.project
                            ))));
                        }
                        if old.node_type != n.node_type {
                            tp.remove(by_project_key(&old.project, old.node_type, id))?;
                        }
                    }
                    let at = n.at.unwrap_or(now);
                    let node = Node {
                        id: id.clone(),
                        project: n.project.clone(),
                        node_type: n.node_type,
                        title: n.title.trim().to_string(),
                        body: n.body.clone(),
                        tags: n.tags.clone(),
                        metadata: if n.metadata.is_null() {
                            serde_json::json!({})
                        } else {
                            n.metadata.clone()
                        },
                        created_at: existing.as_ref().map(|o| o.created_at).unwrap_or(at),
                        updated_at: at,
                    };
                    let json = serde_json::to_vec(&node).map_err(|e| abort(e.into()))?;
                    tn.insert(id.as_str(), json)?;
                    tp.insert(by_project_key(&node.project, node.node_type, id), &[])?;
                    let vkey = vector_key(&node.project, id);
                    match embeddings.as_ref().and_then(|e| e.get(i)) {
                        Some((passages, v)) => {
                            tv.insert(vkey, vectors::encode(node.node_type, passages, v))?
                        }
                        // A stale vector is worse than none: a reindex computes it.
                        None => tv.remove(vkey)?,
                    };
                    match &n.content {
                        Some(c) => tc.insert(id.as_str(), c.as_bytes())?,
                        None => tc.remove(id.as_str())?,
                    };
                    last_seq = tch.generate_id()?;
                    tch.insert(&last_seq.to_be_bytes(), id.as_str())?;
                    stored.push(node);
                }
                Ok((stored, last_seq))
            })?;
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
        match self.trees().nodes.get(id.as_str())? {
            Some(bytes) => Ok(Some(decode_node(id, &bytes)?)),
            None => Ok(None),
        }
    }

    /// A node by id, or [`Error::NotFound`].
    pub fn node(&self, id: &NodeId) -> Result<Node> {
        self.get_node(id)?.ok_or_else(|| Error::not_found(format!("node {id}")))
    }

    /// The searched-only text stored with a node (a file's content), if any.
    pub fn node_content(&self, id: &NodeId) -> Result<Option<String>> {
        Ok(self.trees().content.get(id.as_str())?.map(|c| String::from_utf8_lossy(&c).into_owned()))
    }

    /// The node whose id is `prefix` or starts with it (for ids typed by people).
    pub fn resolve_id(&self, prefix: &str) -> Result<NodeId> {
        let prefix = prefix.trim();
        if prefix.is_empty() {
            return Err(Error::InvalidInput("empty node id".into()));
        }
        if self.trees().nodes.contains_key(prefix)? {
            return Ok(NodeId::from_trusted(prefix.to_string()));
        }
        let mut found = Vec::new();
        for item in self.trees().nodes.scan_prefix(prefix).keys().take(6) {
            found.push(String::from_utf8_lossy(&item?).into_owned());
        }
        match found.len() {
            0 => Err(Error::not_found(format!("node {prefix}"))),
            1 => Ok(NodeId::from_trusted(found.remove(0))),
            _ => Err(Error::InvalidInput(format!(
                "{prefix:?} matches several nodes ({}…); give more of the id",
                found[..found.len().min(5)].join(", ")
            ))),
        }
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
        let mut prefix = match scope {
            Scope::Project(p) => project_prefix(p),
            Scope::All => Vec::new(),
        };
        if let (Some(t), Scope::Project(_)) = (node_type, scope) {
            prefix.push(t.code());
        }
        let mut ids = Vec::new();
        for item in self.trees().by_project.scan_prefix(&prefix).keys() {
            let key = item?;
            let Some((_, t, id)) = split_by_project_key(&key) else { continue };
            if node_type.is_none_or(|wanted| wanted == t) {
                ids.push(NodeId::from_trusted(id.to_string()));
            }
        }
        Ok(ids)
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
        let json = serde_json::to_vec(&value)?;
        let guard = self.write_guard();
        let t = self.trees();
        (&t.nodes, &t.edges_out, &t.edges_in).transaction(|(tn, to_out, to_in)| {
            for id in [from, to] {
                if tn.get(id.as_str())?.is_none() {
                    return Err(abort(Error::not_found(format!("node {id}"))));
                }
            }
            to_out.insert(edge_key(from, edge_type, to), json.as_slice())?;
            to_in.insert(edge_key(to, edge_type, from), &[])?;
            Ok(())
        })?;
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
        let t = self.trees();
        let existed = (&t.edges_out, &t.edges_in).transaction(|(to_out, to_in)| {
            let existed = to_out.remove(edge_key(from, edge_type, to))?.is_some();
            to_in.remove(edge_key(to, edge_type, from))?;
            Ok::<_, Abort>(existed)
        })?;
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
        let t = self.trees();
        let mut prefix = id_prefix(id);
        if let Some(et) = edge_type {
            prefix.push(et.code());
        }
        let mut out = Vec::new();
        if matches!(direction, Direction::Outgoing | Direction::Both) {
            for item in t.edges_out.scan_prefix(&prefix) {
                let (k, v) = item?;
                out.push(decode_edge(&k, &v, false)?);
            }
        }
        if matches!(direction, Direction::Incoming | Direction::Both) {
            for item in t.edges_in.scan_prefix(&prefix).keys() {
                let k = item?;
                let Some((to, et, from)) = split_edge_key(&k) else { continue };
                let out_key = edge_key(&from, et, &to);
                if let Some(v) = t.edges_out.get(&out_key)? {
                    out.push(decode_edge(&out_key, &v, false)?);
                }
            }
        }
        Ok(out)
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
        let guard = self.write_guard();
        let t = self.trees();
        // Gather under the write guard (no one else writes), delete in one transaction.
        let mut nodes: Vec<Node> = Vec::new();
        let mut out_keys: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut in_keys: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut seen: HashMap<&NodeId, ()> = HashMap::new();
        for id in ids {
            if seen.insert(id, ()).is_some() {
                continue;
            }
            let Some(node) = self.get_node(id)? else { continue };
            let prefix = id_prefix(id);
            for k in t.edges_out.scan_prefix(&prefix).keys() {
                let k = k?;
                if let Some((from, et, to)) = split_edge_key(&k) {
                    in_keys.insert(edge_key(&to, et, &from));
                }
                out_keys.insert(k.to_vec());
            }
            for k in t.edges_in.scan_prefix(&prefix).keys() {
                let k = k?;
                if let Some((to, et, from)) = split_edge_key(&k) {
                    out_keys.insert(edge_key(&from, et, &to));
                }
                in_keys.insert(k.to_vec());
            }
            nodes.push(node);
        }
        if nodes.is_empty() {
            return Ok(0);
        }
        let trees = (
            &t.nodes,
            &t.by_project,
            &t.vectors,
            &t.content,
            &t.changes,
            &t.edges_out,
            &t.edges_in,
        );
        let last_seq = trees.transaction(|(tn, tp, tv, tc, tch, teo, tei)| {
            let mut last_seq = 0;
            for node in &nodes {
                #[cfg(test)]
                fault::tick().map_err(abort)?;
                tn.remove(node.id.as_str())?;
                tp.remove(by_project_key(&node.project, node.node_type, &node.id))?;
                tv.remove(vector_key(&node.project, &node.id))?;
                tc.remove(node.id.as_str())?;
                last_seq = tch.generate_id()?;
                tch.insert(&last_seq.to_be_bytes(), node.id.as_str())?;
            }
            for k in &out_keys {
                teo.remove(k.as_slice())?;
            }
            for k in &in_keys {
                tei.remove(k.as_slice())?;
            }
            Ok::<_, Abort>(last_seq)
        })?;
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

/// Fault injection for the atomicity test: fail a bulk delete part-way through.
#[cfg(test)]
mod fault {
    use std::cell::Cell;

    thread_local! {
        static FAIL_AFTER: Cell<Option<usize>> = const { Cell::new(None) };
    }

    pub(super) fn fail_after(n: Option<usize>) {
        FAIL_AFTER.with(|f| f.set(n));
    }

    pub(super) fn tick() -> crate::Result<()> {
        FAIL_AFTER.with(|f| match f.get() {
            Some(0) => Err(crate::Error::Index("injected failure".into())),
            Some(n) => {
                f.set(Some(n - 1));
                Ok(())
            }
            None => Ok(()),
        })
    }
}

fn decode_edge(key: &[u8], value: &[u8], _incoming: bool) -> Result<Edge> {
    let (from, edge_type, to) =
        split_edge_key(key).ok_or_else(|| Error::corrupt("edge key", "malformed"))?;
    let v: EdgeValue = serde_json::from_slice(value)
        .map_err(|e| Error::corrupt(format!("edge {from}→{to}"), e))?;
    Ok(Edge {
        from,
        to,
        edge_type,
        weight: v.weight,
        metadata: v.metadata,
        created_at: v.created_at,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
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
