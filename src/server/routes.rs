//! The request handlers.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use troupe_adapters::config::AgentKind;
use troupe_adapters::resilience::BreakerState;
use troupe_adapters::which::find_program;
use troupe_adapters::{AgentConfig, CallContext};
use troupe_context::{Scope, SearchMode, SearchQuery, project_id_for};
use troupe_runtime::{RunRequest, Runtime};
use troupe_workflows::Config;
use troupe_workflows::config::{ConfigSource, Location};

use super::events;
use super::{ApiError, AppState, CONFIG_LIMIT};

type Data = web::Data<AppState>;
type ApiResult<T = HttpResponse> = Result<T, ApiError>;

/// `GET /health`.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Whether an agent can be called now, and if not, why.
fn availability(runtime: &Runtime, name: &str, agent: &AgentConfig) -> (bool, String) {
    let offline = runtime.config().settings.offline;
    if !agent.enabled {
        return (false, "disabled".into());
    }
    if offline && !agent.is_local() {
        return (false, "refused (offline)".into());
    }
    if let Some(e) = runtime.registry().and_then(|r| r.broken().get(name)) {
        return (false, e.to_string());
    }
    if agent.kind == AgentKind::Cli && agent.command.as_deref().and_then(find_program).is_none() {
        return (false, "not installed".into());
    }
    if runtime.breaker_open(name) {
        return (false, "breaker open".into());
    }
    (true, if agent.server.is_some() { "managed server".into() } else { "available".into() })
}

/// `GET /ready`: config loaded, store open, at least one agent usable.
pub async fn ready(state: Data) -> HttpResponse {
    let runtime = &state.runtime;
    let store = runtime.store().runs().map(|_| ()).map_err(|e| e.to_string());
    let usable: Vec<&String> = runtime
        .config()
        .agents
        .iter()
        .filter(|(n, a)| availability(runtime, n, a).0)
        .map(|(n, _)| n)
        .collect();
    let ready = store.is_ok() && !usable.is_empty();
    let body = json!({
        "ready": ready,
        "config": state.source,
        "store": match &store { Ok(()) => "open".to_string(), Err(e) => e.clone() },
        "usable_agents": usable,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        let reason = if let Err(e) = &store {
            format!("the store cannot be read: {e}")
        } else {
            "no configured agent is usable (see /api/agents)".to_string()
        };
        HttpResponse::ServiceUnavailable()
            .json(json!({ "error": { "code": "not_ready", "message": reason }, "detail": body }))
    }
}

/// `GET /metrics`.
pub async fn metrics(state: Data) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.runtime.metrics().render())
}

/// `GET /api/agents`.
pub async fn agents(state: Data) -> HttpResponse {
    let runtime = &state.runtime;
    let breakers = runtime.registry().map(|r| r.breaker_states()).unwrap_or_default();
    let list: Vec<Value> = runtime
        .config()
        .agents
        .iter()
        .map(|(name, a)| {
            let (usable, availability) = availability(runtime, name, a);
            let (calls, successes) = runtime.metrics().agent_stats(name);
            let breaker: Option<&BreakerState> = breakers.get(name);
            json!({
                "name": name,
                "kind": a.kind,
                "role": a.role,
                "enabled": a.enabled,
                "local": a.is_local(),
                "usable": usable,
                "availability": availability,
                "breaker": breaker,
                "calls": calls,
                "successes": successes,
                "success_rate": if calls > 0 { Some(successes as f64 / calls as f64) } else { None },
                "model": a.model,
                "endpoint": a.endpoint(),
                "fallback": a.fallback,
                "description": a.description,
            })
        })
        .collect();
    HttpResponse::Ok().json(list)
}

/// `GET /api/workflows`.
pub async fn workflows(state: Data) -> HttpResponse {
    HttpResponse::Ok().json(crate::commands::config::workflows_json(state.runtime.config()))
}

/// The body of `POST /api/execute`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteBody {
    task: String,
    #[serde(default)]
    workflow: Option<String>,
    #[serde(default)]
    max_iterations: Option<u32>,
    #[serde(default)]
    offline: bool,
    #[serde(default)]
    project: Option<PathBuf>,
    #[serde(default)]
    conversation: Option<String>,
    #[serde(default)]
    budget_tokens: Option<u64>,
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

