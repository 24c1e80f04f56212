//! Search: BM25 (tantivy), vector (cosine of a node's best passage over the project's
//! matrix), and hybrid (both fused — a convex combination of normalised scores by
//! default, see [`Fusion`] — then optional recency weighting and one-hop graph expansion;
//! a node whose title is the query stays first through all of it).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::Utc;
use serde::Serialize;

use crate::chunk::Passage;
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
    /// How hybrid mode fuses the two lists.
    pub fusion: Fusion,
    /// Optional recency weighting.
    pub recency: Option<Recency>,
    /// Add the one-hop neighbours of the top hits (`None`: yes in hybrid mode, no in the
    /// single-retriever modes, which stay pure).
    pub expand: Option<bool>,
}

/// Default RRF `k` (for [`Fusion::Rrf`]).
pub const DEFAULT_RRF_K: f64 = 60.0;

/// How hybrid search fuses the BM25 list and the vector list.
///
/// Measured on two public corpora (docs/BENCHMARKS.md, "Retrieval quality on public
/// corpora"): a convex combination of normalised scores with BM25's share 0.2, chosen on
/// one corpus (Debian package descriptions) and checked on the other (Python pydoc pages),
/// beat both single retrievers and every RRF setting tried on both, on all queries and on
/// the hard ones. (BM25's scores, divided by the best, fall off much faster than min-max
/// normalised cosines: a share of 0.2 still gives BM25 a large say.)
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fusion {
    /// Weighted Reciprocal Rank Fusion: a hit scores `w / (k + rank)` in each list it is
    /// in, with `w` = `bm25_weight` for BM25 and `1 - bm25_weight` for the vectors (0.5 is
    /// textbook RRF).
    Rrf {
        /// Larger flattens the difference between ranks.
        k: f64,
        /// BM25's share, 0..=1.
        bm25_weight: f64,
    },
    /// Convex combination over the union of both lists: `bm25_weight × bm25 / best bm25 +
    /// (1 - bm25_weight) × cosine min-max normalised over the candidates`. A BM25 hit the
    /// vector list missed gets its exact cosine; a vector hit BM25 missed scores 0 there.
    Convex {
        /// BM25's share, 0..=1 (0 re-ranks both lists' candidates by cosine alone).
        bm25_weight: f64,
    },
    /// [`Fusion::Convex`] with BM25's share from the query's length: `short` for queries
    /// of at most two words (names, identifiers), `long` for eight words or more (natural
    /// language), linear in between.
    Adaptive {
        /// BM25's share for short queries.
        short: f64,
        /// BM25's share for long queries.
        long: f64,
    },
}

/// What hybrid search uses unless told otherwise (see [`Fusion`]).
pub const DEFAULT_FUSION: Fusion = Fusion::Convex { bm25_weight: 0.2 };

impl Fusion {
    fn validate(&self) -> Result<()> {
        let share = |w: f64| w.is_finite() && (0.0..=1.0).contains(&w);
        let ok = match *self {
            Fusion::Rrf { k, bm25_weight } => k.is_finite() && k >= 0.0 && share(bm25_weight),
            Fusion::Convex { bm25_weight } => share(bm25_weight),
            Fusion::Adaptive { short, long } => share(short) && share(long),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "bad fusion settings {self:?}: weights must be in 0..=1 and RRF k ≥ 0"
            )))
        }
    }

    /// BM25's share for `query` (for RRF and convex, their fixed share).
    pub fn bm25_weight(&self, query: &str) -> f64 {
        match *self {
            Fusion::Rrf { bm25_weight, .. } | Fusion::Convex { bm25_weight } => bm25_weight,
            Fusion::Adaptive { short, long } => {
                // Words as typed: an identifier like `ORT_DYLIB_PATH` is one.
                let words = query
                    .split_whitespace()
                    .filter(|w| w.chars().any(char::is_alphanumeric))
                    .count();
                let t = ((words as f64 - 2.0) / 6.0).clamp(0.0, 1.0);
                short + (long - short) * t
            }
        }
    }

    /// A short description, e.g. `convex(bm25 0.20)`.
    pub fn describe(&self) -> String {
        match *self {
            Fusion::Rrf { k, bm25_weight } => format!("rrf(k {k}, bm25 {bm25_weight:.2})"),
            Fusion::Convex { bm25_weight } => format!("convex(bm25 {bm25_weight:.2})"),
            Fusion::Adaptive { short, long } => {
                format!("adaptive(bm25 {short:.2} short … {long:.2} long)")
            }
        }
    }
}

