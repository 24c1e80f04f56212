//! One conformance suite, run against every HTTP adapter: OpenAI-compatible, llama.cpp,
//! Ollama chat and Ollama generate. Each runs against a real HTTP server on 127.0.0.1:0
//! speaking its API, streaming included, with injected faults. Every call must end in a
//! response or a classified error within its time bound.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use troupe_adapters::config::{AgentConfig, AgentKind};
use troupe_adapters::http::{OllamaAgent, OllamaMode, OpenAiAgent};
use troupe_adapters::testing::{Fault, MockApi, MockServer};
use troupe_adapters::{
    AdapterError, Agent, AgentRequest, CallContext, GenerationOptions, OutputFormat,
};

use crate::{Captured, bounded};

/// An HTTP adapter under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    OpenAi,
    LlamaCpp,
    OllamaChat,
    OllamaGenerate,
}

impl Target {
    fn api(self) -> MockApi {
        match self {
            Target::OpenAi | Target::LlamaCpp => MockApi::OpenAi,
            Target::OllamaChat | Target::OllamaGenerate => MockApi::Ollama,
        }
    }

    fn config(self, server: &MockServer) -> AgentConfig {
        let (kind, base) = match self {
            Target::OpenAi => (AgentKind::Openai, format!("{}/v1", server.url())),
            Target::LlamaCpp => (AgentKind::Llamacpp, format!("{}/v1", server.url())),
            _ => (AgentKind::Ollama, server.url()),
        };
        let mut c = AgentConfig::new(kind);
        c.base_url = Some(base);
        c.model = Some("mock-model".into());
        c.timeout_secs = 3;
        c.connect_timeout_secs = 1;
        c
    }

    fn build(self, cfg: &AgentConfig) -> Result<Arc<dyn Agent>, AdapterError> {
        Ok(match self {
            Target::OpenAi | Target::LlamaCpp => Arc::new(OpenAiAgent::new("under-test", cfg)?),
            Target::OllamaChat => Arc::new(OllamaAgent::new("under-test", cfg)?),
            Target::OllamaGenerate => {
                Arc::new(OllamaAgent::new("under-test", cfg)?.with_mode(OllamaMode::Generate))
            }
        })
    }

    fn is_ollama(self) -> bool {
        self.api() == MockApi::Ollama
    }
}

/// A server for `t` and an adapter pointed at it, configured by `tweak`.
async fn setup(t: Target, tweak: impl FnOnce(&mut AgentConfig)) -> (MockServer, Arc<dyn Agent>) {
    let server = MockServer::start(t.api()).await.unwrap();
    let mut cfg = t.config(&server);
    tweak(&mut cfg);
    let agent = t.build(&cfg).unwrap();
    (server, agent)
}

fn request() -> AgentRequest {
    AgentRequest::prompt("Say hello").with_system("Be brief").with_options(GenerationOptions {
        temperature: Some(0.0),
        max_tokens: Some(16),
        stop: vec!["\n\n".into()],
        output: OutputFormat::Text,
        ..Default::default()
    })
}

/// The body of the one prompt request the server got.
fn prompt_body(server: &MockServer) -> Value {
    let reqs: Vec<_> = server.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(reqs.len(), 1, "expected one prompt request, got {reqs:?}");
    reqs[0].body.clone()
}

async fn call(
    agent: &Arc<dyn Agent>,
    ctx: &CallContext,
) -> Result<troupe_adapters::AgentResponse, AdapterError> {
    bounded(10, agent.call(&request(), ctx)).await
}

