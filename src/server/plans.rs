//! The plan routes under `/api/plans`: make (the planner's turn), list, show, edit, revise,
//! approve, reject, run, pause, resume, retry and skip a task, the combined change and its
//! apply, and a plan's events as Server-Sent Events.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use troupe_plans::{NewPlan, PlanEvent, PlanSpec, PlanState};

use super::error::ErrorBody;
use super::events::{KEEP_ALIVE, keep_alive};
use super::{ApiError, AppState};
use troupe_plans::Plan;

type Data = web::Data<AppState>;
type ApiResult<T = HttpResponse> = Result<T, ApiError>;

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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
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
#[utoipa::path(get, path = "/api/plans", operation_id = "plan_list", tag = "plans",
    responses((status = 200, description = "Every plan, oldest first", body = Vec<Plan>)))]
pub async fn list(state: Data) -> ApiResult {
    Ok(HttpResponse::Ok().json(state.plans.list()?))
}

/// `POST /api/plans` → the plan: the planner turns the spec into a draft (approved with
/// `"approve": true`).
#[utoipa::path(post, path = "/api/plans", operation_id = "plan_create", tag = "plans", request_body = NewPlanBody,
    responses(
        (status = 201, description = "The new plan (a draft, or approved with `approve`)", body = Plan),
        (status = 400, description = "Empty spec", body = ErrorBody),
        (status = 502, description = "The planner gave no valid plan after a re-ask (code planner_failed, with `problems` and the raw `answer`)", body = ErrorBody),
    ))]
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
#[utoipa::path(get, path = "/api/plans/{id}", operation_id = "plan_show", tag = "plans", params(PlanId, FormatQuery),
    responses(
        (status = 200, description = "The plan (JSON, or its Markdown with format=markdown)", content((Plan = "application/json"), (String = "text/markdown"))),
        (status = 404, description = "No such plan", body = ErrorBody),
    ))]
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
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FormatQuery {
    /// `json` (the default) or `markdown`.
    #[serde(default)]
    format: Option<String>,
}

/// Body of `PUT /api/plans/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    /// The plan's new text.
    spec: PlanSpec,
}

/// `PUT /api/plans/{id}` `{"spec": …}` → the plan: a new version (a draft again).
#[utoipa::path(put, path = "/api/plans/{id}", operation_id = "plan_edit", tag = "plans", params(PlanId), request_body = EditBody,
    responses(
        (status = 200, description = "A new version (a draft again)", body = Plan),
        (status = 400, description = "Not a valid plan (code invalid_plan, with `problems`)", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 409, description = "The plan has started", body = ErrorBody),
    ))]
pub async fn edit(state: Data, id: web::Path<String>, body: web::Json<EditBody>) -> ApiResult {
    Ok(HttpResponse::Ok().json(state.plans.edit(&id, body.into_inner().spec)?))
}

/// Body of `POST /api/plans/{id}/revise`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviseBody {
    /// What to change.
    feedback: String,
}

/// `POST /api/plans/{id}/revise` `{"feedback": "…"}` → the plan revised by the planner.
#[utoipa::path(post, path = "/api/plans/{id}/revise", operation_id = "plan_revise", tag = "plans", params(PlanId), request_body = ReviseBody,
    responses(
        (status = 200, description = "The revised plan (a new version, a draft again)", body = Plan),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 409, description = "The plan has started", body = ErrorBody),
        (status = 502, description = "The planner gave no valid plan (code planner_failed)", body = ErrorBody),
    ))]
pub async fn revise(state: Data, id: web::Path<String>, body: web::Json<ReviseBody>) -> ApiResult {
    Ok(HttpResponse::Ok().json(state.plans.revise(&id, &body.feedback).await?))
}

/// Body of `POST /api/plans/{id}/run`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// How many tasks run at once.
    #[serde(default)]
    concurrency: Option<usize>,
}

