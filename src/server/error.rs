//! The API's one error shape: `{"error": {"code", "message", …}}` with an HTTP status.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;
use troupe_workflows::config::{Location, Problem, Severity};

/// An API failure: an HTTP status, a stable code and a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Extra fields of the error object (the problems of an invalid configuration).
    extra: Option<serde_json::Value>,
}

impl ApiError {
    /// An error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), extra: None }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 500.
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message.to_string())
    }

    /// With extra fields in the error object.
    pub fn with(mut self, extra: serde_json::Value) -> ApiError {
        self.extra = Some(extra);
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let (Some(obj), Some(serde_json::Value::Object(extra))) =
            (error.as_object_mut(), self.extra.as_ref())
        {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        // An error may quote what came back from an agent or a file: no secret leaves.
        troupe_observability::redact::global().redact_json(&mut error);
        let mut resp = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            resp.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        resp.json(json!({ "error": error }))
    }
}

impl From<troupe_runtime::Error> for ApiError {
    fn from(e: troupe_runtime::Error) -> ApiError {
        use troupe_runtime::Error as E;
        match &e {
            E::NoSuchRun(_) => ApiError::new(StatusCode::NOT_FOUND, "no_such_run", e.to_string()),
            E::WrongState { .. } => {
                ApiError::new(StatusCode::CONFLICT, "wrong_state", e.to_string())
            }
            E::Invalid(_) => ApiError::bad_request("invalid_request", e.to_string()),
            E::Change(c) => {
                use troupe_change::Error as C;
                let code = match c {
                    C::Conflict { .. } | C::ChangedSinceApply { .. } => "conflict",
                    C::StagedChanges { .. } => "staged_changes",
                    C::AlreadyApplied { .. } => "already_applied",
                    C::NotApplied => "not_applied",
                    C::NothingToApply => "nothing_to_apply",
                    C::CommitOutsideRepository { .. } => "not_a_repository",
                    C::Missing { .. } => "workspace_missing",
                    _ => return ApiError::internal(e),
                };
                ApiError::new(StatusCode::CONFLICT, code, e.to_string())
            }
            _ => ApiError::internal(e),
        }
    }
}

/// Every failure's body.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong: a stable code and a message for people.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable code (`no_such_run`, `invalid_request`, `unauthorized`, …).
    #[schema(example = "no_such_run")]
    pub code: String,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// An invalid configuration's problems (`PUT /api/config`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<ProblemView>>,
}

impl ErrorDetail {
    /// A detail without problems.
    pub fn new(code: &str, message: impl Into<String>) -> ErrorDetail {
        ErrorDetail { code: code.to_string(), message: message.into(), problems: None }
    }
}

/// A configuration problem, with where it is (an invalid configuration's error lists them;
/// `PUT /api/config` answers its warnings).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ProblemView {
    /// `error` or `warning`.
    pub severity: Severity,
    /// Where it is.
    pub location: Location,
    /// Where it is, for people: `/home/me/troupe.toml:12:5`.
    pub at: String,
    /// What is wrong.
    pub message: String,
    /// The whole problem as one line.
    pub text: String,
}

impl ProblemView {
    /// The view of `p`.
    pub fn new(p: &Problem) -> ProblemView {
        ProblemView {
            severity: p.severity,
            location: p.location.clone(),
            at: p.location.to_string(),
            message: p.message.clone(),
            text: p.to_string(),
        }
    }
}
