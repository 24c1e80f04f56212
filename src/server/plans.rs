//! The plan routes under `/api/plans`: make (the planner's turn), list, show, edit, revise,
//! approve, reject, run, pause, resume, retry and skip a task, the combined change and its
//! apply, and a plan's events as Server-Sent Events.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use troupe_plans::{NewPlan, PlanEvent, PlanSpec, PlanState};

use super::{ApiError, AppState};

type Data = web::Data<AppState>;
type ApiResult<T = HttpResponse> = Result<T, ApiError>;

/// The routes, under the `/api` scope.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/plans").route(web::get().to(list)).route(web::post().to(create)))
        .service(web::resource("/plans/{id}").route(web::get().to(show)).route(web::put().to(edit)))
        .service(web::resource("/plans/{id}/revise").route(web::post().to(revise)))
        .service(web::resource("/plans/{id}/run").route(web::post().to(run)))
        .service(web::resource("/plans/{id}/diff").route(web::get().to(diff)))
        .service(web::resource("/plans/{id}/apply").route(web::post().to(apply)))
        .service(web::resource("/plans/{id}/events").route(web::get().to(events)))
        .service(web::resource("/plans/{id}/tasks/{task}/{action}").route(web::post().to(task)))
        .service(web::resource("/plans/{id}/{action}").route(web::post().to(act)));
}

impl From<troupe_plans::Error> for ApiError {
    fn from(e: troupe_plans::Error) -> ApiError {
        use troupe_plans::Error as E;
        let message = e.to_string();
        match e {
            E::NoSuchPlan(_) => ApiError::new(StatusCode::NOT_FOUND, "no_such_plan", message),
            E::NoSuchTask { .. } => ApiError::new(StatusCode::NOT_FOUND, "no_such_task", message),
            E::WrongState { .. } => ApiError::new(StatusCode::CONFLICT, "wrong_state", message),
            E::Refused(_) => ApiError::new(StatusCode::CONFLICT, "refused", message),
            E::Invalid(problems) => {
                ApiError::bad_request("invalid_plan", message).with(json!({ "problems": problems }))
            }
            E::PlannerFailed { agent, problems, answer, .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "planner_failed", message)
                    .with(json!({ "agent": agent, "problems": problems, "answer": answer }))
            }
            E::Runtime(e) => ApiError::from(e),
            E::Change(e) => ApiError::from(troupe_runtime::Error::Change(e)),
            _ => ApiError::internal(message),
        }
    }
}

/// Body of `POST /api/plans`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPlanBody {
    /// The spec, in the user's words.
    spec: String,
    /// The project folder; the configured project when none.
    #[serde(default)]
    project: Option<std::path::PathBuf>,
    /// The planner agent.
    #[serde(default)]
    planner: Option<String>,
    /// Only local agents.
    #[serde(default)]
    offline: bool,
    /// Approve it at once.
    #[serde(default)]
    approve: bool,
}

/// `GET /api/plans`: every plan, oldest first.
pub async fn list(state: Data) -> ApiResult {
    Ok(HttpResponse::Ok().json(state.plans.list()?))
}

/// `POST /api/plans` → the plan: the planner turns the spec into a draft (approved with
/// `"approve": true`).
pub async fn create(state: Data, body: web::Json<NewPlanBody>) -> ApiResult {
    let body = body.into_inner();
    if body.spec.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "the spec is empty; say what to plan",
        ));
    }
    let req = NewPlan {
        spec: body.spec,
        project: body.project,
        planner: body.planner,
        offline: body.offline || state.runtime.config().settings.offline,
        approve: body.approve,
    };
    Ok(HttpResponse::Created().json(state.plans.create(req).await?))
}

/// `GET /api/plans/{id}[?format=markdown]`: the plan (JSON, or its Markdown).
pub async fn show(state: Data, id: web::Path<String>, q: web::Query<FormatQuery>) -> ApiResult {
    let plan = state.plans.get(&id)?;
    Ok(match q.format.as_deref() {
        Some("markdown") => HttpResponse::Ok()
            .content_type("text/markdown; charset=utf-8")
            .body(troupe_plans::render::markdown(&plan)),
        None | Some("json") => HttpResponse::Ok().json(plan),
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_query",
                format!("`format` is `json` or `markdown`, not {other:?}"),
            ));
        }
    })
}

