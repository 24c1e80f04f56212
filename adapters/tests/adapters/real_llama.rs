//! The real llama.cpp server and model that `scripts/setup.sh --assets-only` installs,
//! started the way the built-in `local-code` agent starts it: chat, streaming, JSON-schema
//! output, context overflow, restart after a crash, stop on shutdown.
//!
//! Missing assets fail the test (with what to run), never skip it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use troupe_adapters::catalog::llama_server;
use troupe_adapters::config::{AgentConfig, AgentKind, ManagedServerConfig};
use troupe_adapters::registry::{AgentRegistry, RegistryOptions};
use troupe_adapters::resilience::OfflineMode;
use troupe_adapters::{
    AdapterError, AgentEvent, AgentRequest, CallContext, GenerationOptions, OutputFormat,
};

use crate::{Captured, bounded};

/// `$TROUPE_HOME/assets`, else `$XDG_DATA_HOME/troupe/assets`, else
/// `~/.local/share/troupe/assets` (what `scripts/setup.sh` uses).
fn assets_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("TROUPE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join("assets");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share")
        });
    data.join("troupe/assets")
}

fn require_assets() -> PathBuf {
    let assets = assets_dir();
    for needed in ["llama/llama-server", "models/SmolLM2-135M-Instruct.Q4_1.gguf"] {
        let p = assets.join(needed);
        assert!(
            p.exists(),
            "{} is missing: install the offline assets with `scripts/setup.sh --assets-only` \
             (scripts/test.sh does it first)",
            p.display()
        );
    }
    assets
}

