//! Ollama's native API: `/api/chat` and `/api/generate` (NDJSON streaming, `format`), and
//! model management: `/api/tags`, `/api/pull`, `/api/delete`, `/api/show`.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::Instrument;

use super::generation;
use super::openai::finish;
use super::{Collected, Endpoint, LineSplitter, ModelInfo, classify_status, known_window, quote};
use crate::agent::{
    Agent, AgentInfo, AgentRequest, AgentResponse, CallContext, GenerationOptions, MessageRole,
    OutputFormat, Tokens,
};
use crate::config::AgentConfig;
use crate::error::{AdapterError, Result};

/// Which Ollama endpoint answers prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OllamaMode {
    /// `/api/chat`: the conversation as messages (the default).
    #[default]
    Chat,
    /// `/api/generate`: one prompt and a system prompt.
    Generate,
}

/// An agent served by Ollama's native API.
#[derive(Debug, Clone)]
pub struct OllamaAgent {
    info: AgentInfo,
    client: OllamaClient,
    model: String,
    mode: OllamaMode,
    /// The configured generation settings; a request's explicit values win.
    defaults: GenerationOptions,
    /// The context window, once known (configured, or `/api/show`'s first answer).
    window: std::sync::Arc<tokio::sync::OnceCell<u32>>,
}

/// Ollama's management API, for one server.
#[derive(Debug, Clone)]
pub struct OllamaClient {
    ep: Endpoint,
}

/// One progress report of a model download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullProgress {
    /// What the server is doing (`pulling manifest`, `downloading …`, `success`).
    pub status: String,
    /// Bytes of the current layer, when known.
    pub total: Option<u64>,
    /// Bytes of it done, when known.
    pub completed: Option<u64>,
}

impl OllamaClient {
    /// The server `cfg.base_url` points at (`http://host:11434`; a trailing `/api` is fine).
    pub fn new(name: &str, cfg: &AgentConfig) -> Result<OllamaClient> {
        let mut ep = Endpoint::new(name, cfg)?;
        ep.base = ep.root().to_string();
        Ok(OllamaClient { ep })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.ep.base
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.ep.timeouts.total.min(Duration::from_secs(30))
    }

    /// The models on the server (`GET /api/tags`).
    pub async fn tags(&self, ctx: &CallContext) -> Result<Vec<ModelInfo>> {
        let rb = self.ep.request(reqwest::Method::GET, &self.ep.url("/api/tags"))?;
        let v = self.ep.json(rb, ctx, self.deadline()).await?;
        let list = v.get("models").and_then(Value::as_array).ok_or_else(|| {
            AdapterError::bad_response(&self.ep.agent, "the model list has no `models` array")
        })?;
        Ok(list
            .iter()
            .filter_map(|m| {
                Some(ModelInfo {
                    name: m.get("name").or_else(|| m.get("model"))?.as_str()?.to_string(),
                    size: m.get("size").and_then(Value::as_u64),
                    modified: m.get("modified_at").and_then(Value::as_str).map(str::to_string),
                })
            })
            .collect())
    }

    /// A model's details (`POST /api/show`).
    pub async fn show(&self, model: &str, ctx: &CallContext) -> Result<Value> {
        let rb = self
            .ep
            .request(reqwest::Method::POST, &self.ep.url("/api/show"))?
            .json(&json!({"model": model}));
        self.ep.json(rb, ctx, self.deadline()).await
    }

    /// Delete a model (`DELETE /api/delete`).
    pub async fn delete(&self, model: &str, ctx: &CallContext) -> Result<()> {
        let rb = self
            .ep
            .request(reqwest::Method::DELETE, &self.ep.url("/api/delete"))?
            .json(&json!({"model": model}));
        self.ep.send(rb, ctx, self.deadline()).await.map(|_| ())
    }

