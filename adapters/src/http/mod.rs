//! The HTTP adapters and what they share: pooled clients, time bounds, turning HTTP
//! statuses and provider error bodies into [`AdapterError`] classes, and the SSE and NDJSON
//! stream decoders.
//!
//! - [`OpenAiAgent`]: any OpenAI-compatible server (`kind = "openai"`) and llama.cpp's
//!   `llama-server` (`kind = "llamacpp"`, which adds `/health` and `/props`).
//! - [`OllamaAgent`]: Ollama's native API (`/api/chat` or `/api/generate`), plus the model
//!   management calls in [`OllamaClient`].

mod generation;
mod ollama;
mod openai;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use reqwest::header::HeaderMap;
use serde::Serialize;
use tokio::time::Instant;

pub use ollama::{OllamaAgent, OllamaClient, OllamaMode, PullProgress};
pub use openai::{LlamaHealth, OpenAiAgent};

use crate::agent::CallContext;
use crate::config::AgentConfig;
use crate::error::{AdapterError, Result};

/// The largest error body or non-streamed answer read into memory.
const MAX_BODY: usize = 32 * 1024 * 1024;
/// The most of an error body quoted in a message.
const MAX_QUOTE: usize = 2000;

/// An API key read from the environment. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// The key in the environment variable `var`, if set and not empty.
    pub fn from_env(var: &str) -> Option<ApiKey> {
        std::env::var(var)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| ApiKey(v.trim().to_string()))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// The first-byte bound when `first_byte_timeout_secs` is not set, for a remote server.
pub const DEFAULT_FIRST_BYTE: Duration = Duration::from_secs(30);
/// The same for a server on this machine, before the prompt's share: longer, because the
/// first call after a local server starts pages its model in from disk (measured here: a
/// 1.1 GB model on a loaded 2-core machine took over 30 s to its first byte, 17 s warm).
pub const DEFAULT_LOCAL_FIRST_BYTE: Duration = Duration::from_secs(60);
/// How fast a local server is assumed to read a prompt when the first-byte bound grows with
/// the prompt: measured, Qwen2.5-Coder-1.5B reads ~60 tokens/s on one idle core here but
/// dropped below 15 tokens/s on the same machine under a parallel build, so a slow local
/// model reading a long prompt is not cut off.
pub const LOCAL_PROMPT_TOKENS_PER_SEC: u32 = 8;

/// The time bounds of one HTTP call. With the defaults a dead server fails an attempt
/// within 30 s (10 s to connect, 30 s to the first byte — 45 s plus the prompt's share for
/// a local server —, 30 s of silence mid-answer); the total bound caps a call that keeps
/// trickling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP connection.
    pub connect: Duration,
    /// From sending the request to the first byte of the answer (for a stream, its first
    /// chunk), for an empty prompt.
    pub first_byte: Duration,
    /// Added to `first_byte` per prompt token: set for a local server whose first-byte
    /// bound is the default, because it reads the prompt before answering.
    pub first_byte_per_token: Duration,
    /// The longest silence between two pieces of an answer once it started.
    pub idle: Duration,
    /// The whole call, body included.
    pub total: Duration,
}

impl Timeouts {
    /// The bounds an agent's configuration sets.
    pub fn from_config(cfg: &AgentConfig) -> Timeouts {
        let (first_byte, first_byte_per_token) = match cfg.first_byte_timeout_secs {
            Some(s) => (Duration::from_secs(s.max(1)), Duration::ZERO),
            None if cfg.is_local() => {
                (DEFAULT_LOCAL_FIRST_BYTE, Duration::from_secs(1) / LOCAL_PROMPT_TOKENS_PER_SEC)
            }
            None => (DEFAULT_FIRST_BYTE, Duration::ZERO),
        };
        Timeouts {
            connect: Duration::from_secs(cfg.connect_timeout_secs.max(1)),
            first_byte,
            first_byte_per_token,
            idle: Duration::from_secs(cfg.idle_timeout_secs.max(1)),
            total: Duration::from_secs(cfg.timeout_secs.max(1)),
        }
    }

    /// The first-byte bound for a prompt of `prompt_tokens` tokens.
    pub fn first_byte_for(&self, prompt_tokens: u64) -> Duration {
        let tokens = u32::try_from(prompt_tokens).unwrap_or(u32::MAX);
        self.first_byte.saturating_add(self.first_byte_per_token.saturating_mul(tokens))
    }
}