impl FromStr for Fusion {
    type Err = Error;
    /// `convex`, `convex:0.7`, `rrf`, `rrf:60`, `rrf:60:0.7`, `adaptive`,
    /// `adaptive:0.8:0.5`.
    fn from_str(s: &str) -> Result<Fusion> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        let num = |i: usize, default: f64| -> Result<f64> {
            match parts.get(i) {
                None => Ok(default),
                Some(x) => x.trim().parse::<f64>().map_err(|_| {
                    Error::InvalidInput(format!("{x:?} in fusion {s:?} is not a number"))
                }),
            }
        };
        let fusion = match parts[0].trim().to_ascii_lowercase().as_str() {
            "convex" => Fusion::Convex { bm25_weight: num(1, 0.2)? },
            "rrf" => Fusion::Rrf { k: num(1, DEFAULT_RRF_K)?, bm25_weight: num(2, 0.5)? },
            "adaptive" => Fusion::Adaptive { short: num(1, 0.6)?, long: num(2, 0.2)? },
            _ => {
                return Err(Error::InvalidInput(format!(
                    "unknown fusion {s:?}; expected convex[:W], rrf[:K[:W]] or adaptive[:SHORT:LONG] \
                     (W = BM25's share, 0..=1)"
                )));
            }
        };
        fusion.validate()?;
        Ok(fusion)
    }
}

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
            fusion: DEFAULT_FUSION,
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

    /// Fuse with textbook Reciprocal Rank Fusion with this `k`.
    pub fn rrf_k(mut self, k: f64) -> SearchQuery {
        self.fusion = Fusion::Rrf { k, bm25_weight: 0.5 };
        self
    }

    /// Fuse this way in hybrid mode.
    pub fn fusion(mut self, fusion: Fusion) -> SearchQuery {
        self.fusion = fusion;
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Ranked {
    /// 1-based rank.
    pub rank: usize,
    /// The retriever's own score.
    pub score: f32,
}

/// How a hit was reached through the graph.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GraphHop {
    /// The hit it is a neighbour of.
    #[schema(value_type = String)]
    pub from: NodeId,
    /// The edge between them.
    #[schema(value_type = String)]
    pub edge: EdgeType,
}

/// Which retrievers found a hit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
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
    /// Cosine similarity of its best passage, also when the vector list did not reach it
    /// (hybrid mode computes it for BM25's hits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosine: Option<f32>,
    /// Its title is the query (such a hit is put first in hybrid mode).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub exact_title: bool,
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
    /// The final score (the fused score in hybrid mode; the retriever's score otherwise;
    /// times the recency factor when asked).
    pub score: f64,
    /// Which retrievers found it, at which ranks and scores.
    pub found_by: FoundBy,
    /// Its best-matching passage for the query (when it has vectors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passage: Option<Passage>,
    /// That passage's text (whitespace collapsed), else the start of its body.
    pub snippet: String,
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
    /// How the lists were fused (hybrid mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fusion: Option<String>,
}

/// One candidate of a hybrid search before fusion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    pub id: NodeId,
    pub found_by: FoundBy,
    /// Its best passage's index, when it has vectors.
    pub passage: Option<usize>,
}

