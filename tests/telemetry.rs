//! `troupe run` exporting its trace to a real OTLP/HTTP receiver named by the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`; and opening no connection at all without one (or, in
//! offline mode, with one off this machine).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{World, cli_agent, workflow, write_script};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;

const OTEL_VARS: [&str; 6] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_SERVICE_NAME",
    "OTEL_SDK_DISABLED",
];

/// Requests received: path and body.
type Bodies = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A minimal OTLP/HTTP receiver: answers every request with an empty 200 and keeps it.
struct Receiver {
    port: u16,
    bodies: Bodies,
    connections: Arc<AtomicUsize>,
}

impl Receiver {
    fn start_on(listener: TcpListener) -> Receiver {
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (b, c) = (bodies.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let b = b.clone();
                std::thread::spawn(move || serve(stream, &b));
            }
        });
        Receiver { port, bodies, connections }
    }

    fn start() -> Receiver {
        Receiver::start_on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every span received.
    fn spans(&self) -> Vec<Span> {
        let mut out = Vec::new();
        for (path, body) in self.bodies.lock().unwrap().iter() {
            assert_eq!(path, "/v1/traces");
            let export = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
            for rs in export.resource_spans {
                for ss in rs.scope_spans {
                    out.extend(ss.spans);
                }
            }
        }
        out
    }
}

fn serve(stream: TcpStream, bodies: &Mutex<Vec<(String, Vec<u8>)>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
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
        reader.read_exact(&mut body).unwrap();
        bodies.lock().unwrap().push((path, body));
        let reply =
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn attr(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.clone()?.value)
}

fn text(span: &Span, key: &str) -> String {
    match attr(span, key) {
        Some(AnyValue::StringValue(s)) => s,
        other => panic!("{} has no text `{key}`: {other:?}", span.name),
    }
}

fn world() -> World {
    let w = World::new();
    let dir = &w.dir;
    let coder = dir.path().join("coder.sh");
    let reviewer = dir.path().join("reviewer.sh");
    write_script(&coder, "echo 'def reverse(s): return s[::-1]'\n");
    write_script(&reviewer, "echo '{\"verdict\": \"approved\", \"findings\": []}'\n");
    let config = w.config.clone();
    let text = [
        cli_agent("coder", &coder, ""),
        cli_agent("reviewer", &reviewer, ""),
        workflow("scripted", 1, &[("coder", "implement"), ("reviewer", "review")]),
    ];
    std::fs::write(&config, text.concat()).unwrap();
    w
}

fn troupe(w: &World, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = w.troupe(args);
    c.env("XDG_CONFIG_HOME", w.home.join("config")).env_remove("TROUPE_TELEMETRY_ENDPOINT");
    for v in OTEL_VARS {
        c.env_remove(v);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn run_id(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let last: Value = out.lines().filter_map(|l| serde_json::from_str(l).ok()).next_back().unwrap();
    assert_eq!(last["state"], "completed", "{out}");
    last["id"].as_str().unwrap().to_string()
}

#[test]
fn a_run_exports_its_trace_to_the_standard_endpoint() {
    let w = world();
    let receiver = Receiver::start();
    let o = troupe(
        &w,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url()), ("OTEL_SERVICE_NAME", "troupe-e2e")],
        &["run", "--workflow", "scripted", "--json", "reverse a string"],
    );
    let id = run_id(&o);
    // The process has exited: its guard flushed every span.
    let spans = receiver.spans();
    let run = spans.iter().find(|s| s.name == "troupe.run").unwrap_or_else(|| {
        panic!("no troupe.run span among {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>())
    });
    assert_eq!(text(run, "run_id"), id);
    assert_eq!(text(run, "workflow"), "scripted");
    assert_eq!(text(run, "outcome"), "completed");
    let steps: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "troupe.step" && s.parent_span_id == run.span_id)
        .collect();
    assert_eq!(steps.len(), 2);
    for step in &steps {
        let calls: Vec<&Span> = spans
            .iter()
            .filter(|s| s.name == "troupe.call" && s.parent_span_id == step.span_id)
            .collect();
        assert_eq!(calls.len(), 1, "one call per step");
        assert_eq!(text(calls[0], "agent"), text(step, "agent"));
        assert_eq!(text(calls[0], "kind"), "cli");
        assert_eq!(text(calls[0], "outcome"), "success");
        assert!(
            matches!(attr(calls[0], "completion_tokens"), Some(AnyValue::IntValue(n)) if n > 0)
        );
    }
    // Nothing of the task or the answers left the process.
    let raw: Vec<u8> =
        receiver.bodies.lock().unwrap().iter().flat_map(|(_, b)| b.clone()).collect();
    let raw = String::from_utf8_lossy(&raw);
    assert!(!raw.contains("reverse a string") && !raw.contains("s[::-1]"));
}

#[test]
fn without_an_endpoint_no_connection_is_opened() {
    let w = world();
    // The OTLP default port, when free: an exporter created with default settings would
    // connect here.
    let receiver = match TcpListener::bind("127.0.0.1:4318") {
        Ok(l) => Receiver::start_on(l),
        Err(_) => Receiver::start(),
    };
    let o = troupe(&w, &[], &["run", "--workflow", "scripted", "--json", "reverse a string"]);
    run_id(&o);
    // An endpoint in offline mode that is not on this machine: refused, with a warning.
    // (The scripted agents are not local, so offline mode runs no workflow of theirs.)
    let o = troupe(
        &w,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://192.0.2.1:4318")],
        &["--offline", "workflows"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("offline mode is on and the OTLP endpoint http://192.0.2.1:4318/v1/traces"),
        "{stderr}"
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(receiver.connections.load(Ordering::SeqCst), 0);

    // `doctor` says what it would do, without connecting either.
    let o = troupe(&w, &[], &["doctor", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let check = v["checks"].as_array().unwrap().iter().find(|c| c["name"] == "telemetry").unwrap();
    assert_eq!(check["status"], "info", "{check}");
    let o = troupe(&w, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url())], &["doctor", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let check = v["checks"].as_array().unwrap().iter().find(|c| c["name"] == "telemetry").unwrap();
    assert_eq!(check["status"], "ok", "{check}");
    assert!(check["message"].as_str().unwrap().contains(&receiver.url()), "{check}");
}