/// One reqwest client per (connect timeout, local) pair, shared by every agent in the
/// process so connections are pooled. Local clients ignore proxy settings: a proxy must
/// never see loopback traffic (nor could it reach it).
pub(crate) fn shared_client(connect: Duration, local: bool) -> Result<reqwest::Client> {
    static CLIENTS: OnceLock<Mutex<HashMap<(u128, bool), reqwest::Client>>> = OnceLock::new();
    let map = CLIENTS.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (connect.as_millis(), local);
    let mut guard = map.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = guard.get(&key) {
        return Ok(c.clone());
    }
    let mut b = reqwest::Client::builder()
        .connect_timeout(connect)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .user_agent(concat!("troupe/", env!("CARGO_PKG_VERSION")));
    if local {
        b = b.no_proxy();
    }
    let client = b.build().map_err(|e| AdapterError::Config {
        agent: String::new(),
        message: format!("cannot build the HTTP client: {}", chain(&e)),
    })?;
    guard.insert(key, client.clone());
    Ok(client)
}

/// An HTTP server one agent talks to: its base URL, the shared client, the key and time
/// bounds. The adapters build requests; this sends them and classifies what comes back.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// The agent's name, for errors.
    pub agent: String,
    /// The base URL without a trailing slash.
    pub base: String,
    pub client: reqwest::Client,
    pub key: Option<ApiKey>,
    /// The variable the key comes from, for error messages.
    pub key_env: Option<String>,
    pub timeouts: Timeouts,
}

impl Endpoint {
    pub fn new(name: &str, cfg: &AgentConfig) -> Result<Endpoint> {
        let base =
            cfg.base_url.as_deref().map(str::trim).filter(|s| !s.is_empty()).ok_or_else(|| {
                AdapterError::Config {
                    agent: name.to_string(),
                    message: format!("no base_url; set [agents.{name}] base_url = \"http://…\""),
                }
            })?;
        url::Url::parse(base).map_err(|e| AdapterError::Config {
            agent: name.to_string(),
            message: format!("base_url '{base}' is not a URL: {e}"),
        })?;
        let timeouts = Timeouts::from_config(cfg);
        let client = shared_client(timeouts.connect, cfg.is_local()).map_err(|e| match e {
            AdapterError::Config { message, .. } => {
                AdapterError::Config { agent: name.to_string(), message }
            }
            other => other,
        })?;
        Ok(Endpoint {
            agent: name.to_string(),
            base: base.trim_end_matches('/').to_string(),
            client,
            key: cfg.api_key_env.as_deref().and_then(ApiKey::from_env),
            key_env: cfg.api_key_env.clone(),
            timeouts,
        })
    }

    /// `base` + `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server root: the base URL without a trailing `/v1` or `/api`.
    pub fn root(&self) -> &str {
        self.base
            .strip_suffix("/v1")
            .or_else(|| self.base.strip_suffix("/api"))
            .unwrap_or(&self.base)
    }

    /// A request with the key attached (when configured).
    pub fn request(&self, method: reqwest::Method, url: &str) -> Result<reqwest::RequestBuilder> {
        if let (None, Some(var)) = (&self.key, &self.key_env) {
            return Err(AdapterError::Auth {
                agent: self.agent.clone(),
                message: format!(
                    "the API key variable ${var} is not set; export it (export {var}=…) or \
                     remove api_key_env for a server that needs no key"
                ),
            });
        }
        let mut rb = self.client.request(method, url);
        if let Some(k) = &self.key {
            rb = rb.bearer_auth(&k.0);
        }
        Ok(rb)
    }

    /// Send `rb` and wait for a successful status, within the first-byte bound of an empty
    /// prompt and the total bound, until cancelled. Non-2xx answers come back as
    /// classified errors.
    pub async fn send(
        &self,
        rb: reqwest::RequestBuilder,
        ctx: &CallContext,
        deadline: Instant,
    ) -> Result<reqwest::Response> {
        let first = self.timeouts.first_byte_for(0);
        self.send_within(rb, ctx, first, deadline).await
    }

