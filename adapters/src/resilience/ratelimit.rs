//! Requests and tokens per minute, per agent, shared by every run in the process.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::agent::{Agent, AgentEvent, AgentRequest, AgentResponse, CallContext, Layer};
use crate::config::RateLimitConfig;
use crate::error::{AdapterError, Result};

/// governor's clock on tokio's time, so limits follow a paused test clock.
#[derive(Debug, Clone)]
struct TokioClock {
    base: tokio::time::Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.base)
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// One agent's limits: a GCRA limiter for requests and one for tokens.
///
/// Tokens are reserved before a call from an estimate of the prompt; what the answer used
/// beyond the estimate is owed and taken from the next call's allowance.
pub struct AgentLimiter {
    name: String,
    config: RateLimitConfig,
    clock: TokioClock,
    requests: Option<(Gcra, NonZeroU32)>,
    tokens: Option<(Gcra, NonZeroU32)>,
    /// Tokens used beyond what was reserved, owed by the next call.
    debt: AtomicU64,
}

impl std::fmt::Debug for AgentLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentLimiter")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish()
    }
}

impl AgentLimiter {
    /// The limiter of agent `name`.
    pub fn new(name: &str, config: &RateLimitConfig) -> AgentLimiter {
        let clock = TokioClock { base: tokio::time::Instant::now() };
        let make = |per_min: Option<u32>| {
            let n = NonZeroU32::new(per_min?)?;
            Some((Gcra::direct_with_clock(Quota::per_minute(n), clock.clone()), n))
        };
        AgentLimiter {
            name: name.to_string(),
            config: config.clone(),
            requests: make(config.requests_per_minute),
            tokens: make(config.tokens_per_minute),
            clock,
            debt: AtomicU64::new(0),
        }
    }

    /// Whether no limit is configured.
    pub fn is_unlimited(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none()
    }

    /// Wait (asynchronously) until one request of about `tokens` tokens may start. Fails
    /// with [`AdapterError::RateLimited`] when that would take longer than `max_wait_secs`,
    /// and with [`AdapterError::Cancelled`] when the caller cancels.
    pub async fn acquire(&self, tokens: u64, ctx: &CallContext) -> Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.config.max_wait_secs);
        if let Some((lim, _)) = &self.requests {
            self.wait(lim, NonZeroU32::MIN, deadline, ctx, "requests_per_minute").await?;
        }
        if let Some((lim, burst)) = &self.tokens {
            // This call's tokens plus what earlier calls used beyond their reservation, in
            // pieces no larger than the burst (governor refuses more at once).
            let owed = self.debt.swap(0, Ordering::Relaxed);
            let mut left = tokens.saturating_add(owed).max(1);
            while left > 0 {
                let piece = left.min(u64::from(burst.get()));
                let n = u32::try_from(piece).ok().and_then(NonZeroU32::new).unwrap_or(*burst);
                if let Err(e) = self.wait(lim, n, deadline, ctx, "tokens_per_minute").await {
                    // What was not paid stays owed.
                    self.debt.fetch_add(left.saturating_sub(tokens), Ordering::Relaxed);
                    return Err(e);
                }
                left -= piece;
            }
        }
        Ok(())
    }

    /// Record what a call really used against what [`AgentLimiter::acquire`] reserved.
    pub fn record(&self, reserved: u64, used: u64) {
        if self.tokens.is_some() && used > reserved {
            self.debt.fetch_add(used - reserved, Ordering::Relaxed);
        }
    }

    async fn wait(
        &self,
        lim: &Gcra,
        n: NonZeroU32,
        deadline: tokio::time::Instant,
        ctx: &CallContext,
        what: &str,
    ) -> Result<()> {
        let mut reported = false;
        loop {
            let wait = match lim.check_n(n) {
                Ok(Ok(())) | Err(_) => return Ok(()),
                Ok(Err(not_until)) => not_until.wait_time_from(self.clock.now()),
            };
            let now = tokio::time::Instant::now();
            if now + wait > deadline {
                return Err(AdapterError::RateLimited {
                    agent: self.name.clone(),
                    retry_after: Some(wait),
                    message: format!(
                        "troupe's own {what} limit needs a wait longer than max_wait_secs = {}",
                        self.config.max_wait_secs
                    ),
                    local: true,
                });
            }
            if !reported {
                reported = true;
                ctx.emit(AgentEvent::RateLimitWait {
                    agent: self.name.clone(),
                    wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                });
            }
            tokio::select! {
                biased;
                _ = ctx.cancel.cancelled() => return Err(AdapterError::cancelled(&self.name)),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The process-wide limiters, one per agent name, so every run shares them.
#[derive(Debug, Default)]
pub struct LimiterRegistry {
    limiters: Mutex<HashMap<String, Arc<AgentLimiter>>>,
}

impl LimiterRegistry {
    /// The registry of this process.
    pub fn global() -> &'static LimiterRegistry {
        static GLOBAL: OnceLock<LimiterRegistry> = OnceLock::new();
        GLOBAL.get_or_init(LimiterRegistry::default)
    }

    /// The limiter of `name`; a new one when none exists or its limits changed.
    pub fn get(&self, name: &str, config: &RateLimitConfig) -> Arc<AgentLimiter> {
        let mut map = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = map.get(name).filter(|l| l.config == *config) {
            return l.clone();
        }
        let l = Arc::new(AgentLimiter::new(name, config));
        map.insert(name.to_string(), l.clone());
        l
    }
}

/// Waits for rate-limit capacity before each call of the wrapped agent.
#[derive(Debug)]
pub struct RateLimit {
    inner: Arc<dyn Agent>,
    limiter: Arc<AgentLimiter>,
}

impl RateLimit {
    /// `inner` limited by `limiter`.
    pub fn new(inner: Arc<dyn Agent>, limiter: Arc<AgentLimiter>) -> RateLimit {
        RateLimit { inner, limiter }
    }
}

#[async_trait]
impl Layer for RateLimit {
    fn inner(&self) -> &dyn Agent {
        &*self.inner
    }

    async fn call(&self, req: &AgentRequest, ctx: &CallContext) -> Result<AgentResponse> {
        if self.limiter.is_unlimited() {
            return self.inner.call(req, ctx).await;
        }
        let reserved = req.estimated_tokens();
        self.limiter.acquire(reserved, ctx).await?;
        let resp = self.inner.call(req, ctx).await?;
        self.limiter.record(reserved, resp.usage.total());
        Ok(resp)
    }
}
