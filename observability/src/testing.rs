//! Test doubles (feature `test-utils`): [`OtlpReceiver`], a real OTLP/HTTP receiver on
//! loopback that keeps every request, for the exporter's tests and the binary's end-to-end
//! telemetry tests alike.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// One HTTP request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpRequest {
    /// `POST` for an export.
    pub method: String,
    /// `/v1/traces` for spans.
    pub path: String,
    /// Header names lowercased.
    pub headers: BTreeMap<String, String>,
    /// The body (protobuf for an OTLP/HTTP export).
    pub body: Vec<u8>,
}

/// A minimal OTLP/HTTP receiver: answers every request with an empty 200 and keeps it. Its
/// threads live as long as the process (tests end it).
#[derive(Debug)]
pub struct OtlpReceiver {
    port: u16,
    requests: Arc<Mutex<Vec<OtlpRequest>>>,
    connections: Arc<AtomicUsize>,
}

impl OtlpReceiver {
    /// A receiver on a free loopback port.
    pub fn start() -> std::io::Result<OtlpReceiver> {
        OtlpReceiver::start_on(TcpListener::bind("127.0.0.1:0")?)
    }

    /// A receiver answering on `listener`.
    pub fn start_on(listener: TcpListener) -> std::io::Result<OtlpReceiver> {
        let port = listener.local_addr()?.port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (r, c) = (requests.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                std::thread::spawn(move || serve(stream, &r));
            }
        });
        Ok(OtlpReceiver { port, requests, connections })
    }

    /// `http://127.0.0.1:PORT`, the endpoint to configure.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<OtlpRequest> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// How many connections were opened to it.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Read requests off one connection until it closes (or sends something that is not HTTP).
fn serve(stream: TcpStream, requests: &Mutex<Vec<OtlpRequest>>) {
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = OtlpRequest { method, path, headers, body };
        requests.lock().unwrap_or_else(PoisonError::into_inner).push(request);
        let reply =
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}