    /// Send a prompt of `prompt_tokens` tokens and open its answer: the first-byte bound
    /// covers the headers and the first piece of the body, then the idle bound each gap.
    pub async fn open(
        &self,
        rb: reqwest::RequestBuilder,
        ctx: &CallContext,
        prompt_tokens: u64,
        deadline: Instant,
    ) -> Result<BodyReader<'_>> {
        let bound = self.timeouts.first_byte_for(prompt_tokens);
        let first_at = (Instant::now() + bound).min(deadline);
        let resp = self.send_within(rb, ctx, bound, deadline).await?;
        let mut r = self.reader(resp, deadline);
        r.first = Some((first_at, bound));
        Ok(r)
    }

    async fn send_within(
        &self,
        rb: reqwest::RequestBuilder,
        ctx: &CallContext,
        bound: Duration,
        deadline: Instant,
    ) -> Result<reqwest::Response> {
        let first = Instant::now() + bound;
        let (until, phase, after) = if first < deadline {
            (first, "first byte", bound)
        } else {
            (deadline, "total", self.timeouts.total)
        };
        let resp = tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => return Err(AdapterError::cancelled(&self.agent)),
            r = tokio::time::timeout_at(until, rb.send()) => match r {
                Err(_) => return Err(self.timeout(phase, after)),
                Ok(Err(e)) => return Err(self.reqwest_error(&e)),
                Ok(Ok(resp)) => resp,
            },
        };
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let retry_after = parse_retry_after(resp.headers(), SystemTime::now());
        let body = self.read_limited(resp, ctx, deadline, MAX_QUOTE * 4).await.unwrap_or_default();
        Err(classify_status(&self.agent, status, retry_after, &body, self.key_env.as_deref()))
    }

    /// A reader of `resp`'s body: the idle bound between pieces, the total one overall.
    pub fn reader(&self, resp: reqwest::Response, deadline: Instant) -> BodyReader<'_> {
        BodyReader { ep: self, stream: resp.bytes_stream().boxed(), first: None, deadline }
    }

    /// The body, whole, within the idle and total bounds; longer than `limit` bytes is an
    /// error.
    pub async fn read_limited(
        &self,
        resp: reqwest::Response,
        ctx: &CallContext,
        deadline: Instant,
        limit: usize,
    ) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut body = self.reader(resp, deadline);
        while let Some(bytes) = body.next(ctx).await? {
            if out.len() + bytes.len() > limit {
                if limit < MAX_BODY {
                    out.extend_from_slice(&bytes[..limit.saturating_sub(out.len())]);
                    return Ok(out);
                }
                return Err(AdapterError::bad_response(
                    &self.agent,
                    format!("the response is larger than {} MiB", limit >> 20),
                ));
            }
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// Send and read a whole JSON answer.
    pub async fn json(
        &self,
        rb: reqwest::RequestBuilder,
        ctx: &CallContext,
        deadline: Instant,
    ) -> Result<serde_json::Value> {
        let resp = self.send(rb, ctx, deadline).await?;
        let body = self.read_limited(resp, ctx, deadline, MAX_BODY).await?;
        serde_json::from_slice(&body).map_err(|e| {
            AdapterError::bad_response(
                &self.agent,
                format!("malformed JSON ({e}): {}", quote(&String::from_utf8_lossy(&body))),
            )
        })
    }

    /// The timeout of `phase` (`first byte`, `idle`, `total`) after `after`.
    pub fn timeout(&self, phase: &'static str, after: Duration) -> AdapterError {
        AdapterError::Timeout {
            agent: self.agent.clone(),
            endpoint: self.base.clone(),
            after,
            phase,
        }
    }

    pub fn reqwest_error(&self, e: &reqwest::Error) -> AdapterError {
        classify_reqwest(&self.agent, &self.base, self.timeouts.connect, e)
    }
}

/// Whether `piece` holds nothing but Server-Sent Events comment lines (`: keep-alive`) and
/// blank lines — a server's sign of life, never part of an answer (no JSON or NDJSON body
/// starts a line with `:`).
fn only_sse_comments(piece: &[u8]) -> bool {
    piece.split(|&b| b == b'\n').all(|line| {
        let line = line.trim_ascii();
        line.is_empty() || line.starts_with(b":")
    })
}

