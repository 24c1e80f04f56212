//! The agent contract: a request in, a response (or a classified error) out, with text
//! chunks streamed to the caller as they arrive.
//!
//! [`Agent`] is implemented by the adapters ([`crate::http::OpenAiAgent`],
//! [`crate::http::OllamaAgent`], [`crate::cli::CliAgent`]) and by the resilience wrappers
//! around them ([`crate::resilience`]); callers hold `Arc<dyn Agent>` and never know which
//! one they have. [`crate::registry::AgentRegistry`] builds the full stack for each
//! configured agent — that is the one to pick unless you are testing a single layer.
//!
//! Streaming and events go through the [`CallContext`] rather than the return type, so the
//! wrappers compose without re-plumbing streams: a wrapper passes the context on, and the
//! caller sees every chunk and every resilience decision (retry, fallback, breaker, rate
//! limit wait) as it happens.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::{AgentFailure, Result};

/// The request options and token counts are plain data of the leaf crate, named here too.
pub use troupe_agent_config::{GenerationOptions, OutputFormat, Tokens};

/// Who wrote a message of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    /// Instructions for the model.
    System,
    /// The person (or workflow) asking.
    User,
    /// The model's earlier answers.
    Assistant,
}

impl MessageRole {
    /// The wire name (`system`, `user`, `assistant`), the same in every API.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::System => "system",
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// Who wrote it.
    pub role: MessageRole,
    /// What it says.
    pub content: String,
}

impl Message {
    /// A user message.
    pub fn user(content: impl Into<String>) -> Message {
        Message { role: MessageRole::User, content: content.into() }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Message {
        Message { role: MessageRole::Assistant, content: content.into() }
    }
}

/// What to ask an agent.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct AgentRequest {
    /// Instructions that frame the conversation.
    pub system: Option<String>,
    /// Project memory relevant to the task, put before the conversation.
    pub context: Option<String>,
    /// The conversation; the last message is usually the user's prompt.
    pub messages: Vec<Message>,
    /// Generation settings.
    pub options: GenerationOptions,
}

impl AgentRequest {
    /// A request of one user message.
    pub fn prompt(prompt: impl Into<String>) -> AgentRequest {
        AgentRequest { messages: vec![Message::user(prompt)], ..Default::default() }
    }

    /// The same request with a system prompt.
    pub fn with_system(mut self, system: impl Into<String>) -> AgentRequest {
        self.system = Some(system.into());
        self
    }

    /// The same request with project context.
    pub fn with_context(mut self, context: impl Into<String>) -> AgentRequest {
        self.context = Some(context.into());
        self
    }

    /// The same request with these generation options.
    pub fn with_options(mut self, options: GenerationOptions) -> AgentRequest {
        self.options = options;
        self
    }

    /// The conversation as chat messages: one system message (the system prompt and the
    /// project context) followed by the messages. What the HTTP adapters send.
    pub fn chat_messages(&self) -> Vec<Message> {
        let mut out = Vec::with_capacity(self.messages.len() + 1);
        let mut system = String::new();
        if let Some(s) = self.system.as_deref().filter(|s| !s.trim().is_empty()) {
            system.push_str(s);
        }
        if let Some(c) = self.context.as_deref().filter(|c| !c.trim().is_empty()) {
            if !system.is_empty() {
                system.push_str("\n\n");
            }
            system.push_str("# Project context\n\n");
            system.push_str(c);
        }
        if !system.is_empty() {
            out.push(Message { role: MessageRole::System, content: system });
        }
        out.extend(self.messages.iter().cloned());
        out
    }

