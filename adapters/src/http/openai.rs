//! OpenAI-compatible chat completions, and llama.cpp's `llama-server` on top of them.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::Instrument;

use super::generation;
use super::{
    Collected, Endpoint, ModelInfo, SseDecoder, SseItem, classify_status, known_window, quote,
};
use crate::agent::{
    Agent, AgentInfo, AgentRequest, AgentResponse, CallContext, GenerationOptions, OutputFormat,
    Tokens,
};
use crate::config::{AgentConfig, AgentKind};
use crate::error::{AdapterError, Result};

/// An agent behind `/v1/chat/completions`: OpenAI, vLLM, LM Studio, llama.cpp's
/// `llama-server` (`kind = "llamacpp"`, which also answers [`OpenAiAgent::health`] and
/// [`OpenAiAgent::props`]) and any other server speaking that API.
///
/// Streams with server-sent events and `stream_options.include_usage` (always, so the idle
/// bound covers every gap of the answer), asks for JSON with
/// `response_format` (`json_object` or `json_schema`).
#[derive(Debug, Clone)]
pub struct OpenAiAgent {
    info: AgentInfo,
    ep: Endpoint,
    /// The model sent in requests (llama.cpp ignores it; OpenAI requires it).
    model: String,
    /// `openai` or `llamacpp`: which generation fields the server understands.
    kind: AgentKind,
    /// The configured generation settings; a request's explicit values win.
    defaults: GenerationOptions,
    /// The context window, once known (configured, or the server's first answer).
    window: Arc<tokio::sync::OnceCell<u32>>,
}

/// What llama.cpp's `/health` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlamaHealth {
    /// Serving.
    Ok,
    /// Up, but still loading the model.
    Loading,
}

