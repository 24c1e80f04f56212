//! A search's results: what each hit carries ([`SearchHit`], [`FoundBy`]), reading the
//! ordered candidates' nodes (exact titles kept past the cut), recency weighting, one-hop
//! graph expansion and snippets.

use chrono::Utc;
use serde::Serialize;

use crate::chunk::Passage;
use crate::error::Result;
use crate::model::{Direction, EdgeType, Node, NodeId, NodeType};
use crate::store::Store;

use super::fusion::Candidate;
use super::query::{Recency, SearchMode, SearchQuery};

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

/// How many top hits graph expansion starts from.
const EXPAND_FROM: usize = 3;
/// Neighbours added per expanded hit, heaviest edges first.
const EXPAND_PER_HIT: usize = 5;
/// A neighbour's score relative to the hit it was reached from (times the edge weight).
const EXPAND_FACTOR: f64 = 0.5;

impl Store {
    /// The hits of `candidates` taken in `order` (with their `scores`): the nodes that make
    /// the cut of `query.limit` (all of them when recency weighting will reorder them), and
    /// in hybrid mode (`fused`) exact-title hits past it. Nodes outside the query's scope
    /// are never returned. Snippets are left empty.
    pub(crate) fn read_hits(
        &self,
        query: &SearchQuery,
        candidates: &[Candidate],
        scores: &[f64],
        order: Vec<usize>,
        fused: bool,
    ) -> Result<Vec<SearchHit>> {
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
                passage: c.passage,
                snippet: String::new(),
            });
        }
        Ok(hits)
    }

    /// The text of a hit's passage (whitespace collapsed, cut to [`SNIPPET_BYTES`]), or
    /// the start of its body.
    pub(crate) fn snippet(&self, node: &Node, passage: Option<Passage>) -> Result<String> {
        let passage = passage.filter(|p| !p.is_summary());
        let content = match passage {
            Some(_) => self
                .graph()
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
        crate::text::truncate_at_char(&mut out, SNIPPET_BYTES);
        Ok(out)
    }

    /// Add the neighbours of the top hits that are not hits yet.
    pub(crate) fn expand(&self, hits: &mut Vec<SearchHit>, query: &SearchQuery) -> Result<()> {
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
}

/// Weigh each hit's score by the age of its node (see [`Recency`]).
pub(crate) fn weigh_recency(hits: &mut [SearchHit], r: Recency) {
    let now = Utc::now();
    for h in hits {
        let age_days = (now - h.node.updated_at).num_seconds().max(0) as f64 / 86_400.0;
        h.score *= (1.0 - r.weight) + r.weight * 0.5f64.powf(age_days / r.half_life_days);
    }
}

/// Exact-title hits first, then by score.
pub(crate) fn sort_hits(hits: &mut [SearchHit]) {
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
    use crate::model::ProjectId;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
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
