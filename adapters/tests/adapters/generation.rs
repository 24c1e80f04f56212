//! Generation settings, context windows and token counts against a real HTTP server on
//! 127.0.0.1:0 speaking each API: the agent's configured settings reach the wire in each
//! endpoint's own field names, a request's explicit values win, and each kind of server is
//! asked its window (and tokenizer) the way it answers.

use serde_json::{Value, json};
use troupe_adapters::config::{AgentConfig, AgentKind};
use troupe_adapters::http::{OllamaAgent, OpenAiAgent};
use troupe_adapters::testing::{MockApi, MockServer};
use troupe_adapters::{Agent, AgentRequest, CallContext, GenerationOptions};

use crate::bounded;

fn configured(kind: AgentKind, server: &MockServer) -> AgentConfig {
    let mut c = AgentConfig::new(kind);
    c.base_url = Some(match kind {
        AgentKind::Ollama => server.url(),
        _ => format!("{}/v1", server.url()),
    });
    c.model = Some("mock-model".into());
    c.timeout_secs = 5;
    c.temperature = Some(0.3);
    c.top_p = Some(0.8);
    c.top_k = Some(30);
    c.min_p = Some(0.1);
    c.repeat_penalty = Some(1.2);
    c.max_tokens = Some(100);
    c.stop = vec!["STOP".into()];
    c.seed = Some(5);
    c
}

fn agent(kind: AgentKind, cfg: &AgentConfig) -> Box<dyn Agent> {
    match kind {
        AgentKind::Ollama => Box::new(OllamaAgent::new("gen", cfg).unwrap()),
        _ => Box::new(OpenAiAgent::new("gen", cfg).unwrap()),
    }
}

/// A request that sets temperature and max_tokens itself and leaves the rest to the agent.
fn request() -> AgentRequest {
    AgentRequest::prompt("hi").with_options(GenerationOptions {
        temperature: Some(0.0),
        max_tokens: Some(16),
        ..Default::default()
    })
}

async fn sent_body(kind: AgentKind, tweak: impl FnOnce(&mut AgentConfig)) -> Value {
    let api = if kind == AgentKind::Ollama { MockApi::Ollama } else { MockApi::OpenAi };
    let server = MockServer::start(api).await.unwrap();
    let mut cfg = configured(kind, &server);
    tweak(&mut cfg);
    bounded(10, agent(kind, &cfg).call(&request(), &CallContext::new())).await.unwrap();
    let posts: Vec<_> = server.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    posts[0].body.clone()
}

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|f| (f - want).abs() < 1e-6)
}

#[tokio::test]
async fn llama_cpp_gets_every_setting_in_its_own_names() {
    let b = sent_body(AgentKind::Llamacpp, |_| {}).await;
    // The request's own values win over the agent's.
    assert!(close(&b["temperature"], 0.0) && b["max_tokens"] == 16, "{b}");
    // The rest come from the agent's configuration.
    assert!(close(&b["top_p"], 0.8) && close(&b["min_p"], 0.1), "{b}");
    assert!(close(&b["repeat_penalty"], 1.2) && b["top_k"] == 30, "{b}");
    assert_eq!(b["stop"], json!(["STOP"]));
    assert_eq!(b["seed"], 5);
    assert_eq!(b["cache_prompt"], true, "the prompt cache is asked for");
}

#[tokio::test]
async fn openai_servers_get_only_openai_fields() {
    let b = sent_body(AgentKind::Openai, |_| {}).await;
    assert!(close(&b["temperature"], 0.0) && b["max_tokens"] == 16, "{b}");
    assert!(close(&b["top_p"], 0.8) && b["seed"] == 5 && b["stop"] == json!(["STOP"]), "{b}");
    for field in ["top_k", "min_p", "repeat_penalty", "cache_prompt", "options"] {
        assert!(b.get(field).is_none(), "{field} sent to an OpenAI server: {b}");
    }
}

#[tokio::test]
async fn ollama_gets_its_options_object() {
    let b = sent_body(AgentKind::Ollama, |c| c.context_tokens = Some(2048)).await;
    let o = &b["options"];
    assert!(close(&o["temperature"], 0.0) && o["num_predict"] == 16, "{b}");
    assert!(close(&o["top_p"], 0.8) && o["top_k"] == 30 && close(&o["min_p"], 0.1), "{b}");
    assert!(close(&o["repeat_penalty"], 1.2) && o["seed"] == 5, "{b}");
    assert_eq!(o["stop"], json!(["STOP"]));
    assert_eq!(o["num_ctx"], 2048);
    assert!(b.get("max_tokens").is_none() && b.get("temperature").is_none(), "{b}");
}