    /// The whole request as one prompt text: what CLI agents receive. A single user message
    /// without system prompt or context is passed through unchanged.
    pub fn render_prompt(&self) -> String {
        if self.system.is_none()
            && self.context.is_none()
            && self.messages.len() == 1
            && let Some(m) = self.messages.first().filter(|m| m.role == MessageRole::User)
        {
            return m.content.clone();
        }
        let mut s = String::new();
        let mut section = |title: &str, body: &str| {
            if !s.is_empty() {
                s.push_str("\n\n");
            }
            s.push_str("# ");
            s.push_str(title);
            s.push_str("\n\n");
            s.push_str(body);
        };
        if let Some(sys) = self.system.as_deref().filter(|t| !t.trim().is_empty()) {
            section("Instructions", sys);
        }
        if let Some(ctx) = self.context.as_deref().filter(|t| !t.trim().is_empty()) {
            section("Project context", ctx);
        }
        let n = self.messages.len();
        for (i, m) in self.messages.iter().enumerate() {
            let title = match (m.role, i + 1 == n) {
                (MessageRole::User, true) => "Task",
                (MessageRole::User, false) => "Earlier request",
                (MessageRole::Assistant, _) => "Earlier answer",
                (MessageRole::System, _) => "Instructions",
            };
            section(title, &m.content);
        }
        if let OutputFormat::JsonSchema { schema, .. } = &self.options.output {
            section(
                "Output",
                &format!("Answer with JSON only, matching this JSON Schema:\n{schema}"),
            );
        } else if self.options.output == OutputFormat::Json {
            section("Output", "Answer with one JSON object only.");
        }
        s
    }

    /// A rough count of the tokens this request will take (4 characters per token), used
    /// for tokens-per-minute limits before the server reports the real count.
    pub fn estimated_tokens(&self) -> u64 {
        let chars: usize = self.system.as_deref().map_or(0, str::len)
            + self.context.as_deref().map_or(0, str::len)
            + self.messages.iter().map(|m| m.content.len() + 4).sum::<usize>();
        (chars as u64).div_ceil(4)
    }
}

/// What an agent answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentResponse {
    /// The answer.
    pub text: String,
    /// Tokens used (by the attempt that answered).
    pub usage: Tokens,
    /// Whether [`AgentResponse::usage`] was estimated because the agent did not report it.
    pub usage_estimated: bool,
    /// Time from the call to the answer, retries and fallbacks included.
    #[serde(serialize_with = "as_millis")]
    pub latency: Duration,
    /// The agent that answered.
    pub agent: String,
    /// The model that answered, when the agent says.
    pub model: Option<String>,
    /// Why the model stopped (`stop`, `length`, …), when the agent says.
    pub finish_reason: Option<String>,
    /// Attempts the answering agent needed (1 = no retry).
    pub attempts: u32,
    /// The agents that failed before this one answered (empty = no fallback).
    pub failed: Vec<AgentFailure>,
}

impl AgentResponse {
    /// A response of `agent` with `text` and everything else at its default.
    pub fn new(agent: &str, text: impl Into<String>) -> AgentResponse {
        AgentResponse {
            text: text.into(),
            usage: Tokens::default(),
            usage_estimated: false,
            latency: Duration::ZERO,
            agent: agent.to_string(),
            model: None,
            finish_reason: None,
            attempts: 1,
            failed: Vec::new(),
        }
    }

    /// Whether a fallback agent answered.
    pub fn fallback_used(&self) -> bool {
        !self.failed.is_empty()
    }

    /// Retries of the answering agent.
    pub fn retries(&self) -> u32 {
        self.attempts.saturating_sub(1)
    }
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A resilience decision or a change of state, reported to the caller as it happens.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentEvent {
    /// An attempt failed transiently; the next starts after `delay_ms`. Text streamed so far
    /// belongs to the failed attempt: discard it.
    RetryScheduled {
        /// The agent.
        agent: String,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// The wait before the next attempt.
        delay_ms: u64,
        /// Why it failed.
        error: String,
    },
    /// An agent failed; the next agent of the chain gets the same request. Text streamed so
    /// far belongs to the failed agent: discard it.
    FallbackTaken {
        /// The agent that failed.
        from: String,
        /// The agent tried next.
        to: String,
        /// Why `from` failed.
        error: String,
    },
    /// The breaker opened: calls are refused for `recovery_ms`.
    BreakerOpened {
        /// The agent.
        agent: String,
        /// Consecutive failures that opened it.
        failures: u32,
        /// How long it stays open.
        recovery_ms: u64,
    },
    /// The breaker lets one trial call through.
    BreakerHalfOpen {
        /// The agent.
        agent: String,
    },
    /// A call succeeded and the breaker closed again.
    BreakerClosed {
        /// The agent.
        agent: String,
    },
    /// The call waits for rate-limit capacity.
    RateLimitWait {
        /// The agent.
        agent: String,
        /// The expected wait.
        wait_ms: u64,
    },
    /// Offline mode skipped a non-local agent.
    OfflineSkipped {
        /// The agent.
        agent: String,
    },
    /// The managed local model server is being started.
    ServerStarting {
        /// The agent whose call started it.
        agent: String,
        /// The server's URL.
        url: String,
        /// Whether it is a restart after the server died.
        restart: bool,
    },
    /// The managed local model server reported healthy.
    ServerReady {
        /// The agent.
        agent: String,
        /// The server's URL.
        url: String,
        /// Time from start to healthy.
        took_ms: u64,
    },
}

/// A wait in milliseconds as people read it: `750 ms`, `2 s`, `1.5 s`, `2 min`.
fn fmt_ms(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms} ms"),
        _ if ms.is_multiple_of(60_000) => format!("{} min", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{} s", ms / 1000),
        _ => format!("{:.1} s", ms as f64 / 1000.0),
    }
}