/// The agents `configs` offline, with their servers from `assets`.
fn offline_registry(configs: &BTreeMap<String, AgentConfig>, assets: PathBuf) -> AgentRegistry {
    let options = RegistryOptions {
        offline: OfflineMode::offline("test"),
        assets_dir: assets,
        limiters: None,
    };
    AgentRegistry::build(configs, options)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The built-in `local-code` agent's configuration, on another port.
fn local_agent(port: u16) -> AgentConfig {
    let mut a = AgentConfig::new(AgentKind::Llamacpp);
    a.base_url = Some(format!("http://127.0.0.1:{port}/v1"));
    a.model = Some("SmolLM2-135M-Instruct".into());
    a.timeout_secs = 120;
    // One decode and two prompt threads, whatever the machine.
    let mut server = llama_server("SmolLM2-135M-Instruct.Q4_1.gguf", 4096, 2);
    server.threads = Some(1);
    server.batch_threads = Some(2);
    server.startup_timeout_secs = 90;
    a.server = Some(server);
    a
}

fn opts(max_tokens: u32) -> GenerationOptions {
    GenerationOptions { temperature: Some(0.0), max_tokens: Some(max_tokens), ..Default::default() }
}

fn process_alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && stat.rsplit_once(") ").is_some_and(|(_, r)| !r.starts_with('Z'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_llama_server_chats_streams_and_follows_schemas() {
    let assets = require_assets();
    let port = free_port();
    let configs = BTreeMap::from([
        ("local-code".to_string(), local_agent(port)),
        ("local-instruct".to_string(), local_agent(port)),
    ]);
    let registry = AgentRegistry::build(
        &configs,
        RegistryOptions {
            offline: OfflineMode::offline("--offline"),
            assets_dir: assets,
            limiters: None,
        },
    );
    assert_eq!(registry.servers().count(), 1, "two agents on one address share one server");
    let server = registry.servers().next().unwrap().clone();

    // Chat: the first call starts the server.
    let cap = Captured::default();
    let agent = registry.agent("local-code").unwrap();
    let req = AgentRequest::prompt("Say hello in one short sentence.").with_options(opts(24));
    let r = bounded(180, agent.call(&req, &cap.events_only())).await.unwrap();
    assert!(!r.text.trim().is_empty(), "an answer: {r:?}");
    assert!(!r.usage_estimated && r.usage.prompt > 0 && r.usage.completion > 0, "{r:?}");
    assert_eq!(r.agent, "local-code");
    let events = cap.events();
    assert!(
        events.iter().any(|e| matches!(e, AgentEvent::ServerStarting { restart: false, .. })),
        "{events:?}"
    );
    assert!(events.iter().any(|e| matches!(e, AgentEvent::ServerReady { .. })), "{events:?}");
    let pid = server.pid().await.expect("troupe started the server");

    // Streaming through the other agent: same server, chunks as they come.
    let cap = Captured::default();
    let other = registry.agent("local-instruct").unwrap();
    let req = AgentRequest::prompt("Count from 1 to 10.").with_options(opts(40));
    let r = bounded(120, other.call(&req, &cap.context())).await.unwrap();
    assert!(cap.chunks().len() > 1, "streamed in pieces: {:?}", cap.chunks());
    assert_eq!(cap.chunks().concat(), r.text);
    assert!(!r.usage_estimated, "usage arrives in the stream");
    assert!(!cap.events().iter().any(|e| matches!(e, AgentEvent::ServerStarting { .. })));
    assert_eq!(server.pid().await, Some(pid));

    // JSON-schema output is enforced by the server.
    let schema = json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"]
    });
    let mut options = opts(60);
    options.output = OutputFormat::JsonSchema { name: "person".into(), schema };
    let req = AgentRequest::prompt("Invent a person. Reply in JSON.").with_options(options);
    let r = bounded(120, agent.call(&req, &CallContext::new())).await.unwrap();
    let v: Value =
        serde_json::from_str(&r.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text));
    assert!(v["name"].is_string() && v["age"].is_i64(), "schema not followed: {v}");

    // A prompt beyond the context window.
    let huge = "word ".repeat(12_000);
    let e = bounded(
        120,
        agent.call(&AgentRequest::prompt(huge).with_options(opts(8)), &CallContext::new()),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, AdapterError::ContextTooLong { .. }), "{e}");

    // The server dies: the next call starts it again.
    kill(Pid::from_raw(i32::try_from(pid).unwrap()), Signal::SIGKILL).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cap = Captured::default();
    let r = bounded(
        180,
        agent.call(&AgentRequest::prompt("Hi").with_options(opts(8)), &cap.events_only()),
    )
    .await
    .unwrap();
    assert!(!r.text.is_empty());
    assert!(
        cap.events().iter().any(|e| matches!(e, AgentEvent::ServerStarting { restart: true, .. }))
    );
    assert_eq!(server.starts().await, 2);
    let new_pid = server.pid().await.unwrap();
    assert_ne!(new_pid, pid);

    // Shutdown stops it.
    registry.shutdown().await;
    assert!(!process_alive(new_pid), "the server outlived shutdown");
}