/// An answer's body read piece by piece within its bounds: until the first piece (that is
/// not only comments) the first-byte bound (when the reader came from [`Endpoint::open`]), then the idle bound
/// between pieces, and the total bound throughout.
pub(crate) struct BodyReader<'a> {
    ep: &'a Endpoint,
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    /// When the first piece must have arrived, and the bound that set it.
    first: Option<(Instant, Duration)>,
    deadline: Instant,
}

impl BodyReader<'_> {
    /// The next piece, `None` at the end of the body.
    pub async fn next(&mut self, ctx: &CallContext) -> Result<Option<bytes::Bytes>> {
        let t = &self.ep.timeouts;
        let (until, phase, after) = match self.first {
            Some((at, bound)) => (at, "first byte", bound),
            None => (Instant::now() + t.idle, "idle", t.idle),
        };
        let (until, phase, after) = if until < self.deadline {
            (until, phase, after)
        } else {
            (self.deadline, "total", t.total)
        };
        let next = tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => return Err(AdapterError::cancelled(&self.ep.agent)),
            n = tokio::time::timeout_at(until, self.stream.next()) => n,
        };
        match next {
            Err(_) => Err(self.ep.timeout(phase, after)),
            Ok(None) => Ok(None),
            Ok(Some(Err(e))) => Err(AdapterError::transient(
                &self.ep.agent,
                format!("the answer was cut off: {}", chain(&e)),
            )),
            Ok(Some(Ok(b))) => {
                // Comments are not the answer: llama.cpp's server sends `:` every 30 s while
                // it reads a long prompt, and the prompt's first-byte bound (not the idle
                // one) must go on covering that reading.
                if !only_sse_comments(&b) {
                    self.first = None;
                }
                Ok(Some(b))
            }
        }
    }

    /// Read what is left after the answer ended (the end of a chunked body), so the
    /// connection goes back to the pool; a server that keeps it open loses it after a
    /// moment instead of holding the call.
    pub async fn drain(mut self, ctx: &CallContext) {
        let rest = async { while let Ok(Some(_)) = self.next(ctx).await {} };
        let _ = tokio::time::timeout(DRAIN_BOUND, rest).await;
    }
}

/// How long the end of an answer's body is waited for once the answer is complete.
const DRAIN_BOUND: Duration = Duration::from_millis(500);

/// The error chain as one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// A reqwest failure as an error class: connection problems and cut bodies are transient.
pub(crate) fn classify_reqwest(
    agent: &str,
    base: &str,
    connect: Duration,
    e: &reqwest::Error,
) -> AdapterError {
    let detail = chain(e);
    if e.is_timeout() {
        if e.is_connect() {
            return AdapterError::Timeout {
                agent: agent.into(),
                endpoint: base.into(),
                after: connect,
                phase: "connect",
            };
        }
        return AdapterError::transient(
            agent,
            format!("the request to {base} timed out: {detail}"),
        );
    }
    if e.is_connect() {
        return AdapterError::transient(
            agent,
            format!("cannot connect to {base} ({detail}); is the server running?"),
        );
    }
    if e.is_body() || e.is_decode() {
        return AdapterError::transient(agent, format!("the answer was cut off: {detail}"));
    }
    if e.is_builder() {
        return AdapterError::Config { agent: agent.into(), message: detail };
    }
    AdapterError::transient(agent, format!("the request to {base} failed: {detail}"))
}

/// Text quoted in an error message: trimmed and cut to a readable length.
pub(crate) fn quote(s: &str) -> String {
    let s = s.trim();
    if s.len() <= MAX_QUOTE {
        return s.to_string();
    }
    let mut end = MAX_QUOTE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The message of a provider's error body: OpenAI and llama.cpp's `{"error": {"message"}}`,
/// Ollama's `{"error": "…"}`, or the text itself.
pub(crate) fn error_message(body: &[u8]) -> (String, Option<String>) {
    let text = String::from_utf8_lossy(body);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let err = v.get("error").unwrap_or(&v);
        if let Some(s) = err.as_str() {
            return (quote(s), None);
        }
        let msg = err.get("message").and_then(|m| m.as_str());
        let ty = err
            .get("type")
            .and_then(|t| t.as_str())
            .or_else(|| err.get("code").and_then(|c| c.as_str()))
            .map(str::to_string);
        if let Some(m) = msg {
            return (quote(m), ty);
        }
    }
    (quote(&text), None)
}

