//! Vector search: brute-force cosine over a contiguous `f32` matrix per project, cached in
//! memory and kept in step with every write.
//!
//! Vectors are L2-normalised, so cosine similarity is a dot product. At 100k nodes of 384
//! dimensions a scan is ~38M multiply-adds: a few milliseconds, with no index to build,
//! tune or repair (see `docs/BENCHMARKS.md`).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::chunk::Passage;
use crate::model::{NodeId, NodeType, ProjectId};
use crate::similarity::{dot, dot_i8, quantise};

/// The passage scheme stored vectors are computed with (see `crate::chunk`). Vectors of an
/// older scheme (scheme 1: one vector per node, of its title and the head of its body)
/// still search, and `Store::reindex` recomputes them.
pub(crate) const SCHEME: u8 = 2;
/// Set on the first byte of a scheme ≥ 2 value (node type codes are far below it).
const PASSAGES_FLAG: u8 = 0x80;

/// A node's stored vectors.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    pub node_type: NodeType,
    /// The passage scheme they were computed with.
    pub scheme: u8,
    /// Where each vector's passage lies in the node's text (empty for scheme 1).
    pub passages: Vec<Passage>,
    /// One per passage (one for scheme 1).
    pub vectors: Vec<Vec<f32>>,
}

/// Encode a node's passage vectors for storage: node type code with [`PASSAGES_FLAG`],
/// [`SCHEME`], passage count (u16), dimensions (u16), each passage's start and end (u32),
/// then the vectors' little-endian `f32`s.
pub(crate) fn encode(node_type: NodeType, passages: &[Passage], vectors: &[Vec<f32>]) -> Vec<u8> {
    let n = vectors.len().min(passages.len()).min(usize::from(u16::MAX));
    let dims = vectors.first().map_or(0, Vec::len).min(usize::from(u16::MAX));
    let mut out = Vec::with_capacity(6 + n * (8 + dims * 4));
    out.push(node_type.code() | PASSAGES_FLAG);
    out.push(SCHEME);
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&(dims as u16).to_le_bytes());
    for p in &passages[..n] {
        out.extend_from_slice(&u32::try_from(p.start).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&u32::try_from(p.end).unwrap_or(u32::MAX).to_le_bytes());
    }
    for v in &vectors[..n] {
        for x in v.iter().take(dims) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        // A vector of another size would shift every later one: pad (never happens with
        // one embedder).
        for _ in v.len()..dims {
            out.extend_from_slice(&0f32.to_le_bytes());
        }
    }
    out
}

/// Encode one vector in the scheme-1 layout (type code, then `f32`s): what stores
/// written before passages hold.
#[cfg(test)]
pub(crate) fn encode_v1(node_type: NodeType, v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + v.len() * 4);
    out.push(node_type.code());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A node's best passage for `query` straight from its stored bytes (what
/// `decode(bytes)?.best(query)` gives, plus the passage's span, without decoding every
/// vector into its own allocation): its index, where it lies (none for scheme 1) and
/// its exact cosine. `scratch` is reused between calls.
pub(crate) fn best_stored(
    bytes: &[u8],
    query: &[f32],
    scratch: &mut Vec<f32>,
) -> Option<(usize, Option<Passage>, f32)> {
    let (&first, rest) = bytes.split_first()?;
    if first & PASSAGES_FLAG == 0 {
        NodeType::from_code(first)?;
        if rest.len() % 4 != 0 || rest.len() / 4 != query.len() {
            return None;
        }
        fill_floats(scratch, rest);
        return Some((0, None, dot(scratch, query)));
    }
    NodeType::from_code(first & !PASSAGES_FLAG)?;
    let (_scheme, rest) = rest.split_first()?;
    if rest.len() < 4 {
        return None;
    }
    let n = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
    let dims = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
    let rest = &rest[4..];
    if dims == 0 || dims != query.len() || rest.len() != n * 8 + n * dims * 4 {
        return None;
    }
    let (spans, data) = rest.split_at(n * 8);
    let mut best: Option<(usize, f32)> = None;
    for (i, v) in data.chunks_exact(dims * 4).enumerate() {
        fill_floats(scratch, v);
        let score = dot(scratch, query);
        // Ties keep the first passage, as `Stored::best` does.
        if best.is_none_or(|(_, b)| score.total_cmp(&b).is_gt()) {
            best = Some((i, score));
        }
    }
    let (i, score) = best?;
    let c = spans.get(i * 8..i * 8 + 8)?;
    let span = Passage {
        start: u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize,
        end: u32::from_le_bytes([c[4], c[5], c[6], c[7]]) as usize,
    };
    Some((i, Some(span), score))
}