/// Fused scores of `candidates` (same order). `bm25_weight` is BM25's share.
pub(crate) fn fuse(candidates: &[Candidate], fusion: &Fusion, bm25_weight: f64) -> Vec<f64> {
    match *fusion {
        Fusion::Rrf { k, .. } => candidates
            .iter()
            .map(|c| {
                let b = c.found_by.bm25.map_or(0.0, |r| 1.0 / (k + r.rank as f64));
                let v = c.found_by.vector.map_or(0.0, |r| 1.0 / (k + r.rank as f64));
                bm25_weight * b + (1.0 - bm25_weight) * v
            })
            .collect(),
        Fusion::Convex { .. } | Fusion::Adaptive { .. } => {
            let best_bm25 = candidates
                .iter()
                .filter_map(|c| c.found_by.bm25.map(|r| f64::from(r.score)))
                .fold(0.0f64, f64::max);
            let cosines = candidates.iter().filter_map(|c| c.found_by.cosine.map(f64::from));
            let (lo, hi) = cosines
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
            candidates
                .iter()
                .map(|c| {
                    let b = match c.found_by.bm25 {
                        Some(r) if best_bm25 > 0.0 => f64::from(r.score) / best_bm25,
                        _ => 0.0,
                    };
                    let v = match c.found_by.cosine.map(f64::from) {
                        Some(x) if hi > lo => (x - lo) / (hi - lo),
                        Some(_) => 1.0,
                        None => 0.0,
                    };
                    bm25_weight * b + (1.0 - bm25_weight) * v
                })
                .collect()
        }
    }
}

/// Words of a title or query, lowercased, for the exact-title check.
fn title_words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether `query` names `node`: its title, or (a file) its file name with or without the
/// extension, word for word.
pub(crate) fn is_exact_title(query: &[String], node: &Node) -> bool {
    if query.is_empty() {
        return false;
    }
    if title_words(&node.title) == query {
        return true;
    }
    if node.node_type == NodeType::File {
        let name = node.title.rsplit('/').next().unwrap_or(&node.title);
        let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
        return title_words(name) == query || title_words(stem) == query;
    }
    false
}

/// How deep in BM25's list hybrid search looks for exact-title hits past the cut.
const EXACT_TITLE_DEPTH: usize = 10;

/// Longest snippet (bytes).
const SNIPPET_BYTES: usize = 2000;

