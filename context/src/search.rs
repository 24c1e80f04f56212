//! Search: BM25 (tantivy), vector (cosine over the project's matrix), and hybrid
//! (Reciprocal Rank Fusion of both, optional recency weighting, one-hop graph expansion).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::Utc;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::graph::Scope;
use crate::model::{Direction, EdgeType, Node, NodeId, NodeType, ProjectId};
use crate::store::{Store, project_prefix};
use crate::vectors::{self, ProjectVectors};

/// Which retrievers a search uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// BM25 and vectors fused with Reciprocal Rank Fusion (BM25 alone when no embedding
    /// model is installed).
    #[default]
    Hybrid,
    /// Keywords only.
    Bm25,
    /// Embeddings only (an error when no model is installed).
    Vector,
}

impl SearchMode {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            SearchMode::Hybrid => "hybrid",
            SearchMode::Bm25 => "bm25",
            SearchMode::Vector => "vector",
        }
    }
}

impl FromStr for SearchMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<SearchMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hybrid" => Ok(SearchMode::Hybrid),
            "bm25" | "keyword" => Ok(SearchMode::Bm25),
            "vector" | "semantic" => Ok(SearchMode::Vector),
            _ => Err(Error::InvalidInput(format!(
                "unknown search mode {s:?}; expected hybrid, bm25 or vector"
            ))),
        }
    }
}

/// Recency weighting: a hit's score is multiplied by `(1 - weight) + weight × 0.5^(age /
/// half_life)`, so with weight 0.3 an old memory keeps 70% of its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recency {
    /// Age (since last update) at which the recency part halves, in days.
    pub half_life_days: f64,
    /// How much recency counts, 0..=1.
    pub weight: f64,
}

/// A search request. Build with [`SearchQuery::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    /// The text to look for.
    pub text: String,
    /// Which projects (one, unless asked for all).
    pub scope: Scope,
    /// Only these node types (all when empty).
    pub types: Vec<NodeType>,
    /// Retrievers.
    pub mode: SearchMode,
    /// Hits returned.
    pub limit: usize,
    /// RRF's `k`: larger flattens the difference between ranks (60 is the usual choice).
    pub rrf_k: f64,
    /// Optional recency weighting.
    pub recency: Option<Recency>,
    /// Add the one-hop neighbours of the top hits (`None`: yes in hybrid mode, no in the
    /// single-retriever modes, which stay pure).
    pub expand: Option<bool>,
}

/// Default RRF `k`.
pub const DEFAULT_RRF_K: f64 = 60.0;

/// How many top hits graph expansion starts from.
const EXPAND_FROM: usize = 3;
/// Neighbours added per expanded hit, heaviest edges first.
const EXPAND_PER_HIT: usize = 5;
/// A neighbour's score relative to the hit it was reached from (times the edge weight).
const EXPAND_FACTOR: f64 = 0.5;

impl SearchQuery {
    /// Hybrid search for `text` in `scope`, 10 hits.
    pub fn new(text: impl Into<String>, scope: impl Into<Scope>) -> SearchQuery {
        SearchQuery {
            text: text.into(),
            scope: scope.into(),
            types: Vec::new(),
            mode: SearchMode::Hybrid,
            limit: 10,
            rrf_k: DEFAULT_RRF_K,
            recency: None,
            expand: None,
        }
    }

    /// With this mode.
    pub fn mode(mut self, mode: SearchMode) -> SearchQuery {
        self.mode = mode;
        self
    }

    /// Only these types.
    pub fn types(mut self, types: impl IntoIterator<Item = NodeType>) -> SearchQuery {
        self.types = types.into_iter().collect();
        self
    }

    /// At most `limit` hits.
    pub fn limit(mut self, limit: usize) -> SearchQuery {
        self.limit = limit;
        self
    }

    /// RRF with this `k`.
    pub fn rrf_k(mut self, k: f64) -> SearchQuery {
        self.rrf_k = k;
        self
    }

    /// With recency weighting.
    pub fn recency(mut self, recency: Recency) -> SearchQuery {
        self.recency = Some(recency);
        self
    }

    /// With or without graph expansion.
    pub fn expand(mut self, expand: bool) -> SearchQuery {
        self.expand = Some(expand);
        self
    }
}

/// A retriever's view of a hit: its rank there (1 = best) and raw score (BM25 score, or
/// cosine similarity).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ranked {
    /// 1-based rank.
    pub rank: usize,
    /// The retriever's own score.
    pub score: f32,
}

/// How a hit was reached through the graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphHop {
    /// The hit it is a neighbour of.
    pub from: NodeId,
    /// The edge between them.
    pub edge: EdgeType,
}

/// Which retrievers found a hit.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FoundBy {
    /// Found by BM25.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bm25: Option<Ranked>,
    /// Found by vector similarity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Ranked>,
    /// Reached by graph expansion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphHop>,
}

impl FoundBy {
    /// Short names of the retrievers, e.g. `bm25+vector`.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if self.bm25.is_some() {
            parts.push("bm25");
        }
        if self.vector.is_some() {
            parts.push("vector");
        }
        if self.graph.is_some() {
            parts.push("graph");
        }
        parts.join("+")
    }
}

