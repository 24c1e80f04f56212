//! Runs: start, list, show, follow (Server-Sent Events), cancel, resume, their audit trail
//! and the token usage they add up to.

use std::path::PathBuf;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use troupe_runtime::audit::AuditEntry;
use troupe_runtime::{
    ChangeOptions, CheckRecord, RunEvent, RunRecord, RunRequest, RunStats, StepRecord, UsageReport,
};

use super::events;
use super::{ApiError, AppState};

type Data = web::Data<AppState>;
type ApiResult<T = HttpResponse> = Result<T, ApiError>;

/// The body of `POST /api/execute`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteBody {
    /// What to do, in your words.
    task: String,
    /// A workflow name; the default one when absent; `dynamic` plans one.
    #[serde(default)]
    workflow: Option<String>,
    /// Most write/review rounds.
    #[serde(default)]
    #[schema(minimum = 1)]
    max_iterations: Option<u32>,
    /// Only agents on this machine.
    #[serde(default)]
    offline: bool,
    /// The project folder (on the server).
    #[serde(default)]
    project: Option<PathBuf>,
    /// Continue a conversation: earlier runs with the same id are put into the prompt.
    #[serde(default)]
    conversation: Option<String>,
    /// Most tokens the run may use [default: settings.run_token_budget]; a call that could
    /// cross it is not made and the run ends budget_exceeded.
    #[serde(default)]
    #[schema(minimum = 1)]
    budget_tokens: Option<u64>,
    /// Most cost the run may incur [default: settings.run_cost_budget].
    #[serde(default)]
    budget_cost: Option<f64>,
    /// Work in the project folder itself (with a checkpoint) instead of a workspace.
    #[serde(default)]
    in_place: bool,
    /// Run no validators.
    #[serde(default)]
    no_validate: bool,
    /// Apply the change to the project when the run completes green.
    #[serde(default)]
    apply: bool,
}

/// The answer of starting or resuming a run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Started {
    /// The run's id.
    pub run_id: String,
    /// Where its events stream (Server-Sent Events).
    pub events: String,
}

/// `POST /api/execute` → 202 `{run_id}`.
#[utoipa::path(post, path = "/api/execute", tag = "runs", request_body = ExecuteBody,
    responses(
        (status = 202, description = "Started", body = Started),
        (status = 400, description = "Bad JSON, unknown field, empty task, unknown workflow, or a request that cannot run (offline with cloud-only steps)", body = super::error::ErrorBody),
        (status = 413, description = "Body larger than 256 KiB", body = super::error::ErrorBody),
    ))]
pub async fn execute(state: Data, body: web::Json<ExecuteBody>) -> ApiResult {
    let body = body.into_inner();
    if body.task.trim().is_empty() {
        return Err(ApiError::bad_request("invalid_request", "`task` is empty; say what to do"));
    }
    if let Some(w) = &body.workflow {
        state
            .runtime
            .config()
            .check_workflow(w)
            .map_err(|e| ApiError::bad_request("unknown_workflow", e.to_string()))?;
    }
    let budget = checked_budget(body.budget_tokens, body.budget_cost)?;
    let req = RunRequest {
        task: body.task,
        workflow: body.workflow,
        max_iterations: body.max_iterations,
        offline: body.offline,
        project: body.project,
        conversation: body.conversation,
        budget_tokens: budget.tokens,
        budget_cost: budget.cost,
        change: ChangeOptions {
            in_place: body.in_place,
            no_validate: body.no_validate,
            apply: body.apply,
            ..ChangeOptions::default()
        },
        ..RunRequest::default()
    };
    let handle = state.runtime.submit(req).await?;
    Ok(started(handle))
}

/// A budget from a request body: each limit, when given, must be positive.
fn checked_budget(tokens: Option<u64>, cost: Option<f64>) -> ApiResult<troupe_runtime::Budget> {
    if tokens == Some(0) || cost.is_some_and(|c| c.is_nan() || c <= 0.0) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "`budget_tokens` and `budget_cost` must be positive (leave them out for no budget)",
        ));
    }
    Ok(troupe_runtime::Budget { tokens, cost })
}

/// Answer 202 `{run_id, events}` for a run started here (its events are kept by the
/// launch watcher, from its first).
fn started(handle: troupe_runtime::RunHandle) -> HttpResponse {
    let id = handle.id.clone();
    HttpResponse::Accepted()
        .insert_header(("Location", format!("/api/runs/{id}")))
        .json(Started { events: format!("/api/runs/{id}/events"), run_id: id })
}