fn mentions_context_overflow(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "exceed_context_size",
        "context_length_exceeded",
        "context length",
        "context size",
        "maximum context",
        "context window",
        "too many tokens",
        "prompt is too long",
        "exceeds the available context",
    ]
    .iter()
    .any(|p| t.contains(p))
}

/// A non-2xx HTTP answer as an error class.
pub(crate) fn classify_status(
    agent: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    key_env: Option<&str>,
) -> AdapterError {
    let (msg, ty) = error_message(body);
    let full = format!("{} {}", ty.as_deref().unwrap_or(""), msg);
    let msg =
        if msg.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {msg}") };
    let agent = agent.to_string();
    match status {
        429 => AdapterError::RateLimited { agent, retry_after, message: msg, local: false },
        401 | 403 => AdapterError::Auth {
            agent,
            message: match key_env {
                Some(v) => format!("{msg}; check the key in ${v}"),
                None => format!("{msg}; the server wants a key: set api_key_env"),
            },
        },
        404 => AdapterError::NotFound {
            agent,
            message: format!("{msg}; check base_url and that the model is available on the server"),
        },
        408 => AdapterError::Transient { agent, message: msg, retry_after },
        400 | 413 | 422 if mentions_context_overflow(&full) => {
            AdapterError::ContextTooLong { agent, message: msg }
        }
        400..=499 => AdapterError::InvalidRequest { agent, message: msg },
        _ if mentions_context_overflow(&full) => {
            AdapterError::ContextTooLong { agent, message: msg }
        }
        _ => AdapterError::Transient { agent, message: msg, retry_after },
    }
}

/// `Retry-After` as a wait from `now`: delay-seconds or an HTTP-date.
pub(crate) fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs));
    }
    // An HTTP-date (RFC 9110: IMF-fixdate, and the obsolete RFC 850 and asctime forms).
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A context window a server was asked for once: the number, or `None` (logged) when the
/// server does not say.
pub(crate) fn known_window(agent: &str, found: Result<&u32>) -> Option<u32> {
    match found {
        Ok(n) => Some(*n),
        Err(e) => {
            tracing::debug!(agent = %agent, error = %e, "context window unknown");
            None
        }
    }
}

/// A model a server offers.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    /// Its name (what `model` must say).
    pub name: String,
    /// Bytes on disk, when the server says.
    pub size: Option<u64>,
    /// When it was last changed, as the server wrote it.
    pub modified: Option<String>,
}

/// Splits a byte stream into lines (without `\n` or `\r\n`), for NDJSON and SSE: tokio-util's
/// [`LinesCodec`](tokio_util::codec::LinesCodec) fed chunk by chunk.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    codec: tokio_util::codec::LinesCodec,
    buf: bytes::BytesMut,
}

/// The longest line a stream may send.
const MAX_LINE: usize = 16 * 1024 * 1024;

impl Default for LineSplitter {
    fn default() -> LineSplitter {
        LineSplitter {
            codec: tokio_util::codec::LinesCodec::new_with_max_length(MAX_LINE),
            buf: bytes::BytesMut::new(),
        }
    }
}

fn line_error(e: tokio_util::codec::LinesCodecError) -> String {
    match e {
        tokio_util::codec::LinesCodecError::MaxLineLengthExceeded => {
            format!("a stream line is longer than {} MiB", MAX_LINE >> 20)
        }
        tokio_util::codec::LinesCodecError::Io(e) => format!("a stream line is not text: {e}"),
    }
}

impl LineSplitter {
    /// Feed bytes; complete lines come out.
    pub fn push(&mut self, bytes: &[u8]) -> std::result::Result<Vec<String>, String> {
        use tokio_util::codec::Decoder;
        self.buf.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(line) = self.codec.decode(&mut self.buf).map_err(line_error)? {
            lines.push(line);
        }
        Ok(lines)
    }

    /// What is left when the stream ends (a last line without `\n`).
    pub fn finish(&mut self) -> Option<String> {
        use tokio_util::codec::Decoder;
        let rest = self.codec.decode_eof(&mut self.buf).ok().flatten()?;
        (!rest.trim().is_empty()).then_some(rest)
    }
}

/// One server-sent event's payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SseItem {
    /// The `data:` lines of one event, joined by `\n`.
    Data(String),
    /// An `error:` line (llama.cpp reports stream errors so).
    Error(String),
}