/// One sentence per event, for people (`--json` keeps the structured form).
impl fmt::Display for AgentEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentEvent::RetryScheduled { agent, attempt, delay_ms, error } => write!(
                f,
                "{agent}: attempt {attempt} failed ({error}); retrying in {}",
                fmt_ms(*delay_ms)
            ),
            AgentEvent::FallbackTaken { from, to, error } => {
                write!(f, "{from} failed ({error}); falling back to {to}")
            }
            AgentEvent::BreakerOpened { agent, failures, recovery_ms } => write!(
                f,
                "{agent}: circuit breaker opened after {failures} failures in a row; calls are \
                 refused for {}",
                fmt_ms(*recovery_ms)
            ),
            AgentEvent::BreakerHalfOpen { agent } => {
                write!(f, "{agent}: circuit breaker half-open, letting one trial call through")
            }
            AgentEvent::BreakerClosed { agent } => {
                write!(f, "{agent}: circuit breaker closed again after a successful call")
            }
            AgentEvent::RateLimitWait { agent, wait_ms } => {
                write!(f, "{agent}: waiting {} for rate-limit capacity", fmt_ms(*wait_ms))
            }
            AgentEvent::OfflineSkipped { agent } => {
                write!(f, "{agent}: skipped, it is not on this machine and troupe is offline")
            }
            AgentEvent::ServerStarting { agent, url, restart } => {
                let what = if *restart { "restarting" } else { "starting" };
                write!(f, "{what} the local model server for {agent} at {url}")
            }
            AgentEvent::ServerReady { agent, url, took_ms } => write!(
                f,
                "the local model server for {agent} at {url} is ready (took {})",
                fmt_ms(*took_ms)
            ),
        }
    }
}

/// Receives text chunks as the answer is produced.
#[derive(Clone)]
pub struct ChunkSink(Arc<dyn Fn(&str) + Send + Sync>);

impl ChunkSink {
    /// A sink calling `f` with every chunk.
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> ChunkSink {
        ChunkSink(Arc::new(f))
    }

    /// A sink sending every chunk into an unbounded channel (a closed receiver is ignored).
    pub fn channel(tx: tokio::sync::mpsc::UnboundedSender<String>) -> ChunkSink {
        ChunkSink::new(move |s| {
            let _ = tx.send(s.to_string());
        })
    }

    /// Deliver one chunk (empty chunks are dropped).
    pub fn send(&self, chunk: &str) {
        if !chunk.is_empty() {
            (self.0)(chunk);
        }
    }
}

impl fmt::Debug for ChunkSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChunkSink")
    }
}

/// Receives [`AgentEvent`]s.
#[derive(Clone)]
pub struct EventSink(Arc<dyn Fn(&AgentEvent) + Send + Sync>);

impl EventSink {
    /// A sink calling `f` with every event.
    pub fn new(f: impl Fn(&AgentEvent) + Send + Sync + 'static) -> EventSink {
        EventSink(Arc::new(f))
    }

    /// A sink sending every event into an unbounded channel (a closed receiver is ignored).
    pub fn channel(tx: tokio::sync::mpsc::UnboundedSender<AgentEvent>) -> EventSink {
        EventSink::new(move |e| {
            let _ = tx.send(e.clone());
        })
    }
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventSink")
    }
}