/// The generation settings of an agent's configuration reach the real server (max_tokens
/// cuts the answer, a seed makes sampling repeatable), and the server says its window and
/// counts tokens with the model's own tokenizer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_server_takes_generation_settings_and_counts_tokens() {
    let assets = require_assets();
    let port = free_port();
    let mut cfg = local_agent(port);
    if let Some(s) = cfg.server.as_mut() {
        // The machine picks the threads, as the built-in agents do.
        (s.threads, s.batch_threads) = (None, None);
    }
    cfg.max_tokens = Some(5);
    cfg.temperature = Some(1.0);
    cfg.seed = Some(42);
    cfg.repeat_penalty = Some(1.1);
    let configs = BTreeMap::from([("smol".to_string(), cfg)]);
    let registry = offline_registry(&configs, assets);
    let agent = registry.agent("smol").unwrap();
    let ctx = CallContext::new();

    // The window of one slot: -c 4096 shared by -np 2.
    assert_eq!(bounded(180, agent.context_window(&ctx)).await, Some(2048));
    let short = bounded(30, agent.count_tokens("Hello", &ctx)).await.unwrap();
    let long = bounded(30, agent.count_tokens(&" word".repeat(100), &ctx)).await.unwrap();
    assert!((1..=3).contains(&short), "{short}");
    assert!((95..=105).contains(&long), "100 repetitions of ' word' are {long} tokens");

    // max_tokens from the agent's configuration (the request sets nothing).
    let req = AgentRequest::prompt("Write a long story about a dragon.");
    let a = bounded(120, agent.call(&req, &ctx)).await.unwrap();
    assert!(a.usage.completion <= 5, "{a:?}");
    assert_eq!(a.finish_reason.as_deref(), Some("length"), "{a:?}");
    // A seed makes temperature-1 sampling repeatable; another seed (set by the request)
    // changes it.
    let b = bounded(120, agent.call(&req, &ctx)).await.unwrap();
    assert_eq!(a.text, b.text, "same seed, same answer");
    let mut texts = std::collections::BTreeSet::new();
    for seed in [1, 2, 3] {
        let r =
            req.clone().with_options(GenerationOptions { seed: Some(seed), ..Default::default() });
        texts.insert(bounded(120, agent.call(&r, &ctx)).await.unwrap().text);
    }
    texts.insert(a.text.clone());
    assert!(texts.len() >= 2, "the seed reached the server: {texts:?}");
    registry.shutdown().await;
}

/// The 0.5B coder (a test asset) started like the built-in `local-fast`: its 8192-token
/// window, and a correct answer to the task the issue's done-when names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_small_coder_writes_a_string_reversal() {
    let assets = require_assets();
    let model = troupe_adapters::catalog::find("qwen2.5-coder-0.5b").unwrap();
    assert!(
        model.path(&assets).exists(),
        "{} is missing: run `scripts/setup.sh --assets-only`",
        model.path(&assets).display()
    );
    let port = free_port();
    let mut cfg = local_agent(port);
    cfg.model = Some("qwen2.5-coder-0.5b".into());
    cfg.temperature = Some(0.0);
    cfg.repeat_penalty = Some(1.1);
    cfg.max_tokens = Some(400);
    if let Some(s) = cfg.server.as_mut() {
        // The built-in local-fast's server: its whole 8192-token window in one slot.
        *s = ManagedServerConfig { startup_timeout_secs: 90, ..llama_server(model.file, 8192, 1) };
    }
    // Another model beside it, as local-code and local-fast run: two servers, both warm.
    let configs =
        BTreeMap::from([("fast".to_string(), cfg), ("smol".to_string(), local_agent(free_port()))]);
    let registry = offline_registry(&configs, assets);
    assert_eq!(registry.servers().count(), 2, "one server per model");
    let agent = registry.agent("fast").unwrap();
    let ctx = CallContext::new();
    assert_eq!(bounded(180, agent.context_window(&ctx)).await, Some(8192));
    let smol = registry.agent("smol").unwrap();
    assert_eq!(bounded(180, smol.context_window(&ctx)).await, Some(2048));
    let req = AgentRequest::prompt(
        "Write a Python function `reverse_string(s)` that returns the string s reversed. \
         Answer with the code only.",
    );
    let r = bounded(300, agent.call(&req, &ctx)).await.unwrap();
    // Judged by running it, not by reading it.
    let code = match r.text.split("```").nth(1) {
        Some(block) => block.trim_start_matches("python").to_string(),
        None => r.text.clone(),
    };
    let check =
        format!("{code}\nassert reverse_string('abc') == 'cba'\nassert reverse_string('') == ''\n");
    let out = std::process::Command::new("python3").args(["-c", &check]).output().unwrap();
    assert!(
        out.status.success(),
        "the answer does not work:\n{}\n{}",
        r.text,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pids = Vec::new();
    for server in registry.servers() {
        pids.push(server.pid().await.expect("both servers still run"));
    }
    assert!(pids.iter().all(|p| process_alive(*p)), "{pids:?}");
    registry.shutdown().await;
    assert!(!pids.iter().any(|p| process_alive(*p)), "a server outlived shutdown");
}
