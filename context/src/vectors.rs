//! Vector search: brute-force cosine over a contiguous `f32` matrix per project, cached in
//! memory and kept in step with every write.
//!
//! Vectors are L2-normalised, so cosine similarity is a dot product. At 100k nodes of 384
//! dimensions a scan is ~38M multiply-adds: a few milliseconds, with no index to build,
//! tune or repair (see `docs/BENCHMARKS.md`).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::model::{NodeId, NodeType, ProjectId};

/// Scale `v` to unit length (a zero vector stays zero).
#[cfg(any(test, feature = "test-utils"))]
pub(crate) fn normalise(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

/// Dot product with eight independent accumulators, so the compiler vectorises it.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let (rest_a, rest_b) = (chunks_a.remainder(), chunks_b.remainder());
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in rest_a.iter().zip(rest_b) {
        sum += x * y;
    }
    sum
}

/// Encode a vector for storage: node type code, then little-endian `f32`s.
pub(crate) fn encode(node_type: NodeType, v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + v.len() * 4);
    out.push(node_type.code());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Decode what [`encode`] wrote.
pub(crate) fn decode(bytes: &[u8]) -> Option<(NodeType, Vec<f32>)> {
    let (&code, rest) = bytes.split_first()?;
    if rest.len() % 4 != 0 {
        return None;
    }
    let node_type = NodeType::from_code(code)?;
    let v = rest.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Some((node_type, v))
}

/// One project's vectors as a row-major matrix.
#[derive(Debug, Default)]
pub(crate) struct ProjectVectors {
    dims: usize,
    ids: Vec<NodeId>,
    types: Vec<NodeType>,
    data: Vec<f32>,
    rows: HashMap<NodeId, usize>,
}

impl ProjectVectors {
    pub(crate) fn new(dims: usize) -> ProjectVectors {
        ProjectVectors { dims, ..ProjectVectors::default() }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Add or replace a row (vectors of another dimension are ignored: they belong to
    /// another model and are recomputed by a reindex).
    pub(crate) fn upsert(&mut self, id: &NodeId, node_type: NodeType, v: &[f32]) {
        if v.len() != self.dims {
            self.remove(id);
            return;
        }
        match self.rows.get(id) {
            Some(&row) => {
                self.types[row] = node_type;
                self.data[row * self.dims..(row + 1) * self.dims].copy_from_slice(v);
            }
            None => {
                self.rows.insert(id.clone(), self.ids.len());
                self.ids.push(id.clone());
                self.types.push(node_type);
                self.data.extend_from_slice(v);
            }
        }
    }

    /// Remove a row (the last row moves into its place).
    pub(crate) fn remove(&mut self, id: &NodeId) {
        let Some(row) = self.rows.remove(id) else { return };
        let last = self.ids.len() - 1;
        if row != last {
            let moved = self.ids[last].clone();
            self.ids.swap(row, last);
            self.types.swap(row, last);
            let d = self.dims;
            self.data.copy_within(last * d..(last + 1) * d, row * d);
            self.rows.insert(moved, row);
        }
        self.ids.pop();
        self.types.pop();
        self.data.truncate(last * self.dims);
    }

    /// The `k` rows most similar to `query`, best first, among `types` (all when empty).
    pub(crate) fn top_k(&self, query: &[f32], types: &[NodeType], k: usize) -> Vec<(NodeId, f32)> {
        if k == 0 || query.len() != self.dims || self.ids.is_empty() {
            return Vec::new();
        }
        let mut scored: Vec<(usize, f32)> = Vec::with_capacity(self.ids.len());
        for (row, chunk) in self.data.chunks_exact(self.dims).enumerate() {
            if !types.is_empty() && !types.contains(&self.types[row]) {
                continue;
            }
            scored.push((row, dot(chunk, query)));
        }
        let by_score = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1);
        if scored.len() > k {
            scored.select_nth_unstable_by(k - 1, by_score);
            scored.truncate(k);
        }
        scored.sort_by(by_score);
        scored.into_iter().map(|(row, s)| (self.ids[row].clone(), s)).collect()
    }
}

/// The loaded projects' matrices. A project is loaded from sled on its first vector search
/// and then updated by every write, so it never needs reloading.
#[derive(Debug, Default)]
pub(crate) struct VectorCache {
    projects: RwLock<HashMap<ProjectId, Arc<RwLock<ProjectVectors>>>>,
}

impl VectorCache {
    pub(crate) fn get(&self, project: &ProjectId) -> Option<Arc<RwLock<ProjectVectors>>> {
        self.projects.read().unwrap_or_else(PoisonError::into_inner).get(project).cloned()
    }

    pub(crate) fn insert(
        &self,
        project: ProjectId,
        vectors: ProjectVectors,
    ) -> Arc<RwLock<ProjectVectors>> {
        let arc = Arc::new(RwLock::new(vectors));
        self.projects
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(project, Arc::clone(&arc));
        arc
    }

    /// Apply a write to a loaded project (nothing to do when it is not loaded).
    pub(crate) fn apply(
        &self,
        project: &ProjectId,
        id: &NodeId,
        change: Option<(NodeType, &[f32])>,
    ) {
        let Some(p) = self.get(project) else { return };
        let mut p = p.write().unwrap_or_else(PoisonError::into_inner);
        match change {
            Some((t, v)) => p.upsert(id, t, v),
            None => p.remove(id),
        }
    }

    pub(crate) fn forget(&self, project: &ProjectId) {
        self.projects.write().unwrap_or_else(PoisonError::into_inner).remove(project);
    }

    pub(crate) fn clear(&self) {
        self.projects.write().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn dot_matches_the_naive_sum_for_odd_lengths() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn encode_decode_round_trip_and_reject_garbage() {
        let v = vec![0.25, -1.5, 3.0];
        assert_eq!(decode(&encode(NodeType::Decision, &v)), Some((NodeType::Decision, v)));
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0, 1, 2]), None);
        assert_eq!(decode(&[200, 0, 0, 0, 0]), None);
    }

    #[test]
    fn upsert_remove_and_top_k_keep_rows_consistent() {
        let mut p = ProjectVectors::new(2);
        p.upsert(&id("a"), NodeType::Task, &[1.0, 0.0]);
        p.upsert(&id("b"), NodeType::File, &[0.0, 1.0]);
        p.upsert(&id("c"), NodeType::Task, &[0.7, 0.7]);
        p.upsert(&id("a"), NodeType::Task, &[0.6, 0.8]);
        assert_eq!(p.len(), 3);
        let top = p.top_k(&[0.0, 1.0], &[], 3);
        let ids: Vec<&str> = top.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(ids, ["b", "a", "c"]);
        p.remove(&id("b"));
        p.remove(&id("missing"));
        assert_eq!(p.len(), 2);
        let top = p.top_k(&[0.0, 1.0], &[NodeType::Task], 1);
        assert_eq!(top[0].0.as_str(), "a");
        assert!(p.top_k(&[0.0, 1.0], &[NodeType::File], 5).is_empty());
        // A vector of the wrong size removes the row instead of corrupting the matrix.
        p.upsert(&id("c"), NodeType::Task, &[1.0]);
        assert_eq!(p.len(), 1);
        assert!(p.top_k(&[1.0], &[], 1).is_empty());
    }
}
