//! A small client for troupe's own HTTP API on this machine: `troupe runs` and `troupe run`
//! use it while a `troupe serve` holds the store (found through its `serve.json`). It sends
//! the bearer token when one is configured ([`crate::serve_file::resolve_token`]).

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use troupe_change::workspace::Change;
use troupe_runtime::{CheckRecord, RunRecord, RunStats, StepRecord};

use crate::serve_file::ServeFile;

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an ordinary request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an event stream may stay silent: the server sends a keep-alive every 15 s, so
/// this much silence means it stopped answering.
const STREAM_SILENCE: Duration = Duration::from_secs(45);

/// Why a request failed.
#[derive(Debug)]
pub enum ClientError {
    /// The server answered with an error (`{"error": {"code", "message"}}`); the message
    /// is the server's.
    Api {
        /// The message for people.
        message: String,
    },
    /// The server cannot be reached, or stopped answering.
    Unreachable(String),
    /// The server answered something this client does not understand.
    Protocol(String),
}

impl ClientError {
    /// Whether the request never got an answer (worth retrying while the server may
    /// still come back).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable(_))
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Api { message, .. } => f.write_str(message),
            ClientError::Unreachable(m) | ClientError::Protocol(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ClientError {}

/// A connection to the `troupe serve` described by a `serve.json`.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    pid: u32,
    token: Option<String>,
}

impl Client {
    /// A client for `server`, sending `token` (when given) as `Authorization: Bearer`.
    pub fn new(server: &ServeFile, token: Option<String>) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(STREAM_SILENCE)
            // Never through a proxy: this is a server on this machine.
            .no_proxy()
            .build()?;
        Ok(Client { http, base: server.url(), pid: server.pid, token })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        // The innermost cause says it best ("Connection refused", "operation timed out").
        let mut why = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            why = s.to_string();
            source = s.source();
        }
        ClientError::Unreachable(format!(
            "`troupe serve` (pid {}) at {} does not answer ({why})",
            self.pid, self.base
        ))
    }

    /// Send, and turn an error answer into [`ClientError::Api`].
    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = rb.send().await.map_err(|e| self.unreachable(&e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let mut message = body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("`troupe serve` at {} answered {status}", self.base));
        if status == StatusCode::UNAUTHORIZED {
            message = format!(
                "`troupe serve` (pid {}) at {} refused the request: {message}. Set \
                 $TROUPE_API_TOKEN (or the variable settings.api_token_env names) to the token \
                 it was started with",
                self.pid, self.base
            );
        }
        Err(ClientError::Api { message })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = self.send(rb.timeout(REQUEST_TIMEOUT)).await?;
        let url = resp.url().path().to_string();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Protocol(format!(
                "`troupe serve` at {} answered {url} with something this troupe does not \
                 understand ({e}); are the server and this command the same version?",
                self.base
            ))
        })
    }

    /// A plan route (`/api/plans…`) with `body` as JSON when given; the answer's JSON.
    /// Waits up to `timeout` (a planner's turn takes long).
    pub async fn plans(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let mut rb = self.request(method, &format!("/api/plans{path}")).timeout(timeout);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = self.send(rb).await?;
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Protocol(format!(
                "`troupe serve` at {} answered a plan request with something this troupe does \
                 not understand ({e}); are the server and this command the same version?",
                self.base
            ))
        })
    }

    /// `GET /api/runs`: every run, newest first.
    pub async fn runs(&self) -> Result<Vec<RunRecord>, ClientError> {
        self.json(self.request(reqwest::Method::GET, "/api/runs")).await
    }

    /// `GET /api/runs/{id}?prompts=true`: a run and its steps, prompts included.
    pub async fn run(&self, id: &str) -> Result<(RunRecord, Vec<StepRecord>), ClientError> {
        #[derive(serde::Deserialize)]
        struct Shown {
            run: RunRecord,
            steps: Vec<StepRecord>,
        }
        let path = format!("/api/runs/{}?prompts=true", segment(id));
        let shown: Shown = self.json(self.request(reqwest::Method::GET, &path)).await?;
        Ok((shown.run, shown.steps))
    }

    /// `GET /api/runs/stats`.
    pub async fn stats(&self) -> Result<RunStats, ClientError> {
        self.json(self.request(reqwest::Method::GET, "/api/runs/stats")).await
    }

    /// `POST /api/execute`; the new run's id.
    pub async fn execute(&self, body: &Value) -> Result<String, ClientError> {
        let v: Value =
            self.json(self.request(reqwest::Method::POST, "/api/execute").json(body)).await?;
        self.run_id(&v)
    }

    /// `POST /api/runs/{id}/cancel`; the run's full id.
    pub async fn cancel(&self, id: &str) -> Result<String, ClientError> {
        let path = format!("/api/runs/{}/cancel", segment(id));
        let v: Value = self.json(self.request(reqwest::Method::POST, &path)).await?;
        self.run_id(&v)
    }

    /// `POST /api/runs/{id}/resume`, with a new budget when one is set; the run's full id.
    pub async fn resume(
        &self,
        id: &str,
        budget: troupe_runtime::Budget,
    ) -> Result<String, ClientError> {
        let path = format!("/api/runs/{}/resume", segment(id));
        let mut request = self.request(reqwest::Method::POST, &path);
        if budget.is_set() {
            request = request.json(&serde_json::json!({
                "budget_tokens": budget.tokens,
                "budget_cost": budget.cost,
            }));
        }
        let v: Value = self.json(request).await?;
        self.run_id(&v)
    }

    /// A run's validator runs: the `checks` of `GET /api/runs/{id}` (none from a server
    /// that does not send them).
    pub async fn run_checks(&self, id: &str) -> Result<Vec<CheckRecord>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Shown {
            #[serde(default)]
            checks: Vec<CheckRecord>,
        }
        let path = format!("/api/runs/{}", segment(id));
        let shown: Shown = self.json(self.request(reqwest::Method::GET, &path)).await?;
        Ok(shown.checks)
    }

    /// `GET /api/runs/{id}/diff`: the run's change against its base.
    pub async fn diff(&self, id: &str) -> Result<Change, ClientError> {
        let path = format!("/api/runs/{}/diff", segment(id));
        self.json(self.request(reqwest::Method::GET, &path)).await
    }

    /// `POST /api/runs/{id}/{action}` for `apply` (with `commit`), `revert` or `discard`;
    /// the run's record afterwards.
    pub async fn change(
        &self,
        id: &str,
        action: &str,
        commit: bool,
    ) -> Result<RunRecord, ClientError> {
        let path = format!("/api/runs/{}/{action}", segment(id));
        let mut request = self.request(reqwest::Method::POST, &path);
        if commit {
            request = request.json(&serde_json::json!({ "commit": true }));
        }
        self.json(request).await
    }

    /// `GET /api/usage`: tokens and cost per project, agent and run.
    pub async fn usage(
        &self,
        project: Option<&std::path::Path>,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<troupe_runtime::UsageReport, ClientError> {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(p) = project {
            query.append_pair("project", &p.display().to_string());
        }
        if let Some(s) = since {
            query.append_pair("since", &s.to_rfc3339());
        }
        let path = format!("/api/usage?{}", query.finish());
        self.json(self.request(reqwest::Method::GET, &path)).await
    }

    fn run_id(&self, v: &Value) -> Result<String, ClientError> {
        v["run_id"].as_str().map(str::to_string).ok_or_else(|| {
            ClientError::Protocol(format!(
                "`troupe serve` at {} answered without a run_id",
                self.base
            ))
        })
    }

    /// `GET /api/plans/{id}/events`: the plan's state now, then its plan and task events
    /// while it runs in the server.
    pub async fn plan_events(&self, id: &str) -> Result<EventStream, ClientError> {
        let path = format!("/api/plans/{}/events", segment(id));
        let rb = self.request(reqwest::Method::GET, &path).header("Accept", "text/event-stream");
        let resp = self.send(rb).await?;
        Ok(EventStream::new(resp, self.clone()))
    }

    /// `GET /api/runs/{id}/events`: the run's Server-Sent Events, after `last` (the id of
    /// the last event already seen) when reconnecting.
    pub async fn events(&self, id: &str, last: Option<u64>) -> Result<EventStream, ClientError> {
        let path = format!("/api/runs/{}/events", segment(id));
        let mut rb =
            self.request(reqwest::Method::GET, &path).header("Accept", "text/event-stream");
        if let Some(last) = last {
            rb = rb.header("Last-Event-ID", last.to_string());
        }
        let resp = self.send(rb).await?;
        Ok(EventStream::new(resp, self.clone()))
    }
}