#[tokio::test]
async fn an_agent_without_settings_sends_none() {
    let server = MockServer::start(MockApi::OpenAi).await.unwrap();
    let mut cfg = AgentConfig::new(AgentKind::Openai);
    cfg.base_url = Some(format!("{}/v1", server.url()));
    cfg.model = Some("mock-model".into());
    let a = OpenAiAgent::new("plain", &cfg).unwrap();
    bounded(10, a.call(&AgentRequest::prompt("hi"), &CallContext::new())).await.unwrap();
    let b = &server.requests()[0].body;
    for field in ["temperature", "top_p", "max_tokens", "stop", "seed"] {
        assert!(b.get(field).is_none(), "{field} sent though nobody set it: {b}");
    }
}

#[tokio::test]
async fn context_windows_come_from_each_server_and_are_cached() {
    let ctx = CallContext::new();
    // llama.cpp: /props.
    let server = MockServer::start(MockApi::OpenAi).await.unwrap();
    let a = agent(AgentKind::Llamacpp, &configured(AgentKind::Llamacpp, &server));
    assert_eq!(bounded(10, a.context_window(&ctx)).await, Some(4096));
    assert_eq!(bounded(10, a.context_window(&ctx)).await, Some(4096));
    let asked: Vec<_> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(asked, ["/props"], "asked once, then cached");

    // OpenAI-compatible: the model list's metadata.
    let server = MockServer::start(MockApi::OpenAi).await.unwrap();
    let a = agent(AgentKind::Openai, &configured(AgentKind::Openai, &server));
    assert_eq!(bounded(10, a.context_window(&ctx)).await, Some(32768));
    assert_eq!(server.requests()[0].path, "/v1/models");

    // Ollama: /api/show.
    let server = MockServer::start(MockApi::Ollama).await.unwrap();
    let a = agent(AgentKind::Ollama, &configured(AgentKind::Ollama, &server));
    assert_eq!(bounded(10, a.context_window(&ctx)).await, Some(8192));
    assert_eq!(server.requests()[0].path, "/api/show");

    // Configured: the server is not asked at all.
    let server = MockServer::start(MockApi::OpenAi).await.unwrap();
    let mut cfg = configured(AgentKind::Llamacpp, &server);
    cfg.context_tokens = Some(1000);
    let a = agent(AgentKind::Llamacpp, &cfg);
    assert_eq!(bounded(10, a.context_window(&ctx)).await, Some(1000));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn an_unreachable_server_has_no_known_window_until_it_answers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cfg = AgentConfig::new(AgentKind::Llamacpp);
    cfg.base_url = Some(format!("http://127.0.0.1:{port}/v1"));
    cfg.connect_timeout_secs = 1;
    let a = OpenAiAgent::new("down", &cfg).unwrap();
    let ctx = CallContext::new();
    assert_eq!(bounded(10, a.context_window(&ctx)).await, None);
    assert_eq!(bounded(10, a.count_tokens("a b c", &ctx)).await, None);
}

#[tokio::test]
async fn tokens_are_counted_by_llama_cpp_only() {
    let ctx = CallContext::new();
    let server = MockServer::start(MockApi::OpenAi).await.unwrap();
    let a = agent(AgentKind::Llamacpp, &configured(AgentKind::Llamacpp, &server));
    assert_eq!(bounded(10, a.count_tokens("one two three four", &ctx)).await, Some(4));
    let r = &server.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/tokenize"));
    assert_eq!(r.body["content"], "one two three four");

    let server = MockServer::start(MockApi::OpenAi).await.unwrap();
    let a = agent(AgentKind::Openai, &configured(AgentKind::Openai, &server));
    assert_eq!(bounded(10, a.count_tokens("one two", &ctx)).await, None);
    assert!(server.requests().is_empty(), "an OpenAI server has no /tokenize");
}

#[tokio::test]
async fn the_whole_stack_forwards_window_and_count() {
    use std::collections::BTreeMap;
    use troupe_adapters::registry::{AgentRegistry, RegistryOptions};
    use troupe_adapters::resilience::OfflineMode;

    let server = MockServer::start(MockApi::OpenAi).await.unwrap();
    let configs = BTreeMap::from([("local".to_string(), configured(AgentKind::Llamacpp, &server))]);
    let registry = AgentRegistry::build(
        &configs,
        RegistryOptions { offline: OfflineMode::resolve(true), ..Default::default() },
    );
    let a = registry.agent("local").unwrap();
    let ctx = CallContext::new();
    assert_eq!(bounded(10, a.context_window(&ctx)).await, Some(4096));
    assert_eq!(bounded(10, a.count_tokens("a b", &ctx)).await, Some(2));
}