impl Store {
    /// Search. Everything returned belongs to `query.scope`.
    pub fn search(&self, query: &SearchQuery) -> Result<SearchResults> {
        query.fusion.validate()?;
        if let Some(r) = query.recency
            && !(r.half_life_days > 0.0 && (0.0..=1.0).contains(&r.weight))
        {
            return Err(Error::InvalidInput(
                "recency needs half_life_days > 0 and weight in 0..=1".into(),
            ));
        }
        self.ensure_index_current()?;
        if query.limit == 0 || query.text.trim().is_empty() {
            return Ok(SearchResults {
                hits: Vec::new(),
                mode: query.mode,
                warning: None,
                fusion: None,
            });
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
        let run_vector = || -> Result<(Vec<f32>, Vec<VectorHit>)> {
            match &embedder {
                Some(e) => {
                    let q = e.embed(&[query.text.as_str()])?.pop().unwrap_or_default();
                    let hits = self.vector_search(&q, &query.scope, &query.types, depth)?;
                    Ok((q, hits))
                }
                None => Ok((Vec::new(), Vec::new())),
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
        let (bm25, (query_vector, vector)) = (bm25?, vector?);

        // The candidates: both lists, by node.
        let mut candidates: Vec<Candidate> = Vec::with_capacity(bm25.len() + vector.len());
        let mut at: HashMap<NodeId, usize> = HashMap::new();
        for (i, (id, s)) in bm25.iter().enumerate() {
            at.insert(id.clone(), candidates.len());
            candidates.push(Candidate {
                id: id.clone(),
                found_by: FoundBy {
                    bm25: Some(Ranked { rank: i + 1, score: *s }),
                    ..FoundBy::default()
                },
                passage: None,
            });
        }
        for (i, hit) in vector.iter().enumerate() {
            let slot = *at.entry(hit.id.clone()).or_insert_with(|| {
                candidates.push(Candidate {
                    id: hit.id.clone(),
                    found_by: FoundBy::default(),
                    passage: None,
                });
                candidates.len() - 1
            });
            let c = &mut candidates[slot];
            c.found_by.vector = Some(Ranked { rank: i + 1, score: hit.score });
            c.found_by.cosine = Some(hit.score);
            c.passage = Some(hit.passage);
        }
        let fused = mode == SearchMode::Hybrid;
        if fused && !query_vector.is_empty() {
            // BM25's hits the vector list did not reach: their exact cosine and passage.
            for c in candidates.iter_mut().filter(|c| c.found_by.cosine.is_none()) {
                let project = match &query.scope {
                    Scope::Project(p) => p.clone(),
                    Scope::All => match self.get_node(&c.id)? {
                        Some(n) => n.project,
                        None => continue,
                    },
                };
                if let Some((passage, cosine)) =
                    self.best_passage(&project, &c.id, &query_vector)?
                {
                    c.found_by.cosine = Some(cosine);
                    c.passage = Some(passage);
                }
            }
        }
        let scores: Vec<f64> = if fused {
            fuse(&candidates, &query.fusion, query.fusion.bm25_weight(&query.text))
        } else {
            candidates
                .iter()
                .map(|c| {
                    let r = c.found_by.bm25.or(c.found_by.vector);
                    r.map_or(0.0, |r| f64::from(r.score))
                })
                .collect()
        };
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        order.sort_by(|&a, &b| {
            scores[b].total_cmp(&scores[a]).then_with(|| candidates[a].id.cmp(&candidates[b].id))
        });
        let query_words = title_words(&query.text);
        // Without recency weighting the order is final, but for exact-title hits, which
        // may be anywhere in the lists: read the nodes that can make the cut, and look for
        // exact titles among the rest (graph neighbours added later score below the hit
        // they come from).
        let wanted = if query.recency.is_some() { usize::MAX } else { query.limit };
        let mut hits: Vec<SearchHit> = Vec::with_capacity(query.limit.min(candidates.len()));
        for i in order {
            let c = &candidates[i];
            // Past the cut only BM25's best few can still be exact-title hits.
            if hits.len() >= wanted
                && !(fused && c.found_by.bm25.is_some_and(|r| r.rank <= EXACT_TITLE_DEPTH))
            {
                continue;
            }
            // The index and matrices only hold nodes in scope; check anyway, so that a
            // node of another project can never be returned.
            let Some(node) = self.get_node(&c.id)? else { continue };
            if !query.scope.contains(&node.project) {
                continue;
            }
            let exact = fused && is_exact_title(&query_words, &node);
            if hits.len() >= wanted && !exact {
                continue;
            }
            let mut found_by = c.found_by.clone();
            found_by.exact_title = exact;
            hits.push(SearchHit {
                node,
                score: scores[i],
                found_by,
                passage: None,
                snippet: String::new(),
            });
            if let Some(p) = c.passage {
                let h = hits.len() - 1;
                hits[h].passage = self.passage_span(&hits[h].node, p)?;
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
        for h in &mut hits {
            h.snippet = self.snippet(&h.node, h.passage)?;
        }
        let fusion = fused.then(|| query.fusion.describe());
        Ok(SearchResults { hits, mode, warning, fusion })
    }

    /// A node's best passage for `query` and its cosine, from its stored vectors.
    fn best_passage(
        &self,
        project: &ProjectId,
        id: &NodeId,
        query: &[f32],
    ) -> Result<Option<(usize, f32)>> {
        let key = crate::store::vector_key(project, id);
        Ok(self
            .trees()
            .vectors
            .get(key)?
            .and_then(|bytes| vectors::decode(&bytes))
            .and_then(|stored| stored.best(query)))
    }

    /// Where passage `index` of `node` lies (nodes embedded before passages have none).
    fn passage_span(&self, node: &Node, index: usize) -> Result<Option<Passage>> {
        let key = crate::store::vector_key(&node.project, &node.id);
        Ok(self
            .trees()
            .vectors
            .get(key)?
            .and_then(|bytes| vectors::decode(&bytes))
            .and_then(|stored| stored.passages.get(index).copied()))
    }

    /// The text of a hit's passage (whitespace collapsed, cut to [`SNIPPET_BYTES`]), or
    /// the start of its body.
    fn snippet(&self, node: &Node, passage: Option<Passage>) -> Result<String> {
        let passage = passage.filter(|p| !p.is_summary());
        let content = match passage {
            Some(_) => self
                .trees()
                .content
                .get(node.id.as_str())?
                .map(|c| String::from_utf8_lossy(&c).into_owned()),
            None => None,
        };
        let source = content.as_deref().unwrap_or(&node.body);
        let text = match passage {
            Some(p) if p.start <= p.end && source.get(p.start..p.end).is_some() => {
                &source[p.start..p.end]
            }
            _ => source,
        };
        let mut out = text.split_whitespace().collect::<Vec<_>>().join(" ");
        crate::graph::truncate_at_char(&mut out, SNIPPET_BYTES);
        Ok(out)
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
                    passage: None,
                    snippet: String::new(),
                });
            }
        }
        hits.extend(extra);
        Ok(())
    }

    /// The `k` nodes whose best passage is most similar to `query` in `scope`, best first.
    pub(crate) fn vector_search(
        &self,
        query: &[f32],
        scope: &Scope,
        types: &[NodeType],
        k: usize,
    ) -> Result<Vec<VectorHit>> {
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
            for (id, approx, passage) in candidates {
                let (passage, score) =
                    match self.trees().vectors.get(crate::store::vector_key(p, &id))? {
                        Some(bytes) => match vectors::decode(&bytes).and_then(|s| s.best(query)) {
                            Some(best) => best,
                            None => (passage, approx),
                        },
                        // Deleted since the scan.
                        None => continue,
                    };
                all.push(VectorHit { id, score, passage });
            }
        }
        all.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
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
                Some(stored) => {
                    matrix.upsert(&NodeId::from_trusted(id), stored.node_type, &stored.vectors)
                }
                None => tracing::warn!("skipping an undecodable vector of node {id}"),
            }
        }
        Ok(self.inner.vectors.insert(project.clone(), matrix))
    }
}