/// `POST /api/plans/{id}/run` → the plan: an approved plan starts (this server runs it,
/// and after a restart goes on with it).
#[utoipa::path(post, path = "/api/plans/{id}/run", operation_id = "plan_run", tag = "plans", params(PlanId),
    request_body(content = Option<RunBody>, description = "Optional: how many tasks run at once"),
    responses(
        (status = 202, description = "Started: tasks run in dependency order; the server goes on with the plan after a restart", body = Plan),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 409, description = "Not approved (nothing runs before approval), rejected or done (code wrong_state)", body = ErrorBody),
    ))]
pub async fn run(state: Data, id: web::Path<String>, body: web::Bytes) -> ApiResult {
    let body: RunBody = optional_body(&body)?;
    Ok(HttpResponse::Accepted().json(state.plans.run(&id, body.concurrency)?))
}

/// `POST /api/plans/{id}/{approve|reject|pause|resume}` → the plan.
#[utoipa::path(post, path = "/api/plans/{id}/{action}", operation_id = "plan_act", tag = "plans", params(PlanId, ("action" = String, Path, description = "approve, reject, pause or resume")),
    responses(
        (status = 200, description = "The plan", body = Plan),
        (status = 404, description = "No such plan or action", body = ErrorBody),
        (status = 409, description = "Not in this state (code wrong_state)", body = ErrorBody),
    ))]
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
#[utoipa::path(post, path = "/api/plans/{id}/tasks/{task}/{action}", operation_id = "plan_task", tag = "plans",
    params(PlanId, ("task" = String, Path, description = "The task's id"), ("action" = String, Path, description = "retry or skip")),
    responses(
        (status = 200, description = "The plan", body = Plan),
        (status = 404, description = "No such plan, task or action", body = ErrorBody),
        (status = 409, description = "The task cannot do that in its state", body = ErrorBody),
    ))]
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
#[utoipa::path(get, path = "/api/plans/{id}/diff", operation_id = "plan_diff", tag = "plans", params(PlanId),
    responses(
        (status = 200, description = "The integration branch's change against its base", body = troupe_change::workspace::Change),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 409, description = "The plan has not started", body = ErrorBody),
    ))]
pub async fn diff(state: Data, id: web::Path<String>) -> ApiResult {
    Ok(HttpResponse::Ok().json(state.plans.diff(&id).await?))
}

/// Body of `POST /api/plans/{id}/apply`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    /// Also commit it on the project's current branch.
    #[serde(default)]
    commit: bool,
}

/// `POST /api/plans/{id}/apply` `{"commit": bool}` → the plan: the combined change in the
/// project (all or nothing).
#[utoipa::path(post, path = "/api/plans/{id}/apply", operation_id = "plan_apply", tag = "plans", params(PlanId),
    request_body(content = Option<ApplyBody>, description = "Optional: also commit it"),
    responses(
        (status = 200, description = "Applied: the plan, its integration workspace's `applied` set", body = Plan),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 409, description = "Not done, or the change does not apply (code conflict, files named)", body = ErrorBody),
    ))]
pub async fn apply(state: Data, id: web::Path<String>, body: web::Bytes) -> ApiResult {
    let body: ApplyBody = optional_body(&body)?;
    let message = match body.commit {
        true => Some(crate::render::plan::commit_message(&state.plans.get(&id)?)),
        false => None,
    };
    Ok(HttpResponse::Ok().json(state.plans.apply(&id, message).await?))
}

/// `GET /api/plans/{id}/events`: the plan's state now, then its plan and task events as
/// they happen, until its scheduler here stops (immediately when it does not run here).
#[utoipa::path(get, path = "/api/plans/{id}/events", operation_id = "plan_events", tag = "plans", params(PlanId),
    responses(
        (status = 200, description = "Server-Sent Events: `plan_state` now, then `plan_state` and `task_state` events (PlanEvent) while the plan runs in this server", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such plan", body = ErrorBody),
    ))]
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
                let Ok(received) = tokio::time::timeout(KEEP_ALIVE, rx.recv()).await else {
                    // A task's long step sends nothing for minutes: tell the client the
                    // stream is alive.
                    return Some((Ok(keep_alive()), (rx, live)));
                };
                match received {
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

/// A plan's id in a path.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PlanId {
    /// The plan's id or a unique prefix of it.
    #[allow(dead_code)]
    id: String,
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
