//! What a search asks for: the retrievers ([`SearchMode`]), recency weighting and the
//! request itself ([`SearchQuery`], built step by step).

use std::str::FromStr;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{NodeType, Scope};

use super::fusion::{DEFAULT_FUSION, Fusion};

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
}