/// A node found by vector search: its best passage's cosine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VectorHit {
    pub id: NodeId,
    pub score: f32,
    pub passage: usize,
}

/// Exact-title hits first, then by score.
fn sort_hits(hits: &mut [SearchHit]) {
    hits.sort_by(|a, b| {
        b.found_by
            .exact_title
            .cmp(&a.found_by.exact_title)
            .then_with(|| b.score.total_cmp(&a.score))
            .then_with(|| a.node.id.cmp(&b.node.id))
    });
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

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    /// Candidates as `search` builds them from a BM25 list and a vector list (cosines of
    /// the vector hits only, as when no vectors exist for the others).
    fn candidates(bm25: &[(&str, f32)], vector: &[(&str, f32)]) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = Vec::new();
        for (i, (n, s)) in bm25.iter().enumerate() {
            out.push(Candidate {
                id: id(n),
                found_by: FoundBy {
                    bm25: Some(Ranked { rank: i + 1, score: *s }),
                    ..FoundBy::default()
                },
                passage: None,
            });
        }
        for (i, (n, s)) in vector.iter().enumerate() {
            let pos = match out.iter().position(|c| c.id.as_str() == *n) {
                Some(p) => p,
                None => {
                    out.push(Candidate { id: id(n), found_by: FoundBy::default(), passage: None });
                    out.len() - 1
                }
            };
            out[pos].found_by.vector = Some(Ranked { rank: i + 1, score: *s });
            out[pos].found_by.cosine = Some(*s);
        }
        out
    }

    fn ranking(c: &[Candidate], fusion: Fusion, query: &str) -> Vec<String> {
        let scores = fuse(c, &fusion, fusion.bm25_weight(query));
        let mut order: Vec<usize> = (0..c.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then_with(|| c[a].id.cmp(&c[b].id)));
        order.into_iter().map(|i| c[i].id.to_string()).collect()
    }

    const FUSIONS: [Fusion; 4] = [
        Fusion::Rrf { k: 60.0, bm25_weight: 0.5 },
        Fusion::Rrf { k: 10.0, bm25_weight: 0.8 },
        Fusion::Convex { bm25_weight: 0.6 },
        Fusion::Adaptive { short: 0.8, long: 0.4 },
    ];

    #[test]
    fn with_one_list_empty_hybrid_keeps_the_other_lists_order() {
        let bm25 = [("a", 9.0), ("b", 7.5), ("c", 3.0), ("d", 0.5)];
        let vector = [("x", 0.8), ("y", 0.61), ("z", 0.6), ("w", 0.1)];
        for f in FUSIONS {
            for q in ["rate", "how do we limit the rate of calls to the provider api"] {
                assert_eq!(ranking(&candidates(&bm25, &[]), f, q), ["a", "b", "c", "d"], "{f:?}");
                assert_eq!(ranking(&candidates(&[], &vector), f, q), ["x", "y", "z", "w"], "{f:?}");
            }
        }
    }

    #[test]
    fn a_hit_both_lists_rank_first_is_first_and_weights_decide_disagreements() {
        // "both" is first in both lists; "kw" is second by keywords, "sem" by meaning.
        let c = candidates(
            &[("both", 10.0), ("kw", 9.0), ("sem", 1.0)],
            &[("both", 0.9), ("sem", 0.85), ("kw", 0.3)],
        );
        for f in FUSIONS {
            assert_eq!(ranking(&c, f, "rate limit")[0], "both", "{f:?}");
        }
        let lean_bm25 = Fusion::Convex { bm25_weight: 0.9 };
        let lean_vector = Fusion::Convex { bm25_weight: 0.1 };
        assert_eq!(ranking(&c, lean_bm25, "q")[1], "kw");
        assert_eq!(ranking(&c, lean_vector, "q")[1], "sem");
        // Adaptive: a one-word query leans on BM25, a long one on the vectors.
        let adaptive = Fusion::Adaptive { short: 0.9, long: 0.1 };
        assert_eq!(ranking(&c, adaptive, "limit")[1], "kw");
        assert_eq!(
            ranking(&c, adaptive, "how do we keep the provider from refusing calls")[1],
            "sem"
        );
    }

    #[test]
    fn adaptive_weight_slides_with_query_length() {
        let f = Fusion::Adaptive { short: 0.8, long: 0.4 };
        assert_eq!(f.bm25_weight("ORT_DYLIB_PATH"), 0.8);
        assert_eq!(f.bm25_weight("rate limit"), 0.8);
        assert!((f.bm25_weight("limit the rate of calls") - 0.6).abs() < 1e-9);
        assert_eq!(f.bm25_weight("how do we stop the provider from refusing our calls today"), 0.4);
    }

    #[test]
    fn fusion_settings_parse_and_bad_ones_say_what_is_wrong() {
        assert_eq!("convex".parse::<Fusion>().unwrap(), Fusion::Convex { bm25_weight: 0.2 });
        assert_eq!("convex:0.3".parse::<Fusion>().unwrap(), Fusion::Convex { bm25_weight: 0.3 });
        assert_eq!("rrf".parse::<Fusion>().unwrap(), Fusion::Rrf { k: 60.0, bm25_weight: 0.5 });
        assert_eq!(
            "RRF:20:0.7".parse::<Fusion>().unwrap(),
            Fusion::Rrf { k: 20.0, bm25_weight: 0.7 }
        );
        assert_eq!(
            "adaptive:0.9:0.4".parse::<Fusion>().unwrap(),
            Fusion::Adaptive { short: 0.9, long: 0.4 }
        );
        let e = "convex:1.5".parse::<Fusion>().unwrap_err().to_string();
        assert!(e.contains("0..=1"), "{e}");
        let e = "convex:lots".parse::<Fusion>().unwrap_err().to_string();
        assert!(e.contains("not a number"), "{e}");
        let e = "magic".parse::<Fusion>().unwrap_err().to_string();
        assert!(e.contains("expected convex"), "{e}");
        assert!("rrf:-1".parse::<Fusion>().is_err());
    }

    #[test]
    fn exact_titles_are_recognised_by_words_and_file_names() {
        let p = ProjectId::new("p").unwrap();
        let node = |t: NodeType, title: &str| Node {
            id: id("n"),
            project: p.clone(),
            node_type: t,
            title: title.into(),
            body: String::new(),
            tags: Vec::new(),
            metadata: serde_json::json!({}),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let q = |s: &str| title_words(s);
        assert!(is_exact_title(&q("rate limiter"), &node(NodeType::Concept, "Rate Limiter")));
        assert!(is_exact_title(&q("rate-limiter!"), &node(NodeType::Concept, "Rate limiter")));
        assert!(!is_exact_title(&q("rate"), &node(NodeType::Concept, "Rate limiter")));
        let file = node(NodeType::File, "context/src/search.rs");
        assert!(is_exact_title(&q("search.rs"), &file));
        assert!(is_exact_title(&q("search"), &file));
        assert!(is_exact_title(&q("context/src/search.rs"), &file));
        assert!(!is_exact_title(&q("src"), &file));
        assert!(!is_exact_title(&q(""), &file));
    }

    #[test]
    fn reindex_upgrades_vectors_from_before_passages() {
        use crate::embed::{Embedder, HashEmbedder};
        use crate::model::NewNode;
        use crate::store::{StoreOptions, vector_key};

        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::open(dir.path(), StoreOptions::with_embedder(Arc::new(HashEmbedder::new(64))))
                .unwrap();
        let p = ProjectId::new("p").unwrap();
        let head = "lantern meadow orchard ".repeat(150);
        let body = format!("{head}\nzebra quagga okapi giraffe");
        let node = store.upsert_node(NewNode::new(&p, NodeType::Concept, "Notes", &body)).unwrap();
        let key = vector_key(&p, &node.id);
        let stored = |store: &Store| {
            vectors::decode(&store.trees().vectors.get(&key).unwrap().unwrap()).unwrap()
        };
        let fresh = stored(&store);
        assert_eq!(fresh.scheme, vectors::SCHEME);
        assert!(fresh.passages.len() > 1, "{:?}", fresh.passages);

        // Make it a store written before passages: one vector of the title and the head.
        let embedder = HashEmbedder::new(64);
        let old = embedder.embed(&[&format!("Notes\n{}", &body[..2000])]).unwrap().remove(0);
        store.trees().vectors.insert(&key, vectors::encode_v1(NodeType::Concept, &old)).unwrap();
        store.inner.vectors.clear();
        let q = SearchQuery::new("zebra quagga okapi", &p).mode(SearchMode::Vector);
        let before = store.search(&q).unwrap();
        // Old vectors still search, without a passage to show.
        assert_eq!(before.hits[0].node.id, node.id);
        assert_eq!(before.hits[0].passage, None);

        let report = store.reindex(&crate::progress::NoProgress).unwrap();
        assert_eq!(report.embedded, 1);
        let upgraded = stored(&store);
        assert_eq!(upgraded.scheme, vectors::SCHEME);
        assert_eq!(upgraded.passages, fresh.passages);
        let after = store.search(&q).unwrap();
        assert!(after.hits[0].found_by.cosine > before.hits[0].found_by.cosine);
        assert_eq!(after.hits[0].passage.map(|p| p.end), Some(body.len()));
        assert!(after.hits[0].snippet.ends_with("zebra quagga okapi giraffe"));
        // Nothing is left to upgrade.
        assert_eq!(store.reindex(&crate::progress::NoProgress).unwrap().embedded, 0);
    }

    #[test]
    fn found_by_label() {
        let f = FoundBy {
            bm25: Some(Ranked { rank: 1, score: 2.0 }),
            vector: Some(Ranked { rank: 3, score: 0.5 }),
            graph: None,
            cosine: Some(0.5),
            exact_title: false,
        };
        assert_eq!(f.label(), "bm25+vector");
        assert_eq!(FoundBy::default().label(), "");
    }
}
