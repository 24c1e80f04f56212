//! Turning HTTP statuses, transport errors and provider error bodies into [`AdapterError`]
//! classes, with `Retry-After` honoured.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

use super::MAX_QUOTE;
use crate::error::{AdapterError, Result};

/// The error chain as one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// A reqwest failure as an error class: connection problems and cut bodies are transient.
pub(crate) fn classify_reqwest(
    agent: &str,
    base: &str,
    connect: Duration,
    e: &reqwest::Error,
) -> AdapterError {
    let detail = chain(e);
    if e.is_timeout() {
        if e.is_connect() {
            return AdapterError::Timeout {
                agent: agent.into(),
                endpoint: base.into(),
                after: connect,
                phase: "connect",
            };
        }
        return AdapterError::transient(
            agent,
            format!("the request to {base} timed out: {detail}"),
        );
    }
    if e.is_connect() {
        return AdapterError::transient(
            agent,
            format!("cannot connect to {base} ({detail}); is the server running?"),
        );
    }
    if e.is_body() || e.is_decode() {
        return AdapterError::transient(agent, format!("the answer was cut off: {detail}"));
    }
    if e.is_builder() {
        return AdapterError::Config { agent: agent.into(), message: detail };
    }
    AdapterError::transient(agent, format!("the request to {base} failed: {detail}"))
}

/// Text quoted in an error message: trimmed and cut to a readable length.
pub(crate) fn quote(s: &str) -> String {
    let s = s.trim();
    if s.len() <= MAX_QUOTE {
        return s.to_string();
    }
    let mut end = MAX_QUOTE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The message of a provider's error body: OpenAI and llama.cpp's `{"error": {"message"}}`,
/// Ollama's `{"error": "…"}`, or the text itself.
pub(crate) fn error_message(body: &[u8]) -> (String, Option<String>) {
    let text = String::from_utf8_lossy(body);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let err = v.get("error").unwrap_or(&v);
        if let Some(s) = err.as_str() {
            return (quote(s), None);
        }
        let msg = err.get("message").and_then(|m| m.as_str());
        let ty = err
            .get("type")
            .and_then(|t| t.as_str())
            .or_else(|| err.get("code").and_then(|c| c.as_str()))
            .map(str::to_string);
        if let Some(m) = msg {
            return (quote(m), ty);
        }
    }
    (quote(&text), None)
}

fn mentions_context_overflow(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "exceed_context_size",
        "context_length_exceeded",
        "context length",
        "context size",
        "maximum context",
        "context window",
        "too many tokens",
        "prompt is too long",
        "exceeds the available context",
    ]
    .iter()
    .any(|p| t.contains(p))
}

/// A non-2xx HTTP answer as an error class.
pub(crate) fn classify_status(
    agent: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    key_env: Option<&str>,
) -> AdapterError {
    let (msg, ty) = error_message(body);
    let full = format!("{} {}", ty.as_deref().unwrap_or(""), msg);
    let msg =
        if msg.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {msg}") };
    let agent = agent.to_string();
    match status {
        429 => AdapterError::RateLimited { agent, retry_after, message: msg, local: false },
        401 | 403 => AdapterError::Auth {
            agent,
            message: match key_env {
                Some(v) => format!("{msg}; check the key in ${v}"),
                None => format!("{msg}; the server wants a key: set api_key_env"),
            },
        },
        404 => AdapterError::NotFound {
            agent,
            message: format!("{msg}; check base_url and that the model is available on the server"),
        },
        408 => AdapterError::Transient { agent, message: msg, retry_after },
        400 | 413 | 422 if mentions_context_overflow(&full) => {
            AdapterError::ContextTooLong { agent, message: msg }
        }
        400..=499 => AdapterError::InvalidRequest { agent, message: msg },
        _ if mentions_context_overflow(&full) => {
            AdapterError::ContextTooLong { agent, message: msg }
        }
        _ => AdapterError::Transient { agent, message: msg, retry_after },
    }
}

/// `Retry-After` as a wait from `now`: delay-seconds or an HTTP-date.
pub(crate) fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs));
    }
    // An HTTP-date (RFC 9110: IMF-fixdate, and the obsolete RFC 850 and asctime forms).
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A context window a server was asked for once: the number, or `None` (logged) when the
/// server does not say.
pub(crate) fn known_window(agent: &str, found: Result<&u32>) -> Option<u32> {
    match found {
        Ok(n) => Some(*n),
        Err(e) => {
            tracing::debug!(agent = %agent, error = %e, "context window unknown");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use reqwest::header::{HeaderValue, RETRY_AFTER};

    use super::*;

    #[test]
    fn retry_after_seconds_and_http_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&h, SystemTime::now()), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777 - 30);
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(30)));
        // A date in the past means "now".
        let later = UNIX_EPOCH + Duration::from_secs(784_111_777 + 5);
        assert_eq!(parse_retry_after(&h, later), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h, now), None);
    }

    #[test]
    fn statuses_map_to_classes() {
        let ctx = br#"{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}"#;
        assert!(matches!(
            classify_status("a", 400, None, ctx, None),
            AdapterError::ContextTooLong { .. }
        ));
        assert!(matches!(
            classify_status("a", 400, None, br#"{"error":{"message":"bad temperature"}}"#, None),
            AdapterError::InvalidRequest { .. }
        ));
        let auth = classify_status("a", 401, None, b"", Some("KEY"));
        assert!(matches!(&auth, AdapterError::Auth { message, .. } if message.contains("$KEY")));
        assert!(matches!(
            classify_status("a", 404, None, br#"{"error":"model 'x' not found"}"#, None),
            AdapterError::NotFound { message, .. } if message.contains("model 'x' not found")
        ));
        let rl = classify_status("a", 429, Some(Duration::from_secs(2)), b"", None);
        assert_eq!(rl.retry_after(), Some(Duration::from_secs(2)));
        assert!(classify_status("a", 503, None, b"busy", None).is_transient());
        assert!(classify_status("a", 500, None, b"", None).is_transient());
    }
}
