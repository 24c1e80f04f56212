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

/// Scalar quantisation: `v ≈ q × scale` with `q` in -127..=127.
pub(crate) fn quantise(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        return (vec![0; v.len()], 0.0);
    }
    let scale = max / 127.0;
    (v.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8).collect(), scale)
}

/// Integer dot product with sixteen independent accumulators (vectorised by the compiler).
/// 384 × 127 × 127 fits an `i32` many times over.
pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0i32; 16];
    let chunks_a = a.chunks_exact(16);
    let chunks_b = b.chunks_exact(16);
    let (rest_a, rest_b) = (chunks_a.remainder(), chunks_b.remainder());
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for i in 0..16 {
            acc[i] += i32::from(ca[i]) * i32::from(cb[i]);
        }
    }
    let mut sum: i32 = acc.iter().sum();
    for (x, y) in rest_a.iter().zip(rest_b) {
        sum += i32::from(*x) * i32::from(*y);
    }
    sum
}

/// Rows above which a scan is split over two threads.
const PARALLEL_ROWS: usize = 32_768;

/// One project's vectors, quantised to `i8` (a quarter of the memory and of the memory
/// traffic of `f32`, which is what bounds a brute-force scan). The exact `f32` vectors stay
/// in sled; [`crate::Store`] rescores the best candidates with them.
#[derive(Debug, Default)]
pub(crate) struct ProjectVectors {
    dims: usize,
    ids: Vec<NodeId>,
    types: Vec<NodeType>,
    quant: Vec<i8>,
    scales: Vec<f32>,
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
        let (q, scale) = quantise(v);
        match self.rows.get(id) {
            Some(&row) => {
                self.types[row] = node_type;
                self.scales[row] = scale;
                self.quant[row * self.dims..(row + 1) * self.dims].copy_from_slice(&q);
            }
            None => {
                self.rows.insert(id.clone(), self.ids.len());
                self.ids.push(id.clone());
                self.types.push(node_type);
                self.scales.push(scale);
                self.quant.extend_from_slice(&q);
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
            self.scales.swap(row, last);
            let d = self.dims;
            self.quant.copy_within(last * d..(last + 1) * d, row * d);
            self.rows.insert(moved, row);
        }
        self.ids.pop();
        self.types.pop();
        self.scales.pop();
        self.quant.truncate(last * self.dims);
    }

    /// The `k` rows with the highest approximate (quantised) similarity to `query`, best
    /// first, among `types` (all when empty).
    pub(crate) fn top_k(&self, query: &[f32], types: &[NodeType], k: usize) -> Vec<(NodeId, f32)> {
        if k == 0 || query.len() != self.dims || self.ids.is_empty() {
            return Vec::new();
        }
        let (q, q_scale) = quantise(query);
        let n = self.ids.len();
        let scan = |from: usize, to: usize| {
            let mut top = TopK::new(k);
            for row in from..to {
                if !types.is_empty() && !types.contains(&self.types[row]) {
                    continue;
                }
                let chunk = &self.quant[row * self.dims..(row + 1) * self.dims];
                let score = dot_i8(chunk, &q) as f32 * self.scales[row] * q_scale;
                top.push(row, score);
            }
            top.into_sorted()
        };
        let threads = std::thread::available_parallelism().map_or(1, |p| p.get()).min(2);
        let mut best = if n >= PARALLEL_ROWS && threads > 1 {
            let mid = n / 2;
            let (mut a, b) = std::thread::scope(|s| {
                let upper = s.spawn(|| scan(mid, n));
                let lower = scan(0, mid);
                (lower, upper.join().unwrap_or_default())
            });
            a.extend(b);
            a.sort_by(|x, y| y.1.total_cmp(&x.1));
            a.truncate(k);
            a
        } else {
            scan(0, n)
        };
        best.truncate(k);
        best.into_iter().map(|(row, s)| (self.ids[row].clone(), s)).collect()
    }
}

/// The best `k` of a stream of scored rows.
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

    fn push(&mut self, row: usize, score: f32) {
        if self.items.len() < self.k {
            self.items.push((row, score));
            if self.items.len() == self.k {
                self.find_worst();
            }
        } else if score > self.items[self.worst].1 {
            self.items[self.worst] = (row, score);
            self.find_worst();
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
    fn quantised_dot_products_track_the_exact_ones() {
        let mut rng = 12345u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        for _ in 0..50 {
            let mut a: Vec<f32> = (0..384).map(|_| next()).collect();
            let mut b: Vec<f32> = (0..384).map(|_| next()).collect();
            normalise(&mut a);
            normalise(&mut b);
            let (qa, sa) = quantise(&a);
            let (qb, sb) = quantise(&b);
            let approx = dot_i8(&qa, &qb) as f32 * sa * sb;
            assert!((approx - dot(&a, &b)).abs() < 0.01, "{approx} vs {}", dot(&a, &b));
        }
        assert_eq!(quantise(&[0.0, 0.0]), (vec![0, 0], 0.0));
        assert_eq!(dot_i8(&[127; 19], &[-127; 19]), -127 * 127 * 19);
    }

    #[test]
    fn top_k_keeps_the_best_in_order() {
        let mut t = TopK::new(3);
        for (row, s) in [(0, 0.1), (1, 0.9), (2, 0.5), (3, 0.7), (4, 0.2), (5, 0.95)] {
            t.push(row, s);
        }
        assert_eq!(t.into_sorted(), vec![(5, 0.95), (1, 0.9), (3, 0.7)]);
    }

    #[test]
    fn a_parallel_scan_finds_the_same_rows_as_a_serial_one() {
        let dims = 8;
        let mut p = ProjectVectors::new(dims);
        for i in 0..PARALLEL_ROWS + 100 {
            let v: Vec<f32> =
                (0..dims).map(|d| ((i * 7 + d * 13) % 101) as f32 / 101.0 - 0.5).collect();
            p.upsert(&id(&format!("n{i}")), NodeType::Task, &v);
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
            p.upsert(&NodeId::new(format!("n{i}")).unwrap(), NodeType::Task, &v);
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
