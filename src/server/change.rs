//! The routes of a run's change: its diff, applying it to the project, reverting an applied
//! change, discarding the workspace.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{ApiError, AppState};

type Data = web::Data<AppState>;
type ApiResult<T = HttpResponse> = Result<T, ApiError>;

/// Query of `GET /api/runs/{id}/diff`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// `json` (the default: the change as data) or `patch` (the patch as `text/x-diff`).
    #[serde(default)]
    format: Option<String>,
}

/// `GET /api/runs/{id}/diff[?format=patch]`: the run's change against its base.
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

/// `POST /api/runs/{id}/apply` → the run record: apply the change to the project (all or
/// nothing); the optional body `{"commit": true, "message": "…"}` also commits it on the
/// project's current branch.
pub async fn apply(state: Data, id: web::Path<String>, body: web::Bytes) -> ApiResult {
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ApplyBody {
        #[serde(default)]
        commit: bool,
        #[serde(default)]
        message: Option<String>,
    }
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
                Some(crate::commands::change::commit_message(&record))
            }
        }
    } else {
        None
    };
    let record = state.runtime.apply(&id, message).await?;
    Ok(HttpResponse::Ok().json(record))
}

/// `POST /api/runs/{id}/revert` → the run record: undo the applied change.
pub async fn revert(state: Data, id: web::Path<String>) -> ApiResult {
    Ok(HttpResponse::Ok().json(state.runtime.revert(&id).await?))
}

/// `POST /api/runs/{id}/discard` → the run record: remove the workspace and its branch.
pub async fn discard(state: Data, id: web::Path<String>) -> ApiResult {
    Ok(HttpResponse::Ok().json(state.runtime.discard(&id).await?))
}
