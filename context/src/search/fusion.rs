//! Hybrid search's fusion: the two retrievers' lists merged into candidates, then scored
//! by weighted Reciprocal Rank Fusion or a convex combination of normalised scores
//! ([`Fusion`]), and ordered.

use std::collections::HashMap;
use std::str::FromStr;

use serde::Serialize;

use crate::chunk::Passage;
use crate::error::{Error, Result};
use crate::model::NodeId;

use super::results::{FoundBy, Ranked};
use super::vector::VectorHit;

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
    /// Whether the weights are shares (0..=1) and RRF's `k` is not negative.
    pub(super) fn validate(&self) -> Result<()> {
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

/// One candidate of a hybrid search before fusion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    pub id: NodeId,
    pub found_by: FoundBy,
    /// Where its best passage lies, when it has vectors (and they have passages).
    pub passage: Option<Passage>,
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

/// The candidates of BM25's list (`(node, score)`, best first) and the vector list, by
/// node: each with its rank and score in the lists that have it, and its cosine and
/// passage from the vector list.
pub(crate) fn merge(bm25: &[(NodeId, f32)], vector: &[VectorHit]) -> Vec<Candidate> {
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
        c.passage = hit.passage;
    }
    candidates
}

/// The candidates' scores (same order): fused for `query` in hybrid mode (`fused`), else
/// the one retriever's own score.
pub(crate) fn scores(
    candidates: &[Candidate],
    fused: bool,
    fusion: &Fusion,
    query: &str,
) -> Vec<f64> {
    if fused {
        return fuse(candidates, fusion, fusion.bm25_weight(query));
    }
    candidates
        .iter()
        .map(|c| {
            let r = c.found_by.bm25.or(c.found_by.vector);
            r.map_or(0.0, |r| f64::from(r.score))
        })
        .collect()
}

/// The candidates' indices, best score first (ties by node id).
pub(crate) fn order(candidates: &[Candidate], scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        scores[b].total_cmp(&scores[a]).then_with(|| candidates[a].id.cmp(&candidates[b].id))
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    /// Candidates from a BM25 list and a vector list (cosines of the vector hits only, as
    /// when no vectors exist for the others).
    fn candidates(bm25: &[(&str, f32)], vector: &[(&str, f32)]) -> Vec<Candidate> {
        let bm25: Vec<(NodeId, f32)> = bm25.iter().map(|(n, s)| (id(n), *s)).collect();
        let vector: Vec<VectorHit> =
            vector.iter().map(|(n, s)| VectorHit { id: id(n), score: *s, passage: None }).collect();
        merge(&bm25, &vector)
    }

    fn ranking(c: &[Candidate], fusion: Fusion, query: &str) -> Vec<String> {
        let scores = scores(c, true, &fusion, query);
        order(c, &scores).into_iter().map(|i| c[i].id.to_string()).collect()
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
}
