//! What each vendor CLI prints, turned into text and usage — or into an error class.

use serde_json::Value;

use super::process::ProcessOutput;
use crate::agent::Tokens;
use crate::config::CliFlavor;
use crate::error::{AdapterError, Result};

/// The answer read from a CLI's output.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Parsed {
    pub text: String,
    pub usage: Option<Tokens>,
    pub model: Option<String>,
}

/// How much of standard error an error message quotes.
const QUOTE: usize = 4000;

fn tail(s: &str, max: usize) -> &str {
    let s = s.trim();
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Parse a finished process's output, or classify its failure.
pub(super) fn parse(agent: &str, flavor: CliFlavor, out: &ProcessOutput) -> Result<Parsed> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let structured = match flavor {
        CliFlavor::Claude => Some(claude(agent, &stdout)),
        CliFlavor::Codex => Some(codex(agent, &stdout)),
        CliFlavor::Gemini => Some(gemini(agent, &stdout)),
        CliFlavor::Copilot | CliFlavor::Generic => None,
    };
    if !out.success() {
        // A structured error on stdout says more than the exit code.
        if let Some(Err(e)) = structured
            && !matches!(e, AdapterError::BadResponse { .. })
        {
            return Err(e);
        }
        return Err(classify_failure(agent, out, &stdout));
    }
    match structured {
        Some(r) => r,
        None => Ok(Parsed { text: stdout.trim_end().to_string(), usage: None, model: None }),
    }
}

/// Classify a failed run by what it printed.
pub(super) fn classify_failure(agent: &str, out: &ProcessOutput, stdout: &str) -> AdapterError {
    let how = match (out.code, out.signal) {
        (_, Some(sig)) => format!("was killed by signal {sig}"),
        (Some(c), _) => format!("exited with code {c}"),
        _ => "failed".to_string(),
    };
    let shown =
        if out.stderr.trim().is_empty() { tail(stdout, QUOTE) } else { tail(&out.stderr, QUOTE) };
    let cut = if out.stderr_truncated || out.stderr.trim().len() > QUOTE { "…" } else { "" };
    let message = if shown.is_empty() {
        format!("the program {how} and printed nothing")
    } else {
        format!("the program {how}; it said:\n{cut}{shown}")
    };
    if out.signal.is_some() {
        return AdapterError::transient(agent, message);
    }
    classify_text(agent, &format!("{}\n{}", out.stderr, tail(stdout, QUOTE)), message)
}

/// The error class a CLI's error text implies.
pub(super) fn classify_text(agent: &str, text: &str, message: String) -> AdapterError {
    let t = text.to_ascii_lowercase();
    let any = |ps: &[&str]| ps.iter().any(|p| t.contains(p));
    let agent = agent.to_string();
    if any(&[
        "rate limit",
        "rate_limit",
        "ratelimit",
        "too many requests",
        "429",
        "usage limit",
        "quota",
    ]) {
        return AdapterError::RateLimited { agent, retry_after: None, message, local: false };
    }
    if any(&[
        "unauthorized",
        "401",
        "not logged in",
        "please log in",
        "please login",
        "/login",
        "invalid api key",
        "invalid_api_key",
        "authentication",
        "credentials",
    ]) {
        return AdapterError::Auth {
            agent,
            message: format!("{message}\n(log the CLI in by running it once interactively)"),
        };
    }
    if any(&[
        "prompt is too long",
        "context length",
        "context window",
        "context_length_exceeded",
        "maximum context",
        "too many tokens",
    ]) {
        return AdapterError::ContextTooLong { agent, message };
    }
    if any(&[
        "overloaded",
        "503",
        "502",
        "500 internal",
        "internal server error",
        "timed out",
        "timeout",
        "econnreset",
        "connection reset",
        "econnrefused",
        "network error",
        "socket hang up",
        "temporarily unavailable",
    ]) {
        return AdapterError::Transient { agent, message, retry_after: None };
    }
    AdapterError::Failed { agent, message }
}

/// The last JSON object printed (CLIs may print warnings before it).
fn last_json(stdout: &str) -> Option<Value> {
    let whole = stdout.trim();
    if let Ok(v) = serde_json::from_str::<Value>(whole)
        && v.is_object()
    {
        return Some(v);
    }
    if let Some(start) = whole.find('{')
        && let Ok(v) = serde_json::from_str::<Value>(&whole[start..])
        && v.is_object()
    {
        return Some(v);
    }
    whole
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find(Value::is_object)
}

