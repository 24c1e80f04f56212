//! Search: BM25 (tantivy), vector (cosine of a node's best passage over the project's
//! matrix), and hybrid (both fused — a convex combination of normalised scores by
//! default, see [`Fusion`] — then optional recency weighting and one-hop graph expansion;
//! a node whose title is the query stays first through all of it).

mod fusion;
mod query;
mod results;
mod vector;

use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::model::NodeId;
use crate::store::Store;

pub use fusion::{DEFAULT_FUSION, DEFAULT_RRF_K, Fusion};
pub use query::{Recency, SearchMode, SearchQuery};
pub use results::{FoundBy, GraphHop, Ranked, SearchHit, SearchResults};
pub(crate) use vector::VectorHit;

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

        let fused = mode == SearchMode::Hybrid;
        let mut candidates = fusion::merge(&bm25, &vector);
        if fused && !query_vector.is_empty() {
            self.complete_cosines(&mut candidates, &query.scope, &query_vector)?;
        }
        let scores = fusion::scores(&candidates, fused, &query.fusion, &query.text);
        let order = fusion::order(&candidates, &scores);
        let mut hits = self.read_hits(query, &candidates, &scores, order, fused)?;
        if let Some(r) = query.recency {
            results::weigh_recency(&mut hits, r);
        }
        results::sort_hits(&mut hits);
        if query.expand.unwrap_or(mode == SearchMode::Hybrid) {
            self.expand(&mut hits, query)?;
            results::sort_hits(&mut hits);
        }
        hits.truncate(query.limit);
        for h in &mut hits {
            h.snippet = self.snippet(&h.node, h.passage)?;
        }
        let fusion = fused.then(|| query.fusion.describe());
        Ok(SearchResults { hits, mode, warning, fusion })
    }
}
