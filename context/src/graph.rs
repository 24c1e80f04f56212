//! The memory graph in sled: nodes, each project's nodes by type, edges both ways, each
//! node's vectors and searched-only content, and the change log the search index follows.
//!
//! [`Graph`] owns those trees: its reads decode them, and each of its writes is one sled
//! transaction. It knows nothing of the index, the vector cache or the embedder: the
//! [`crate::Store`] composes them (`nodes.rs` is the public node and edge API).

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use crate::chunk::Embedded;
use crate::error::{Error, Result};
use crate::keys::{
    by_project_key, edge_key, encode_seq, id_prefix, project_prefix, split_by_project_key,
    split_edge_key, vector_key,
};
use crate::model::{Direction, Edge, EdgeType, NewNode, Node, NodeId, NodeType, ProjectId, Scope};
use crate::vectors;

/// The sled trees (the graph's "tables"); keys are encoded by [`crate::keys`].
#[derive(Debug, Clone)]
pub(crate) struct Graph {
    /// node id → `Node` (JSON).
    pub nodes: sled::Tree,
    /// project `\0` type code, node id → (): a project's nodes by type.
    pub by_project: sled::Tree,
    /// from `\0` edge code, to → `EdgeValue` (JSON).
    pub edges_out: sled::Tree,
    /// to `\0` edge code, from → (): the mirror, for incoming edges.
    pub edges_in: sled::Tree,
    /// project `\0` node id → the node's passage vectors (see `vectors::encode`).
    pub vectors: sled::Tree,
    /// node id → searched-only text (a file's content).
    pub content: sled::Tree,
    /// sequence (u64 BE) → node id: the node changes the index may not have yet.
    pub changes: sled::Tree,
    /// Store-wide facts: `store_id`, `format`, `embedding_model`, `pruned_upto`.
    pub meta: sled::Tree,
}

/// What `edges_out` stores per edge (the endpoints and type are in the key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EdgeValue {
    pub weight: f32,
    #[serde(default)]
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

type Abort = ConflictableTransactionError<Error>;

fn abort(e: Error) -> Abort {
    ConflictableTransactionError::Abort(e)
}

pub(crate) fn decode_node(id: &NodeId, bytes: &[u8]) -> Result<Node> {
    serde_json::from_slice(bytes).map_err(|e| Error::corrupt(format!("node {id}"), e))
}

fn tx_get_node(tn: &TransactionalTree, id: &NodeId) -> Result<Option<Node>, Abort> {
    match tn.get(id.as_str())? {
        Some(bytes) => decode_node(id, &bytes).map(Some).map_err(abort),
        None => Ok(None),
    }
}