fn no_json(agent: &str, what: &str, stdout: &str) -> AdapterError {
    AdapterError::bad_response(
        agent,
        format!("expected {what} on standard output, got: {}", tail(stdout, 1000)),
    )
}

/// `claude -p … --output-format json`: one object with `result`, `is_error`, `usage`.
fn claude(agent: &str, stdout: &str) -> Result<Parsed> {
    let v = last_json(stdout).ok_or_else(|| no_json(agent, "Claude Code's JSON result", stdout))?;
    let text = v.get("result").and_then(Value::as_str).unwrap_or("").to_string();
    let is_error = v.get("is_error").and_then(Value::as_bool).unwrap_or(false)
        || v.get("subtype").and_then(Value::as_str).is_some_and(|s| s != "success");
    if is_error {
        let what = if text.is_empty() {
            v.get("subtype").and_then(Value::as_str).unwrap_or("error").to_string()
        } else {
            text.clone()
        };
        return Err(classify_text(agent, &what, format!("Claude Code reported an error: {what}")));
    }
    if v.get("result").and_then(Value::as_str).is_none() {
        return Err(no_json(agent, "a `result` in Claude Code's JSON", stdout));
    }
    let usage = v.get("usage").map(|u| {
        let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
        Tokens {
            prompt: n("input_tokens")
                + n("cache_creation_input_tokens")
                + n("cache_read_input_tokens"),
            completion: n("output_tokens"),
        }
    });
    let model = v
        .get("modelUsage")
        .and_then(Value::as_object)
        .and_then(|m| m.keys().next().cloned())
        .or_else(|| v.get("model").and_then(Value::as_str).map(str::to_string));
    Ok(Parsed { text, usage, model })
}

/// `codex exec --json`: JSONL events; the answer is the last `agent_message` item, usage
/// comes with `turn.completed`, failures as `turn.failed` or `error`.
fn codex(agent: &str, stdout: &str) -> Result<Parsed> {
    let mut text: Option<String> = None;
    let mut usage: Option<Tokens> = None;
    let mut failure: Option<String> = None;
    let mut events = 0;
    for line in stdout.lines().map(str::trim).filter(|l| l.starts_with('{')) {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        events += 1;
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "item.completed" => {
                let item = v.get("item").unwrap_or(&Value::Null);
                let ty = item.get("type").or_else(|| item.get("item_type")).and_then(Value::as_str);
                if matches!(ty, Some("agent_message" | "assistant_message"))
                    && let Some(t) = item.get("text").and_then(Value::as_str)
                {
                    text = Some(t.to_string());
                }
            }
            "turn.completed" => {
                if let Some(u) = v.get("usage") {
                    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
                    usage =
                        Some(Tokens { prompt: n("input_tokens"), completion: n("output_tokens") });
                }
            }
            "turn.failed" => {
                failure = v
                    .get("error")
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or(Some("the turn failed".into()));
            }
            "error" => {
                failure = v.get("message").and_then(Value::as_str).map(str::to_string).or(failure);
            }
            _ => {}
        }
    }
    if let Some(f) = failure.filter(|_| text.is_none()) {
        return Err(classify_text(agent, &f, format!("Codex reported an error: {f}")));
    }
    match text {
        Some(text) => Ok(Parsed { text, usage, model: None }),
        None if events == 0 => Err(no_json(agent, "Codex's JSONL events", stdout)),
        None => Err(AdapterError::bad_response(agent, "Codex finished without an agent message")),
    }
}