    /// Download a model (`POST /api/pull`), reporting progress as it goes. Bounded by the
    /// agent's total timeout; cancellable.
    pub async fn pull(
        &self,
        model: &str,
        ctx: &CallContext,
        mut progress: impl FnMut(&PullProgress) + Send,
    ) -> Result<()> {
        let agent = &self.ep.agent;
        let deadline = Instant::now() + self.ep.timeouts.total;
        let rb = self
            .ep
            .request(reqwest::Method::POST, &self.ep.url("/api/pull"))?
            .json(&json!({"model": model, "stream": true}));
        let resp = self.ep.send(rb, ctx, deadline).await?;
        let mut bytes = resp.bytes_stream();
        let mut lines = LineSplitter::default();
        let mut success = false;
        loop {
            let next = tokio::select! {
                biased;
                _ = ctx.cancel.cancelled() => return Err(AdapterError::cancelled(agent)),
                n = tokio::time::timeout_at(deadline, bytes.next()) => n,
            };
            let (batch, end) = match next {
                Err(_) => return Err(self.ep.timeout("total", self.ep.timeouts.total)),
                Ok(Some(Ok(b))) => {
                    (lines.push(&b).map_err(|e| AdapterError::bad_response(agent, e))?, false)
                }
                Ok(Some(Err(e))) => {
                    return Err(AdapterError::transient(
                        agent,
                        format!("the download stream was cut off: {}", super::chain(&e)),
                    ));
                }
                Ok(None) => (lines.finish().into_iter().collect::<Vec<_>>(), true),
            };
            for line in batch.iter().filter(|l| !l.trim().is_empty()) {
                let v: Value = serde_json::from_str(line).map_err(|e| {
                    AdapterError::bad_response(
                        agent,
                        format!("malformed progress line ({e}): {}", quote(line)),
                    )
                })?;
                if v.get("error").is_some() {
                    return Err(classify_status(agent, 500, None, line.as_bytes(), None));
                }
                let p = PullProgress {
                    status: v.get("status").and_then(Value::as_str).unwrap_or("").to_string(),
                    total: v.get("total").and_then(Value::as_u64),
                    completed: v.get("completed").and_then(Value::as_u64),
                };
                success |= p.status == "success";
                progress(&p);
            }
            if end {
                break;
            }
        }
        if success {
            Ok(())
        } else {
            Err(AdapterError::transient(agent, "the download ended without `success`; try again"))
        }
    }
}