/// `POST /api/execute` → 202 `{run_id}`.
pub async fn execute(state: Data, body: web::Json<ExecuteBody>) -> ApiResult {
    let body = body.into_inner();
    if body.task.trim().is_empty() {
        return Err(ApiError::bad_request("invalid_request", "`task` is empty; say what to do"));
    }
    if let Some(w) = &body.workflow {
        let config = state.runtime.config();
        if config.workflow(w).is_none() && w != troupe_workflows::config::DYNAMIC_WORKFLOW {
            let mut names: Vec<&str> = config.workflows.keys().map(String::as_str).collect();
            names.push(troupe_workflows::config::DYNAMIC_WORKFLOW);
            return Err(ApiError::bad_request(
                "unknown_workflow",
                format!("no workflow named `{w}`; there are: {}", names.join(", ")),
            ));
        }
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
        in_place: body.in_place,
        no_validate: body.no_validate,
        apply: body.apply,
        ..RunRequest::default()
    };
    let handle = state.runtime.submit(req).await?;
    Ok(started(&state, handle))
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

/// Keep a run's events for SSE and answer 202 `{run_id, events}`.
fn started(state: &Data, handle: troupe_runtime::RunHandle) -> HttpResponse {
    let id = handle.id.clone();
    state.logs.collect(handle);
    HttpResponse::Accepted()
        .insert_header(("Location", format!("/api/runs/{id}")))
        .json(json!({ "run_id": id, "events": format!("/api/runs/{id}/events") }))
}

/// Query of `GET /api/runs`.
#[derive(Debug, Deserialize)]
pub struct RunsQuery {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    state: Option<String>,
}

/// `GET /api/runs`: newest first.
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
pub async fn run_stats(state: Data) -> ApiResult {
    let stats = state.runtime.stats().map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(stats))
}

/// Query of `GET /api/runs/{id}`.
#[derive(Debug, Deserialize)]
pub struct RunQuery {
    #[serde(default)]
    prompts: bool,
}

/// `GET /api/runs/{id}`: the run and its steps (prompts only when asked for).
pub async fn run(state: Data, id: web::Path<String>, q: web::Query<RunQuery>) -> ApiResult {
    let (record, steps) = state.runtime.run(&id)?;
    let mut steps = serde_json::to_value(&steps).map_err(ApiError::internal)?;
    if !q.prompts
        && let Some(arr) = steps.as_array_mut()
    {
        for s in arr {
            if let Some(o) = s.as_object_mut() {
                o.remove("prompt");
            }
        }
    }
    let live = state.runtime.live_runs().contains(&record.id);
    let checks = state.runtime.store().checks(&record.id)?;
    Ok(HttpResponse::Ok()
        .json(json!({ "run": record, "live": live, "steps": steps, "checks": checks })))
}

/// `GET /api/runs/{id}/events`: Server-Sent Events from the start, then live; the stream
/// ends after `run_finished`.
pub async fn run_events(state: Data, req: HttpRequest, id: web::Path<String>) -> ApiResult {
    let (record, steps) = state.runtime.run(&id)?;
    // A reconnecting client says the last event it got; it continues after that one.
    let from = req
        .headers()
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(0, |last| last + 1);
    let sse = |r: &mut actix_web::HttpResponseBuilder| {
        r.content_type("text/event-stream")
            .insert_header(("Cache-Control", "no-cache"))
            .insert_header(("X-Accel-Buffering", "no"));
    };
    let mut resp = HttpResponse::Ok();
    sse(&mut resp);
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

/// `POST /api/runs/{id}/cancel`.
pub async fn cancel(state: Data, id: web::Path<String>) -> ApiResult {
    let record = state.runtime.cancel(&id)?;
    Ok(HttpResponse::Accepted().json(json!({ "run_id": record.id, "cancelling": true })))
}

/// Query of `GET /api/usage`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    #[serde(default)]
    project: Option<PathBuf>,
    #[serde(default)]
    since: Option<String>,
}

