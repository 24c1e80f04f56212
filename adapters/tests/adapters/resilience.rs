//! The resilience wrappers around scripted agents, under a paused tokio clock: what is
//! asserted about time is tokio's virtual time, exact and deterministic.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use troupe_adapters::config::{BreakerConfig, RateLimitConfig, RetryConfig};
use troupe_adapters::resilience::{
    AgentLimiter, Breaker, BreakerState, CircuitBreaker, Fallback, OfflineGuard, OfflineMode,
    RateLimit, Retry,
};
use troupe_adapters::testing::ScriptedAgent;
use troupe_adapters::{AdapterError, Agent, AgentEvent, AgentRequest, CallContext};

use crate::Captured;

fn transient(agent: &str) -> AdapterError {
    AdapterError::transient(agent, "HTTP 503: busy")
}

fn rate_limited(agent: &str, secs: u64) -> AdapterError {
    AdapterError::RateLimited {
        agent: agent.into(),
        retry_after: Some(Duration::from_secs(secs)),
        message: "HTTP 429".into(),
        local: false,
    }
}

fn timeout(endpoint: &str, after_secs: u64, phase: &'static str) -> AdapterError {
    AdapterError::Timeout {
        agent: "a".into(),
        endpoint: endpoint.into(),
        after: Duration::from_secs(after_secs),
        phase,
    }
}

fn limits(
    requests_per_minute: Option<u32>,
    tokens_per_minute: Option<u32>,
    max_wait_secs: u64,
) -> RateLimitConfig {
    RateLimitConfig { requests_per_minute, tokens_per_minute, max_wait_secs }
}

fn retry_policy(max_attempts: u32) -> RetryConfig {
    RetryConfig {
        max_attempts,
        initial_backoff_ms: 100,
        max_backoff_ms: 10_000,
        max_elapsed_secs: 300,
    }
}

fn prompt() -> AgentRequest {
    AgentRequest::prompt("hello")
}

/// How `fake` behind a retry of `max_attempts` fails.
async fn retry_failure(fake: &Arc<ScriptedAgent>, max_attempts: u32) -> AdapterError {
    Retry::new(fake.clone(), retry_policy(max_attempts))
        .call(&prompt(), &CallContext::new())
        .await
        .unwrap_err()
}

fn gaps(times: &[Instant]) -> Vec<Duration> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