/// Query of `GET /api/plans/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatQuery {
    #[serde(default)]
    format: Option<String>,
}

/// Body of `PUT /api/plans/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    /// The plan's new text.
    spec: PlanSpec,
}

/// `PUT /api/plans/{id}` `{"spec": …}` → the plan: a new version (a draft again).
pub async fn edit(state: Data, id: web::Path<String>, body: web::Json<EditBody>) -> ApiResult {
    Ok(HttpResponse::Ok().json(state.plans.edit(&id, body.into_inner().spec)?))
}

/// Body of `POST /api/plans/{id}/revise`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviseBody {
    /// What to change.
    feedback: String,
}

/// `POST /api/plans/{id}/revise` `{"feedback": "…"}` → the plan revised by the planner.
pub async fn revise(state: Data, id: web::Path<String>, body: web::Json<ReviseBody>) -> ApiResult {
    Ok(HttpResponse::Ok().json(state.plans.revise(&id, &body.feedback).await?))
}

/// Body of `POST /api/plans/{id}/run`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// How many tasks run at once.
    #[serde(default)]
    concurrency: Option<usize>,
}

/// `POST /api/plans/{id}/run` → the plan: an approved plan starts (this server runs it,
/// and after a restart goes on with it).
pub async fn run(state: Data, id: web::Path<String>, body: web::Bytes) -> ApiResult {
    let body: RunBody = optional_body(&body)?;
    Ok(HttpResponse::Accepted().json(state.plans.run(&id, body.concurrency)?))
}

/// `POST /api/plans/{id}/{approve|reject|pause|resume}` → the plan.
pub async fn act(state: Data, path: web::Path<(String, String)>) -> ApiResult {
    let (id, action) = path.into_inner();
    let plan = match action.as_str() {
        "approve" => state.plans.approve(&id)?,
        "reject" => state.plans.reject(&id)?,
        "pause" => state.plans.pause(&id)?,
        "resume" => state.plans.resume(&id)?,
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "no plan action `{other}`; there are approve, reject, pause, resume, run, revise, apply"
                ),
            ));
        }
    };
    Ok(HttpResponse::Ok().json(plan))
}

/// `POST /api/plans/{id}/tasks/{task}/{retry|skip}` → the plan.
pub async fn task(state: Data, path: web::Path<(String, String, String)>) -> ApiResult {
    let (id, task, action) = path.into_inner();
    let plan = match action.as_str() {
        "retry" => state.plans.retry(&id, &task)?,
        "skip" => state.plans.skip(&id, &task)?,
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no task action `{other}`; there are retry and skip"),
            ));
        }
    };
    Ok(HttpResponse::Ok().json(plan))
}

/// `GET /api/plans/{id}/diff`: the integration branch's change.
pub async fn diff(state: Data, id: web::Path<String>) -> ApiResult {
    Ok(HttpResponse::Ok().json(state.plans.diff(&id).await?))
}

/// Body of `POST /api/plans/{id}/apply`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    /// Also commit it on the project's current branch.
    #[serde(default)]
    commit: bool,
}

/// `POST /api/plans/{id}/apply` `{"commit": bool}` → the plan: the combined change in the
/// project (all or nothing).
pub async fn apply(state: Data, id: web::Path<String>, body: web::Bytes) -> ApiResult {
    let body: ApplyBody = optional_body(&body)?;
    let message = match body.commit {
        true => Some(crate::commands::plan::commit_message(&state.plans.get(&id)?)),
        false => None,
    };
    Ok(HttpResponse::Ok().json(state.plans.apply(&id, message).await?))
}

