//! What the resilience stack (fallback → offline guard → breaker → retry → rate limit)
//! adds to one call, against an instant local server and against an in-process fake.
//!
//! `cargo bench -p troupe-adapters --bench overhead` (release build; a few seconds).
//! Prints the median and 90th percentile per call of the bare adapter and of the full stack,
//! measured in interleaved rounds so drift of the machine hits both alike.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use troupe_adapters::config::{AgentConfig, AgentKind, RateLimitConfig};
use troupe_adapters::registry::{AgentRegistry, RegistryOptions};
use troupe_adapters::resilience::{LimiterRegistry, OfflineMode};
use troupe_adapters::testing::{MockApi, MockServer, ScriptedAgent};
use troupe_adapters::{Agent, AgentRequest, CallContext, ChunkSink};

/// Rounds and calls per round: `cargo bench` passes `--bench` and gets the full run;
/// `cargo test --all-targets` runs this binary without it, as a quick smoke test.
fn sizes() -> (usize, usize) {
    if std::env::args().any(|a| a == "--bench") { (40, 50) } else { (1, 5) }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

async fn time_calls(agent: &Arc<dyn Agent>, ctx: &CallContext, out: &mut Vec<Duration>) {
    let req = AgentRequest::prompt("Say hello");
    for _ in 0..sizes().1 {
        let t = Instant::now();
        let r = agent.call(&req, ctx).await.unwrap();
        out.push(t.elapsed());
        std::hint::black_box(r);
    }
}

async fn compare(label: &str, bare: Arc<dyn Agent>, stack: Arc<dyn Agent>, ctx: CallContext) {
    // Warm up: connections, allocator, caches.
    let (mut b, mut s) = (Vec::new(), Vec::new());
    time_calls(&bare, &ctx, &mut b).await;
    time_calls(&stack, &ctx, &mut s).await;
    let (mut b, mut s) = (Vec::new(), Vec::new());
    for _ in 0..sizes().0 {
        time_calls(&bare, &ctx, &mut b).await;
        time_calls(&stack, &ctx, &mut s).await;
    }
    b.sort();
    s.sort();
    let (bm, sm) = (percentile(&b, 0.5), percentile(&s, 0.5));
    println!(
        "{label:<34} bare median {:>9}  p90 {:>9} | stack median {:>9}  p90 {:>9} | overhead (median) {:>9}  [{} calls each]",
        micros(bm),
        micros(percentile(&b, 0.9)),
        micros(sm),
        micros(percentile(&s, 0.9)),
        micros(sm.saturating_sub(bm)),
        b.len(),
    );
}

fn stacked_config(base_url: &str) -> AgentConfig {
    let mut c = AgentConfig::new(AgentKind::Openai);
    c.base_url = Some(base_url.to_string());
    c.model = Some("mock-model".into());
    // Limits high enough never to wait, so the limiter's bookkeeping is what is measured.
    c.rate_limit = RateLimitConfig {
        requests_per_minute: Some(10_000_000),
        tokens_per_minute: Some(1_000_000_000),
        max_wait_secs: 1,
    };
    c.fallback = vec!["backup".into()];
    c
}

fn registry(
    configs: &BTreeMap<String, AgentConfig>,
    factory: Option<Arc<dyn Agent>>,
) -> AgentRegistry {
    let options = RegistryOptions {
        offline: OfflineMode::online(),
        assets_dir: "/nonexistent".into(),
        limiters: Some(Arc::new(LimiterRegistry::default())),
    };
    match factory {
        None => AgentRegistry::build(configs, options),
        Some(fake) => AgentRegistry::build_with(configs, options, move |_, _| Ok(fake.clone())),
    }
}

fn main() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let (rounds, per_round) = sizes();
        println!("troupe-adapters: resilience stack overhead per call ({rounds}×{per_round} calls, interleaved)");

        // In-process: the wrappers' own cost, nothing else.
        let fake: Arc<dyn Agent> = Arc::new(ScriptedAgent::new("primary").then_answer("Hello, world"));
        let configs = BTreeMap::from([
            ("primary".to_string(), stacked_config("http://127.0.0.1:1/v1")),
            ("backup".to_string(), stacked_config("http://127.0.0.1:1/v1")),
        ]);
        let reg = registry(&configs, Some(fake.clone()));
        compare("in-process fake agent", fake, reg.agent("primary").unwrap(), CallContext::new()).await;

        // Against an instant local HTTP server (OpenAI API), non-streaming and streaming.
        let server = MockServer::start(MockApi::OpenAi).await.unwrap();
        let base = format!("{}/v1", server.url());
        let configs = BTreeMap::from([
            ("primary".to_string(), stacked_config(&base)),
            ("backup".to_string(), stacked_config(&base)),
        ]);
        let reg = registry(&configs, None);
        let bare = reg.adapter("primary").unwrap();
        let stack = reg.agent("primary").unwrap();
        compare("local HTTP server, whole answer", bare.clone(), stack.clone(), CallContext::new()).await;
        let streaming = CallContext::new().with_chunks(ChunkSink::new(|c| {
            std::hint::black_box(c);
        }));
        compare("local HTTP server, streamed (SSE)", bare, stack, streaming).await;
    });
}