/// Everything about one call that is not the request: where it runs, how to cancel it,
/// where chunks and events go. Cheap to clone; wrappers pass it on unchanged.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// Cancelling it ends the call with [`crate::AdapterError::Cancelled`]; a CLI agent's
    /// process group is killed, an HTTP request dropped.
    pub cancel: CancellationToken,
    /// The project folder: a CLI agent's working directory and `{workdir}`.
    pub workdir: Option<PathBuf>,
    /// Where answer text goes as it arrives; none means the agent need not stream.
    pub chunks: Option<ChunkSink>,
    /// Where resilience events go.
    pub events: Option<EventSink>,
}

impl CallContext {
    /// A context with a fresh cancellation token and nothing else.
    pub fn new() -> CallContext {
        CallContext::default()
    }

    /// The same context cancelled by `token`.
    pub fn with_cancel(mut self, token: CancellationToken) -> CallContext {
        self.cancel = token;
        self
    }

    /// The same context with this working directory.
    pub fn with_workdir(mut self, dir: impl Into<PathBuf>) -> CallContext {
        self.workdir = Some(dir.into());
        self
    }

    /// The same context streaming chunks to `sink`.
    pub fn with_chunks(mut self, sink: ChunkSink) -> CallContext {
        self.chunks = Some(sink);
        self
    }

    /// The same context reporting events to `sink`.
    pub fn with_events(mut self, sink: EventSink) -> CallContext {
        self.events = Some(sink);
        self
    }

    /// Whether the caller wants chunks.
    pub fn streaming(&self) -> bool {
        self.chunks.is_some()
    }

    /// Deliver a chunk, if anyone listens.
    pub fn chunk(&self, text: &str) {
        if let Some(s) = &self.chunks {
            s.send(text);
        }
    }

    /// Report an event to the caller (if anyone listens) and to `tracing`.
    pub fn emit(&self, event: AgentEvent) {
        tracing::info!(target: "troupe_adapters::events", event = ?event, "agent event");
        if let Some(s) = &self.events {
            (s.0)(&event);
        }
    }
}

/// What an agent is, for listings and the runtime.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentInfo {
    /// The configured name.
    pub name: String,
    /// The transport: `cli`, `openai`, `ollama`, `llamacpp`, or a wrapper's name.
    pub kind: String,
    /// The model asked for, when configured.
    pub model: Option<String>,
    /// The URL or command.
    pub endpoint: String,
    /// Whether every connection stays on this machine.
    pub local: bool,
}

/// An agent: one request in, one response or classified error out.
///
/// Implementations: the adapters [`crate::http::OpenAiAgent`] (OpenAI-compatible servers
/// and llama.cpp), [`crate::http::OllamaAgent`], [`crate::cli::CliAgent`]; the wrappers in
/// [`crate::resilience`]; and, with the `test-utils` feature, a scripted fake. Build the
/// configured stacks with [`crate::registry::AgentRegistry`].
///
/// Contract: `call` ends with a response or an error within the agent's time bound; it
/// streams text to `ctx.chunks` when set (CLI agents that cannot stream deliver the whole
/// answer as one chunk) and the response holds the complete text; it returns
/// [`crate::AdapterError::Cancelled`] soon after `ctx.cancel` fires, leaving no process or
/// request behind.
#[async_trait]
pub trait Agent: Send + Sync + fmt::Debug {
    /// What this agent is.
    fn info(&self) -> &AgentInfo;

    /// The configured name.
    fn name(&self) -> &str {
        &self.info().name
    }

    /// Ask the agent.
    async fn call(&self, request: &AgentRequest, ctx: &CallContext) -> Result<AgentResponse>;

    /// The model's context window in tokens (prompt and answer together), when known: the
    /// configured `context_tokens`, else what the server reports (llama.cpp `/props`,
    /// OpenAI-compatible `/v1/models` metadata, Ollama `/api/show`), cached after the first
    /// answer. None when nobody says (CLI agents, servers without the information).
    async fn context_window(&self, ctx: &CallContext) -> Option<u32> {
        let _ = ctx;
        None
    }

    /// How many tokens `text` is for this agent's model, counted by the model's own
    /// tokenizer (llama.cpp `/tokenize`). None when the agent cannot count: callers fall
    /// back to an estimate.
    async fn count_tokens(&self, text: &str, ctx: &CallContext) -> Option<u64> {
        let _ = (text, ctx);
        None
    }
}

