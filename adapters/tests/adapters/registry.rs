//! Full stacks as the runtime builds them ([`AgentRegistry`]), against the fault-injecting
//! HTTP server: a fallback answers while the primary keeps failing, the breaker opens and
//! later recovers; offline mode opens no connection to a remote agent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use troupe_adapters::config::{
    AgentConfig, AgentKind, BreakerConfig, ManagedServerConfig, RetryConfig,
};
use troupe_adapters::registry::{AgentRegistry, RegistryOptions};
use troupe_adapters::resilience::{BreakerState, LimiterRegistry, OfflineMode};
use troupe_adapters::testing::{Fault, MockApi, MockServer};
use troupe_adapters::{AdapterError, AgentEvent, AgentRequest, AgentResponse, CallContext};

use crate::{Captured, bounded};

fn http_agent(server: &MockServer, fallback: &[&str]) -> AgentConfig {
    let mut c = AgentConfig::new(AgentKind::Openai);
    c.base_url = Some(format!("{}/v1", server.url()));
    c.model = Some("mock-model".into());
    c.timeout_secs = 5;
    c.retry = RetryConfig {
        max_attempts: 2,
        initial_backoff_ms: 10,
        max_backoff_ms: 20,
        max_elapsed_secs: 10,
    };
    c.breaker = BreakerConfig { failure_threshold: 2, recovery_secs: 1 };
    c.fallback = fallback.iter().map(|s| s.to_string()).collect();
    c
}

/// A managed server running `command` with `args`, given five seconds to start.
fn managed(command: &str, args: &[&str]) -> ManagedServerConfig {
    ManagedServerConfig {
        command: command.to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: BTreeMap::new(),
        startup_timeout_secs: 5,
        threads: None,
        batch_threads: None,
    }
}

/// A registry of one agent `local` (`cfg`) and its answer to "hi" (ten seconds at most).
async fn ask_local(
    cfg: AgentConfig,
    options: RegistryOptions,
) -> (AgentRegistry, Result<AgentResponse, AdapterError>) {
    let registry = AgentRegistry::build(&BTreeMap::from([("local".to_string(), cfg)]), options);
    let agent = registry.agent("local").unwrap();
    let answer = bounded(10, agent.call(&AgentRequest::prompt("hi"), &CallContext::new())).await;
    (registry, answer)
}

fn options(offline: OfflineMode) -> RegistryOptions {
    RegistryOptions {
        offline,
        assets_dir: "/nonexistent".into(),
        limiters: Some(Arc::new(LimiterRegistry::default())),
    }
}

#[tokio::test]
async fn fallback_answers_and_the_breaker_opens_and_recovers() {
    let primary = MockServer::start(MockApi::OpenAi).await.unwrap();
    let backup = MockServer::start(MockApi::OpenAi).await.unwrap();
    backup.set_answer(&["from ", "backup"]);
    primary.fail_always(Some(Fault::status(503, "overloaded")));
    let configs = BTreeMap::from([
        ("primary".to_string(), http_agent(&primary, &["backup"])),
        ("backup".to_string(), http_agent(&backup, &[])),
    ]);
    let registry = AgentRegistry::build(&configs, options(OfflineMode::online()));
    let agent = registry.agent("primary").unwrap();

    let cap = Captured::default();
    let r = bounded(20, agent.call(&AgentRequest::prompt("hi"), &cap.context())).await.unwrap();
    assert_eq!(r.agent, "backup");
    assert_eq!(r.text, "from backup");
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].agent, "primary");
    assert!(r.failed[0].message.contains("503"), "{:?}", r.failed);
    let events = cap.events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, AgentEvent::RetryScheduled { agent, .. } if agent == "primary"))
    );
    assert!(events.iter().any(|e| matches!(e, AgentEvent::FallbackTaken { from, to, .. } if from == "primary" && to == "backup")));
    assert_eq!(primary.requests().len(), 2, "two attempts");

    // The second failing call opens the breaker; then the primary is not contacted.
    bounded(20, agent.call(&AgentRequest::prompt("hi"), &CallContext::new())).await.unwrap();
    assert!(matches!(registry.breaker_states()["primary"], BreakerState::Open { .. }));
    let before = primary.requests().len();
    let r =
        bounded(20, agent.call(&AgentRequest::prompt("hi"), &CallContext::new())).await.unwrap();
    assert_eq!((r.agent.as_str(), r.failed[0].kind), ("backup", "breaker_open"));
    assert_eq!(primary.requests().len(), before);

    // The primary heals; after the recovery time a trial call goes through and closes it.
    primary.fail_always(None);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r =
        bounded(20, agent.call(&AgentRequest::prompt("hi"), &CallContext::new())).await.unwrap();
    assert_eq!(r.agent, "primary");
    assert!(!r.fallback_used());
    assert_eq!(registry.breaker_states()["primary"], BreakerState::Closed { failures: 0 });
}