/// `GET /api/usage?project=…&since=…`: tokens and cost per project, agent and run.
pub async fn usage(state: Data, q: web::Query<UsageQuery>) -> ApiResult {
    let q = q.into_inner();
    let since = match q.since.as_deref() {
        None => None,
        Some(s) => Some(
            crate::commands::parse_time(s)
                .map_err(|e| ApiError::bad_request("invalid_request", format!("`since`: {e}")))?,
        ),
    };
    let report = troupe_runtime::usage::usage_report(&state.runtime, q.project.as_deref(), since)?;
    Ok(HttpResponse::Ok().json(report))
}

/// `GET /api/runs/{id}/audit`: the run's audit trail, oldest entry first.
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

/// `POST /api/runs/{id}/resume` → 202 `{run_id, events}`: continue a run from its first
/// unfinished step; follow it at `events`.
pub async fn resume(state: Data, id: web::Path<String>, body: web::Bytes) -> ApiResult {
    // An optional body raises (or lowers) the run's budget: `{budget_tokens?, budget_cost?}`.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ResumeBody {
        #[serde(default)]
        budget_tokens: Option<u64>,
        #[serde(default)]
        budget_cost: Option<f64>,
    }
    let body: ResumeBody = if body.iter().all(u8::is_ascii_whitespace) {
        ResumeBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request("bad_json", format!("the body is not a resume request: {e}"))
        })?
    };
    let budget = checked_budget(body.budget_tokens, body.budget_cost)?;
    let handle = state.runtime.resume_with(&id, budget).await?;
    Ok(started(&state, handle))
}

/// `GET /api/status`.
pub async fn status(state: Data) -> ApiResult {
    let stats = state.runtime.stats().map_err(ApiError::from)?;
    let config = state.runtime.config();
    Ok(HttpResponse::Ok().json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs(),
        "offline": config.settings.offline,
        "default_workflow": config.settings.default_workflow,
        "project": config.project_path(),
        "config": state.source,
        "config_replaced": state.config_replaced.load(Ordering::SeqCst),
        "live_runs": state.runtime.live_runs(),
        "runs_by_state": stats.by_state,
        "average_duration_secs": stats.average_duration_secs,
        "tokens": stats.tokens,
    })))
}

/// Replace the values of every `env` table (a CLI agent's or a managed server's extra
/// environment may hold secrets) and `headers` table (`[telemetry] headers` carry a
/// collector's API key). `api_key_env` holds variable names and stays.
pub(crate) fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if (k == "env" || k == "headers")
                    && let Value::Object(env) = val
                {
                    for e in env.values_mut() {
                        *e = Value::String("<redacted>".into());
                    }
                } else {
                    redact(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// `GET /api/config`: the configuration in use, secrets redacted.
pub async fn get_config(state: Data) -> ApiResult {
    let mut config = serde_json::to_value(state.runtime.config()).map_err(ApiError::internal)?;
    redact(&mut config);
    state.runtime.redactor().redact_json(&mut config);
    Ok(HttpResponse::Ok().json(json!({
        "source": state.source,
        "replaced_since_start": state.config_replaced.load(Ordering::SeqCst),
        "config": config,
    })))
}

/// `PUT /api/config`: a TOML body (or a JSON object with the same shape) replaces the
/// configuration file after validation. Any error: 400 with every problem, file unchanged.
pub async fn put_config(state: Data, req: HttpRequest, body: web::Payload) -> ApiResult {
    let bytes = match body.to_bytes_limited(CONFIG_LIMIT).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Err(ApiError::bad_request("bad_body", e.to_string())),
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the configuration is larger than {CONFIG_LIMIT} bytes"),
            ));
        }
    };
    let Some(path) = state.source.path().map(Path::to_path_buf) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_config_file",
            "the server runs on the built-in defaults; start it with --config FILE to replace a file",
        ));
    };
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::bad_request("bad_body", "the body is not UTF-8 text"))?;
    let is_json = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let toml_text = if is_json {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            ApiError::bad_request("bad_json", format!("the body is not valid JSON: {e}"))
        })?;
        if !value.is_object() {
            return Err(ApiError::bad_request(
                "bad_json",
                "the configuration must be a JSON object",
            ));
        }
        toml::to_string(&value).map_err(|e| {
            ApiError::bad_request("bad_json", format!("the JSON cannot be a configuration: {e}"))
        })?
    } else {
        text.to_string()
    };
    let result =
        web::block(move || check_and_write(&path, &toml_text)).await.map_err(ApiError::internal)?;
    let (path, warnings) = result?;
    state.config_replaced.store(true, Ordering::SeqCst);
    Ok(HttpResponse::Ok().json(json!({
        "saved": path,
        "applies": "to runs started after `troupe serve` restarts",
        "warnings": warnings,
    })))
}