/// Query of `GET /api/runs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// At most this many runs.
    #[serde(default)]
    limit: Option<usize>,
    /// Only runs in this state (`pending`, `in_progress`, `completed`, `failed`,
    /// `cancelled`, `budget_exceeded`).
    #[serde(default)]
    state: Option<String>,
}

/// `GET /api/runs`: newest first.
#[utoipa::path(get, path = "/api/runs", tag = "runs", params(RunsQuery),
    responses(
        (status = 200, description = "Runs, newest first", body = Vec<RunRecord>),
        (status = 400, description = "Bad query", body = super::error::ErrorBody),
    ))]
pub async fn runs(state: Data, q: web::Query<RunsQuery>) -> ApiResult {
    let mut runs = state.runtime.store().runs().map_err(ApiError::from)?;
    runs.reverse();
    if let Some(s) = &q.state {
        runs.retain(|r| r.state.as_str() == s);
    }
    if let Some(n) = q.limit {
        runs.truncate(n);
    }
    Ok(HttpResponse::Ok().json(runs))
}

/// `GET /api/runs/stats`: counts by state, average duration and tokens over every stored
/// run (what `troupe runs stats` prints).
#[utoipa::path(get, path = "/api/runs/stats", tag = "runs",
    responses((status = 200, description = "Counts by state, average duration of ended runs and tokens over every stored run", body = RunStats)))]
pub async fn run_stats(state: Data) -> ApiResult {
    let stats = state.runtime.stats().map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(stats))
}

/// Query of `GET /api/runs/{id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Include each step's full prompt.
    #[serde(default)]
    prompts: bool,
}

/// The answer of `GET /api/runs/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunDetail {
    /// The run.
    pub run: RunRecord,
    /// Whether it is running in this server.
    pub live: bool,
    /// Its steps (each `prompt` only with `?prompts=true`).
    pub steps: Vec<StepRecord>,
    /// Each run of the validators.
    pub checks: Vec<CheckRecord>,
}

/// `GET /api/runs/{id}`: the run and its steps (prompts only when asked for).
#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs", params(RunId, RunQuery),
    responses(
        (status = 200, description = "The run with its steps", body = RunDetail),
        (status = 404, description = "No such run", body = super::error::ErrorBody),
    ))]
pub async fn run(state: Data, id: web::Path<String>, q: web::Query<RunQuery>) -> ApiResult {
    let (record, steps) = state.runtime.run(&id)?;
    let live = state.runtime.live_runs().contains(&record.id);
    let checks = state.runtime.store().checks(&record.id)?;
    let mut detail = serde_json::to_value(RunDetail { run: record, live, steps, checks })
        .map_err(ApiError::internal)?;
    if !q.prompts
        && let Some(steps) = detail.get_mut("steps").and_then(|s| s.as_array_mut())
    {
        for s in steps {
            if let Some(o) = s.as_object_mut() {
                o.remove("prompt");
            }
        }
    }
    Ok(HttpResponse::Ok().json(detail))
}

/// A run's id in a path.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RunId {
    /// The run's id or a unique prefix of it.
    #[allow(dead_code)]
    id: String,
}

/// `GET /api/runs/{id}/events`: Server-Sent Events from the start, then live; the stream
/// ends after `run_finished`.
#[utoipa::path(get, path = "/api/runs/{id}/events", tag = "runs",
    params(RunId, ("Last-Event-ID" = Option<u64>, Header, description = "Continue after this event (sent by reconnecting EventSource clients)")),
    responses(
        (status = 200, description = "`event: <type>` and `data: <RunEvent JSON>` per event, from the start (or after `Last-Event-ID`), then live; the stream ends after run_finished", content_type = "text/event-stream", body = RunEvent),
        (status = 404, description = "No such run", body = super::error::ErrorBody),
    ))]
pub async fn run_events(state: Data, req: HttpRequest, id: web::Path<String>) -> ApiResult {
    let (record, steps) = state.runtime.run(&id)?;
    // A reconnecting client says the last event it got; it continues after that one.
    let from = req
        .headers()
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(0, |last| last + 1);
    let mut resp = HttpResponse::Ok();
    resp.content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"));
    if let Some(log) = state.logs.get(&record.id) {
        return Ok(resp.streaming(events::log_stream(log, from)));
    }
    // Not started here: what is stored, then live events if it is running in this process.
    let live =
        if events::may_continue(&record) { state.runtime.subscribe(&record.id) } else { None };
    let (record, steps) =
        if live.is_some() { state.runtime.run(&record.id)? } else { (record, steps) };
    let checks = state.runtime.store().checks(&record.id)?;
    let mut replay = troupe_runtime::events::replay(&record, &steps, &checks);
    if live.is_some() {
        replay.retain(|e| !e.is_final());
    }
    Ok(resp.streaming(events::stored_stream(replay, live, from)))
}