/// One result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// The node.
    pub node: Node,
    /// The final score (RRF in hybrid mode; the retriever's score otherwise; times the
    /// recency factor when asked).
    pub score: f64,
    /// Which retrievers found it.
    pub found_by: FoundBy,
}

/// The results of a search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResults {
    /// Best first.
    pub hits: Vec<SearchHit>,
    /// The mode actually used (hybrid degrades to BM25 without a model).
    pub mode: SearchMode,
    /// Why the search did less than asked (no model installed, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl Store {
    /// Search. Everything returned belongs to `query.scope`.
    pub fn search(&self, query: &SearchQuery) -> Result<SearchResults> {
        if !query.rrf_k.is_finite() || query.rrf_k < 0.0 {
            return Err(Error::InvalidInput(format!("RRF k must be ≥ 0, not {}", query.rrf_k)));
        }
        if let Some(r) = query.recency
            && !(r.half_life_days > 0.0 && (0.0..=1.0).contains(&r.weight))
        {
            return Err(Error::InvalidInput(
                "recency needs half_life_days > 0 and weight in 0..=1".into(),
            ));
        }
        self.ensure_index_current()?;
        if query.limit == 0 || query.text.trim().is_empty() {
            return Ok(SearchResults { hits: Vec::new(), mode: query.mode, warning: None });
        }
        let depth = (query.limit * 3).max(50);
        let mut warning = None;
        let mut mode = query.mode;
        let embedder = match query.mode {
            SearchMode::Bm25 => None,
            SearchMode::Vector => {
                Some(self.embedder().map_err(|reason| Error::EmbeddingUnavailable { reason })?)
            }
            SearchMode::Hybrid => match self.embedder() {
                Ok(e) => Some(e),
                Err(reason) => {
                    let msg = format!("no embedding model, hybrid search uses BM25 only: {reason}");
                    if !self.inner.degraded_warned.swap(true, Ordering::SeqCst) {
                        tracing::warn!("{msg}");
                    }
                    warning = Some(msg);
                    mode = SearchMode::Bm25;
                    None
                }
            },
        };
        let run_bm25 = || -> Result<Vec<(NodeId, f32)>> {
            if mode == SearchMode::Vector {
                return Ok(Vec::new());
            }
            self.inner.index.search(&query.text, query.scope.project(), &query.types, depth)
        };
        let run_vector = || -> Result<Vec<(NodeId, f32)>> {
            match &embedder {
                Some(e) => {
                    let q = e.embed(&[query.text.as_str()])?.pop().unwrap_or_default();
                    self.vector_search(&q, &query.scope, &query.types, depth)
                }
                None => Ok(Vec::new()),
            }
        };
        // Hybrid: keywords on a second thread while this one embeds the query and scans.
        let (bm25, vector) = if mode == SearchMode::Hybrid {
            std::thread::scope(|s| {
                let keywords = s.spawn(run_bm25);
                let vector = run_vector();
                let bm25 = keywords.join().unwrap_or_else(|_| {
                    Err(Error::Index("the BM25 search thread panicked".into()))
                });
                (bm25, vector)
            })
        } else {
            (run_bm25(), run_vector())
        };
        let (bm25, vector) = (bm25?, vector?);

        // Fuse.
        let mut found: HashMap<NodeId, (f64, FoundBy)> = HashMap::new();
        let fuse = mode == SearchMode::Hybrid;
        for (i, (id, s)) in bm25.iter().enumerate() {
            let e = found.entry(id.clone()).or_default();
            e.1.bm25 = Some(Ranked { rank: i + 1, score: *s });
            e.0 += if fuse { 1.0 / (query.rrf_k + (i + 1) as f64) } else { f64::from(*s) };
        }
        for (i, (id, s)) in vector.iter().enumerate() {
            let e = found.entry(id.clone()).or_default();
            e.1.vector = Some(Ranked { rank: i + 1, score: *s });
            e.0 += if fuse { 1.0 / (query.rrf_k + (i + 1) as f64) } else { f64::from(*s) };
        }
        let mut candidates: Vec<(NodeId, f64, FoundBy)> =
            found.into_iter().map(|(id, (score, by))| (id, score, by)).collect();
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        // Without recency weighting the order is final: read only the nodes that can make
        // the cut (graph neighbours added later score below the hit they come from).
        let wanted = if query.recency.is_some() { usize::MAX } else { query.limit };
        let mut hits: Vec<SearchHit> = Vec::with_capacity(query.limit.min(candidates.len()));
        for (id, score, found_by) in candidates {
            if hits.len() >= wanted {
                break;
            }
            // The index and matrices only hold nodes in scope; check anyway, so that a
            // node of another project can never be returned.
            if let Some(node) = self.get_node(&id)?
                && query.scope.contains(&node.project)
            {
                hits.push(SearchHit { node, score, found_by });
            }
        }
        if let Some(r) = query.recency {
            let now = Utc::now();
            for h in &mut hits {
                let age_days = (now - h.node.updated_at).num_seconds().max(0) as f64 / 86_400.0;
                h.score *= (1.0 - r.weight) + r.weight * 0.5f64.powf(age_days / r.half_life_days);
            }
        }
        sort_hits(&mut hits);
        if query.expand.unwrap_or(mode == SearchMode::Hybrid) {
            self.expand(&mut hits, query)?;
            sort_hits(&mut hits);
        }
        hits.truncate(query.limit);
        Ok(SearchResults { hits, mode, warning })
    }

    /// Add the neighbours of the top hits that are not hits yet.
    fn expand(&self, hits: &mut Vec<SearchHit>, query: &SearchQuery) -> Result<()> {
        let mut extra: Vec<SearchHit> = Vec::new();
        for hit in hits.iter().take(EXPAND_FROM) {
            let mut neighbours = self.neighbours(&hit.node.id, Direction::Both, None)?;
            neighbours.sort_by(|a, b| b.0.weight.total_cmp(&a.0.weight));
            let mut added = 0;
            for (edge, node) in neighbours {
                let known = hits.iter().chain(extra.iter()).any(|h| h.node.id == node.id);
                let wanted = query.types.is_empty() || query.types.contains(&node.node_type);
                if known
                    || !wanted
                    || !query.scope.contains(&node.project)
                    || added >= EXPAND_PER_HIT
                {
                    continue;
                }
                added += 1;
                extra.push(SearchHit {
                    score: hit.score * EXPAND_FACTOR * f64::from(edge.weight.min(1.0)),
                    found_by: FoundBy {
                        graph: Some(GraphHop { from: hit.node.id.clone(), edge: edge.edge_type }),
                        ..FoundBy::default()
                    },
                    node,
                });
            }
        }
        hits.extend(extra);
        Ok(())
    }

    /// The `k` nodes most similar to `query` in `scope`, best first.
    pub(crate) fn vector_search(
        &self,
        query: &[f32],
        scope: &Scope,
        types: &[NodeType],
        k: usize,
    ) -> Result<Vec<(NodeId, f32)>> {
        let projects: Vec<ProjectId> = match scope {
            Scope::Project(p) => vec![p.clone()],
            Scope::All => self.project_ids()?,
        };
        // Candidates by the quantised scan, a few more than asked, then exact cosine from the
        // stored f32 vectors decides the order.
        let oversampled = k * 2 + 16;
        let mut all = Vec::new();
        for p in &projects {
            let matrix = self.project_vectors(p)?;
            let candidates = {
                let matrix = matrix.read().unwrap_or_else(PoisonError::into_inner);
                matrix.top_k(query, types, oversampled)
            };
            for (id, approx) in candidates {
                let exact = match self.trees().vectors.get(crate::store::vector_key(p, &id))? {
                    Some(bytes) => match vectors::decode(&bytes) {
                        Some((_, v)) if v.len() == query.len() => vectors::dot(&v, query),
                        _ => approx,
                    },
                    // Deleted since the scan.
                    None => continue,
                };
                all.push((id, exact));
            }
        }
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(k);
        Ok(all)
    }

    /// The project's vector matrix, loading it from the graph on first use.
    pub(crate) fn project_vectors(
        &self,
        project: &ProjectId,
    ) -> Result<Arc<RwLock<ProjectVectors>>> {
        if let Some(m) = self.inner.vectors.get(project) {
            return Ok(m);
        }
        let dims = self.embedder().map(|e| e.dims()).unwrap_or(0);
        // Load under the write guard: no write can slip between the read and the insert.
        let _guard = self.write_guard();
        if let Some(m) = self.inner.vectors.get(project) {
            return Ok(m);
        }
        let prefix = project_prefix(project);
        let mut matrix = ProjectVectors::new(dims);
        for item in self.trees().vectors.scan_prefix(&prefix) {
            let (k, v) = item?;
            let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            match vectors::decode(&v) {
                Some((t, vector)) => matrix.upsert(&NodeId::from_trusted(id), t, &vector),
                None => tracing::warn!("skipping an undecodable vector of node {id}"),
            }
        }
        Ok(self.inner.vectors.insert(project.clone(), matrix))
    }
}

fn sort_hits(hits: &mut [SearchHit]) {
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.node.id.cmp(&b.node.id)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!("Hybrid".parse::<SearchMode>().unwrap(), SearchMode::Hybrid);
        assert_eq!("bm25".parse::<SearchMode>().unwrap(), SearchMode::Bm25);
        assert_eq!("vector".parse::<SearchMode>().unwrap(), SearchMode::Vector);
        assert!("fuzzy".parse::<SearchMode>().is_err());
    }

    #[test]
    fn found_by_label() {
        let f = FoundBy {
            bm25: Some(Ranked { rank: 1, score: 2.0 }),
            vector: Some(Ranked { rank: 3, score: 0.5 }),
            graph: None,
        };
        assert_eq!(f.label(), "bm25+vector");
        assert_eq!(FoundBy::default().label(), "");
    }
}