fn fill_floats(out: &mut Vec<f32>, bytes: &[u8]) {
    out.clear();
    out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
}

/// Decode what [`encode`] (or a scheme-1 writer) wrote.
pub(crate) fn decode(bytes: &[u8]) -> Option<Stored> {
    let (&first, rest) = bytes.split_first()?;
    if first & PASSAGES_FLAG == 0 {
        if rest.len() % 4 != 0 {
            return None;
        }
        let node_type = NodeType::from_code(first)?;
        return Some(Stored {
            node_type,
            scheme: 1,
            passages: Vec::new(),
            vectors: vec![floats(rest)],
        });
    }
    let node_type = NodeType::from_code(first & !PASSAGES_FLAG)?;
    let (&scheme, rest) = rest.split_first()?;
    if rest.len() < 4 {
        return None;
    }
    let n = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
    let dims = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
    let rest = &rest[4..];
    if rest.len() != n * 8 + n * dims * 4 {
        return None;
    }
    let (spans, data) = rest.split_at(n * 8);
    let passages = spans
        .chunks_exact(8)
        .map(|c| Passage {
            start: u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize,
            end: u32::from_le_bytes([c[4], c[5], c[6], c[7]]) as usize,
        })
        .collect();
    let vectors =
        if dims == 0 { Vec::new() } else { data.chunks_exact(dims * 4).map(floats).collect() };
    Some(Stored { node_type, scheme, passages, vectors })
}

/// Rows above which a scan is split over two threads.
const PARALLEL_ROWS: usize = 32_768;

/// One project's vectors, one row per passage, quantised to `i8` (a quarter of the memory
/// and of the memory traffic of `f32`, which is what bounds a brute-force scan). The exact
/// `f32` vectors stay in sled; [`crate::Store`] rescores the best candidates with them.
#[derive(Debug, Default)]
pub(crate) struct ProjectVectors {
    dims: usize,
    /// Per row: the node, a hash of its id (compared before the id itself: the scan asks
    /// "same node?" often), its passage index, its type.
    ids: Vec<NodeId>,
    id_hashes: Vec<u64>,
    passages: Vec<u32>,
    types: Vec<NodeType>,
    quant: Vec<i8>,
    scales: Vec<f32>,
    /// A node's rows.
    rows: HashMap<NodeId, Vec<usize>>,
}

impl ProjectVectors {
    pub(crate) fn new(dims: usize) -> ProjectVectors {
        ProjectVectors { dims, ..ProjectVectors::default() }
    }