fn decode_edge(key: &[u8], value: &[u8]) -> Result<Edge> {
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

impl Graph {
    /// The graph's trees in `db`.
    pub(crate) fn open(db: &sled::Db) -> Result<Graph> {
        Ok(Graph {
            nodes: db.open_tree("nodes")?,
            by_project: db.open_tree("by_project")?,
            edges_out: db.open_tree("edges_out")?,
            edges_in: db.open_tree("edges_in")?,
            vectors: db.open_tree("vectors")?,
            content: db.open_tree("content")?,
            changes: db.open_tree("changes")?,
            meta: db.open_tree("meta")?,
        })
    }

    /// A node by id.
    pub(crate) fn get_node(&self, id: &NodeId) -> Result<Option<Node>> {
        match self.nodes.get(id.as_str())? {
            Some(bytes) => Ok(Some(decode_node(id, &bytes)?)),
            None => Ok(None),
        }
    }

    /// The searched-only text stored with a node (a file's content), if any.
    pub(crate) fn node_content(&self, id: &NodeId) -> Result<Option<String>> {
        Ok(self.content.get(id.as_str())?.map(|c| String::from_utf8_lossy(&c).into_owned()))
    }

    /// The node whose id is `prefix` or starts with it.
    pub(crate) fn resolve_id(&self, prefix: &str) -> Result<NodeId> {
        let prefix = prefix.trim();
        if prefix.is_empty() {
            return Err(Error::InvalidInput("empty node id".into()));
        }
        if self.nodes.contains_key(prefix)? {
            return Ok(NodeId::from_trusted(prefix.to_string()));
        }
        let mut found = Vec::new();
        for item in self.nodes.scan_prefix(prefix).keys().take(6) {
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
        for item in self.by_project.scan_prefix(&prefix).keys() {
            let key = item?;
            let Some((_, t, id)) = split_by_project_key(&key) else { continue };
            if node_type.is_none_or(|wanted| wanted == t) {
                ids.push(NodeId::from_trusted(id.to_string()));
            }
        }
        Ok(ids)
    }

    /// Every project with at least one node.
    pub(crate) fn project_ids(&self) -> Result<Vec<ProjectId>> {
        let mut out = Vec::new();
        let mut start: Vec<u8> = Vec::new();
        while let Some(k) = self.by_project.range(start.clone()..).keys().next() {
            let k = k?;
            let Some(sep) = k.iter().position(|b| *b == 0) else { break };
            out.push(ProjectId::from_trusted(String::from_utf8_lossy(&k[..sep]).into_owned()));
            // Keys are `project \0 …`: `project \1` is past all of them.
            start = k[..sep].to_vec();
            start.push(1);
        }
        Ok(out)
    }

    /// The edges of `id` in `direction`, of one type or all.
    pub(crate) fn edges(
        &self,
        id: &NodeId,
        direction: Direction,
        edge_type: Option<EdgeType>,
    ) -> Result<Vec<Edge>> {
        let mut prefix = id_prefix(id);
        if let Some(et) = edge_type {
            prefix.push(et.code());
        }
        let mut out = Vec::new();
        if matches!(direction, Direction::Outgoing | Direction::Both) {
            for item in self.edges_out.scan_prefix(&prefix) {
                let (k, v) = item?;
                out.push(decode_edge(&k, &v)?);
            }
        }
        if matches!(direction, Direction::Incoming | Direction::Both) {
            for item in self.edges_in.scan_prefix(&prefix).keys() {
                let k = item?;
                let Some((to, et, from)) = split_edge_key(&k) else { continue };
                let out_key = edge_key(&from, et, &to);
                if let Some(v) = self.edges_out.get(&out_key)? {
                    out.push(decode_edge(&out_key, &v)?);
                }
            }
        }
        Ok(out)
    }

    /// Write `nodes` (with these `ids`, their passage vectors when embedded) in one
    /// transaction, logging each change; the nodes as stored and the last change's
    /// sequence number.
    pub(crate) fn write_nodes(
        &self,
        nodes: &[NewNode],
        ids: &[NodeId],
        embeddings: Option<&[Embedded]>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Node>, u64)> {
        let trees = (&self.nodes, &self.by_project, &self.vectors, &self.content, &self.changes);
        Ok(trees.transaction(|(tn, tp, tv, tc, tch)| {
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
                match embeddings.and_then(|e| e.get(i)) {
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
                tch.insert(&encode_seq(last_seq), id.as_str())?;
                stored.push(node);
            }
            Ok((stored, last_seq))
        })?)
    }

    /// Store the edge `from` → `to` (both must exist) in one transaction.
    pub(crate) fn link(
        &self,
        from: &NodeId,
        to: &NodeId,
        edge_type: EdgeType,
        value: &EdgeValue,
    ) -> Result<()> {
        let json = serde_json::to_vec(value)?;
        (&self.nodes, &self.edges_out, &self.edges_in).transaction(|(tn, to_out, to_in)| {
            for id in [from, to] {
                if tn.get(id.as_str())?.is_none() {
                    return Err(abort(Error::not_found(format!("node {id}"))));
                }
            }
            to_out.insert(edge_key(from, edge_type, to), json.as_slice())?;
            to_in.insert(edge_key(to, edge_type, from), &[])?;
            Ok(())
        })?;
        Ok(())
    }

    /// Remove the edge `from` → `to` of `edge_type`; whether it existed.
    pub(crate) fn unlink(&self, from: &NodeId, to: &NodeId, edge_type: EdgeType) -> Result<bool> {
        Ok((&self.edges_out, &self.edges_in).transaction(|(to_out, to_in)| {
            let existed = to_out.remove(edge_key(from, edge_type, to))?.is_some();
            to_in.remove(edge_key(to, edge_type, from))?;
            Ok::<_, Abort>(existed)
        })?)
    }

    /// Delete these nodes, their edges, vectors and content in one transaction, logging
    /// each change: the nodes that existed and the last change's sequence number. Call
    /// with the store's write guard held (the edges are gathered before the transaction).
    pub(crate) fn delete(&self, ids: &[NodeId]) -> Result<(Vec<Node>, u64)> {
        let mut nodes: Vec<Node> = Vec::new();
        let mut out_keys: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut in_keys: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut seen: HashSet<&NodeId> = HashSet::new();
        for id in ids {
            if !seen.insert(id) {
                continue;
            }
            let Some(node) = self.get_node(id)? else { continue };
            let prefix = id_prefix(id);
            for k in self.edges_out.scan_prefix(&prefix).keys() {
                let k = k?;
                if let Some((from, et, to)) = split_edge_key(&k) {
                    in_keys.insert(edge_key(&to, et, &from));
                }
                out_keys.insert(k.to_vec());
            }
            for k in self.edges_in.scan_prefix(&prefix).keys() {
                let k = k?;
                if let Some((to, et, from)) = split_edge_key(&k) {
                    out_keys.insert(edge_key(&from, et, &to));
                }
                in_keys.insert(k.to_vec());
            }
            nodes.push(node);
        }
        if nodes.is_empty() {
            return Ok((nodes, 0));
        }
        let trees = (
            &self.nodes,
            &self.by_project,
            &self.vectors,
            &self.content,
            &self.changes,
            &self.edges_out,
            &self.edges_in,
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
                tch.insert(&encode_seq(last_seq), node.id.as_str())?;
            }
            for k in &out_keys {
                teo.remove(k.as_slice())?;
            }
            for k in &in_keys {
                tei.remove(k.as_slice())?;
            }
            Ok::<_, Abort>(last_seq)
        })?;
        Ok((nodes, last_seq))
    }
}

/// Fault injection for the atomicity test: fail a bulk delete part-way through.
#[cfg(test)]
pub(crate) mod fault {
    use std::cell::Cell;

    thread_local! {
        static FAIL_AFTER: Cell<Option<usize>> = const { Cell::new(None) };
    }

    pub(crate) fn fail_after(n: Option<usize>) {
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