/// `gemini -p … --output-format json`: `response`, per-model token `stats`, `error`.
fn gemini(agent: &str, stdout: &str) -> Result<Parsed> {
    let v =
        last_json(stdout).ok_or_else(|| no_json(agent, "the Gemini CLI's JSON output", stdout))?;
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        let msg = e.get("message").and_then(Value::as_str).unwrap_or("error").to_string();
        let ty = e.get("type").and_then(Value::as_str).unwrap_or("");
        let code = e.get("code").map(|c| c.to_string()).unwrap_or_default();
        return Err(classify_text(
            agent,
            &format!("{ty} {code} {msg}"),
            format!("the Gemini CLI reported an error: {msg}"),
        ));
    }
    let text = v
        .get("response")
        .and_then(Value::as_str)
        .ok_or_else(|| no_json(agent, "a `response` in the Gemini CLI's JSON", stdout))?
        .to_string();
    let mut usage: Option<Tokens> = None;
    let mut model = None;
    if let Some(models) = v.get("stats").and_then(|s| s.get("models")).and_then(Value::as_object) {
        for (name, m) in models {
            let t = m.get("tokens").unwrap_or(&Value::Null);
            let n = |k: &str| t.get(k).and_then(Value::as_u64).unwrap_or(0);
            let u = usage.get_or_insert_with(Tokens::default);
            u.prompt += n("prompt");
            u.completion += n("candidates");
            model.get_or_insert_with(|| name.clone());
        }
    }
    Ok(Parsed { text, usage, model })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(stdout: &str) -> ProcessOutput {
        ProcessOutput {
            code: Some(0),
            signal: None,
            stdout: stdout.as_bytes().to_vec(),
            stderr: String::new(),
            stderr_truncated: false,
        }
    }

    #[test]
    fn claude_result_and_usage() {
        let out = ok(
            r#"{"type":"result","subtype":"success","is_error":false,"result":"Hi","usage":{"input_tokens":3,"cache_read_input_tokens":10,"output_tokens":2},"modelUsage":{"claude-sonnet-4":{}}}"#,
        );
        let p = parse("c", CliFlavor::Claude, &out).unwrap();
        assert_eq!(p.text, "Hi");
        assert_eq!(p.usage, Some(Tokens { prompt: 13, completion: 2 }));
        assert_eq!(p.model.as_deref(), Some("claude-sonnet-4"));
        let err = parse(
            "c",
            CliFlavor::Claude,
            &ok(r#"{"is_error":true,"result":"Invalid API key · Please run /login"}"#),
        );
        assert!(matches!(err, Err(AdapterError::Auth { .. })), "{err:?}");
    }

    #[test]
    fn codex_last_agent_message() {
        let out = ok(concat!(
            "{\"type\":\"thread.started\",\"thread_id\":\"t\"}\n",
            "{\"type\":\"item.completed\",\"item\":{\"id\":\"1\",\"type\":\"agent_message\",\"text\":\"Looking\"}}\n",
            "{\"type\":\"item.completed\",\"item\":{\"id\":\"2\",\"type\":\"agent_message\",\"text\":\"Done\"}}\n",
            "{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":5,\"cached_input_tokens\":1,\"output_tokens\":7}}\n",
        ));
        let p = parse("x", CliFlavor::Codex, &out).unwrap();
        assert_eq!(p.text, "Done");
        assert_eq!(p.usage, Some(Tokens { prompt: 5, completion: 7 }));
        let failed = ok(
            "{\"type\":\"turn.failed\",\"error\":{\"message\":\"stream error: 429 Too Many Requests\"}}\n",
        );
        assert!(matches!(
            parse("x", CliFlavor::Codex, &failed),
            Err(AdapterError::RateLimited { .. })
        ));
    }

    #[test]
    fn gemini_response_and_stats() {
        let out = ok(
            r#"{"response":"Paris","stats":{"models":{"gemini-2.5-pro":{"tokens":{"prompt":4,"candidates":1,"total":5}}}}}"#,
        );
        let p = parse("g", CliFlavor::Gemini, &out).unwrap();
        assert_eq!(p.text, "Paris");
        assert_eq!(p.usage, Some(Tokens { prompt: 4, completion: 1 }));
        assert_eq!(p.model.as_deref(), Some("gemini-2.5-pro"));
    }

    #[test]
    fn failures_are_classified_by_what_was_printed() {
        let mut out = ok("");
        out.code = Some(1);
        out.stderr = "Error: 503 Service Unavailable (overloaded)".into();
        assert!(parse("g", CliFlavor::Generic, &out).unwrap_err().is_transient());
        out.stderr = "segmentation fault in module".into();
        let e = parse("g", CliFlavor::Generic, &out).unwrap_err();
        assert!(
            matches!(&e, AdapterError::Failed { message, .. } if message.contains("exited with code 1") && message.contains("segmentation")),
            "{e}"
        );
        out.signal = Some(9);
        out.code = None;
        assert!(parse("g", CliFlavor::Generic, &out).unwrap_err().is_transient());
        // Garbage where JSON was expected.
        assert!(matches!(
            parse("c", CliFlavor::Claude, &ok("not json")),
            Err(AdapterError::BadResponse { .. })
        ));
    }
}