    /// Rows (passages) held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Set a node's rows to these passage vectors (vectors of another dimension are
    /// ignored: they belong to another model and are recomputed by a reindex).
    pub(crate) fn upsert(&mut self, id: &NodeId, node_type: NodeType, vectors: &[Vec<f32>]) {
        self.remove(id);
        let id_hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            id.hash(&mut h);
            h.finish()
        };
        let mut rows = Vec::with_capacity(vectors.len());
        for (i, v) in vectors.iter().enumerate() {
            if v.len() != self.dims {
                continue;
            }
            let (q, scale) = quantise(v);
            rows.push(self.ids.len());
            self.ids.push(id.clone());
            self.id_hashes.push(id_hash);
            self.passages.push(u32::try_from(i).unwrap_or(u32::MAX));
            self.types.push(node_type);
            self.scales.push(scale);
            self.quant.extend_from_slice(&q);
        }
        if !rows.is_empty() {
            self.rows.insert(id.clone(), rows);
        }
    }

    /// Remove a node's rows (the last rows move into their places).
    pub(crate) fn remove(&mut self, id: &NodeId) {
        let Some(mut rows) = self.rows.remove(id) else { return };
        rows.sort_unstable_by(|a, b| b.cmp(a));
        let d = self.dims;
        for row in rows {
            // Rows go highest first, so the last row is never one of this node's.
            let last = self.ids.len() - 1;
            if row != last {
                let moved = self.ids[last].clone();
                self.ids.swap(row, last);
                self.id_hashes.swap(row, last);
                self.passages.swap(row, last);
                self.types.swap(row, last);
                self.scales.swap(row, last);
                self.quant.copy_within(last * d..(last + 1) * d, row * d);
                if let Some(r) =
                    self.rows.get_mut(&moved).and_then(|rs| rs.iter_mut().find(|r| **r == last))
                {
                    *r = row;
                }
            }
            self.ids.pop();
            self.id_hashes.pop();
            self.passages.pop();
            self.types.pop();
            self.scales.pop();
            self.quant.truncate(last * d);
        }
    }

    /// The `k` nodes whose best passage has the highest approximate (quantised) similarity
    /// to `query`, best first, among `types` (all when empty): node, score, passage index.
    pub(crate) fn top_k(
        &self,
        query: &[f32],
        types: &[NodeType],
        k: usize,
    ) -> Vec<(NodeId, f32, usize)> {
        if k == 0 || query.len() != self.dims || self.ids.is_empty() {
            return Vec::new();
        }
        let (q, q_scale) = quantise(query);
        let n = self.ids.len();
        let same = |a: usize, b: usize| {
            self.id_hashes[a] == self.id_hashes[b] && self.ids[a] == self.ids[b]
        };
        let scan = |from: usize, to: usize| {
            let mut top = TopK::new(k);
            for row in from..to {
                if !types.is_empty() && !types.contains(&self.types[row]) {
                    continue;
                }
                let chunk = &self.quant[row * self.dims..(row + 1) * self.dims];
                let score = dot_i8(chunk, &q) as f32 * self.scales[row] * q_scale;
                top.push(row, score, same);
            }
            top.into_sorted()
        };
        let threads = std::thread::available_parallelism().map_or(1, |p| p.get()).min(2);
        let best = if n >= PARALLEL_ROWS && threads > 1 {
            let mid = n / 2;
            let (a, b) = std::thread::scope(|s| {
                let upper = s.spawn(|| scan(mid, n));
                let lower = scan(0, mid);
                (lower, upper.join().unwrap_or_default())
            });
            // A node may have passages in both halves: keep its best.
            let mut merged = TopK::new(k);
            for (row, score) in a.into_iter().chain(b) {
                merged.push(row, score, same);
            }
            merged.into_sorted()
        } else {
            scan(0, n)
        };
        best.into_iter()
            .map(|(row, s)| (self.ids[row].clone(), s, self.passages[row] as usize))
            .collect()
    }
}

