//! Prompt tokens/s, decode tokens/s and first-token latency of each local model troupe knows
//! (`troupe_adapters::catalog`), served by the real llama.cpp server the way the built-in
//! local agents start it (`-c 8192 -np 1`, threads from the machine), measured through
//! troupe's own adapter stack. Results for docs/BENCHMARKS.md.
//!
//! `cargo bench -p troupe-adapters --bench local_models` (needs `scripts/setup.sh`; a few
//! minutes; benchmark an otherwise idle machine). Without `--bench` (as under
//! `cargo test --all-targets`) it does nothing: starting model servers is not a test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use troupe_adapters::catalog::llama_server;
use troupe_adapters::catalog::{MODELS, ModelSpec};
use troupe_adapters::config::{AgentConfig, AgentKind, machine_threads};
use troupe_adapters::registry::{AgentRegistry, RegistryOptions};
use troupe_adapters::resilience::OfflineMode;
use troupe_adapters::speed::{SpeedSample, measure};
use troupe_adapters::{AgentEvent, CallContext, EventSink};

const RUNS: usize = 3;

fn assets_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("TROUPE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join("assets");
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share/troupe/assets")
}

fn agent_for(model: &ModelSpec, port: u16) -> AgentConfig {
    let mut a = AgentConfig::new(AgentKind::Llamacpp);
    a.base_url = Some(format!("http://127.0.0.1:{port}/v1"));
    a.timeout_secs = 600;
    a.retry.max_attempts = 1;
    a.repeat_penalty = Some(1.1);
    let mut server = llama_server(model.file, 8192, 1);
    server.startup_timeout_secs = 180;
    a.server = Some(server);
    a
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// A prompt of roughly `lines` lines of code, made unique by `nonce` at its start so the
/// server's prompt cache cannot reuse an earlier run.
fn code_prompt(nonce: usize, lines: usize) -> String {
    let mut p = format!("Request {nonce}. Here is a Python module:\n\n```python\n");
    for i in 0..lines {
        p.push_str(&format!("def f{i}(x):\n    return x * {i} + {nonce}\n\n"));
    }
    p.push_str("```\n\nWrite one more function in the same style.");
    p
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let assets = assets_dir();
    let (t, tb) = machine_threads();
    println!(
        "machine: {} CPUs, threads -t {t} -tb {tb}; {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                .split(':')
                .nth(1)
                .unwrap_or("")
                .trim()
                .to_string()))
            .unwrap_or_default()
    );
    println!(
        "| model | load (s) | memory (MB) | prompt tokens/s (~600 tokens) | decode tokens/s | first token, short prompt (ms) | first token, long prompt (ms) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for model in MODELS.iter().rev() {
        if !model.path(&assets).exists() {
            println!("| {} | not installed | | | | | |", model.name);
            continue;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let configs = BTreeMap::from([("bench".to_string(), agent_for(model, port))]);
        let registry = AgentRegistry::build(
            &configs,
            RegistryOptions {
                offline: OfflineMode::offline("bench"),
                assets_dir: assets.clone(),
                limiters: None,
            },
        );
        let agent = registry.agent("bench").unwrap();
        let load_ms = Arc::new(Mutex::new(0u64));
        let l = load_ms.clone();
        let ctx = CallContext::new().with_events(EventSink::new(move |e| {
            if let AgentEvent::ServerReady { took_ms, .. } = e {
                *l.lock().unwrap() = *took_ms;
            }
        }));
        // Start and warm up.
        measure(agent.as_ref(), "Say hi.", 4, &ctx).await.unwrap();
        let (mut short_first, mut long_first, mut prompt_rate, mut decode_rate) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut prompt_tokens = 0;
        for run in 0..RUNS {
            let s: SpeedSample = measure(
                agent.as_ref(),
                &format!("Request {run}. Write a Python function that reverses a string."),
                96,
                &ctx,
            )
            .await
            .unwrap();
            short_first.push(s.first_token_ms);
            decode_rate.push(s.decode_tokens_per_sec());
            let l: SpeedSample =
                measure(agent.as_ref(), &code_prompt(run, 30), 8, &ctx).await.unwrap();
            long_first.push(l.first_token_ms);
            prompt_rate.push(l.prompt_tokens_per_sec());
            prompt_tokens = l.tokens.prompt;
        }
        let pid = registry.servers().next().unwrap().pid().await.unwrap();
        let mem = rss_mb(pid).unwrap_or(0.0);
        println!(
            "| {} | {:.1} | {:.0} | {:.0} ({} tokens) | {:.1} | {:.0} | {:.0} |",
            model.name,
            *load_ms.lock().unwrap() as f64 / 1000.0,
            mem,
            median(prompt_rate),
            prompt_tokens,
            median(decode_rate),
            median(short_first),
            median(long_first),
        );
        registry.shutdown().await;
    }
}