pub async fn answers_with_text_usage_and_model(t: Target) {
    let (server, agent) = setup(t, |_| {}).await;
    let r = call(&agent, &CallContext::new()).await.unwrap();
    assert_eq!(r.text, "Hello, world");
    assert_eq!(r.agent, "under-test");
    assert_eq!(r.model.as_deref(), Some("mock-model"));
    assert!(!r.usage_estimated);
    assert_eq!(r.usage.prompt, 11);
    assert!(r.usage.completion > 0);
    assert_eq!(r.attempts, 1);
    assert!(!r.fallback_used());

    // What went over the wire.
    let body = prompt_body(&server);
    assert_eq!(body["model"], "mock-model");
    // Streamed on the wire even when the caller does not listen, so the idle bound covers it.
    assert_eq!(body["stream"], true);
    if t == Target::OllamaGenerate {
        assert_eq!(body["system"], "Be brief");
        assert_eq!(body["prompt"], "Say hello");
    } else {
        assert_eq!(
            body["messages"],
            json!([{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Say hello"}])
        );
    }
    if t.is_ollama() {
        assert_eq!(
            body["options"],
            json!({"temperature": 0.0, "num_predict": 16, "stop": ["\n\n"]})
        );
    } else {
        assert_eq!(body["temperature"], 0.0);
        assert_eq!(body["max_tokens"], 16);
        assert_eq!(body["stop"], json!(["\n\n"]));
        assert!(body.get("response_format").is_none());
    }
}

pub async fn streams_chunks_as_they_arrive(t: Target) {
    let (server, agent) = setup(t, |_| {}).await;
    server.set_answer(&["Hel", "lo", " wor", "ld", "!"]);
    let cap = Captured::default();
    let r = call(&agent, &cap.context()).await.unwrap();
    assert_eq!(cap.chunks(), ["Hel", "lo", " wor", "ld", "!"]);
    assert_eq!(r.text, "Hello world!");
    assert!(!r.usage_estimated, "usage must come from the stream");
    assert_eq!(r.usage.prompt, 11);
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    let body = prompt_body(&server);
    assert_eq!(body["stream"], true);
    if !t.is_ollama() {
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
    }
}

pub async fn asks_for_json_and_json_schema(t: Target) {
    let schema = json!({"type": "object", "properties": {"verdict": {"type": "string"}}, "required": ["verdict"]});
    let (server, agent) = setup(t, |_| {}).await;
    let mut req = request();
    req.options.output = OutputFormat::JsonSchema { name: "review".into(), schema: schema.clone() };
    bounded(10, agent.call(&req, &CallContext::new())).await.unwrap();
    req.options.output = OutputFormat::Json;
    bounded(10, agent.call(&req, &CallContext::new())).await.unwrap();
    let posts: Vec<Value> =
        server.requests().into_iter().filter(|r| r.method == "POST").map(|r| r.body).collect();
    if t.is_ollama() {
        assert_eq!(posts[0]["format"], schema);
        assert_eq!(posts[1]["format"], "json");
    } else {
        assert_eq!(
            posts[0]["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "review", "schema": schema, "strict": true}})
        );
        assert_eq!(posts[1]["response_format"], json!({"type": "json_object"}));
    }
}

pub async fn rate_limits_carry_retry_after(t: Target) {
    let (server, agent) = setup(t, |_| {}).await;
    server.push_fault(Fault::rate_limited("2"));
    let e = call(&agent, &CallContext::new()).await.unwrap_err();
    assert!(matches!(e, AdapterError::RateLimited { .. }), "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
    // An HTTP-date in the past means: now.
    server.push_fault(Fault::rate_limited("Wed, 21 Oct 2015 07:28:00 GMT"));
    let e = call(&agent, &Captured::default().context()).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::ZERO), "{e}");
}

pub async fn server_errors_are_transient(t: Target) {
    let (server, agent) = setup(t, |_| {}).await;
    for status in [500, 502, 503] {
        server.push_fault(Fault::status(status, "upstream trouble"));
        let e = call(&agent, &CallContext::new()).await.unwrap_err();
        assert!(matches!(e, AdapterError::Transient { .. }), "{status}: {e}");
        assert!(e.to_string().contains(&status.to_string()), "{e}");
    }
}

pub async fn client_errors_are_classified(t: Target) {
    let (server, agent) = setup(t, |_| {}).await;
    server.push_fault(Fault::context_overflow());
    let e = call(&agent, &CallContext::new()).await.unwrap_err();
    assert!(matches!(e, AdapterError::ContextTooLong { .. }), "{e}");
    server.push_fault(Fault::status(401, "bad key"));
    assert!(matches!(call(&agent, &CallContext::new()).await, Err(AdapterError::Auth { .. })));
    server.push_fault(Fault::status(403, "forbidden"));
    assert!(matches!(call(&agent, &CallContext::new()).await, Err(AdapterError::Auth { .. })));
    server.push_fault(Fault::status(404, "no such model"));
    assert!(matches!(call(&agent, &CallContext::new()).await, Err(AdapterError::NotFound { .. })));
    server.push_fault(Fault::status(400, "temperature must be positive"));
    let e = call(&agent, &CallContext::new()).await.unwrap_err();
    assert!(matches!(e, AdapterError::InvalidRequest { .. }), "{e}");
    assert!(!e.is_transient());
}

pub async fn connection_resets_are_transient(t: Target) {
    let (server, agent) = setup(t, |_| {}).await;
    server.push_fault(Fault::Reset);
    let e = call(&agent, &CallContext::new()).await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    server.push_fault(Fault::Reset);
    let e = call(&agent, &Captured::default().context()).await.unwrap_err();
    assert!(e.is_transient(), "{e}");
}

pub async fn refused_connections_say_start_the_server(t: Target) {
    let (server, agent) = setup(t, |_| {}).await;
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = call(&agent, &CallContext::new()).await.unwrap_err();
    assert!(matches!(e, AdapterError::Transient { .. }), "{e}");
    assert!(e.to_string().contains("is the server running"), "{e}");
}

pub async fn a_hanging_server_times_out(t: Target) {
    let (server, agent) = setup(t, |c| {
        c.timeout_secs = 2;
        c.first_byte_timeout_secs = Some(1);
    })
    .await;
    server.push_fault(Fault::Hang);
    let e = call(&agent, &CallContext::new()).await.unwrap_err();
    assert!(matches!(e, AdapterError::Timeout { phase: "first byte", .. }), "{e}");
    // Headers, then no chunk: the first-byte bound covers the first chunk of a stream.
    server.push_fault(Fault::HangAfterHeaders);
    let e = call(&agent, &Captured::default().context()).await.unwrap_err();
    assert!(matches!(e, AdapterError::Timeout { phase: "first byte", .. }), "{e}");
    assert!(e.is_transient());
    // Without a first-byte bound, the total bound ends it.
    let (server, agent) = setup(t, |c| c.timeout_secs = 1).await;
    server.push_fault(Fault::HangAfterHeaders);
    let e = call(&agent, &Captured::default().context()).await.unwrap_err();
    assert!(matches!(e, AdapterError::Timeout { phase: "total", .. }), "{e}");
}

pub async fn malformed_json_is_a_bad_response(t: Target) {
    let (server, agent) = setup(t, |_| {}).await;
    server.push_fault(Fault::Malformed);
    let e = call(&agent, &CallContext::new()).await.unwrap_err();
    assert!(matches!(e, AdapterError::BadResponse { .. }), "{e}");
    server.push_fault(Fault::Malformed);
    let e = call(&agent, &Captured::default().context()).await.unwrap_err();
    assert!(matches!(e, AdapterError::BadResponse { .. }), "{e}");
}

pub async fn empty_choices_are_a_bad_response(t: Target) {
    let (server, agent) = setup(t, |_| {}).await;
    server.push_fault(Fault::EmptyChoices);
    let e = call(&agent, &CallContext::new()).await.unwrap_err();
    assert!(matches!(e, AdapterError::BadResponse { .. }), "{e}");
    server.push_fault(Fault::EmptyChoices);
    let e = call(&agent, &Captured::default().context()).await.unwrap_err();
    assert!(e.is_transient(), "{e}");
}

pub async fn empty_answers_are_a_bad_response(t: Target) {
    let (server, agent) = setup(t, |_| {}).await;
    for ctx in [CallContext::new(), Captured::default().context()] {
        server.push_fault(Fault::EmptyAnswer);
        let e = call(&agent, &ctx).await.unwrap_err();
        assert!(matches!(e, AdapterError::BadResponse { .. }), "{e}");
        assert!(e.to_string().contains("empty"), "{e}");
        assert!(e.falls_back(), "{e}");
    }
}

/// Every time bound with its default values, under a paused clock (the mock server's own
/// sleeps run on the same virtual clock): each fault ends in a timeout naming its bound,
/// no later than that bound.
pub async fn each_timeout_class_fires_within_its_bound(t: Target) {
    let (server, agent) = setup(t, |c| {
        let d = AgentConfig::new(c.kind);
        c.timeout_secs = d.timeout_secs;
        c.connect_timeout_secs = d.connect_timeout_secs;
    })
    .await;
    use troupe_adapters::http::{DEFAULT_LOCAL_FIRST_BYTE, LOCAL_PROMPT_TOKENS_PER_SEC};
    let local_reading =
        Duration::from_secs(1) / LOCAL_PROMPT_TOKENS_PER_SEC * request().estimated_tokens() as u32;
    let first = DEFAULT_LOCAL_FIRST_BYTE + local_reading;
    let idle = Duration::from_secs(30);
    let cases = [
        (Fault::Hang, "first byte", first),
        (Fault::HangAfterHeaders, "first byte", first),
        (Fault::StallMidStream, "idle", idle),
        (Fault::Trickle(Duration::from_secs(31)), "idle", idle),
    ];
    for (fault, phase, bound) in cases {
        for ctx in [CallContext::new(), Captured::default().context()] {
            server.push_fault(fault.clone());
            let started = tokio::time::Instant::now();
            let e = agent.call(&request(), &ctx).await.unwrap_err();
            let took = started.elapsed();
            match &e {
                AdapterError::Timeout { phase: p, after, endpoint, .. } => {
                    assert_eq!(*p, phase, "{fault:?}: {e}");
                    assert_eq!(*after, bound, "{fault:?}: {e}");
                    assert!(endpoint.starts_with(&server.url()), "{e}");
                }
                other => panic!("{fault:?}: expected a {phase} timeout, got {other}"),
            }
            assert!(took <= bound + Duration::from_secs(1), "{fault:?} took {took:?}");
            assert!(e.is_transient());
        }
    }
    // A trickle just inside the idle bound is a slow answer, not a failure.
    server.push_fault(Fault::Trickle(Duration::from_secs(29)));
    let r = agent.call(&request(), &CallContext::new()).await.unwrap();
    assert_eq!(r.text, "Hello, world");

    // A local server reading the prompt sends only keep-alive comments, further apart than
    // the idle bound: the first-byte bound still covers the reading (the comments do not end
    // it), and still ends a reading that takes longer than it.
    let keep_alive = idle + Duration::from_secs(1);
    server
        .push_fault(Fault::SlowPrompt { keep_alive, first_token: first - Duration::from_secs(1) });
    let r = agent.call(&request(), &Captured::default().context()).await.unwrap();
    assert_eq!(r.text, "Hello, world");
    server.push_fault(Fault::SlowPrompt { keep_alive, first_token: first * 2 });
    let started = tokio::time::Instant::now();
    let e = agent.call(&request(), &Captured::default().context()).await.unwrap_err();
    assert!(matches!(e, AdapterError::Timeout { phase: "first byte", .. }), "{e}");
    assert!(started.elapsed() <= first + Duration::from_secs(1), "{e}");
}

pub async fn a_stream_cut_midway_is_transient(t: Target) {
    let (server, agent) = setup(t, |_| {}).await;
    server.push_fault(Fault::CutStream);
    let cap = Captured::default();
    let e = call(&agent, &cap.context()).await.unwrap_err();
    assert!(matches!(e, AdapterError::Transient { .. }), "{e}");
    assert_eq!(cap.chunks(), ["Hello"], "what arrived before the cut was streamed");
    server.push_fault(Fault::CutStream);
    let e = call(&agent, &CallContext::new()).await.unwrap_err();
    assert!(e.is_transient(), "{e}");
}

pub async fn cancellation_ends_the_call(t: Target) {
    let (server, agent) = setup(t, |c| c.timeout_secs = 60).await;
    server.push_fault(Fault::Hang);
    let token = CancellationToken::new();
    let ctx = CallContext::new().with_cancel(token.clone());
    let cancel = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        token.cancel();
    });
    let e = bounded(5, agent.call(&request(), &ctx)).await.unwrap_err();
    assert!(matches!(e, AdapterError::Cancelled { .. }), "{e}");
    cancel.await.unwrap();
}

pub async fn connections_are_pooled(t: Target) {
    let (server, agent) = setup(t, |_| {}).await;
    for _ in 0..3 {
        call(&agent, &CallContext::new()).await.unwrap();
    }
    call(&agent, &Captured::default().context()).await.unwrap();
    assert_eq!(server.connections(), 1, "one kept-alive connection for all calls");
}

pub async fn the_api_key_is_sent_and_never_shown(t: Target) {
    // HOME is set in every environment this runs in; its value stands in for a key.
    let key = std::env::var("HOME").unwrap();
    let (server, agent) = setup(t, |c| c.api_key_env = Some("HOME".into())).await;
    call(&agent, &CallContext::new()).await.unwrap();
    let auth = server.requests()[0].header("authorization").map(str::to_string);
    assert_eq!(auth, Some(format!("Bearer {key}")));
    assert!(!format!("{agent:?}").contains(&format!("\"{key}\"")), "Debug must redact the key");

    let (server, agent) =
        setup(t, |c| c.api_key_env = Some("TROUPE_TEST_SURELY_UNSET_KEY".into())).await;
    let e = call(&agent, &CallContext::new()).await.unwrap_err();
    assert!(matches!(e, AdapterError::Auth { .. }), "{e}");
    assert!(e.to_string().contains("$TROUPE_TEST_SURELY_UNSET_KEY"), "{e}");
    assert!(server.requests().is_empty(), "nothing is sent without the key");
}

macro_rules! conformance {
    ($($module:ident => $target:expr),* $(,)?) => {$(
        mod $module {
            use super::*;
            const T: Target = $target;
            #[tokio::test] async fn answers_with_text_usage_and_model() { super::answers_with_text_usage_and_model(T).await }
            #[tokio::test] async fn streams_chunks_as_they_arrive() { super::streams_chunks_as_they_arrive(T).await }
            #[tokio::test] async fn asks_for_json_and_json_schema() { super::asks_for_json_and_json_schema(T).await }
            #[tokio::test] async fn rate_limits_carry_retry_after() { super::rate_limits_carry_retry_after(T).await }
            #[tokio::test] async fn server_errors_are_transient() { super::server_errors_are_transient(T).await }
            #[tokio::test] async fn client_errors_are_classified() { super::client_errors_are_classified(T).await }
            #[tokio::test] async fn connection_resets_are_transient() { super::connection_resets_are_transient(T).await }
            #[tokio::test] async fn refused_connections_say_start_the_server() { super::refused_connections_say_start_the_server(T).await }
            #[tokio::test] async fn a_hanging_server_times_out() { super::a_hanging_server_times_out(T).await }
            #[tokio::test] async fn malformed_json_is_a_bad_response() { super::malformed_json_is_a_bad_response(T).await }
            #[tokio::test] async fn empty_choices_are_a_bad_response() { super::empty_choices_are_a_bad_response(T).await }
            #[tokio::test] async fn empty_answers_are_a_bad_response() { super::empty_answers_are_a_bad_response(T).await }
            #[tokio::test(start_paused = true)] async fn each_timeout_class_fires_within_its_bound() { super::each_timeout_class_fires_within_its_bound(T).await }
            #[tokio::test] async fn a_stream_cut_midway_is_transient() { super::a_stream_cut_midway_is_transient(T).await }
            #[tokio::test] async fn cancellation_ends_the_call() { super::cancellation_ends_the_call(T).await }
            #[tokio::test] async fn connections_are_pooled() { super::connections_are_pooled(T).await }
            #[tokio::test] async fn the_api_key_is_sent_and_never_shown() { super::the_api_key_is_sent_and_never_shown(T).await }
        }
    )*};
}

conformance! {
    openai => Target::OpenAi,
    llamacpp => Target::LlamaCpp,
    ollama_chat => Target::OllamaChat,
    ollama_generate => Target::OllamaGenerate,
}

// What only some servers offer.

#[tokio::test]
async fn openai_lists_models() {
    let server = MockServer::start(MockApi::OpenAi).await.unwrap();
    let agent = OpenAiAgent::new("o", &Target::OpenAi.config(&server)).unwrap();
    let models = bounded(10, agent.list_models(&CallContext::new())).await.unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].name, "mock-model");
}

