//! Whether the server is up and ready, its status and its metrics.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use troupe_runtime::Tokens;
use troupe_workflows::config::ConfigSource;

use super::error::ErrorDetail;
use super::{ApiError, AppState};

type Data = web::Data<AppState>;
type ApiResult<T = HttpResponse> = Result<T, ApiError>;

/// The answer of `GET /health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: String,
}

/// `GET /health`.
#[utoipa::path(get, path = "/health", tag = "server", security(()),
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok".into() })
}

/// The answer of `GET /ready`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ready {
    /// Whether the store is open and at least one agent is usable.
    pub ready: bool,
    /// Where the configuration came from.
    pub config: ConfigSource,
    /// `open`, or why the store cannot be read.
    pub store: String,
    /// The agents a call may be made to now.
    pub usable_agents: Vec<String>,
}

/// The answer of `GET /ready` when not ready.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotReady {
    /// Code `not_ready` and the reason.
    pub error: ErrorDetail,
    /// What was checked.
    pub detail: Ready,
}

/// `GET /ready`: config loaded, store open, at least one agent usable.
#[utoipa::path(get, path = "/ready", tag = "server", security(()),
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "Not ready, with the reason", body = NotReady),
    ))]
pub async fn ready(state: Data) -> HttpResponse {
    let runtime = &state.runtime;
    let offline = runtime.config().settings.offline;
    let store = runtime.store().runs().map(|_| ()).map_err(|e| e.to_string());
    let usable: Vec<String> = runtime
        .config()
        .agents
        .keys()
        .filter(|n| runtime.availability(n, offline).is_some_and(|a| a.is_usable()))
        .cloned()
        .collect();
    let ready = store.is_ok() && !usable.is_empty();
    let body = Ready {
        ready,
        config: state.source.clone(),
        store: match &store {
            Ok(()) => "open".to_string(),
            Err(e) => e.clone(),
        },
        usable_agents: usable,
    };
    if ready {
        return HttpResponse::Ok().json(body);
    }
    let reason = if let Err(e) = &store {
        format!("the store cannot be read: {e}")
    } else {
        "no configured agent is usable (see /api/agents)".to_string()
    };
    HttpResponse::ServiceUnavailable()
        .json(NotReady { error: ErrorDetail::new("not_ready", reason), detail: body })
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "server",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
pub async fn metrics(state: Data) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.runtime.metrics().render())
}

/// The answer of `GET /api/status`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// troupe's version.
    pub version: String,
    /// Seconds since the server started.
    pub uptime_secs: u64,
    /// Whether offline mode is on.
    pub offline: bool,
    /// `settings.default_workflow`.
    pub default_workflow: String,
    /// The configured project folder.
    pub project: PathBuf,
    /// Where the configuration came from.
    pub config: ConfigSource,
    /// Whether `PUT /api/config` replaced the file since the start.
    pub config_replaced: bool,
    /// The runs running in this server.
    pub live_runs: Vec<String>,
    /// Stored runs per state.
    pub runs_by_state: BTreeMap<String, u64>,
    /// Of ended runs.
    pub average_duration_secs: Option<f64>,
    /// Tokens over every stored run.
    pub tokens: Tokens,
}

/// `GET /api/status`.
#[utoipa::path(get, path = "/api/status", tag = "server",
    responses((status = 200, description = "Runs by state, live runs, uptime, offline mode", body = Status)))]
pub async fn status(state: Data) -> ApiResult {
    let stats = state.runtime.stats().map_err(ApiError::from)?;
    let config = state.runtime.config();
    Ok(HttpResponse::Ok().json(Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_secs: state.started.elapsed().as_secs(),
        offline: config.settings.offline,
        default_workflow: config.settings.default_workflow.clone(),
        project: config.project_path(),
        config: state.source.clone(),
        config_replaced: state.config_replaced.load(Ordering::SeqCst),
        live_runs: state.runtime.live_runs(),
        runs_by_state: stats.by_state,
        average_duration_secs: stats.average_duration_secs,
        tokens: stats.tokens,
    }))
}