#[tokio::test]
async fn retries_ride_out_a_short_outage() {
    let server = MockServer::start(MockApi::OpenAi).await.unwrap();
    server.push_fault(Fault::Reset);
    let configs = BTreeMap::from([("a".to_string(), http_agent(&server, &[]))]);
    let registry = AgentRegistry::build(&configs, options(OfflineMode::online()));
    let r = bounded(
        20,
        registry.agent("a").unwrap().call(&AgentRequest::prompt("hi"), &CallContext::new()),
    )
    .await
    .unwrap();
    assert_eq!(r.text, "Hello, world");
    assert_eq!(r.attempts, 2);
}

#[tokio::test]
async fn offline_mode_opens_no_connection_to_remote_agents() {
    let local = MockServer::start(MockApi::OpenAi).await.unwrap();
    let mut remote = AgentConfig::new(AgentKind::Openai);
    remote.base_url = Some("https://api.example.invalid/v1".into());
    remote.model = Some("gpt".into());
    remote.fallback = vec!["local".into()];
    let mut cli = AgentConfig::new(AgentKind::Cli);
    cli.command = Some("claude".into());
    let configs = BTreeMap::from([
        ("remote".to_string(), remote),
        ("local".to_string(), http_agent(&local, &[])),
        ("claude".to_string(), cli),
    ]);
    let registry = AgentRegistry::build(&configs, options(OfflineMode::offline("--offline")));
    // The remote agent falls back to the local one; nothing tried to resolve example.invalid.
    let cap = Captured::default();
    let r = bounded(
        20,
        registry.agent("remote").unwrap().call(&AgentRequest::prompt("hi"), &cap.events_only()),
    )
    .await
    .unwrap();
    assert_eq!(r.agent, "local");
    assert_eq!(r.failed[0].kind, "offline_refused");
    assert!(
        cap.events()
            .iter()
            .any(|e| matches!(e, AgentEvent::OfflineSkipped { agent } if agent == "remote"))
    );
    // CLI agents talk to their vendor's cloud: refused too.
    let e = bounded(
        5,
        registry.agent("claude").unwrap().call(&AgentRequest::prompt("hi"), &CallContext::new()),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, AdapterError::OfflineRefused { .. }), "{e}");
}

#[tokio::test]
async fn the_agents_own_fallbacks_come_before_the_steps_and_bad_agents_are_explained() {
    let a = MockServer::start(MockApi::OpenAi).await.unwrap();
    let b = MockServer::start(MockApi::OpenAi).await.unwrap();
    let c = MockServer::start(MockApi::OpenAi).await.unwrap();
    a.fail_always(Some(Fault::status(500, "down")));
    let mut disabled = http_agent(&c, &[]);
    disabled.enabled = false;
    let mut no_model = http_agent(&c, &[]);
    no_model.model = None;
    let configs = BTreeMap::from([
        ("a".to_string(), http_agent(&a, &["c"])),
        ("b".to_string(), http_agent(&b, &[])),
        ("c".to_string(), http_agent(&c, &[])),
        ("off".to_string(), disabled),
        ("broken".to_string(), no_model),
    ]);
    let registry = AgentRegistry::build(&configs, options(OfflineMode::online()));
    let agent = registry.with_fallbacks("a", &["off".into(), "b".into()]).unwrap();
    let r =
        bounded(20, agent.call(&AgentRequest::prompt("hi"), &CallContext::new())).await.unwrap();
    // The one order (`config::fallback_chain`, as docs/CONFIGURATION.md states it and a
    // run's call path walks it): the agent's own chain, then the step's fallbacks.
    assert_eq!(r.agent, "c", "the agent's own fallback before the step's");
    assert!(b.requests().is_empty());

    let e = registry.agent("off").unwrap_err();
    assert!(e.to_string().contains("disabled"), "{e}");
    let e = registry.agent("broken").unwrap_err();
    assert!(matches!(e, AdapterError::Config { .. }) && e.to_string().contains("model"), "{e}");
    assert!(registry.broken().contains_key("broken"));
    let e = registry.agent("nobody").unwrap_err();
    assert!(e.to_string().contains("known: a, b, broken, c, off"), "{e}");
}

