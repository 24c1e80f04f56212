//! A real HTTP/1.1 server on `127.0.0.1:0` that speaks the OpenAI-compatible (with
//! llama.cpp's `/health` and `/props`) or the Ollama API, streaming included, and injects
//! faults on demand. For conformance tests and benchmarks.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Which API the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockApi {
    /// `/v1/chat/completions`, `/v1/models`, `/health`, `/props`.
    OpenAi,
    /// `/api/chat`, `/api/generate`, `/api/tags`, `/api/pull`, `/api/delete`, `/api/show`.
    Ollama,
}

/// A fault for one request (or every request, see [`MockServer::fail_always`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer with this status, optional `Retry-After` and body.
    Status {
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` header's value.
        retry_after: Option<String>,
        /// The body.
        body: String,
    },
    /// Close the connection with a TCP reset instead of answering.
    Reset,
    /// Read the request, then never answer.
    Hang,
    /// Answer 200 with a body that is not JSON.
    Malformed,
    /// Start a streamed answer, then cut the connection in the middle of it.
    CutStream,
    /// Answer 200 with no choices (OpenAI) or a line without text (Ollama).
    EmptyChoices,
    /// Send the headers, then stall before the body.
    HangAfterHeaders,
    /// Stream the first piece of the answer, then stall with the connection open.
    StallMidStream,
    /// Stream the answer's first piece at once, then pause this long before every further
    /// piece (a pause longer than the idle bound makes it a trickle that must be cut off).
    Trickle(Duration),
    /// A complete, well-formed answer whose text is empty.
    EmptyAnswer,
    /// A local server reading a long prompt: the headers at once, then a Server-Sent Events
    /// comment (`:`) every `keep_alive` (as llama.cpp's server does) until `first_token`,
    /// then the answer streamed (Ollama, which sends no comments, is silent until then).
    SlowPrompt {
        /// Between comments.
        keep_alive: Duration,
        /// When the answer starts, after the headers.
        first_token: Duration,
    },
}

impl Fault {
    /// An HTTP error status with an API-shaped body.
    pub fn status(status: u16, message: &str) -> Fault {
        Fault::Status {
            status,
            retry_after: None,
            body: json!({"error": {"code": status, "message": message, "type": "mock_error"}})
                .to_string(),
        }
    }

    /// 429 with `Retry-After: retry_after`.
    pub fn rate_limited(retry_after: &str) -> Fault {
        Fault::Status {
            status: 429,
            retry_after: Some(retry_after.to_string()),
            body: json!({"error": {"code": 429, "message": "slow down", "type": "rate_limit"}})
                .to_string(),
        }
    }

    /// llama.cpp's answer to a prompt longer than its context.
    pub fn context_overflow() -> Fault {
        Fault::Status {
            status: 400,
            retry_after: None,
            body: json!({"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it", "type": "exceed_context_size_error"}}).to_string(),
        }
    }
}

/// One request the server received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, query included.
    pub path: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl Recorded {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct Shared {
    api: MockApi,
    faults: Mutex<VecDeque<Fault>>,
    always: Mutex<Option<Fault>>,
    requests: Mutex<Vec<Recorded>>,
    answer: Mutex<Vec<String>>,
    connections: AtomicUsize,
    stop: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The server; stops when dropped.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl MockServer {
    /// Start a server for `api` on `127.0.0.1:0`.
    pub async fn start(api: MockApi) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            api,
            faults: Mutex::new(VecDeque::new()),
            always: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
            answer: Mutex::new(vec!["Hello".into(), ", ".into(), "world".into()]),
            connections: AtomicUsize::new(0),
            stop: CancellationToken::new(),
        });
        let s = shared.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    _ = s.stop.cancelled() => return,
                    c = listener.accept() => c,
                };
                let Ok((stream, _)) = conn else { continue };
                s.connections.fetch_add(1, Ordering::Relaxed);
                let s2 = s.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = s2.stop.cancelled() => {}
                        _ = serve(stream, s2.clone()) => {}
                    }
                });
            }
        });
        Ok(MockServer { addr, shared })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The next request gets `fault` (faults queue up in order).
    pub fn push_fault(&self, fault: Fault) {
        lock(&self.shared.faults).push_back(fault);
    }

    /// Every request (after the queued faults) gets `fault`; `None` heals the server.
    pub fn fail_always(&self, fault: Option<Fault>) {
        *lock(&self.shared.always) = fault;
    }

    /// The answer, in the pieces it is streamed in.
    pub fn set_answer(&self, pieces: &[&str]) {
        *lock(&self.shared.answer) = pieces.iter().map(|p| p.to_string()).collect();
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

async fn read_request(r: &mut BufReader<TcpStream>) -> Option<Recorded> {
    let mut line = String::new();
    if r.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).await.ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            let n = n.trim().to_ascii_lowercase();
            let v = v.trim().to_string();
            if n == "content-length" {
                len = v.parse().ok()?;
            }
            headers.push((n, v));
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.ok()?;
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Some(Recorded { method, path, headers, body })
}

async fn serve(stream: TcpStream, s: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut r = BufReader::new(stream);
    while let Some(req) = read_request(&mut r).await {
        lock(&s.requests).push(req.clone());
        let fault = lock(&s.faults).pop_front().or_else(|| lock(&s.always).clone());
        let answer = lock(&s.answer).clone();
        let keep = respond(r.get_mut(), &s, &req, fault, &answer).await;
        if !keep {
            return;
        }
    }
}

async fn write_full(w: &mut TcpStream, status: u16, ctype: &str, extra: &str, body: &str) -> bool {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n{extra}\r\n",
        body.len()
    );
    w.write_all(head.as_bytes()).await.is_ok() && w.write_all(body.as_bytes()).await.is_ok()
}

async fn write_chunk(w: &mut TcpStream, data: &str) -> bool {
    let c = format!("{:x}\r\n{data}\r\n", data.len());
    w.write_all(c.as_bytes()).await.is_ok() && w.flush().await.is_ok()
}

async fn start_chunked(w: &mut TcpStream, ctype: &str) -> bool {
    let head =
        format!("HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ntransfer-encoding: chunked\r\n\r\n");
    w.write_all(head.as_bytes()).await.is_ok()
}

/// Answer one request; whether the connection stays open.
async fn respond(
    w: &mut TcpStream,
    s: &Shared,
    req: &Recorded,
    fault: Option<Fault>,
    answer: &[String],
) -> bool {
    let stream = req.body.get("stream").and_then(Value::as_bool).unwrap_or(match s.api {
        // Ollama streams unless told not to.
        MockApi::Ollama => {
            req.path.starts_with("/api/chat")
                || req.path.starts_with("/api/generate")
                || req.path.starts_with("/api/pull")
        }
        MockApi::OpenAi => false,
    });
    match fault {
        None => {}
        Some(Fault::Status { status, retry_after, body }) => {
            let extra = retry_after.map(|r| format!("retry-after: {r}\r\n")).unwrap_or_default();
            return write_full(w, status, "application/json", &extra, &body).await;
        }
        Some(Fault::Reset) => {
            #[allow(deprecated)]
            let _ = w.set_linger(Some(Duration::ZERO));
            return false;
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return false;
        }
        Some(Fault::HangAfterHeaders) => {
            let _ = start_chunked(w, "application/json").await;
            let _ = w.flush().await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return false;
        }
        Some(Fault::Malformed) => {
            if stream {
                let ctype = if s.api == MockApi::OpenAi {
                    "text/event-stream"
                } else {
                    "application/x-ndjson"
                };
                let bad = if s.api == MockApi::OpenAi {
                    "data: {\"choices\": [oops\n\n"
                } else {
                    "{\"message\": oops\n"
                };
                let _ = start_chunked(w, ctype).await
                    && write_chunk(w, bad).await
                    && write_chunk(w, "").await;
                return false;
            }
            return write_full(w, 200, "application/json", "", "{\"choices\": [ this is not json")
                .await;
        }
        Some(Fault::EmptyChoices) => {
            let body = match s.api {
                MockApi::OpenAi => json!({"id": "x", "object": "chat.completion", "choices": []}),
                MockApi::Ollama => json!({"model": "mock-model", "done": false}),
            };
            if stream {
                let ctype = if s.api == MockApi::OpenAi {
                    "text/event-stream"
                } else {
                    "application/x-ndjson"
                };
                let line = if s.api == MockApi::OpenAi {
                    format!("data: {body}\n\ndata: [DONE]\n\n")
                } else {
                    format!("{body}\n")
                };
                let _ = start_chunked(w, ctype).await
                    && write_chunk(w, &line).await
                    && write_chunk(w, "").await;
                return false;
            }
            return write_full(w, 200, "application/json", "", &body.to_string()).await;
        }
        Some(Fault::StallMidStream) => {
            let first = answer.first().cloned().unwrap_or_default();
            let (ctype, piece) = match s.api {
                MockApi::OpenAi => {
                    ("text/event-stream", format!("data: {}\n\n", openai_delta(&first, None)))
                }
                MockApi::Ollama => (
                    "application/x-ndjson",
                    format!("{}\n", ollama_piece(&req.path, &first, false)),
                ),
            };
            let _ = start_chunked(w, ctype).await && write_chunk(w, &piece).await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return false;
        }
        Some(Fault::Trickle(gap)) => {
            let ctype =
                if s.api == MockApi::OpenAi { "text/event-stream" } else { "application/x-ndjson" };
            if !start_chunked(w, ctype).await {
                return false;
            }
            for (i, piece) in answer.iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(gap).await;
                }
                let line = match s.api {
                    MockApi::OpenAi => format!("data: {}\n\n", openai_delta(piece, None)),
                    MockApi::Ollama => format!("{}\n", ollama_piece(&req.path, piece, false)),
                };
                if !write_chunk(w, &line).await {
                    return false;
                }
            }
            tokio::time::sleep(gap).await;
            let tail = match s.api {
                MockApi::OpenAi => {
                    format!("data: {}\n\ndata: [DONE]\n\n", openai_delta("", Some("stop")))
                }
                MockApi::Ollama => format!("{}\n", ollama_piece(&req.path, "", true)),
            };
            return write_chunk(w, &tail).await && write_chunk(w, "").await;
        }
        Some(Fault::SlowPrompt { keep_alive, first_token }) => {
            let ctype =
                if s.api == MockApi::OpenAi { "text/event-stream" } else { "application/x-ndjson" };
            if !start_chunked(w, ctype).await {
                return false;
            }
            let start = tokio::time::Instant::now();
            let mut next = start + keep_alive;
            while next < start + first_token {
                tokio::time::sleep_until(next).await;
                if s.api == MockApi::OpenAi && !write_chunk(w, ":\n\n").await {
                    return false;
                }
                next += keep_alive;
            }
            tokio::time::sleep_until(start + first_token).await;
            let mut body = String::new();
            for piece in answer {
                body.push_str(&match s.api {
                    MockApi::OpenAi => format!("data: {}\n\n", openai_delta(piece, None)),
                    MockApi::Ollama => format!("{}\n", ollama_piece(&req.path, piece, false)),
                });
            }
            body.push_str(&match s.api {
                MockApi::OpenAi => {
                    format!("data: {}\n\ndata: [DONE]\n\n", openai_delta("", Some("stop")))
                }
                MockApi::Ollama => format!("{}\n", ollama_piece(&req.path, "", true)),
            });
            return write_chunk(w, &body).await && write_chunk(w, "").await;
        }
        Some(Fault::EmptyAnswer) => {
            return match s.api {
                MockApi::OpenAi => openai(w, req, stream, &[String::new()]).await,
                MockApi::Ollama => ollama(w, req, stream, &[String::new()]).await,
            };
        }
        Some(Fault::CutStream) => {
            let ctype =
                if s.api == MockApi::OpenAi { "text/event-stream" } else { "application/x-ndjson" };
            let first = answer.first().cloned().unwrap_or_default();
            let piece = match s.api {
                MockApi::OpenAi => format!("data: {}\n\n", openai_delta(&first, None)),
                MockApi::Ollama => format!("{}\n", ollama_piece(&req.path, &first, false)),
            };
            if stream {
                let _ = start_chunked(w, ctype).await && write_chunk(w, &piece).await;
            } else {
                // Promise more body than is sent.
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"choices\": [";
                let _ = w.write_all(head.as_bytes()).await;
            }
            let _ = w.flush().await;
            #[allow(deprecated)]
            let _ = w.set_linger(Some(Duration::ZERO));
            return false;
        }
    }
    match s.api {
        MockApi::OpenAi => openai(w, req, stream, answer).await,
        MockApi::Ollama => ollama(w, req, stream, answer).await,
    }
}

fn openai_delta(text: &str, finish: Option<&str>) -> Value {
    json!({"id": "c1", "object": "chat.completion.chunk", "model": "mock-model",
           "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]})
}

async fn openai(w: &mut TcpStream, req: &Recorded, stream: bool, answer: &[String]) -> bool {
    let path = req.path.as_str();
    let full: String = answer.concat();
    let usage = json!({"prompt_tokens": 11, "completion_tokens": answer.len(), "total_tokens": 11 + answer.len()});
    match (req.method.as_str(), path) {
        ("POST", "/v1/chat/completions") if stream => {
            if !start_chunked(w, "text/event-stream").await {
                return false;
            }
            for piece in answer {
                if !write_chunk(w, &format!("data: {}\n\n", openai_delta(piece, None))).await {
                    return false;
                }
            }
            let fin = json!({"id": "c1", "object": "chat.completion.chunk", "model": "mock-model",
                             "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
            let include_usage = req.body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
            let mut tail = format!("data: {fin}\n\n");
            if include_usage {
                tail.push_str(&format!("data: {}\n\n", json!({"id": "c1", "object": "chat.completion.chunk", "model": "mock-model", "choices": [], "usage": usage})));
            }
            tail.push_str("data: [DONE]\n\n");
            write_chunk(w, &tail).await && write_chunk(w, "").await
        }
        ("POST", "/v1/chat/completions") => {
            let body = json!({"id": "c1", "object": "chat.completion", "model": "mock-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": full}, "finish_reason": "stop"}],
                "usage": usage});
            write_full(w, 200, "application/json", "", &body.to_string()).await
        }
        ("GET", "/v1/models") => {
            let body = json!({"object": "list", "data": [{"id": "mock-model", "object": "model", "meta": {"n_ctx_train": 32768}}]});
            write_full(w, 200, "application/json", "", &body.to_string()).await
        }
        ("GET", "/health") => write_full(w, 200, "application/json", "", "{\"status\":\"ok\"}").await,
        ("GET", "/props") => {
            let body = json!({"default_generation_settings": {"n_ctx": 4096}, "model_path": "mock.gguf", "total_slots": 2});
            write_full(w, 200, "application/json", "", &body.to_string()).await
        }
        // llama.cpp's tokenizer, mocked: one token per whitespace-separated word.
        ("POST", "/tokenize") => {
            let text = req.body.get("content").and_then(Value::as_str).unwrap_or("");
            let tokens: Vec<usize> = text.split_whitespace().enumerate().map(|(i, _)| i + 1).collect();
            write_full(w, 200, "application/json", "", &json!({"tokens": tokens}).to_string()).await
        }
        _ => write_full(w, 404, "application/json", "", &json!({"error": {"code": 404, "message": format!("File Not Found: {path}"), "type": "not_found_error"}}).to_string()).await,
    }
}

fn ollama_piece(path: &str, text: &str, done: bool) -> Value {
    let mut v = if path.starts_with("/api/generate") {
        json!({"model": "mock-model", "created_at": "2026-01-01T00:00:00Z", "response": text, "done": done})
    } else {
        json!({"model": "mock-model", "created_at": "2026-01-01T00:00:00Z", "message": {"role": "assistant", "content": text}, "done": done})
    };
    if done {
        v["done_reason"] = json!("stop");
        v["prompt_eval_count"] = json!(11);
        v["eval_count"] = json!(3);
    }
    v
}

/// Ollama's answer for a model it does not have.
async fn model_not_found(w: &mut TcpStream, model: &str) -> bool {
    let body = json!({"error": format!("model '{model}' not found")});
    write_full(w, 404, "application/json", "", &body.to_string()).await
}

async fn ollama(w: &mut TcpStream, req: &Recorded, stream: bool, answer: &[String]) -> bool {
    let path = req.path.as_str();
    let model = req.body.get("model").and_then(Value::as_str).unwrap_or("");
    let known = model.is_empty() || model.starts_with("mock-model") || model.starts_with("smol");
    match (req.method.as_str(), path) {
        ("POST", "/api/chat" | "/api/generate") if !known => model_not_found(w, model).await,
        ("POST", "/api/chat" | "/api/generate") if stream => {
            if !start_chunked(w, "application/x-ndjson").await {
                return false;
            }
            for piece in answer {
                if !write_chunk(w, &format!("{}\n", ollama_piece(path, piece, false))).await {
                    return false;
                }
            }
            write_chunk(w, &format!("{}\n", ollama_piece(path, "", true))).await
                && write_chunk(w, "").await
        }
        ("POST", "/api/chat" | "/api/generate") => {
            let body = ollama_piece(path, &answer.concat(), true);
            write_full(w, 200, "application/json", "", &body.to_string()).await
        }
        ("GET", "/api/tags") => {
            let body = json!({"models": [{"name": "mock-model:latest", "model": "mock-model:latest", "size": 1234, "modified_at": "2026-01-01T00:00:00Z"}]});
            write_full(w, 200, "application/json", "", &body.to_string()).await
        }
        ("POST", "/api/show") if known => {
            write_full(
                w,
                200,
                "application/json",
                "",
                &json!({"details": {"family": "llama"}, "modelfile": "FROM mock", "model_info": {"general.architecture": "llama", "llama.context_length": 8192}}).to_string(),
            )
            .await
        }
        ("POST", "/api/pull") if !known => {
            if !start_chunked(w, "application/x-ndjson").await {
                return false;
            }
            write_chunk(w, &format!("{}\n", json!({"status": "pulling manifest"}))).await
                && write_chunk(
                    w,
                    &format!("{}\n", json!({"error": "pull model manifest: file does not exist"})),
                )
                .await
                && write_chunk(w, "").await
        }
        ("POST", "/api/pull") => {
            if !start_chunked(w, "application/x-ndjson").await {
                return false;
            }
            let mut ok =
                write_chunk(w, &format!("{}\n", json!({"status": "pulling manifest"}))).await;
            for done in [0u64, 500, 1000] {
                ok = ok && write_chunk(w, &format!("{}\n", json!({"status": "downloading sha256:abc", "digest": "sha256:abc", "total": 1000, "completed": done}))).await;
            }
            ok && write_chunk(w, &format!("{}\n", json!({"status": "success"}))).await
                && write_chunk(w, "").await
        }
        ("DELETE", "/api/delete") if known => write_full(w, 200, "application/json", "", "").await,
        _ => model_not_found(w, model).await,
    }
}