/// A wrapper around one agent (rate limit, retry, breaker, tracing): it changes how a call
/// is made and passes the rest (who it is, its context window, token counts) through to the
/// agent it wraps. Every `Layer` is an [`Agent`].
#[async_trait]
pub trait Layer: Send + Sync + fmt::Debug {
    /// The agent it wraps.
    fn inner(&self) -> &dyn Agent;

    /// One call, through this layer to [`Layer::inner`].
    async fn call(&self, request: &AgentRequest, ctx: &CallContext) -> Result<AgentResponse>;
}

#[async_trait]
impl<L: Layer> Agent for L {
    fn info(&self) -> &AgentInfo {
        self.inner().info()
    }

    async fn call(&self, request: &AgentRequest, ctx: &CallContext) -> Result<AgentResponse> {
        Layer::call(self, request, ctx).await
    }

    async fn context_window(&self, ctx: &CallContext) -> Option<u32> {
        self.inner().context_window(ctx).await
    }

    async fn count_tokens(&self, text: &str, ctx: &CallContext) -> Option<u64> {
        self.inner().count_tokens(text, ctx).await
    }
}

#[async_trait]
impl<T: Agent + ?Sized> Agent for Arc<T> {
    fn info(&self) -> &AgentInfo {
        (**self).info()
    }

    async fn call(&self, request: &AgentRequest, ctx: &CallContext) -> Result<AgentResponse> {
        (**self).call(request, ctx).await
    }

    async fn context_window(&self, ctx: &CallContext) -> Option<u32> {
        (**self).context_window(ctx).await
    }

    async fn count_tokens(&self, text: &str, ctx: &CallContext) -> Option<u64> {
        (**self).count_tokens(text, ctx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_prompt_reaches_clis_unchanged() {
        let r = AgentRequest::prompt("Say hello");
        assert_eq!(r.render_prompt(), "Say hello");
        assert_eq!(r.chat_messages(), vec![Message::user("Say hello")]);
    }

    #[test]
    fn system_and_context_become_one_system_message() {
        let r = AgentRequest::prompt("Do it").with_system("Be brief").with_context("a.rs: fn a()");
        let m = r.chat_messages();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].role, MessageRole::System);
        assert!(m[0].content.starts_with("Be brief\n\n# Project context"));
        let p = r.render_prompt();
        assert!(p.contains("# Instructions\n\nBe brief"));
        assert!(p.contains("# Project context\n\na.rs"));
        assert!(p.ends_with("# Task\n\nDo it"));
    }

    #[test]
    fn events_read_as_sentences() {
        let events = [
            AgentEvent::RetryScheduled {
                agent: "a".into(),
                attempt: 1,
                delay_ms: 1500,
                error: "HTTP 503".into(),
            },
            AgentEvent::FallbackTaken { from: "a".into(), to: "b".into(), error: "x".into() },
            AgentEvent::BreakerOpened { agent: "a".into(), failures: 5, recovery_ms: 60_000 },
            AgentEvent::BreakerHalfOpen { agent: "a".into() },
            AgentEvent::BreakerClosed { agent: "a".into() },
            AgentEvent::RateLimitWait { agent: "a".into(), wait_ms: 250 },
            AgentEvent::OfflineSkipped { agent: "a".into() },
            AgentEvent::ServerStarting {
                agent: "local-code".into(),
                url: "http://127.0.0.1:8765".into(),
                restart: false,
            },
            AgentEvent::ServerReady { agent: "a".into(), url: "http://x".into(), took_ms: 2000 },
        ];
        for e in &events {
            let s = e.to_string();
            assert!(!s.contains('{') && !s.contains("agent:") && !s.contains('"'), "{s}");
        }
        assert_eq!(
            events[7].to_string(),
            "starting the local model server for local-code at http://127.0.0.1:8765"
        );
        assert!(events[0].to_string().ends_with("retrying in 1.5 s"));
        assert!(events[2].to_string().ends_with("refused for 1 min"));
        assert!(events[8].to_string().ends_with("(took 2 s)"));
    }

    #[test]
    fn token_estimate_grows_with_the_prompt() {
        let small = AgentRequest::prompt("hi").estimated_tokens();
        let big = AgentRequest::prompt("x".repeat(4000)).estimated_tokens();
        assert!(small >= 1 && big >= 1000 && big > small);
    }
}