#[tokio::test]
async fn a_missing_managed_server_says_run_setup() {
    let mut cfg = AgentConfig::new(AgentKind::Llamacpp);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    cfg.base_url = Some(format!("http://127.0.0.1:{port}/v1"));
    cfg.retry.max_attempts = 1;
    cfg.server = Some(managed("{assets}/llama/llama-server", &[]));
    let (_registry, e) = ask_local(cfg, options(OfflineMode::online())).await;
    let e = e.unwrap_err();
    assert!(matches!(e, AdapterError::Server { .. }), "{e}");
    assert!(
        e.to_string().contains("/nonexistent/llama/llama-server")
            && e.to_string().contains("scripts/setup.sh --assets-only"),
        "{e}"
    );
}

#[tokio::test]
async fn a_server_already_running_is_used_not_started() {
    let server = MockServer::start(MockApi::OpenAi).await.unwrap();
    let mut cfg = http_agent(&server, &[]);
    cfg.server = Some(managed("/nonexistent/never-started", &[]));
    let (registry, r) = ask_local(cfg, options(OfflineMode::online())).await;
    let r = r.unwrap();
    assert_eq!(r.text, "Hello, world");
    let s = registry.servers().next().unwrap();
    assert_eq!(s.starts().await, 0);
    assert!(server.requests().iter().any(|r| r.path == "/health"));
}

/// The fault suite with every setting at its default: a primary that hangs before
/// answering, stalls in the middle of its answer or answers nothing hands the request to
/// its fallback within two minutes (tokio's virtual clock; the mock server sleeps on it too).
#[tokio::test(start_paused = true)]
async fn with_default_settings_dead_backends_fall_back_within_two_minutes() {
    for fault in [Fault::Hang, Fault::HangAfterHeaders, Fault::StallMidStream, Fault::EmptyAnswer] {
        let primary = MockServer::start(MockApi::OpenAi).await.unwrap();
        let backup = MockServer::start(MockApi::OpenAi).await.unwrap();
        backup.set_answer(&["from ", "backup"]);
        primary.fail_always(Some(fault.clone()));
        let mut p = AgentConfig::new(AgentKind::Llamacpp);
        p.base_url = Some(format!("{}/v1", primary.url()));
        p.fallback = vec!["backup".into()];
        let mut b = AgentConfig::new(AgentKind::Llamacpp);
        b.base_url = Some(format!("{}/v1", backup.url()));
        let configs = BTreeMap::from([("primary".to_string(), p), ("backup".to_string(), b)]);
        let registry = AgentRegistry::build(&configs, options(OfflineMode::online()));
        let agent = registry.agent("primary").unwrap();
        for ctx in [CallContext::new(), Captured::default().context()] {
            let started = tokio::time::Instant::now();
            let r = agent.call(&AgentRequest::prompt("hi"), &ctx).await.unwrap();
            let took = started.elapsed();
            assert_eq!(r.agent, "backup", "{fault:?}");
            assert_eq!(r.text, "from backup");
            assert!(took < Duration::from_secs(120), "{fault:?}: fell back after {took:?}");
            let tries = primary.requests().iter().filter(|q| q.method == "POST").count();
            assert!(tries >= 1, "{fault:?}");
        }
        // A stalled answer is retried once, not max_attempts times; a local server that
        // gives no first byte is still busy with the prompt, so it is not asked again.
        let posts = primary.requests().iter().filter(|q| q.method == "POST").count();
        match fault {
            Fault::StallMidStream => assert_eq!(posts, 4, "{fault:?}: two attempts per call"),
            Fault::Hang => assert_eq!(posts, 2, "{fault:?}: one attempt per call"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_missing_model_file_says_how_to_install_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let assets = tempfile::tempdir().unwrap();
    // A "server program" that exists: the model is what is missing.
    let program = assets.path().join("server.sh");
    std::fs::write(&program, "#!/bin/sh\nsleep 30\n").unwrap();
    let mut cfg = AgentConfig::new(AgentKind::Llamacpp);
    cfg.base_url = Some(format!("http://127.0.0.1:{port}/v1"));
    cfg.retry.max_attempts = 1;
    cfg.server = Some(managed(
        &program.to_string_lossy(),
        &["-m", "{assets}/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"],
    ));
    let mut opts = options(OfflineMode::online());
    opts.assets_dir = assets.path().to_path_buf();
    let (registry, e) = ask_local(cfg, opts).await;
    let e = e.unwrap_err();
    assert!(matches!(e, AdapterError::Server { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf does not exist")
            && msg.contains("troupe models pull qwen2.5-coder-1.5b"),
        "{msg}"
    );
    assert_eq!(registry.servers().next().unwrap().starts().await, 0, "nothing was started");
}