#[tokio::test]
async fn llamacpp_health_and_props() {
    let server = MockServer::start(MockApi::OpenAi).await.unwrap();
    let agent = OpenAiAgent::new("l", &Target::LlamaCpp.config(&server)).unwrap();
    let ctx = CallContext::new();
    assert_eq!(
        bounded(10, agent.health(&ctx)).await.unwrap(),
        troupe_adapters::http::LlamaHealth::Ok
    );
    let props = bounded(10, agent.props(&ctx)).await.unwrap();
    assert_eq!(props["default_generation_settings"]["n_ctx"], 4096);
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/health", "/props"],
        "health and props live at the server root, not under /v1"
    );
    server.push_fault(Fault::status(503, "Loading model"));
    assert_eq!(
        bounded(10, agent.health(&ctx)).await.unwrap(),
        troupe_adapters::http::LlamaHealth::Loading
    );
}

#[tokio::test]
async fn openai_kind_needs_a_model_llamacpp_does_not() {
    let server = MockServer::start(MockApi::OpenAi).await.unwrap();
    let mut cfg = Target::OpenAi.config(&server);
    cfg.model = None;
    let e = OpenAiAgent::new("o", &cfg).unwrap_err();
    assert!(matches!(e, AdapterError::Config { .. }), "{e}");
    cfg.kind = AgentKind::Llamacpp;
    assert!(OpenAiAgent::new("l", &cfg).is_ok());
}