/// What a path segment escapes: everything but letters, digits, `-` and `_`.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// A run id as one path segment (ids are UUIDs; anything else is escaped).
pub fn segment(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, SEGMENT).to_string()
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// Its `id:` (the index of the event in the run).
    pub id: Option<u64>,
    /// Its `event:` (`message` when absent).
    pub event: String,
    /// Its `data:` lines, joined by newlines.
    pub data: String,
}

type Events = std::pin::Pin<
    Box<
        dyn futures::Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

/// An open event stream, parsed by `eventsource-stream`.
pub struct EventStream {
    events: Events,
    client: Client,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").field("server", &self.client.base).finish_non_exhaustive()
    }
}

/// Our event from the parser's: the id is the event's index in the run.
fn sse_event(e: eventsource_stream::Event) -> SseEvent {
    SseEvent { id: e.id.trim().parse().ok(), event: e.event, data: e.data }
}

impl EventStream {
    fn new(resp: reqwest::Response, client: Client) -> EventStream {
        use eventsource_stream::Eventsource;
        EventStream { events: Box::pin(resp.bytes_stream().eventsource()), client }
    }

    /// The next event; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, ClientError> {
        use eventsource_stream::EventStreamError as E;
        match futures::StreamExt::next(&mut self.events).await {
            None => Ok(None),
            Some(Ok(e)) => Ok(Some(sse_event(e))),
            Some(Err(E::Transport(e))) => Err(self.client.unreachable(&e)),
            Some(Err(e)) => Err(ClientError::Protocol(format!(
                "`troupe serve` at {} sent an event stream this client cannot read: {e}",
                self.client.base
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_split_across_chunks_and_comments_are_skipped() {
        use eventsource_stream::Eventsource;
        use futures::StreamExt;
        let chunks: [&'static [u8]; 2] = [
            b": keep-alive\n\nid: 0\nevent: chunk\nda",
            b"ta: {\"a\":1}\r\n\r\nid: 1\nevent: run_finished\ndata: x\ndata: y\n\n",
        ];
        let stream = futures::stream::iter(chunks.map(Ok::<_, std::convert::Infallible>));
        let events: Vec<SseEvent> =
            stream.eventsource().map(|e| sse_event(e.unwrap())).collect().await;
        assert_eq!(
            events,
            [
                SseEvent { id: Some(0), event: "chunk".into(), data: "{\"a\":1}".into() },
                SseEvent { id: Some(1), event: "run_finished".into(), data: "x\ny".into() },
            ]
        );
    }

    #[test]
    fn ids_are_one_path_segment() {
        assert_eq!(segment("0192ab-cd"), "0192ab-cd");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
