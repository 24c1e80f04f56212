//! The configuration in use: read it (secrets redacted), replace its file.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::{Value, json};
use troupe_workflows::Config;
use troupe_workflows::config::{ConfigSource, Location};

use super::CONFIG_LIMIT;
use super::error::{ErrorBody, ProblemView};
use super::{ApiError, AppState};

type Data = web::Data<AppState>;
type ApiResult<T = HttpResponse> = Result<T, ApiError>;

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

/// The answer of `GET /api/config`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConfigView {
    /// Where the configuration came from.
    pub source: ConfigSource,
    /// Whether `PUT /api/config` replaced the file since the server started.
    pub replaced_since_start: bool,
    /// The configuration in use, as `troupe.toml` has it: `settings`, `agents`,
    /// `workflows`, `validate`, `edits`, `telemetry`, … (values of `env` and `headers`
    /// tables redacted; `api_key_env` holds variable names only).
    #[schema(value_type = Object)]
    pub config: Value,
}

/// The answer of `PUT /api/config`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Saved {
    /// The file replaced.
    pub saved: PathBuf,
    /// When it applies.
    pub applies: String,
    /// Warnings about the new configuration.
    pub warnings: Vec<ProblemView>,
}

/// `GET /api/config`: the configuration in use, secrets redacted.
#[utoipa::path(get, path = "/api/config", tag = "config",
    responses((status = 200, description = "The configuration in use (values of `env` and `headers` tables redacted)", body = ConfigView)))]
pub async fn get_config(state: Data) -> ApiResult {
    let mut config = serde_json::to_value(state.runtime.config()).map_err(ApiError::internal)?;
    redact(&mut config);
    state.runtime.redactor().redact_json(&mut config);
    Ok(HttpResponse::Ok().json(ConfigView {
        source: state.source.clone(),
        replaced_since_start: state.config_replaced.load(Ordering::SeqCst),
        config,
    }))
}

/// `PUT /api/config`: a TOML body (or a JSON object with the same shape) replaces the
/// configuration file after validation. Any error: 400 with every problem, file unchanged.
#[utoipa::path(put, path = "/api/config", tag = "config",
    request_body(description = "The new configuration: TOML, or a JSON object of the same shape",
        content(
            (String = "application/toml"),
            (String = "text/plain"),
            (Object = "application/json"),
        )),
    responses(
        (status = 200, description = "Saved; it applies to runs after a restart", body = Saved),
        (status = 400, description = "Invalid: `problems` lists every problem with its location; nothing was changed", body = ErrorBody),
        (status = 409, description = "No configuration file in use (built-in defaults)", body = ErrorBody),
        (status = 413, description = "Body larger than 1 MiB", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Ok().json(Saved {
        saved: path,
        applies: "to runs started after `troupe serve` restarts".into(),
        warnings,
    }))
}

/// Validate `text` as the configuration at `path`; if it has no errors, replace the file
/// atomically (temporary sibling, then rename). Returns the warnings.
fn check_and_write(path: &Path, text: &str) -> Result<(PathBuf, Vec<ProblemView>), ApiError> {
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
    let problems: Vec<ProblemView> = loaded
        .problems
        .0
        .iter()
        .map(|p| {
            let mut p = p.clone();
            if let Location::File { path: file, .. } = &mut p.location {
                *file = path.to_path_buf();
            }
            ProblemView::new(&p)
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