#[tokio::test]
async fn ollama_management_api() {
    let server = MockServer::start(MockApi::Ollama).await.unwrap();
    let agent = OllamaAgent::new("o", &Target::OllamaChat.config(&server)).unwrap();
    let client = agent.client();
    let ctx = CallContext::new();
    let tags = bounded(10, client.tags(&ctx)).await.unwrap();
    assert_eq!(tags[0].name, "mock-model:latest");
    assert_eq!(tags[0].size, Some(1234));

    let mut progress = Vec::new();
    bounded(10, client.pull("mock-model", &ctx, |p| progress.push(p.clone()))).await.unwrap();
    assert_eq!(progress.first().map(|p| p.status.as_str()), Some("pulling manifest"));
    assert!(progress.iter().any(|p| p.total == Some(1000) && p.completed == Some(500)));
    assert_eq!(progress.last().map(|p| p.status.as_str()), Some("success"));

    let e = bounded(10, client.pull("no-such-model", &ctx, |_| {})).await.unwrap_err();
    assert!(e.to_string().contains("file does not exist"), "{e}");

    assert!(bounded(10, client.show("mock-model", &ctx)).await.unwrap()["details"].is_object());
    bounded(10, client.delete("mock-model", &ctx)).await.unwrap();
    let e = bounded(10, client.delete("no-such-model", &ctx)).await.unwrap_err();
    assert!(matches!(e, AdapterError::NotFound { .. }), "{e}");

    let sent: Vec<(String, String)> =
        server.requests().into_iter().map(|r| (r.method, r.path)).collect();
    assert!(sent.contains(&("DELETE".into(), "/api/delete".into())), "{sent:?}");
}

#[tokio::test]
async fn ollama_unknown_model_is_not_found() {
    let server = MockServer::start(MockApi::Ollama).await.unwrap();
    let mut cfg = Target::OllamaChat.config(&server);
    cfg.model = Some("llama9:400b".into());
    let agent = OllamaAgent::new("o", &cfg).unwrap();
    let e = bounded(10, agent.call(&request(), &CallContext::new())).await.unwrap_err();
    assert!(matches!(e, AdapterError::NotFound { .. }), "{e}");
}
