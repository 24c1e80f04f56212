//! The routes of a run's change: its diff, applying it to the project, reverting an applied
//! change, discarding the workspace.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use troupe_change::workspace::Change;
use troupe_runtime::RunRecord;

use super::error::ErrorBody;
use super::runs::RunId;
use super::{ApiError, AppState};

type Data = web::Data<AppState>;
type ApiResult<T = HttpResponse> = Result<T, ApiError>;

/// Query of `GET /api/runs/{id}/diff`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// `json` (the default: the change as data) or `patch` (the patch as `text/x-diff`).
    #[serde(default)]
    format: Option<String>,
}

/// `GET /api/runs/{id}/diff[?format=patch]`: the run's change against its base.
#[utoipa::path(get, path = "/api/runs/{id}/diff", tag = "change", params(RunId, DiffQuery),
    responses(
        (status = 200, description = "The change (as JSON, or with `format=patch` the patch as text/x-diff)", content(
            (Change = "application/json"),
            (String = "text/x-diff"),
        )),
        (status = 400, description = "Bad `format`, or the run has no workspace", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run's workspace is gone (code workspace_missing)", body = ErrorBody),
    ))]
pub async fn diff(state: Data, id: web::Path<String>, q: web::Query<DiffQuery>) -> ApiResult {
    let patch = match q.format.as_deref() {
        None | Some("json") => false,
        Some("patch") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_query",
                format!("`format` is `json` or `patch`, not {other:?}"),
            ));
        }
    };
    let change = state.runtime.diff(&id).await?;
    Ok(if patch {
        HttpResponse::Ok().content_type("text/x-diff; charset=utf-8").body(change.patch)
    } else {
        HttpResponse::Ok().json(change)
    })
}

/// The optional body of `POST /api/runs/{id}/apply`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    /// Also commit the change on the project's current branch.
    #[serde(default)]
    commit: bool,
    /// The commit's message (default: `troupe: <task's first line> (run <short id>)`).
    #[serde(default)]
    message: Option<String>,
}

/// `POST /api/runs/{id}/apply` → the run record: apply the change to the project (all or
/// nothing); the optional body `{"commit": true, "message": "…"}` also commits it on the
/// project's current branch.
#[utoipa::path(post, path = "/api/runs/{id}/apply", tag = "change", params(RunId),
    request_body(content = Option<ApplyBody>, description = "Optional: also commit the change"),
    responses(
        (status = 200, description = "Applied: the run record, its workspace's `applied` set", body = RunRecord),
        (status = 400, description = "Bad body, or the run has no workspace", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "Refused, nothing changed: code `conflict` (the message names the files that changed since the run started), `staged_changes`, `already_applied`, `nothing_to_apply`, `not_a_repository` (commit outside git), `workspace_missing`, or `wrong_state` (the run is still running)", body = ErrorBody),
    ))]
pub async fn apply(state: Data, id: web::Path<String>, body: web::Bytes) -> ApiResult {
    let body: ApplyBody = if body.iter().all(u8::is_ascii_whitespace) {
        ApplyBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request("bad_json", format!("the body is not an apply request: {e}"))
        })?
    };
    if body.message.is_some() && !body.commit {
        return Err(ApiError::bad_request(
            "invalid_request",
            "`message` is the commit's message: send it with `\"commit\": true`",
        ));
    }
    let message = if body.commit {
        match body.message.filter(|m| !m.trim().is_empty()) {
            Some(m) => Some(m),
            None => {
                let (record, _) = state.runtime.run(&id)?;
                Some(crate::render::change::commit_message(&record))
            }
        }
    } else {
        None
    };
    let record = state.runtime.apply(&id, message).await?;
    Ok(HttpResponse::Ok().json(record))
}

/// `POST /api/runs/{id}/revert` → the run record: undo the applied change.
#[utoipa::path(post, path = "/api/runs/{id}/revert", tag = "change", params(RunId),
    responses(
        (status = 200, description = "Reverted: the run record", body = RunRecord),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "Refused, nothing changed: code `conflict` (the message names the files edited since the apply), `not_applied`, or `wrong_state` (the run is still running)", body = ErrorBody),
    ))]
pub async fn revert(state: Data, id: web::Path<String>) -> ApiResult {
    Ok(HttpResponse::Ok().json(state.runtime.revert(&id).await?))
}

/// `POST /api/runs/{id}/discard` → the run record: remove the workspace and its branch.
#[utoipa::path(post, path = "/api/runs/{id}/discard", tag = "change", params(RunId),
    responses(
        (status = 200, description = "Discarded: the run record, without a workspace (the record stays)", body = RunRecord),
        (status = 400, description = "The run has no workspace", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run is still running (code wrong_state)", body = ErrorBody),
    ))]
pub async fn discard(state: Data, id: web::Path<String>) -> ApiResult {
    Ok(HttpResponse::Ok().json(state.runtime.discard(&id).await?))
}
