//! An HTTP server one agent talks to: sending within the time bounds, and reading an
//! answer's body piece by piece within them.

use futures::StreamExt;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

use super::{
    ApiKey, MAX_BODY, MAX_QUOTE, Timeouts, chain, classify_reqwest, classify_status,
    parse_retry_after, quote, shared_client,
};
use crate::agent::CallContext;
use crate::config::AgentConfig;
use crate::error::{AdapterError, Result};

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