// Retries.

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_exactly() {
    let fake = Arc::new(ScriptedAgent::new("a").then_fail(rate_limited("a", 7)).then_answer("ok"));
    let agent = Retry::new(fake.clone(), retry_policy(3));
    let cap = Captured::default();
    let r = agent.call(&prompt(), &cap.events_only()).await.unwrap();
    assert_eq!(r.text, "ok");
    assert_eq!(r.attempts, 2);
    assert_eq!(r.retries(), 1);
    assert_eq!(gaps(&fake.call_times()), [Duration::from_secs(7)]);
    assert!(
        matches!(
            cap.events().as_slice(),
            [AgentEvent::RetryScheduled { attempt: 1, delay_ms: 7000, .. }]
        ),
        "{:?}",
        cap.events()
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_exponentially_with_jitter() {
    let fake = Arc::new(
        ScriptedAgent::new("a")
            .then_fail(transient("a"))
            .then_fail(transient("a"))
            .then_fail(transient("a"))
            .then_answer("ok"),
    );
    let r = Retry::new(fake.clone(), retry_policy(4))
        .call(&prompt(), &CallContext::new())
        .await
        .unwrap();
    assert_eq!(r.attempts, 4);
    let g = gaps(&fake.call_times());
    // 100 ms, 200 ms, 400 ms, each plus up to as much again of jitter.
    for (gap, base) in g.iter().zip([100u64, 200, 400]) {
        let base = Duration::from_millis(base);
        assert!(*gap >= base && *gap <= base * 2, "gap {gap:?} outside [{base:?}, {:?}]", base * 2);
    }
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_max_attempts() {
    let fake = Arc::new(ScriptedAgent::new("a").then_fail(transient("a")));
    let e = retry_failure(&fake, 3).await;
    assert!(matches!(e, AdapterError::Transient { .. }));
    assert_eq!(fake.calls().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_local_server_without_a_first_byte_is_not_asked_again() {
    // It is still reading the prompt it has: a second request would only queue behind it.
    let no_first_byte = timeout("http://127.0.0.1:9/v1", 60, "first byte");
    let fake = Arc::new(ScriptedAgent::new("a").then_fail(no_first_byte));
    let e = retry_failure(&fake, 5).await;
    assert!(matches!(e, AdapterError::Timeout { .. }), "{e}");
    assert_eq!(fake.calls().len(), 1);
    // A local server that stalled mid-answer is asked once more.
    let stalled = timeout("http://127.0.0.1:9/v1", 30, "idle");
    let fake = Arc::new(ScriptedAgent::new("a").then_fail(stalled));
    retry_failure(&fake, 5).await;
    assert_eq!(fake.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_retried_once() {
    let remote = timeout("https://api.example.invalid/v1", 30, "first byte");
    let fake = Arc::new(ScriptedAgent::new("a").then_fail(remote));
    let e = retry_failure(&fake, 5).await;
    assert!(matches!(e, AdapterError::Timeout { .. }), "{e}");
    assert_eq!(fake.calls().len(), 2, "one attempt and one retry, not five");
    // Other transient failures still use every attempt, also after a timeout.
    let fake = Arc::new(
        ScriptedAgent::new("a").then_fail(timeout("x", 1, "idle")).then_fail(transient("a")),
    );
    retry_failure(&fake, 4).await;
    assert_eq!(fake.calls().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn non_transient_errors_fail_fast() {
    for e in [
        AdapterError::Auth { agent: "a".into(), message: "bad key".into() },
        AdapterError::InvalidRequest { agent: "a".into(), message: "bad".into() },
        AdapterError::ContextTooLong { agent: "a".into(), message: "long".into() },
    ] {
        let fake = Arc::new(ScriptedAgent::new("a").then_fail(e.clone()));
        let got = retry_failure(&fake, 5).await;
        assert_eq!(got, e);
        assert_eq!(fake.calls().len(), 1, "{e} must not be retried");
    }
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_past_max_elapsed() {
    let fake = Arc::new(ScriptedAgent::new("a").then_fail(rate_limited("a", 100)));
    let policy = RetryConfig { max_elapsed_secs: 60, ..retry_policy(5) };
    let started = Instant::now();
    let e =
        Retry::new(fake.clone(), policy).call(&prompt(), &CallContext::new()).await.unwrap_err();
    assert!(matches!(e, AdapterError::RateLimited { .. }));
    assert_eq!(fake.calls().len(), 1, "a 100 s wait does not fit in 60 s");
    assert_eq!(started.elapsed(), Duration::ZERO, "it gives up at once rather than waiting");
}

#[tokio::test(start_paused = true)]
async fn cancelling_during_backoff_ends_the_call() {
    let fake = Arc::new(ScriptedAgent::new("a").then_fail(rate_limited("a", 200)));
    let token = CancellationToken::new();
    let ctx = CallContext::new().with_cancel(token.clone());
    let t2 = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        t2.cancel();
    });
    let started = Instant::now();
    let e = Retry::new(fake.clone(), retry_policy(3)).call(&prompt(), &ctx).await.unwrap_err();
    assert!(matches!(e, AdapterError::Cancelled { .. }), "{e}");
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(fake.calls().len(), 1);
}

// Rate limits.

#[tokio::test(start_paused = true)]
async fn requests_per_minute_make_callers_wait() {
    let fake = Arc::new(ScriptedAgent::new("a"));
    let cfg = limits(Some(2), None, 120);
    let agent = RateLimit::new(fake.clone(), Arc::new(AgentLimiter::new("a", &cfg)));
    let cap = Captured::default();
    for _ in 0..4 {
        agent.call(&prompt(), &cap.events_only()).await.unwrap();
    }
    // A burst of 2, then one every 30 s.
    assert_eq!(
        gaps(&fake.call_times()),
        [Duration::ZERO, Duration::from_secs(30), Duration::from_secs(30)]
    );
    let waits: Vec<u64> = cap
        .events()
        .iter()
        .filter_map(|e| match e {
            AgentEvent::RateLimitWait { wait_ms, .. } => Some(*wait_ms),
            _ => None,
        })
        .collect();
    assert_eq!(waits, [30_000, 30_000]);
}

#[tokio::test(start_paused = true)]
async fn waits_beyond_max_wait_fail_as_rate_limited() {
    let fake = Arc::new(ScriptedAgent::new("a"));
    let cfg = limits(Some(1), None, 10);
    let agent = RateLimit::new(fake.clone(), Arc::new(AgentLimiter::new("a", &cfg)));
    agent.call(&prompt(), &CallContext::new()).await.unwrap();
    let started = Instant::now();
    let e = agent.call(&prompt(), &CallContext::new()).await.unwrap_err();
    assert!(matches!(e, AdapterError::RateLimited { .. }), "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(fake.calls().len(), 1, "the refused call never reached the agent");
}

#[tokio::test(start_paused = true)]
async fn tokens_per_minute_count_what_answers_used() {
    // 60 tokens a minute = one a second, at most 60 at once.
    let fake = Arc::new(ScriptedAgent::new("a").then_answer(&"x".repeat(800)));
    let cfg = limits(None, Some(60), 600);
    let agent = RateLimit::new(fake.clone(), Arc::new(AgentLimiter::new("a", &cfg)));
    // Each call reserves its prompt (2 tokens) but uses ~200 more (800 characters of answer);
    // the next call pays for that overuse before it starts.
    agent.call(&prompt(), &CallContext::new()).await.unwrap();
    agent.call(&prompt(), &CallContext::new()).await.unwrap();
    let g = gaps(&fake.call_times());
    assert!(
        g[0] >= Duration::from_secs(140) && g[0] <= Duration::from_secs(150),
        "overuse paid: {g:?}"
    );
    // Too much owed for max_wait_secs: refused without calling.
    let tight = RateLimitConfig { max_wait_secs: 30, ..cfg };
    let limiter = Arc::new(AgentLimiter::new("b", &tight));
    let agent = RateLimit::new(fake.clone(), limiter);
    agent.call(&prompt(), &CallContext::new()).await.unwrap();
    let e = agent.call(&prompt(), &CallContext::new()).await.unwrap_err();
    assert!(matches!(e, AdapterError::RateLimited { .. }), "{e}");
    assert_eq!(fake.calls().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_of_the_own_limiter_is_not_retried() {
    let fake = Arc::new(ScriptedAgent::new("a"));
    let cfg = limits(Some(1), None, 10);
    let limited = Arc::new(RateLimit::new(fake.clone(), Arc::new(AgentLimiter::new("a", &cfg))));
    let agent = Retry::new(limited, retry_policy(5));
    agent.call(&prompt(), &CallContext::new()).await.unwrap();
    let started = Instant::now();
    let e = agent.call(&prompt(), &CallContext::new()).await.unwrap_err();
    assert!(e.is_local_limit() && e.falls_back(), "{e}");
    assert_eq!(started.elapsed(), Duration::ZERO, "no retry waited past max_wait_secs");
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn limiters_are_shared_by_name() {
    let reg = troupe_adapters::resilience::LimiterRegistry::default();
    let cfg = limits(Some(1), None, 0);
    let a = reg.get("a", &cfg);
    assert!(Arc::ptr_eq(&a, &reg.get("a", &cfg)), "two runs share one limiter");
    assert!(!Arc::ptr_eq(&a, &reg.get("b", &cfg)));
    let other = RateLimitConfig { requests_per_minute: Some(5), ..cfg };
    assert!(!Arc::ptr_eq(&a, &reg.get("a", &other)), "changed limits make a new limiter");
}

// Circuit breaker.

fn breaker(threshold: u32, recovery_secs: u64) -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new(
        "a",
        &BreakerConfig { failure_threshold: threshold, recovery_secs },
    ))
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_half_opens_and_closes() {
    let fake = Arc::new(
        ScriptedAgent::new("a")
            .then_fail(transient("a"))
            .then_fail(transient("a"))
            .then_answer("back"),
    );
    let b = breaker(2, 30);
    let agent = Breaker::new(fake.clone(), b.clone());
    let cap = Captured::default();
    let ctx = cap.events_only();
    assert!(agent.call(&prompt(), &ctx).await.is_err());
    assert_eq!(b.state(), BreakerState::Closed { failures: 1 });
    assert!(agent.call(&prompt(), &ctx).await.is_err());
    assert_eq!(b.state(), BreakerState::Open { retry_in: Duration::from_secs(30) });

    let e = agent.call(&prompt(), &ctx).await.unwrap_err();
    assert!(matches!(e, AdapterError::BreakerOpen { failures: 2, .. }), "{e}");
    assert_eq!(fake.calls().len(), 2, "an open breaker does not call the agent");

    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(b.state(), BreakerState::Open { retry_in: Duration::from_secs(20) });
    tokio::time::advance(Duration::from_secs(20)).await;
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(agent.call(&prompt(), &ctx).await.unwrap().text, "back");
    assert_eq!(b.state(), BreakerState::Closed { failures: 0 });

    let kinds: Vec<&str> = cap
        .events()
        .iter()
        .map(|e| match e {
            AgentEvent::BreakerOpened { .. } => "opened",
            AgentEvent::BreakerHalfOpen { .. } => "half_open",
            AgentEvent::BreakerClosed { .. } => "closed",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["opened", "half_open", "closed"]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_trial_reopens_the_breaker() {
    let fake = Arc::new(ScriptedAgent::new("a").then_fail(transient("a")));
    let b = breaker(1, 5);
    let agent = Breaker::new(fake.clone(), b.clone());
    assert!(agent.call(&prompt(), &CallContext::new()).await.is_err());
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(matches!(
        agent.call(&prompt(), &CallContext::new()).await,
        Err(AdapterError::Transient { .. })
    ));
    assert_eq!(b.state(), BreakerState::Open { retry_in: Duration::from_secs(5) });
    assert_eq!(fake.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn only_one_trial_call_while_half_open() {
    let fake = Arc::new(
        ScriptedAgent::new("a")
            .then_fail(transient("a"))
            .then_answer("ok")
            .with_delay(Duration::from_secs(1)),
    );
    let b = breaker(1, 5);
    let agent = Arc::new(Breaker::new(fake.clone(), b.clone()));
    assert!(agent.call(&prompt(), &CallContext::new()).await.is_err());
    tokio::time::advance(Duration::from_secs(5)).await;
    let a1 = agent.clone();
    let trial = tokio::spawn(async move { a1.call(&prompt(), &CallContext::new()).await });
    tokio::task::yield_now().await;
    let e = agent.call(&prompt(), &CallContext::new()).await.unwrap_err();
    assert!(
        matches!(e, AdapterError::BreakerOpen { .. }),
        "a second call waits for the trial: {e}"
    );
    assert_eq!(trial.await.unwrap().unwrap().text, "ok");
    assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
}

#[tokio::test(start_paused = true)]
async fn caller_mistakes_do_not_open_the_breaker() {
    let fake = Arc::new(
        ScriptedAgent::new("a")
            .then_fail(AdapterError::InvalidRequest { agent: "a".into(), message: "bad".into() }),
    );
    let b = breaker(1, 5);
    let agent = Breaker::new(fake, b.clone());
    for _ in 0..3 {
        assert!(agent.call(&prompt(), &CallContext::new()).await.is_err());
    }
    assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
}

// Fallback and offline.

#[tokio::test(start_paused = true)]
async fn fallback_answers_when_the_primary_fails() {
    let primary = Arc::new(ScriptedAgent::new("primary").then_fail(transient("primary")));
    let second = Arc::new(ScriptedAgent::new("second").then_stream(&["from ", "second"]));
    let chain = Fallback::new(primary.clone(), vec![second.clone()]);
    let cap = Captured::default();
    let r = chain.call(&prompt(), &cap.context()).await.unwrap();
    assert_eq!(r.agent, "second");
    assert_eq!(r.text, "from second");
    assert!(r.fallback_used());
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].agent, "primary");
    assert_eq!(r.failed[0].kind, "transient");
    assert!(matches!(
        cap.events().as_slice(),
        [AgentEvent::FallbackTaken { from, to, .. }] if from == "primary" && to == "second"
    ));
    assert_eq!(cap.chunks(), ["from ", "second"]);
}

#[tokio::test(start_paused = true)]
async fn fallback_does_not_hide_auth_errors() {
    let primary = Arc::new(
        ScriptedAgent::new("primary")
            .then_fail(AdapterError::Auth { agent: "primary".into(), message: "bad key".into() }),
    );
    let second = Arc::new(ScriptedAgent::new("second"));
    let e = Fallback::new(primary, vec![second.clone()])
        .call(&prompt(), &CallContext::new())
        .await
        .unwrap_err();
    assert!(matches!(e, AdapterError::Auth { .. }));
    assert!(second.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn all_errors_are_reported_when_every_agent_fails() {
    let primary = Arc::new(ScriptedAgent::new("primary").then_fail(transient("primary")));
    let second = Arc::new(ScriptedAgent::new("second").then_fail(rate_limited("second", 9)));
    let e = Fallback::new(primary, vec![second])
        .call(&prompt(), &CallContext::new())
        .await
        .unwrap_err();
    let AdapterError::AllFailed { errors } = &e else { panic!("expected AllFailed, got {e}") };
    let agents: Vec<&str> = errors.iter().map(|f| f.agent.as_str()).collect();
    assert_eq!(agents, ["primary", "second"]);
    assert!(e.to_string().contains("503") && e.to_string().contains("429"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn offline_refuses_remote_agents_and_fallback_skips_them() {
    let remote = Arc::new(ScriptedAgent::new("cloud").remote());
    let local = Arc::new(ScriptedAgent::new("local").then_answer("local answer"));
    let mode = OfflineMode::offline("--offline");
    let guarded_remote = Arc::new(OfflineGuard::new(remote.clone(), mode.clone()));
    let guarded_local = Arc::new(OfflineGuard::new(local.clone(), mode.clone()));

    let e = guarded_remote.call(&prompt(), &CallContext::new()).await.unwrap_err();
    assert!(matches!(e, AdapterError::OfflineRefused { .. }), "{e}");
    assert!(e.to_string().contains("--offline"), "{e}");

    let cap = Captured::default();
    let r = Fallback::new(guarded_remote, vec![guarded_local])
        .call(&prompt(), &cap.events_only())
        .await
        .unwrap();
    assert_eq!(r.agent, "local");
    assert!(remote.calls().is_empty(), "nothing reached the remote agent");
    assert!(
        cap.events()
            .iter()
            .any(|e| matches!(e, AgentEvent::OfflineSkipped { agent } if agent == "cloud"))
    );

    mode.set(None);
    let back = OfflineGuard::new(remote.clone(), mode);
    assert!(back.call(&prompt(), &CallContext::new()).await.is_ok(), "online again");
}

// The wrappers stacked as the registry stacks them.

#[tokio::test(start_paused = true)]
async fn stacked_wrappers_keep_the_primary_failing_and_recover_later() {
    use std::collections::BTreeMap;
    use troupe_adapters::config::{AgentConfig, AgentKind};
    use troupe_adapters::registry::{AgentRegistry, RegistryOptions};

    let mut primary_cfg = AgentConfig::new(AgentKind::Openai);
    primary_cfg.base_url = Some("http://127.0.0.1:9/v1".into());
    primary_cfg.retry = RetryConfig {
        max_attempts: 2,
        initial_backoff_ms: 10,
        max_backoff_ms: 10,
        max_elapsed_secs: 60,
    };
    primary_cfg.breaker = BreakerConfig { failure_threshold: 2, recovery_secs: 60 };
    primary_cfg.fallback = vec!["backup".into()];
    let backup_cfg = primary_cfg.clone();
    let configs =
        BTreeMap::from([("primary".to_string(), primary_cfg), ("backup".to_string(), backup_cfg)]);

    let primary = Arc::new(
        ScriptedAgent::new("primary")
            .then_fail(transient("primary"))
            .then_fail(transient("primary"))
            .then_fail(transient("primary"))
            .then_fail(transient("primary"))
            .then_answer("primary is back"),
    );
    let backup = Arc::new(ScriptedAgent::new("backup").then_answer("backup answer"));
    let (p, b) = (primary.clone(), backup.clone());
    let factory = move |name: &str, _: &AgentConfig| -> troupe_adapters::Result<Arc<dyn Agent>> {
        Ok(if name == "primary" { p.clone() } else { b.clone() })
    };
    let options = RegistryOptions { limiters: Some(Default::default()), ..Default::default() };
    let registry = AgentRegistry::build_with(&configs, options, factory);
    let agent = registry.agent("primary").unwrap();

    // Two calls, two attempts each: the primary fails 4 times, the breaker opens.
    for _ in 0..2 {
        let r = agent.call(&prompt(), &CallContext::new()).await.unwrap();
        assert_eq!(r.agent, "backup");
        assert_eq!(r.failed[0].agent, "primary");
    }
    assert_eq!(primary.calls().len(), 4);
    assert!(matches!(registry.breaker_states()["primary"], BreakerState::Open { .. }));
    // While open, the primary is not even tried.
    let r = agent.call(&prompt(), &CallContext::new()).await.unwrap();
    assert_eq!((r.agent.as_str(), r.failed[0].kind), ("backup", "breaker_open"));
    assert_eq!(primary.calls().len(), 4);
    // After the recovery time the trial call succeeds and the primary answers again.
    tokio::time::advance(Duration::from_secs(60)).await;
    let r = agent.call(&prompt(), &CallContext::new()).await.unwrap();
    assert_eq!(r.agent, "primary");
    assert!(!r.fallback_used());
    assert_eq!(registry.breaker_states()["primary"], BreakerState::Closed { failures: 0 });
}

#[tokio::test(start_paused = true)]
async fn every_wrapper_forwards_the_window_and_token_count_and_offline_asks_nothing_remote() {
    let inner =
        Arc::new(ScriptedAgent::new("local").with_context_window(4096).with_token_counting(4));
    let mode = OfflineMode::offline("--offline");
    let limiter = Arc::new(AgentLimiter::new("local", &RateLimitConfig::default()));
    let breaker = Arc::new(CircuitBreaker::new("local", &BreakerConfig::default()));
    let stack: Arc<dyn Agent> = Arc::new(OfflineGuard::new(
        Arc::new(Breaker::new(
            Arc::new(Retry::new(Arc::new(RateLimit::new(inner, limiter)), RetryConfig::default())),
            breaker,
        )),
        mode.clone(),
    ));
    let chain = Fallback::new(stack, vec![]);
    let ctx = CallContext::new();
    assert_eq!(chain.context_window(&ctx).await, Some(4096));
    assert_eq!(chain.count_tokens("12345678", &ctx).await, Some(2));

    // Offline, a remote agent is not asked (its server is off this machine).
    let remote = Arc::new(
        ScriptedAgent::new("cloud").remote().with_context_window(128_000).with_token_counting(1),
    );
    let guarded = OfflineGuard::new(remote.clone(), mode.clone());
    assert_eq!(guarded.context_window(&ctx).await, None);
    assert_eq!(guarded.count_tokens("abc", &ctx).await, None);
    mode.set(None);
    assert_eq!(guarded.context_window(&ctx).await, Some(128_000), "online again");
}
