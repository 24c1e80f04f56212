//! The per-agent circuit breaker: closed → open after N consecutive failures → half-open
//! after the recovery time → one trial call decides.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::time::Instant;

use crate::agent::{Agent, AgentEvent, AgentRequest, AgentResponse, CallContext, Layer};
use crate::config::BreakerConfig;
use crate::error::{AdapterError, Result};

/// A breaker's state as callers and metrics see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum BreakerState {
    /// Calls pass; `failures` consecutive failures so far.
    Closed {
        /// Consecutive failures so far.
        failures: u32,
    },
    /// Calls are refused for `retry_in` more.
    Open {
        /// Until a trial call is let through.
        #[serde(serialize_with = "millis")]
        retry_in: Duration,
    },
    /// One trial call is (or may be) under way; its outcome closes or re-opens the breaker.
    HalfOpen,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BreakerState::Closed { .. } => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant, failures: u32 },
    HalfOpen { trial_running: bool, failures: u32 },
}

/// One agent's breaker. Shared (`Arc`) between the wrapper and whoever watches its state.
#[derive(Debug)]
pub struct CircuitBreaker {
    name: String,
    threshold: u32,
    recovery: Duration,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// The breaker of agent `name`; a threshold of 0 never opens.
    pub fn new(name: &str, config: &BreakerConfig) -> CircuitBreaker {
        CircuitBreaker {
            name: name.to_string(),
            threshold: config.failure_threshold,
            recovery: Duration::from_secs(config.recovery_secs),
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Inner::Closed { failures } => BreakerState::Closed { failures },
            Inner::Open { until, .. } => {
                let now = Instant::now();
                if now >= until {
                    BreakerState::HalfOpen
                } else {
                    BreakerState::Open { retry_in: until - now }
                }
            }
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Let a call through, or refuse it with [`AdapterError::BreakerOpen`].
    fn admit(&self, ctx: &CallContext) -> Result<bool> {
        let mut g = self.lock();
        match *g {
            Inner::Closed { .. } => Ok(false),
            Inner::Open { until, failures } => {
                let now = Instant::now();
                if now < until {
                    return Err(AdapterError::BreakerOpen {
                        agent: self.name.clone(),
                        retry_in: until - now,
                        failures,
                    });
                }
                *g = Inner::HalfOpen { trial_running: true, failures };
                drop(g);
                tracing::info!(agent = %self.name, "circuit breaker half-open: one trial call");
                ctx.emit(AgentEvent::BreakerHalfOpen { agent: self.name.clone() });
                Ok(true)
            }
            Inner::HalfOpen { trial_running: true, failures } => Err(AdapterError::BreakerOpen {
                agent: self.name.clone(),
                retry_in: Duration::ZERO,
                failures,
            }),
            Inner::HalfOpen { trial_running: false, failures } => {
                *g = Inner::HalfOpen { trial_running: true, failures };
                Ok(true)
            }
        }
    }

    fn success(&self, ctx: &CallContext) {
        let mut g = self.lock();
        let was_closed = matches!(*g, Inner::Closed { .. });
        *g = Inner::Closed { failures: 0 };
        drop(g);
        if !was_closed {
            tracing::info!(agent = %self.name, "circuit breaker closed");
            ctx.emit(AgentEvent::BreakerClosed { agent: self.name.clone() });
        }
    }

    fn failure(&self, ctx: &CallContext) {
        let mut g = self.lock();
        let failures = match *g {
            Inner::Closed { failures }
            | Inner::Open { failures, .. }
            | Inner::HalfOpen { failures, .. } => failures.saturating_add(1),
        };
        let trial = matches!(*g, Inner::HalfOpen { .. });
        if self.threshold > 0 && (trial || failures >= self.threshold) {
            *g = Inner::Open { until: Instant::now() + self.recovery, failures };
            drop(g);
            tracing::warn!(agent = %self.name, failures, recovery_secs = self.recovery.as_secs(), "circuit breaker opened");
            ctx.emit(AgentEvent::BreakerOpened {
                agent: self.name.clone(),
                failures,
                recovery_ms: u64::try_from(self.recovery.as_millis()).unwrap_or(u64::MAX),
            });
        } else {
            *g = Inner::Closed { failures };
        }
    }

    /// A trial call ended without a verdict (cancelled, or a caller's mistake): let the next
    /// call be the trial.
    fn abandon_trial(&self) {
        let mut g = self.lock();
        if let Inner::HalfOpen { failures, .. } = *g {
            *g = Inner::HalfOpen { trial_running: false, failures };
        }
    }
}

/// Releases a half-open trial if the call future is dropped before it ends.
struct TrialGuard<'a> {
    breaker: &'a CircuitBreaker,
    armed: bool,
}

impl Drop for TrialGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.abandon_trial();
        }
    }
}

/// Refuses calls while the agent's breaker is open; counts failures that say something
/// about the agent's health ([`AdapterError::counts_against_breaker`]).
#[derive(Debug)]
pub struct Breaker {
    inner: Arc<dyn Agent>,
    breaker: Arc<CircuitBreaker>,
}

impl Breaker {
    /// `inner` guarded by `breaker`.
    pub fn new(inner: Arc<dyn Agent>, breaker: Arc<CircuitBreaker>) -> Breaker {
        Breaker { inner, breaker }
    }
}

#[async_trait]
impl Layer for Breaker {
    fn inner(&self) -> &dyn Agent {
        &*self.inner
    }

    async fn call(&self, req: &AgentRequest, ctx: &CallContext) -> Result<AgentResponse> {
        let trial = self.breaker.admit(ctx)?;
        let mut guard = TrialGuard { breaker: &self.breaker, armed: trial };
        let result = self.inner.call(req, ctx).await;
        guard.armed = false;
        match &result {
            Ok(_) => self.breaker.success(ctx),
            Err(e) if e.counts_against_breaker() => self.breaker.failure(ctx),
            Err(_) if trial => self.breaker.abandon_trial(),
            Err(_) => {}
        }
        result
    }
}