/// `GET /api/plans/{id}/events`: the plan's state now, then its plan and task events as
/// they happen, until its scheduler here stops (immediately when it does not run here).
pub async fn events(state: Data, id: web::Path<String>) -> ApiResult {
    let plan = state.plans.get(&id)?;
    let rx = state.plans.subscribe();
    let first = PlanEvent::PlanState { plan_id: plan.id.clone(), state: plan.state };
    let live = state.plans.is_driving(&plan.id);
    let plan_id = plan.id.clone();
    let head = futures::stream::once(async move { Ok::<_, actix_web::Error>(frame(&first)) });
    let rest = futures::stream::unfold((rx, live), move |(mut rx, live)| {
        let plan_id = plan_id.clone();
        async move {
            if !live {
                return None;
            }
            loop {
                match rx.recv().await {
                    Ok(e) if event_plan(&e) == plan_id => {
                        let end = matches!(&e, PlanEvent::PlanState { state, .. } if *state != PlanState::Running);
                        return Some((Ok(frame(&e)), (rx, !end)));
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return None,
                }
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(head.chain(rest)))
}

fn event_plan(e: &PlanEvent) -> &str {
    match e {
        PlanEvent::PlanState { plan_id, .. } | PlanEvent::TaskState { plan_id, .. } => plan_id,
    }
}

fn frame(e: &PlanEvent) -> web::Bytes {
    let data = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
    let name = match e {
        PlanEvent::PlanState { .. } => "plan_state",
        PlanEvent::TaskState { .. } => "task_state",
    };
    web::Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn optional_body<T: Default + serde::de::DeserializeOwned>(body: &web::Bytes) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("bad_json", format!("the body is not valid: {e}")))
}

/// The OpenAPI description of the plan routes (merged into the document by `openapi.rs`).
pub fn openapi_paths(secured: &serde_json::Value) -> serde_json::Value {
    let plan = json!({ "$ref": "#/components/schemas/Plan" });
    let ok = |d: &str| json!({ "description": d, "content": { "application/json": { "schema": plan.clone() } } });
    let err = |d: &str| json!({ "description": d, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let id = json!({ "name": "id", "in": "path", "required": true, "description": "The plan's id or a unique prefix of it", "schema": { "type": "string" } });
    let action = |summary: &str| {
        json!({ "post": {
        "summary": summary, "security": secured, "parameters": [id.clone()],
        "responses": { "200": ok("The plan"), "404": err("No such plan"), "409": err("Not in this state (code wrong_state)"), "401": err("Token missing or wrong") }
    } })
    };
    json!({
        "/api/plans": {
            "get": { "summary": "Every plan, oldest first", "security": secured,
                "responses": { "200": { "description": "Plans", "content": { "application/json": { "schema": { "type": "array", "items": plan.clone() } } } }, "401": err("Token missing or wrong") } },
            "post": { "summary": "A planner turns a spec into a draft plan (validated; re-asked once when invalid)", "security": secured,
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["spec"], "additionalProperties": false, "properties": {
                    "spec": { "type": "string" }, "project": { "type": "string" }, "planner": { "type": "string" },
                    "offline": { "type": "boolean" }, "approve": { "type": "boolean", "description": "Approve it at once" } } } } } },
                "responses": { "201": ok("The new plan"), "400": err("Empty spec"), "502": err("The planner gave no valid plan twice (code planner_failed; `problems` and the raw `answer`)"), "401": err("Token missing or wrong") } }
        },
        "/api/plans/{id}": {
            "get": { "summary": "A plan (JSON, or its Markdown with format=markdown)", "security": secured,
                "parameters": [id.clone(), { "name": "format", "in": "query", "schema": { "type": "string", "enum": ["json", "markdown"] } }],
                "responses": { "200": ok("The plan"), "404": err("No such plan"), "401": err("Token missing or wrong") } },
            "put": { "summary": "Replace the plan's text (a new version, a draft again)", "security": secured, "parameters": [id.clone()],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["spec"], "properties": { "spec": { "$ref": "#/components/schemas/PlanSpec" } } } } } },
                "responses": { "200": ok("The plan"), "400": err("Not a valid plan (code invalid_plan, with `problems`)"), "404": err("No such plan"), "409": err("The plan has started"), "401": err("Token missing or wrong") } }
        },
        "/api/plans/{id}/revise": { "post": { "summary": "The planner revises the plan with feedback (a new version)", "security": secured, "parameters": [id.clone()],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["feedback"], "properties": { "feedback": { "type": "string" } } } } } },
            "responses": { "200": ok("The revised plan"), "404": err("No such plan"), "409": err("The plan has started"), "502": err("The planner gave no valid plan (code planner_failed)"), "401": err("Token missing or wrong") } } },
        "/api/plans/{id}/approve": action("Approve a plan: it may run"),
        "/api/plans/{id}/reject": action("Reject a plan: it never runs"),
        "/api/plans/{id}/pause": action("Start no new task (running ones finish and merge)"),
        "/api/plans/{id}/resume": action("Go on with a paused plan"),
        "/api/plans/{id}/run": { "post": { "summary": "Run an approved plan: tasks in dependency order, up to `concurrency` at once; the server goes on with it after a restart", "security": secured, "parameters": [id.clone()],
            "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "concurrency": { "type": "integer", "minimum": 1 } } } } } },
            "responses": { "202": ok("Started"), "404": err("No such plan"), "409": err("Not approved (nothing runs before approval), rejected or done (code wrong_state)"), "401": err("Token missing or wrong") } } },
        "/api/plans/{id}/tasks/{task}/{action}": { "post": { "summary": "`retry` a failed or conflicting task, or `skip` a task", "security": secured,
            "parameters": [id.clone(), { "name": "task", "in": "path", "required": true, "schema": { "type": "string" } }, { "name": "action", "in": "path", "required": true, "schema": { "type": "string", "enum": ["retry", "skip"] } }],
            "responses": { "200": ok("The plan"), "404": err("No such plan or task"), "409": err("The task cannot do that in its state"), "401": err("Token missing or wrong") } } },
        "/api/plans/{id}/diff": { "get": { "summary": "The plan's combined change (its integration branch against its base)", "security": secured, "parameters": [id.clone()],
            "responses": { "200": { "description": "The change", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Change" } } } }, "404": err("No such plan"), "409": err("The plan has not started"), "401": err("Token missing or wrong") } } },
        "/api/plans/{id}/apply": { "post": { "summary": "Bring the combined change into the project, all or nothing; with `commit`, also commit it", "security": secured, "parameters": [id.clone()],
            "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "properties": { "commit": { "type": "boolean" } } } } } },
            "responses": { "200": ok("Applied"), "404": err("No such plan"), "409": err("Not done, or the change conflicts with the project (code conflict, files named)"), "401": err("Token missing or wrong") } } },
        "/api/plans/{id}/events": { "get": { "summary": "Server-Sent Events: `plan_state` now, then `plan_state` and `task_state` events while the plan runs here", "security": secured, "parameters": [id],
            "responses": { "200": { "description": "text/event-stream", "content": { "text/event-stream": { "schema": { "type": "string" } } } }, "404": err("No such plan"), "401": err("Token missing or wrong") } } }
    })
}

/// The schemas of plans.
pub fn openapi_schemas() -> serde_json::Value {
    json!({
        "PlanSpec": { "type": "object", "required": ["title", "goal", "tasks"], "properties": {
            "title": { "type": "string" }, "goal": { "type": "string" },
            "tasks": { "type": "array", "items": { "type": "object", "required": ["id", "description"], "properties": {
                "id": { "type": "string" }, "description": { "type": "string" },
                "acceptance": { "type": "array", "items": { "type": "string" } },
                "files": { "type": "array", "items": { "type": "string" } },
                "after": { "type": "array", "items": { "type": "string" }, "description": "Ids of tasks that must be green first" },
                "workflow": { "type": "string" } } } } } },
        "Plan": { "type": "object", "properties": {
            "id": { "type": "string" }, "spec_text": { "type": "string" }, "project": { "type": "string" },
            "state": { "type": "string", "enum": ["draft", "approved", "rejected", "running", "paused", "done", "failed"] },
            "spec": { "$ref": "#/components/schemas/PlanSpec" },
            "revisions": { "type": "array", "items": { "type": "object" } },
            "tasks": { "type": "object", "additionalProperties": { "type": "object", "properties": {
                "state": { "type": "string", "enum": ["pending", "queued", "running", "green", "failed", "blocked", "conflict", "skipped"] },
                "run_id": { "type": "string" }, "runs": { "type": "array", "items": { "type": "string" } },
                "reason": { "type": "string" }, "files": { "type": "array", "items": { "type": "string" } }, "merged": { "type": "string" } } } },
            "concurrency": { "type": "integer" }, "integration": { "type": "object", "description": "The integration branch's workspace" },
            "error": { "type": "string" } } }
    })
}