/// Decodes `text/event-stream`: `data:` lines, events ending at a blank line.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    lines: LineSplitter,
    data: Option<String>,
}

impl SseDecoder {
    pub fn push(&mut self, bytes: &[u8]) -> std::result::Result<Vec<SseItem>, String> {
        let mut out = Vec::new();
        for line in self.lines.push(bytes)? {
            self.line(&line, &mut out);
        }
        Ok(out)
    }

    /// Events left when the stream ends.
    pub fn finish(&mut self) -> Vec<SseItem> {
        let mut out = Vec::new();
        if let Some(line) = self.lines.finish() {
            self.line(&line, &mut out);
        }
        if let Some(d) = self.data.take() {
            out.push(SseItem::Data(d));
        }
        out
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseItem>) {
        if line.is_empty() {
            if let Some(d) = self.data.take() {
                out.push(SseItem::Data(d));
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "error" => out.push(SseItem::Error(value.to_string())),
            _ => {}
        }
    }
}

/// Shared state of a streamed answer: the text so far, delivered to the caller's sink.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub text: String,
    pub model: Option<String>,
    pub finish_reason: Option<String>,
    pub usage: Option<crate::agent::Tokens>,
    pub done: bool,
    /// Whether any answer choice arrived (a stream of nothing but `[DONE]` is broken).
    pub answered: bool,
}

impl Collected {
    pub fn push(&mut self, ctx: &CallContext, piece: &str) {
        self.answered = true;
        if !piece.is_empty() {
            ctx.chunk(piece);
            self.text.push_str(piece);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use reqwest::header::{HeaderValue, RETRY_AFTER};

    use super::*;

    #[test]
    fn retry_after_seconds_and_http_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&h, SystemTime::now()), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777 - 30);
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(30)));
        // A date in the past means "now".
        let later = UNIX_EPOCH + Duration::from_secs(784_111_777 + 5);
        assert_eq!(parse_retry_after(&h, later), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h, now), None);
    }

    #[test]
    fn statuses_map_to_classes() {
        let ctx = br#"{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}"#;
        assert!(matches!(
            classify_status("a", 400, None, ctx, None),
            AdapterError::ContextTooLong { .. }
        ));
        assert!(matches!(
            classify_status("a", 400, None, br#"{"error":{"message":"bad temperature"}}"#, None),
            AdapterError::InvalidRequest { .. }
        ));
        let auth = classify_status("a", 401, None, b"", Some("KEY"));
        assert!(matches!(&auth, AdapterError::Auth { message, .. } if message.contains("$KEY")));
        assert!(matches!(
            classify_status("a", 404, None, br#"{"error":"model 'x' not found"}"#, None),
            AdapterError::NotFound { message, .. } if message.contains("model 'x' not found")
        ));
        let rl = classify_status("a", 429, Some(Duration::from_secs(2)), b"", None);
        assert_eq!(rl.retry_after(), Some(Duration::from_secs(2)));
        assert!(classify_status("a", 503, None, b"busy", None).is_transient());
        assert!(classify_status("a", 500, None, b"", None).is_transient());
    }

    #[test]
    fn sse_events_split_across_chunks() {
        let mut d = SseDecoder::default();
        let mut items = d.push(b"data: {\"a\":").unwrap();
        assert!(items.is_empty());
        items.extend(d.push(b"1}\r\n\r\n: comment\n\ndata: [DONE]\n").unwrap());
        items.extend(d.finish());
        assert_eq!(items, vec![SseItem::Data("{\"a\":1}".into()), SseItem::Data("[DONE]".into())]);
        let mut d = SseDecoder::default();
        let items = d.push(b"error: {\"message\":\"boom\"}\n\n").unwrap();
        assert_eq!(items, vec![SseItem::Error("{\"message\":\"boom\"}".into())]);
    }

    #[test]
    fn lines_split_across_chunks() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"{\"a\"").unwrap(), Vec::<String>::new());
        assert_eq!(s.push(b":1}\n{\"b\":2}\r\n{\"c\"").unwrap(), vec!["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(s.finish().as_deref(), Some("{\"c\""));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn api_keys_are_redacted() {
        let k = ApiKey("sk-secret".into());
        assert!(!format!("{k:?}").contains("secret"));
    }
}