/// The best `k` of a stream of scored rows, one per node (a node's best row).
struct TopK {
    k: usize,
    items: Vec<(usize, f32)>,
    /// Index of the worst kept item, once `items` is full.
    worst: usize,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK { k, items: Vec::with_capacity(k), worst: 0 }
    }

    /// Offer `row`; `same(a, b)` says whether rows `a` and `b` are passages of one node.
    fn push(&mut self, row: usize, score: f32, same: impl Fn(usize, usize) -> bool) {
        let full = self.items.len() >= self.k;
        if full && score <= self.items[self.worst].1 {
            return;
        }
        if let Some(pos) = self.items.iter().position(|it| same(it.0, row)) {
            if score > self.items[pos].1 {
                self.items[pos] = (row, score);
                if full {
                    self.find_worst();
                }
            }
            return;
        }
        if full {
            self.items[self.worst] = (row, score);
            self.find_worst();
        } else {
            self.items.push((row, score));
            if self.items.len() == self.k {
                self.find_worst();
            }
        }
    }

    fn find_worst(&mut self) {
        let mut w = 0;
        for (i, item) in self.items.iter().enumerate() {
            if item.1 < self.items[w].1 {
                w = i;
            }
        }
        self.worst = w;
    }

    fn into_sorted(mut self) -> Vec<(usize, f32)> {
        self.items.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        self.items
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
        change: Option<(NodeType, &[Vec<f32>])>,
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
    fn encode_decode_round_trip_and_reject_garbage() {
        let vs = vec![vec![0.25, -1.5, 3.0], vec![1.0, 0.0, -0.5]];
        let ps = vec![Passage { start: 0, end: 10 }, Passage { start: 8, end: 20 }];
        let stored = decode(&encode(NodeType::Decision, &ps, &vs)).unwrap();
        assert_eq!(
            stored,
            Stored { node_type: NodeType::Decision, scheme: SCHEME, passages: ps, vectors: vs }
        );
        // The layout stores written before passages hold: one vector, scheme 1.
        let old = decode(&encode_v1(NodeType::Task, &[0.5, 0.5])).unwrap();
        assert_eq!((old.scheme, old.vectors, old.passages), (1, vec![vec![0.5, 0.5]], vec![]));
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0, 1, 2]), None);
        assert_eq!(decode(&[60, 0, 0, 0, 0]), None);
        // A passage value cut short.
        let mut cut = encode(NodeType::Task, &[Passage { start: 0, end: 1 }], &[vec![1.0, 2.0]]);
        cut.pop();
        assert_eq!(decode(&cut), None);
    }

    #[test]
    fn the_best_passage_wins_read_straight_from_the_stored_bytes() {
        let passages = vec![Passage { start: 0, end: 1 }, Passage { start: 1, end: 2 }];
        let bytes = encode(NodeType::File, &passages, &[vec![1.0, 0.0], vec![0.0, 1.0]]);
        let mut scratch = Vec::new();
        assert_eq!(
            best_stored(&bytes, &[0.2, 0.9], &mut scratch),
            Some((1, Some(passages[1]), 0.9))
        );
        assert_eq!(
            best_stored(&bytes, &[0.9, 0.2], &mut scratch),
            Some((0, Some(passages[0]), 0.9))
        );
        // Ties keep the first passage.
        assert_eq!(
            best_stored(&bytes, &[0.5, 0.5], &mut scratch),
            Some((0, Some(passages[0]), 0.5))
        );
        // A query of another size, and garbage, have no best passage.
        assert_eq!(best_stored(&bytes, &[1.0], &mut scratch), None);
        assert_eq!(best_stored(&bytes[..bytes.len() - 1], &[0.2, 0.9], &mut scratch), None);
        assert_eq!(best_stored(&[], &[0.2, 0.9], &mut scratch), None);
        // A vector stored before passages: one vector, no span.
        let v1 = encode_v1(NodeType::Task, &[0.6, 0.8]);
        let (i, span, score) = best_stored(&v1, &[0.6, 0.8], &mut scratch).unwrap();
        assert_eq!((i, span), (0, None));
        assert!((score - 1.0).abs() < 1e-6);
    }

    #[test]
    fn top_k_keeps_the_best_in_order() {
        let mut t = TopK::new(3);
        let distinct = |a: usize, b: usize| a == b;
        for (row, s) in [(0, 0.1), (1, 0.9), (2, 0.5), (3, 0.7), (4, 0.2), (5, 0.95)] {
            t.push(row, s, distinct);
        }
        assert_eq!(t.into_sorted(), vec![(5, 0.95), (1, 0.9), (3, 0.7)]);
        // Rows of one node (same tens digit) count once, with their best score.
        let node = |a: usize, b: usize| a / 10 == b / 10;
        let mut t = TopK::new(2);
        for (row, s) in [(10, 0.5), (11, 0.9), (20, 0.6), (12, 0.7), (30, 0.8), (21, 0.95)] {
            t.push(row, s, node);
        }
        assert_eq!(t.into_sorted(), vec![(21, 0.95), (11, 0.9)]);
    }

    #[test]
    fn a_parallel_scan_finds_the_same_rows_as_a_serial_one() {
        let dims = 8;
        let mut p = ProjectVectors::new(dims);
        for i in 0..PARALLEL_ROWS + 100 {
            let v: Vec<f32> =
                (0..dims).map(|d| ((i * 7 + d * 13) % 101) as f32 / 101.0 - 0.5).collect();
            p.upsert(&id(&format!("n{i}")), NodeType::Task, &[v]);
        }
        let query: Vec<f32> = (0..dims).map(|d| d as f32 / 8.0 - 0.4).collect();
        let top = p.top_k(&query, &[], 10);
        assert_eq!(top.len(), 10);
        // The best row by brute force over the same quantised scores.
        let (q, qs) = quantise(&query);
        let mut all: Vec<(usize, f32)> = (0..p.len())
            .map(|r| (r, dot_i8(&p.quant[r * dims..(r + 1) * dims], &q) as f32 * p.scales[r] * qs))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        assert_eq!(top[0].1, all[0].1);
        assert_eq!(top[9].1, all[9].1);
    }

    #[test]
    fn upsert_remove_and_top_k_keep_rows_consistent() {
        let mut p = ProjectVectors::new(2);
        p.upsert(&id("a"), NodeType::Task, &[vec![1.0, 0.0]]);
        p.upsert(&id("b"), NodeType::File, &[vec![0.0, 1.0]]);
        p.upsert(&id("c"), NodeType::Task, &[vec![0.7, 0.7]]);
        p.upsert(&id("a"), NodeType::Task, &[vec![0.6, 0.8]]);
        assert_eq!(p.len(), 3);
        let top = p.top_k(&[0.0, 1.0], &[], 3);
        let ids: Vec<&str> = top.iter().map(|(i, _, _)| i.as_str()).collect();
        assert_eq!(ids, ["b", "a", "c"]);
        p.remove(&id("b"));
        p.remove(&id("missing"));
        assert_eq!(p.len(), 2);
        let top = p.top_k(&[0.0, 1.0], &[NodeType::Task], 1);
        assert_eq!(top[0].0.as_str(), "a");
        assert!(p.top_k(&[0.0, 1.0], &[NodeType::File], 5).is_empty());
        // A vector of the wrong size is no row instead of corrupting the matrix.
        p.upsert(&id("c"), NodeType::Task, &[vec![1.0]]);
        assert_eq!(p.len(), 1);
        assert!(p.top_k(&[1.0], &[], 1).is_empty());
    }

    #[test]
    fn a_node_with_many_passages_is_one_hit_scored_by_its_best_passage() {
        let mut p = ProjectVectors::new(2);
        // "long" has three passages; only the last is about the query.
        p.upsert(&id("long"), NodeType::File, &[vec![1.0, 0.0], vec![0.8, 0.6], vec![0.0, 1.0]]);
        p.upsert(&id("short"), NodeType::File, &[vec![0.6, 0.8]]);
        p.upsert(&id("other"), NodeType::File, &[vec![1.0, 0.0]]);
        assert_eq!(p.len(), 5);
        let top = p.top_k(&[0.0, 1.0], &[], 2);
        assert_eq!(top.len(), 2);
        assert_eq!((top[0].0.as_str(), top[0].2), ("long", 2));
        assert_eq!((top[1].0.as_str(), top[1].2), ("short", 0));
        // Removing a node with passages keeps the others' rows right.
        p.remove(&id("long"));
        assert_eq!(p.len(), 2);
        let top = p.top_k(&[1.0, 0.0], &[], 5);
        let ids: Vec<&str> = top.iter().map(|(i, _, _)| i.as_str()).collect();
        assert_eq!(ids, ["other", "short"]);
        // Re-upserting with fewer passages drops the old ones.
        p.upsert(&id("short"), NodeType::File, &[vec![1.0, 0.0], vec![0.0, 1.0]]);
        p.upsert(&id("short"), NodeType::File, &[vec![0.0, 1.0]]);
        assert_eq!(p.len(), 2);
        assert_eq!(p.top_k(&[0.0, 1.0], &[], 1)[0].0.as_str(), "short");
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test --release -p troupe-context --lib vectors::timing -- --ignored --nocapture`
    #[test]
    #[ignore = "timing, not a test"]
    fn scan_100k() {
        let dims = 384;
        let mut p = ProjectVectors::new(dims);
        let mut x = 1u64;
        for i in 0..100_000 {
            let v: Vec<f32> = (0..dims)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect();
            p.upsert(&NodeId::new(format!("n{i}")).unwrap(), NodeType::Task, &[v]);
        }
        let q: Vec<f32> = (0..dims).map(|d| d as f32 / 384.0 - 0.5).collect();
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let r = p.top_k(&q, &[], 116);
            eprintln!("top_k: {:?} ({} hits)", t.elapsed(), r.len());
        }
        let (qq, _) = quantise(&q);
        let t = std::time::Instant::now();
        let mut s = 0i64;
        for row in 0..100_000 {
            s += i64::from(dot_i8(&p.quant[row * dims..(row + 1) * dims], &qq));
        }
        eprintln!("dot_i8 only, serial: {:?} ({s})", t.elapsed());
    }
}
