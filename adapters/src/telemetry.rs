//! Trace spans of agent calls: `troupe.call` per call of one agent, `troupe.attempt` per
//! attempt of a retried call, `troupe.fallback` when another agent takes over.
//!
//! This crate only *emits* spans (the binary decides whether they are exported). Spans carry
//! ids, names, counts, durations, outcomes and error classes ([`AdapterError::kind`]) —
//! never prompt or response text, headers, keys or error messages.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::agent::{Agent, AgentInfo, AgentRequest, AgentResponse, CallContext, Layer};
use crate::error::{AdapterError, Result};

/// The `outcome` of a call that answered.
pub const SUCCESS: &str = "success";
/// The `outcome` of a call that failed (its `error_class` says how).
pub const ERROR: &str = "error";

/// `http` for the HTTP adapters, `cli` for command-line agents, else the kind as it is.
pub fn transport(kind: &str) -> &str {
    match kind {
        "openai" | "ollama" | "llamacpp" => "http",
        other => other,
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A count as a span attribute. tracing-opentelemetry exports unsigned values as text, so
/// every number goes out as `i64`.
pub fn int(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// A `troupe.call` span for one call of the agent described by `info`, a child of the
/// current span. Filled in by [`record_call`].
pub fn call_span(info: &AgentInfo) -> Span {
    tracing::info_span!(
        "troupe.call",
        otel.kind = "client",
        agent = %info.name,
        kind = transport(&info.kind),
        adapter = %info.kind,
        local = info.local,
        model = info.model.as_deref().unwrap_or(""),
        prompt_tokens = Empty,
        completion_tokens = Empty,
        tokens_estimated = Empty,
        attempts = Empty,
        latency_ms = Empty,
        outcome = Empty,
        error_class = Empty,
        otel.status_code = Empty,
    )
}

/// Record how a call went on its [`call_span`].
pub fn record_call(span: &Span, result: &Result<AgentResponse>, latency: Duration) {
    span.record("latency_ms", millis(latency));
    match result {
        Ok(resp) => {
            if let Some(model) = &resp.model {
                span.record("model", model.as_str());
            }
            span.record("prompt_tokens", int(resp.usage.prompt));
            span.record("completion_tokens", int(resp.usage.completion));
            span.record("tokens_estimated", resp.usage_estimated);
            span.record("attempts", int(resp.attempts.max(1)));
            span.record("outcome", SUCCESS);
        }
        Err(e) => record_error(span, e),
    }
}

/// Mark `span` failed with `error`'s class (never its message).
pub fn record_error(span: &Span, error: &AdapterError) {
    span.record("outcome", ERROR);
    span.record("error_class", error.kind());
    span.record("otel.status_code", "ERROR");
}

/// A `troupe.attempt` span for attempt `attempt` (1-based) of a retried call of `agent`.
pub fn attempt_span(agent: &str, attempt: u32) -> Span {
    tracing::info_span!(
        "troupe.attempt",
        agent = %agent,
        attempt = int(attempt),
        latency_ms = Empty,
        outcome = Empty,
        error_class = Empty,
        otel.status_code = Empty,
    )
}

/// Record how an attempt went on its [`attempt_span`].
pub fn record_attempt(span: &Span, result: &Result<AgentResponse>, latency: Duration) {
    span.record("latency_ms", millis(latency));
    match result {
        Ok(_) => {
            span.record("outcome", SUCCESS);
        }
        Err(e) => record_error(span, e),
    }
}

/// A `troupe.fallback` span: `to` is called because `from` failed with `error`. The call of
/// `to` runs inside it.
pub fn fallback_span(from: &str, to: &str, error: &AdapterError) -> Span {
    tracing::info_span!(
        "troupe.fallback",
        from = %from,
        to = %to,
        error_class = error.kind(),
    )
}

/// Wraps an agent so that each call is a [`call_span`] (the outermost layer of every agent's
/// stack in [`crate::registry::AgentRegistry`], so retries and rate-limit waits fall inside
/// it and each fallback agent gets its own).
#[derive(Debug)]
pub struct Traced {
    inner: Arc<dyn Agent>,
}

impl Traced {
    /// `inner`, traced.
    pub fn new(inner: Arc<dyn Agent>) -> Traced {
        Traced { inner }
    }
}

#[async_trait]
impl Layer for Traced {
    fn inner(&self) -> &dyn Agent {
        &*self.inner
    }

    async fn call(&self, req: &AgentRequest, ctx: &CallContext) -> Result<AgentResponse> {
        let span = call_span(self.inner.info());
        let started = Instant::now();
        let result = self.inner.call(req, ctx).instrument(span.clone()).await;
        record_call(&span, &result, started.elapsed());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports() {
        assert_eq!(transport("llamacpp"), "http");
        assert_eq!(transport("openai"), "http");
        assert_eq!(transport("ollama"), "http");
        assert_eq!(transport("cli"), "cli");
    }
}
