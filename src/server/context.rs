//! Search in the project memory.

use std::path::PathBuf;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use troupe_context::{Scope, SearchMode, SearchQuery, project_id_for};

use super::{ApiError, AppState};
use crate::render::context::HitView;

type Data = web::Data<AppState>;
type ApiResult<T = HttpResponse> = Result<T, ApiError>;

/// Query of `GET /api/context/search`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// What to look for (required).
    q: Option<String>,
    /// At most this many hits (10 when absent, 100 at most).
    #[serde(default)]
    #[param(maximum = 100)]
    limit: Option<usize>,
    /// `hybrid` (the default), `bm25` or `vector`.
    #[serde(default)]
    mode: Option<String>,
    /// A project folder on the server [default: the configured project].
    #[serde(default)]
    project: Option<String>,
    /// Search every project.
    #[serde(default)]
    all: bool,
}

/// A hit of `GET /api/context/search`: the shared view and the node's text.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiHit {
    /// What every front-end shows of a hit.
    #[serde(flatten)]
    pub hit: HitView,
    /// The node's text.
    pub body: String,
}

/// The answer of `GET /api/context/search`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchAnswer {
    /// The query as given.
    pub query: String,
    /// The search that ran: `hybrid`, `bm25` or `vector`.
    #[schema(value_type = String)]
    pub mode: SearchMode,
    /// Why the search was weaker than asked (no embeddings), if it was.
    pub warning: Option<String>,
    /// Best first.
    pub hits: Vec<ApiHit>,
}

/// `GET /api/context/search?q=…`: hybrid search in the project memory.
#[utoipa::path(get, path = "/api/context/search", tag = "context", params(SearchParams),
    responses(
        (status = 200, description = "Hits, best first", body = SearchAnswer),
        (status = 400, description = "No query, bad mode or project", body = super::error::ErrorBody),
    ))]
pub async fn context_search(state: Data, q: web::Query<SearchParams>) -> ApiResult {
    let q = q.into_inner();
    let text = q.q.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
        ApiError::bad_request("invalid_request", "say what to look for with ?q=…")
    })?;
    let mode: SearchMode = match q.mode.as_deref() {
        None => SearchMode::Hybrid,
        Some(m) => m.parse().map_err(|e: troupe_context::Error| {
            ApiError::bad_request("invalid_request", e.to_string())
        })?,
    };
    let store = state
        .runtime
        .context_store()
        .cloned()
        .ok_or_else(|| ApiError::internal("the project memory is not open"))?;
    let scope = if q.all {
        Scope::All
    } else {
        let path =
            q.project.map(PathBuf::from).unwrap_or_else(|| state.runtime.config().project_path());
        let (id, _) = project_id_for(&path).map_err(|e| {
            ApiError::bad_request("invalid_request", format!("the project {}: {e}", path.display()))
        })?;
        Scope::Project(id)
    };
    let query = SearchQuery::new(&text, scope).mode(mode).limit(q.limit.unwrap_or(10).min(100));
    let results = web::block(move || store.search(&query))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let hits = results
        .hits
        .iter()
        .map(|h| ApiHit { hit: HitView::new(h), body: h.node.body.clone() })
        .collect();
    // Scanned files can hold secrets (a `.env`, a config file): none leaves through the API.
    let answer = SearchAnswer { query: text, mode: results.mode, warning: results.warning, hits };
    let mut body = serde_json::to_value(answer).map_err(ApiError::internal)?;
    state.runtime.redactor().redact_json(&mut body);
    Ok(HttpResponse::Ok().json(body))
}
