//! What the retrievers found: a hit's ranks and how it was reached ([`FoundBy`]), a vector
//! hit, and a candidate of a hybrid search before fusion — the types the retrievers, the
//! fusion and the results share.

use serde::Serialize;

use crate::chunk::Passage;
use crate::model::{EdgeType, NodeId};

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

/// A node found by vector search: its best passage's cosine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VectorHit {
    pub id: NodeId,
    pub score: f32,
    /// Where its best passage lies (none for vectors stored before passages).
    pub passage: Option<Passage>,
}

/// One candidate of a hybrid search before fusion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    pub id: NodeId,
    pub found_by: FoundBy,
    /// Where its best passage lies, when it has vectors (and they have passages).
    pub passage: Option<Passage>,
}
