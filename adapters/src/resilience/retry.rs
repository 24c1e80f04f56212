//! Retries of transient failures with exponential backoff and jitter (backon), honouring
//! the server's Retry-After exactly.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use tokio::time::Instant;
use tracing::Instrument;

use crate::agent::{Agent, AgentEvent, AgentRequest, AgentResponse, CallContext, Layer};
use crate::config::RetryConfig;
use crate::error::{AdapterError, Result};
use crate::telemetry;

/// How many times a timed-out attempt is tried again.
const MAX_TIMEOUT_RETRIES: u32 = 1;

/// Retries the wrapped agent's transient failures ([`AdapterError::is_transient`]).
///
/// The n-th retry waits `initial_backoff_ms · 2ⁿ⁻¹` (capped at `max_backoff_ms`) plus up to
/// as much again of random jitter — or exactly the server's Retry-After when it sent one.
/// No retry starts once `max_elapsed_secs` would be exceeded; at most `max_attempts`
/// attempts in all, and a timed-out attempt is retried at most once (a server that timed
/// out twice is handed to the fallback rather than waited on again). Other errors (auth,
/// invalid request, …) return at once.
#[derive(Debug)]
pub struct Retry {
    inner: Arc<dyn Agent>,
    policy: RetryConfig,
}

impl Retry {
    /// `inner` retried by `policy`.
    pub fn new(inner: Arc<dyn Agent>, policy: RetryConfig) -> Retry {
        Retry { inner, policy }
    }
}

#[async_trait]
impl Layer for Retry {
    fn inner(&self) -> &dyn Agent {
        &*self.inner
    }

    async fn call(&self, req: &AgentRequest, ctx: &CallContext) -> Result<AgentResponse> {
        let start = Instant::now();
        let p = &self.policy;
        if p.max_attempts <= 1 {
            return self.inner.call(req, ctx).await;
        }
        let name = self.inner.name().to_string();
        let max_elapsed = Duration::from_secs(p.max_elapsed_secs);
        let attempts = AtomicU32::new(0);
        let timeouts = AtomicU32::new(0);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(p.initial_backoff_ms))
            .with_max_delay(Duration::from_millis(p.max_backoff_ms.max(p.initial_backoff_ms)))
            .with_max_times(usize::try_from(p.max_attempts - 1).unwrap_or(usize::MAX))
            .with_jitter();
        let inner = &self.inner;
        let attempt = || {
            let n = attempts.fetch_add(1, Ordering::Relaxed) + 1;
            let span = telemetry::attempt_span(&name, n);
            let call = inner.call(req, ctx);
            let recorded = span.clone();
            async move {
                let started = Instant::now();
                let result = call.await;
                telemetry::record_attempt(&recorded, &result, started.elapsed());
                result
            }
            .instrument(span)
        };
        let retried = attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e: &AdapterError| {
                let timed_out = matches!(e, AdapterError::Timeout { .. })
                    && timeouts.fetch_add(1, Ordering::Relaxed) >= MAX_TIMEOUT_RETRIES;
                // A local server that gave no first byte is still reading the prompt it
                // has (one slot): asking again only queues behind it. Fall back instead.
                let local_busy = matches!(e, AdapterError::Timeout { phase: "first byte", endpoint, .. }
                    if crate::config::is_loopback_url(endpoint));
                e.is_retryable() && !timed_out && !local_busy && !ctx.cancel.is_cancelled()
            })
            .adjust(|e: &AdapterError, next: Option<Duration>| {
                let delay = match (e.retry_after(), next) {
                    (_, None) => return None,
                    (Some(server), Some(_)) => server,
                    (None, Some(d)) => d,
                };
                (start.elapsed() + delay <= max_elapsed).then_some(delay)
            })
            .notify(|e: &AdapterError, delay: Duration| {
                let attempt = attempts.load(Ordering::Relaxed);
                tracing::warn!(agent = %name, attempt, delay_ms = delay.as_millis() as u64, error = %e, "retrying");
                ctx.emit(AgentEvent::RetryScheduled {
                    agent: name.clone(),
                    attempt,
                    delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    error: e.to_string(),
                });
            });
        let result = tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => Err(AdapterError::cancelled(&name)),
            r = retried => r,
        };
        let mut resp = result?;
        resp.attempts = attempts.load(Ordering::Relaxed).max(1);
        resp.latency = start.elapsed();
        Ok(resp)
    }
}