/// The answer of `POST /api/runs/{id}/cancel`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Cancelling {
    /// The run's id.
    pub run_id: String,
    /// Always true: the run is being cancelled.
    pub cancelling: bool,
}

/// `POST /api/runs/{id}/cancel`.
#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "runs", params(RunId),
    responses(
        (status = 202, description = "Cancelling (its running step's process is killed)", body = Cancelling),
        (status = 404, description = "No such run", body = super::error::ErrorBody),
        (status = 409, description = "The run has already ended", body = super::error::ErrorBody),
    ))]
pub async fn cancel(state: Data, id: web::Path<String>) -> ApiResult {
    let record = state.runtime.cancel(&id).await?;
    Ok(HttpResponse::Accepted().json(Cancelling { run_id: record.id, cancelling: true }))
}

/// Query of `GET /api/usage`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Only this project's runs (its folder on the server).
    #[serde(default)]
    project: Option<PathBuf>,
    /// Only runs created since: a date (2026-11-01), an RFC 3339 time, or an age (7d, 12h).
    #[serde(default)]
    since: Option<String>,
}

/// `GET /api/usage?project=…&since=…`: tokens and cost per project, agent and run.
#[utoipa::path(get, path = "/api/usage", tag = "runs", params(UsageQuery),
    responses(
        (status = 200, description = "Tokens and cost per project, agent and run", body = UsageReport),
        (status = 400, description = "Bad `since` or project", body = super::error::ErrorBody),
    ))]
pub async fn usage(state: Data, q: web::Query<UsageQuery>) -> ApiResult {
    let q = q.into_inner();
    let since = match q.since.as_deref() {
        None => None,
        Some(s) => Some(
            crate::time::parse_time(s)
                .map_err(|e| ApiError::bad_request("invalid_request", format!("`since`: {e}")))?,
        ),
    };
    let report = troupe_runtime::usage::usage_report(&state.runtime, q.project.as_deref(), since)?;
    Ok(HttpResponse::Ok().json(report))
}

/// `GET /api/runs/{id}/audit`: the run's audit trail, oldest entry first.
#[utoipa::path(get, path = "/api/runs/{id}/audit", tag = "runs", params(RunId),
    responses(
        (status = 200, description = "Every prompt and response as sent and received, retries, fallbacks, memory used, calls refused by a budget (secrets masked), oldest first", body = Vec<AuditEntry>),
        (status = 404, description = "No such run, or it has no audit trail", body = super::error::ErrorBody),
    ))]
pub async fn run_audit(state: Data, id: web::Path<String>) -> ApiResult {
    let (record, _) = state.runtime.run(&id)?;
    let dir = state
        .runtime
        .audit_dir()
        .ok_or_else(|| ApiError::internal("this server keeps no audit trail"))?
        .to_path_buf();
    let run_id = record.id.clone();
    let entries = web::block(move || troupe_runtime::audit::read(&dir, &run_id))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            troupe_runtime::audit::AuditError::Missing(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "no_audit_trail", e.to_string())
            }
            e => ApiError::internal(e),
        })?;
    Ok(HttpResponse::Ok().json(entries))
}

/// The optional body of `POST /api/runs/{id}/resume`: a new budget for the run.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeBody {
    /// A new token budget for the run (e.g. after budget_exceeded).
    #[serde(default)]
    #[schema(minimum = 1)]
    budget_tokens: Option<u64>,
    /// A new cost budget for the run.
    #[serde(default)]
    budget_cost: Option<f64>,
}

/// `POST /api/runs/{id}/resume` → 202 `{run_id, events}`: continue a run from its first
/// unfinished step; follow it at `events`.
#[utoipa::path(post, path = "/api/runs/{id}/resume", tag = "runs", params(RunId),
    request_body(content = Option<ResumeBody>, description = "Optional: raise (or lower) the run's budget"),
    responses(
        (status = 202, description = "Resumed from its first unfinished step (completed steps are kept)", body = Started),
        (status = 404, description = "No such run", body = super::error::ErrorBody),
        (status = 409, description = "The run has completed, or is running in this server", body = super::error::ErrorBody),
    ))]
pub async fn resume(state: Data, id: web::Path<String>, body: web::Bytes) -> ApiResult {
    let body: ResumeBody = if body.iter().all(u8::is_ascii_whitespace) {
        ResumeBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request("bad_json", format!("the body is not a resume request: {e}"))
        })?
    };
    let budget = checked_budget(body.budget_tokens, body.budget_cost)?;
    let handle = state.runtime.resume_with(&id, budget).await?;
    Ok(started(handle))
}