impl OllamaAgent {
    /// The agent `name` configured by `cfg`, answering through `/api/chat`.
    pub fn new(name: &str, cfg: &AgentConfig) -> Result<OllamaAgent> {
        let client = OllamaClient::new(name, cfg)?;
        let model = cfg.model.clone().filter(|m| !m.trim().is_empty()).ok_or_else(|| {
            AdapterError::Config {
                agent: name.to_string(),
                message: format!(
                    "no model; set [agents.{name}] model = \"…\" (`troupe models list` shows what \
                     the server has, `troupe models pull NAME` downloads one)"
                ),
            }
        })?;
        Ok(OllamaAgent {
            info: AgentInfo {
                name: name.to_string(),
                kind: cfg.kind.as_str().to_string(),
                model: Some(model.clone()),
                endpoint: client.ep.base.clone(),
                local: cfg.is_local(),
            },
            client,
            model,
            mode: OllamaMode::Chat,
            defaults: cfg.generation_defaults(),
            window: std::sync::Arc::new(match cfg.context_tokens.filter(|n| *n > 0) {
                Some(n) => tokio::sync::OnceCell::new_with(Some(n)),
                None => tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The same agent answering through `mode`.
    pub fn with_mode(mut self, mode: OllamaMode) -> OllamaAgent {
        self.mode = mode;
        self
    }

    /// The management API of this agent's server.
    pub fn client(&self) -> &OllamaClient {
        &self.client
    }

    fn body(&self, req: &AgentRequest, stream: bool) -> Value {
        let o = req.options.or_defaults(&self.defaults);
        let options = generation::ollama_options(&o);
        let mut body = match self.mode {
            OllamaMode::Chat => {
                let messages: Vec<Value> = req
                    .chat_messages()
                    .iter()
                    .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
                    .collect();
                json!({"model": self.model, "messages": messages, "stream": stream})
            }
            OllamaMode::Generate => {
                let msgs = req.chat_messages();
                let system: Vec<&str> = msgs
                    .iter()
                    .filter(|m| m.role == MessageRole::System)
                    .map(|m| m.content.as_str())
                    .collect();
                let rest = AgentRequest {
                    system: None,
                    context: None,
                    messages: req.messages.clone(),
                    options: Default::default(),
                };
                let mut b =
                    json!({"model": self.model, "prompt": rest.render_prompt(), "stream": stream});
                if !system.is_empty() {
                    b["system"] = json!(system.join("\n\n"));
                }
                b
            }
        };
        if options.as_object().is_some_and(|m| !m.is_empty()) {
            body["options"] = options;
        }
        match &o.output {
            OutputFormat::Text => {}
            OutputFormat::Json => body["format"] = json!("json"),
            OutputFormat::JsonSchema { schema, .. } => body["format"] = schema.clone(),
        }
        body
    }

    fn path(&self) -> &'static str {
        match self.mode {
            OllamaMode::Chat => "/api/chat",
            OllamaMode::Generate => "/api/generate",
        }
    }

    /// Read one answer object (a whole response or one stream line) into `c`.
    fn absorb(&self, v: &Value, line: &str, ctx: &CallContext, c: &mut Collected) -> Result<()> {
        let agent = &self.info.name;
        if v.get("error").is_some() {
            return Err(classify_status(agent, 500, None, line.as_bytes(), None));
        }
        let piece = match self.mode {
            OllamaMode::Chat => {
                v.get("message").and_then(|m| m.get("content")).and_then(Value::as_str)
            }
            OllamaMode::Generate => v.get("response").and_then(Value::as_str),
        };
        let done = v.get("done").and_then(Value::as_bool).unwrap_or(false);
        match piece {
            Some(t) => c.push(ctx, t),
            None if !done => {
                return Err(AdapterError::bad_response(
                    agent,
                    format!("an answer line has no text: {}", quote(line)),
                ));
            }
            None => {}
        }
        if let Some(m) = v.get("model").and_then(Value::as_str) {
            c.model.get_or_insert_with(|| m.to_string());
        }
        if done {
            c.done = true;
            c.finish_reason = v.get("done_reason").and_then(Value::as_str).map(str::to_string);
            let p = v.get("prompt_eval_count").and_then(Value::as_u64);
            let e = v.get("eval_count").and_then(Value::as_u64);
            if p.is_some() || e.is_some() {
                c.usage = Some(Tokens { prompt: p.unwrap_or(0), completion: e.unwrap_or(0) });
            }
        }
        Ok(())
    }

    async fn run(
        &self,
        req: &AgentRequest,
        ctx: &CallContext,
        deadline: Instant,
    ) -> Result<Collected> {
        let agent = &self.info.name;
        let ep = &self.client.ep;
        // Always streamed on the wire, so every gap in the answer is bounded; chunks reach
        // the caller only when it listens.
        let rb =
            ep.request(reqwest::Method::POST, &ep.url(self.path()))?.json(&self.body(req, true));
        let mut c = Collected::default();
        let mut body = ep.open(rb, ctx, req.estimated_tokens(), deadline).await?;
        let mut lines = LineSplitter::default();
        while !c.done {
            let (batch, end) = match body.next(ctx).await? {
                Some(b) => {
                    (lines.push(&b).map_err(|e| AdapterError::bad_response(agent, e))?, false)
                }
                None => (lines.finish().into_iter().collect::<Vec<_>>(), true),
            };
            for line in batch.iter().filter(|l| !l.trim().is_empty()) {
                let v: Value = serde_json::from_str(line).map_err(|e| {
                    AdapterError::bad_response(
                        agent,
                        format!("malformed stream line ({e}): {}", quote(line)),
                    )
                })?;
                self.absorb(&v, line, ctx, &mut c)?;
                if c.done {
                    break;
                }
            }
            if end && !c.done {
                return Err(AdapterError::transient(
                    agent,
                    "the stream ended before the answer was complete (no `done`)",
                ));
            }
            if c.done && !end {
                body.drain(ctx).await;
                break;
            }
        }
        Ok(c)
    }
}

#[async_trait]
impl Agent for OllamaAgent {
    fn info(&self) -> &AgentInfo {
        &self.info
    }

    async fn context_window(&self, ctx: &CallContext) -> Option<u32> {
        let found = self
            .window
            .get_or_try_init(|| async {
                let v = self.client.show(&self.model, ctx).await?;
                generation::window_from_ollama_show(&v).ok_or_else(|| {
                    AdapterError::bad_response(
                        &self.info.name,
                        "/api/show does not say the context length",
                    )
                })
            })
            .await;
        known_window(&self.info.name, found)
    }

    async fn call(&self, req: &AgentRequest, ctx: &CallContext) -> Result<AgentResponse> {
        let started = Instant::now();
        let deadline = started + self.client.ep.timeouts.total;
        let span = tracing::debug_span!("http_call", agent = %self.info.name, kind = "ollama", stream = ctx.streaming());
        let c = self.run(req, ctx, deadline).instrument(span).await?;
        finish(&self.info, req, c, Some(&self.model), started)
    }
}
