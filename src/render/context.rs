//! Search hits in the project memory as `troupe context search --json` and
//! `GET /api/context/search` show them.

use serde::Serialize;
use troupe_context::{FoundBy, SearchHit};

/// One hit: the node it found, its score and how it was found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HitView {
    /// The node's id.
    pub id: String,
    /// The project it belongs to.
    pub project: String,
    /// The node's type (`file`, `symbol`, `decision`, …).
    #[serde(rename = "type")]
    pub node_type: String,
    /// The node's title.
    pub title: String,
    /// The fused score (higher is better).
    pub score: f64,
    /// Which retrievers found it, at which ranks and scores.
    pub found_by: FoundBy,
}

impl HitView {
    /// The view of `h`.
    pub fn new(h: &SearchHit) -> HitView {
        HitView {
            id: h.node.id.to_string(),
            project: h.node.project.to_string(),
            node_type: h.node.node_type.to_string(),
            title: h.node.title.clone(),
            score: h.score,
            found_by: h.found_by.clone(),
        }
    }
}