impl OpenAiAgent {
    /// The agent `name` configured by `cfg` (`kind` `openai` or `llamacpp`).
    pub fn new(name: &str, cfg: &AgentConfig) -> Result<OpenAiAgent> {
        let ep = Endpoint::new(name, cfg)?;
        let model = match (&cfg.model, cfg.kind) {
            (Some(m), _) if !m.trim().is_empty() => m.clone(),
            (_, AgentKind::Llamacpp) => "default".to_string(),
            _ => {
                return Err(AdapterError::Config {
                    agent: name.to_string(),
                    message: format!(
                        "no model; set [agents.{name}] model = \"…\" (`troupe models list` shows \
                         what the server offers)"
                    ),
                });
            }
        };
        Ok(OpenAiAgent {
            info: AgentInfo {
                name: name.to_string(),
                kind: cfg.kind.as_str().to_string(),
                model: cfg.model.clone(),
                endpoint: ep.base.clone(),
                local: cfg.is_local(),
            },
            ep,
            model,
            kind: cfg.kind,
            defaults: cfg.generation_defaults(),
            window: Arc::new(match cfg.context_tokens.filter(|n| *n > 0) {
                Some(n) => tokio::sync::OnceCell::new_with(Some(n)),
                None => tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The context window the server reports: llama.cpp's `/props` (the window of one
    /// request slot), else the `/v1/models` metadata.
    async fn server_window(&self, ctx: &CallContext) -> Result<u32> {
        if self.kind == AgentKind::Llamacpp
            && let Some(n) =
                self.props(ctx).await.ok().as_ref().and_then(generation::window_from_props)
        {
            return Ok(n);
        }
        let deadline = Instant::now() + self.ep.timeouts.total.min(Duration::from_secs(30));
        let rb = self.ep.request(reqwest::Method::GET, &self.ep.url("/models"))?;
        let v = self.ep.json(rb, ctx, deadline).await?;
        generation::window_from_models(&v, &self.model).ok_or_else(|| {
            AdapterError::bad_response(
                &self.info.name,
                "the server does not say its context window",
            )
        })
    }

    /// llama.cpp's `POST /tokenize`: how many tokens `text` is for the served model.
    pub async fn tokenize_count(&self, text: &str, ctx: &CallContext) -> Result<u64> {
        let deadline = Instant::now() + self.ep.timeouts.total.min(Duration::from_secs(30));
        let url = format!("{}/tokenize", self.ep.root());
        let rb = self.ep.request(reqwest::Method::POST, &url)?.json(&json!({"content": text}));
        let v = self.ep.json(rb, ctx, deadline).await?;
        generation::tokens_from_tokenize(&v).ok_or_else(|| {
            AdapterError::bad_response(&self.info.name, "the /tokenize answer has no `tokens`")
        })
    }

    /// The models the server offers (`GET /v1/models`).
    pub async fn list_models(&self, ctx: &CallContext) -> Result<Vec<ModelInfo>> {
        let deadline = Instant::now() + self.ep.timeouts.total.min(Duration::from_secs(30));
        let rb = self.ep.request(reqwest::Method::GET, &self.ep.url("/models"))?;
        let v = self.ep.json(rb, ctx, deadline).await?;
        let list = v
            .get("data")
            .and_then(Value::as_array)
            .or_else(|| v.get("models").and_then(Value::as_array))
            .ok_or_else(|| {
                AdapterError::bad_response(&self.info.name, "the model list has no `data` array")
            })?;
        Ok(list
            .iter()
            .filter_map(|m| {
                let name = m.get("id").or_else(|| m.get("name")).or_else(|| m.get("model"))?;
                Some(ModelInfo {
                    name: name.as_str()?.to_string(),
                    size: m.get("meta").and_then(|x| x.get("size")).and_then(Value::as_u64),
                    modified: None,
                })
            })
            .collect())
    }

    /// llama.cpp's `GET /health`: `Ok` when serving, `Loading` while the model loads.
    pub async fn health(&self, ctx: &CallContext) -> Result<LlamaHealth> {
        health_at(&self.ep, ctx).await
    }

    /// llama.cpp's `GET /props`: the server's settings (context size, model path, …).
    pub async fn props(&self, ctx: &CallContext) -> Result<Value> {
        let deadline = Instant::now() + self.ep.timeouts.total.min(Duration::from_secs(30));
        let url = format!("{}/props", self.ep.root());
        let rb = self.ep.request(reqwest::Method::GET, &url)?;
        self.ep.json(rb, ctx, deadline).await
    }

    fn body(&self, req: &AgentRequest, stream: bool) -> Value {
        let messages: Vec<Value> = req
            .chat_messages()
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let mut body = json!({"model": self.model, "messages": messages, "stream": stream});
        let o = req.options.or_defaults(&self.defaults);
        generation::openai_fields(&mut body, &o, self.kind);
        match &o.output {
            OutputFormat::Text => {}
            OutputFormat::Json => body["response_format"] = json!({"type": "json_object"}),
            OutputFormat::JsonSchema { name, schema } => {
                body["response_format"] = json!({
                    "type": "json_schema",
                    "json_schema": {"name": name, "schema": schema, "strict": true},
                });
            }
        }
        if stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }

    async fn stream(
        &self,
        req: &AgentRequest,
        ctx: &CallContext,
        deadline: Instant,
    ) -> Result<Collected> {
        let agent = &self.info.name;
        let url = self.ep.url("/chat/completions");
        let rb = self.ep.request(reqwest::Method::POST, &url)?.json(&self.body(req, true));
        let mut body = self.ep.open(rb, ctx, req.estimated_tokens(), deadline).await?;
        let mut dec = SseDecoder::default();
        let mut c = Collected::default();
        'read: loop {
            let Some(b) = body.next(ctx).await? else {
                for item in dec.finish() {
                    self.handle(item, ctx, &mut c)?;
                }
                break 'read;
            };
            let items = dec.push(&b).map_err(|e| AdapterError::bad_response(agent, e))?;
            for item in items {
                self.handle(item, ctx, &mut c)?;
                if c.done {
                    body.drain(ctx).await;
                    break 'read;
                }
            }
        }
        if !c.done && c.finish_reason.is_none() {
            return Err(AdapterError::transient(
                agent,
                "the stream ended before the answer was complete (no [DONE])",
            ));
        }
        if !c.answered {
            return Err(AdapterError::bad_response(
                agent,
                "the stream carried no answer (no choices)",
            ));
        }
        Ok(c)
    }

    fn handle(&self, item: SseItem, ctx: &CallContext, c: &mut Collected) -> Result<()> {
        let agent = &self.info.name;
        let data = match item {
            SseItem::Error(e) => {
                let v: Value = serde_json::from_str(&e).unwrap_or(json!({"error": {"message": e}}));
                return Err(stream_error(agent, &v));
            }
            SseItem::Data(d) => d,
        };
        if data.trim() == "[DONE]" {
            c.done = true;
            return Ok(());
        }
        let v: Value = serde_json::from_str(&data).map_err(|e| {
            AdapterError::bad_response(
                agent,
                format!("malformed stream event ({e}): {}", quote(&data)),
            )
        })?;
        if v.get("error").is_some() {
            return Err(stream_error(agent, &v));
        }
        if let Some(m) = v.get("model").and_then(Value::as_str) {
            c.model.get_or_insert_with(|| m.to_string());
        }
        if let Some(u) = parse_usage(v.get("usage")) {
            c.usage = Some(u);
        }
        let Some(choices) = v.get("choices").and_then(Value::as_array) else {
            return Err(AdapterError::bad_response(
                agent,
                format!("a stream event has no choices: {}", quote(&data)),
            ));
        };
        if let Some(choice) = choices.first() {
            c.answered = true;
            if let Some(t) =
                choice.get("delta").and_then(|d| d.get("content")).and_then(Value::as_str)
            {
                c.push(ctx, t);
            }
            if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
                c.finish_reason = Some(f.to_string());
            }
        }
        Ok(())
    }
}

/// `GET {root}/health` of a llama.cpp server.
pub(crate) async fn health_at(ep: &Endpoint, ctx: &CallContext) -> Result<LlamaHealth> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let url = format!("{}/health", ep.root());
    let rb = ep.request(reqwest::Method::GET, &url)?;
    match ep.send(rb, ctx, deadline).await {
        Ok(_) => Ok(LlamaHealth::Ok),
        Err(AdapterError::Transient { message, .. }) if message.contains("503") => {
            Ok(LlamaHealth::Loading)
        }
        Err(e) => Err(e),
    }
}

/// An error reported inside a 200 answer or a stream.
fn stream_error(agent: &str, v: &Value) -> AdapterError {
    let code = v
        .get("error")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or(500);
    classify_status(agent, code, None, v.to_string().as_bytes(), None)
}

pub(crate) fn parse_usage(v: Option<&Value>) -> Option<Tokens> {
    let u = v?;
    let p = u.get("prompt_tokens").and_then(Value::as_u64);
    let c = u.get("completion_tokens").and_then(Value::as_u64);
    if p.is_none() && c.is_none() {
        return None;
    }
    Some(Tokens { prompt: p.unwrap_or(0), completion: c.unwrap_or(0) })
}

/// Turn what a call collected into a response, estimating usage the server did not report.
/// An answer with no text is an error ([`AdapterError::empty_answer`]).
pub(crate) fn finish(
    info: &AgentInfo,
    req: &AgentRequest,
    c: Collected,
    default_model: Option<&str>,
    started: Instant,
) -> Result<AgentResponse> {
    if c.text.trim().is_empty() {
        return Err(AdapterError::empty_answer(&info.name));
    }
    let (usage, estimated) = match c.usage {
        Some(u) => (u, false),
        None => (
            Tokens {
                prompt: req.estimated_tokens(),
                completion: (c.text.len() as u64).div_ceil(4),
            },
            true,
        ),
    };
    Ok(AgentResponse {
        text: c.text,
        usage,
        usage_estimated: estimated,
        latency: started.elapsed(),
        agent: info.name.clone(),
        model: c.model.or_else(|| default_model.map(str::to_string)),
        finish_reason: c.finish_reason,
        attempts: 1,
        failed: Vec::new(),
    })
}

#[async_trait]
impl Agent for OpenAiAgent {
    fn info(&self) -> &AgentInfo {
        &self.info
    }

    async fn context_window(&self, ctx: &CallContext) -> Option<u32> {
        let found = self.window.get_or_try_init(|| self.server_window(ctx)).await;
        known_window(&self.info.name, found)
    }

    async fn count_tokens(&self, text: &str, ctx: &CallContext) -> Option<u64> {
        if self.kind != AgentKind::Llamacpp {
            return None;
        }
        match self.tokenize_count(text, ctx).await {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::debug!(agent = %self.info.name, error = %e, "cannot count tokens");
                None
            }
        }
    }

    async fn call(&self, req: &AgentRequest, ctx: &CallContext) -> Result<AgentResponse> {
        let started = Instant::now();
        let deadline = started + self.ep.timeouts.total;
        let span = tracing::debug_span!(
            "http_call",
            agent = %self.info.name,
            kind = %self.info.kind,
            stream = ctx.streaming()
        );
        // Always streamed on the wire, so every gap in the answer is bounded; chunks reach
        // the caller only when it listens.
        let c = self.stream(req, ctx, deadline).instrument(span).await?;
        let mut r = finish(&self.info, req, c, Some(&self.model), started)?;
        // llama.cpp names the model by its file path; the file's name is what people know.
        if let Some(m) = r.model.as_deref().filter(|m| m.contains('/') && m.ends_with(".gguf")) {
            let file = m.rsplit('/').next().unwrap_or(m);
            r.model = Some(file.trim_end_matches(".gguf").to_string());
        }
        Ok(r)
    }
}
