//! `troupe run` exporting its trace to a real OTLP/HTTP receiver named by the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`; and opening no connection at all without one (or, in
//! offline mode, with one off this machine).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpListener;
use std::process::Output;

use common::{World, cli_agent, workflow, write_script};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;
use troupe_observability::testing::OtlpReceiver;

const OTEL_VARS: [&str; 6] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_SERVICE_NAME",
    "OTEL_SDK_DISABLED",
];

/// Every span `receiver` received (each request an OTLP/HTTP trace export).
fn spans(receiver: &OtlpReceiver) -> Vec<Span> {
    let mut out = Vec::new();
    for r in receiver.requests() {
        assert_eq!(r.path, "/v1/traces");
        let export = ExportTraceServiceRequest::decode(r.body.as_slice()).unwrap();
        for rs in export.resource_spans {
            for ss in rs.scope_spans {
                out.extend(ss.spans);
            }
        }
    }
    out
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
    let receiver = OtlpReceiver::start().unwrap();
    let o = troupe(
        &w,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url()), ("OTEL_SERVICE_NAME", "troupe-e2e")],
        &["run", "--workflow", "scripted", "--json", "reverse a string"],
    );
    let id = run_id(&o);
    // The process has exited: its guard flushed every span.
    let spans = spans(&receiver);
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
    let raw: Vec<u8> = receiver.requests().into_iter().flat_map(|r| r.body).collect();
    let raw = String::from_utf8_lossy(&raw);
    assert!(!raw.contains("reverse a string") && !raw.contains("s[::-1]"));
}

#[test]
fn without_an_endpoint_no_connection_is_opened() {
    let w = world();
    // The OTLP default port, when free: an exporter created with default settings would
    // connect here.
    let receiver = match TcpListener::bind("127.0.0.1:4318") {
        Ok(l) => OtlpReceiver::start_on(l).unwrap(),
        Err(_) => OtlpReceiver::start().unwrap(),
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
    assert_eq!(receiver.connections(), 0);

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