/// Validate `text` as the configuration at `path`; if it has no errors, replace the file
/// atomically (temporary sibling, then rename). Returns the warnings.
fn check_and_write(path: &Path, text: &str) -> Result<(PathBuf, Vec<Value>), ApiError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, text)
        .map_err(|e| ApiError::internal(format!("cannot write {}: {e}", tmp.display())))?;
    let loaded = Config::load_from(ConfigSource::Flag(tmp.clone()), std::env::vars());
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(ApiError::internal(e));
        }
    };
    let problems: Vec<Value> = loaded
        .problems
        .0
        .iter()
        .map(|p| {
            let mut p = p.clone();
            if let Location::File { path: file, .. } = &mut p.location {
                *file = path.to_path_buf();
            }
            json!({ "severity": p.severity, "location": p.location, "at": p.location.to_string(), "message": p.message, "text": p.to_string() })
        })
        .collect();
    if loaded.problems.has_errors() {
        let _ = std::fs::remove_file(&tmp);
        let n = loaded.problems.errors().count();
        return Err(ApiError::bad_request(
            "invalid_config",
            format!("the configuration has {n} error(s); nothing was changed"),
        )
        .with(json!({ "problems": problems })));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(ApiError::internal(format!("cannot replace {}: {e}", path.display())));
    }
    Ok((path.to_path_buf(), problems))
}

/// `GET /api/models/status`: each local model endpoint, its health and models.
pub async fn models_status(state: Data) -> HttpResponse {
    let agents = state
        .runtime
        .config()
        .agents
        .iter()
        .filter(|(_, a)| a.enabled)
        .map(|(n, a)| (n.clone(), a.clone()))
        .collect();
    let statuses = troupe_adapters::models::status(&agents, &CallContext::new()).await;
    HttpResponse::Ok().json(statuses)
}

/// Query of `GET /api/context/search`.
#[derive(Debug, Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    all: bool,
}

/// `GET /api/context/search?q=…`: hybrid search in the project memory.
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
    let hits: Vec<Value> = results
        .hits
        .iter()
        .map(|h| {
            json!({
                "id": h.node.id,
                "project": h.node.project,
                "type": h.node.node_type,
                "title": h.node.title,
                "score": h.score,
                "found_by": h.found_by,
                "body": h.node.body,
            })
        })
        .collect();
    // Scanned files can hold secrets (a `.env`, a config file): none leaves through the API.
    let mut body = json!({
        "query": text,
        "mode": results.mode,
        "warning": results.warning,
        "hits": hits,
    });
    state.runtime.redactor().redact_json(&mut body);
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /api/openapi.json`.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(super::openapi::document())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn telemetry_headers_are_redacted() {
        let mut config = troupe_workflows::Config::builtin();
        config.telemetry.endpoint = Some("http://127.0.0.1:4318".into());
        config.telemetry.headers.insert("x-api-key".into(), "s3cr3t".into());
        let mut v = serde_json::to_value(&config).unwrap();
        redact(&mut v);
        assert_eq!(v["telemetry"]["headers"]["x-api-key"], "<redacted>");
        assert_eq!(v["telemetry"]["endpoint"], "http://127.0.0.1:4318");
        assert!(!v.to_string().contains("s3cr3t"));
    }
}
