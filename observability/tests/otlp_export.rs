//! OTLP/HTTP export to a real receiver on loopback: spans arrive as protobuf after the guard
//! is dropped, only troupe's spans (never events), with the configured headers; and the plans
//! that export nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tracing_subscriber::layer::SubscriberExt;
use troupe_observability::telemetry::{self, DisabledReason, EndpointSource};
use troupe_observability::testing::OtlpReceiver;
use troupe_observability::{LogOptions, TelemetryGuard, TelemetryOptions, TelemetryPlan};

fn attr(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.clone()?.value)
}

#[test]
fn spans_reach_a_real_otlp_http_receiver_when_the_guard_drops() {
    let receiver = OtlpReceiver::start().unwrap();
    let options = TelemetryOptions {
        endpoint: Some(receiver.url()),
        headers: BTreeMap::from([("x-api-key".to_string(), "k-123".to_string())]),
        service_name: Some("troupe-test".into()),
        ..Default::default()
    };
    let TelemetryPlan::Enabled(settings) = TelemetryPlan::resolve(&options, |_| None) else {
        panic!("a configured endpoint is exported to")
    };
    assert_eq!(settings.endpoint, format!("{}/v1/traces", receiver.url()));
    let provider = telemetry::provider(&settings).unwrap();
    let guard = TelemetryGuard::new(provider.clone());
    assert!(guard.is_exporting());
    let subscriber = tracing_subscriber::registry().with(telemetry::layer(&provider));
    tracing::subscriber::with_default(subscriber, || {
        let run =
            tracing::info_span!(target: "troupe_runtime::telemetry", "troupe.run", run_id = "r-1");
        let _run = run.enter();
        let step = tracing::info_span!(target: "troupe_runtime::telemetry", "troupe.step", step = 0u64, agent = "coder");
        step.in_scope(|| {
            let call = tracing::info_span!(
                target: "troupe_adapters::telemetry",
                "troupe.call",
                agent = "coder",
                prompt_tokens = tracing::field::Empty
            );
            // Numbers are recorded as i64 (tracing-opentelemetry exports u64 as text).
            call.record("prompt_tokens", 42i64);
            call.in_scope(|| {
                // Events are never exported (their messages are free text), nor are
                // debug spans or other crates' spans.
                tracing::warn!(target: "troupe_adapters", secret = "do-not-export", "an event");
                tracing::debug_span!(target: "troupe_adapters", "troupe.debug").in_scope(|| {});
                tracing::info_span!(target: "hyper::client", "foreign").in_scope(|| {});
            });
        });
    });
    // Nothing is sent before the batch is due...
    assert!(receiver.requests().is_empty(), "spans are batched, not sent one by one");
    // ...and everything when the guard drops (the end of a CLI command).
    drop(guard);

    let requests = receiver.requests();
    assert!(!requests.is_empty(), "no export request arrived");
    let mut spans: Vec<Span> = Vec::new();
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/v1/traces");
        assert_eq!(
            r.headers.get("content-type").map(String::as_str),
            Some("application/x-protobuf")
        );
        assert_eq!(r.headers.get("x-api-key").map(String::as_str), Some("k-123"));
        assert!(!String::from_utf8_lossy(&r.body).contains("do-not-export"));
        let export = ExportTraceServiceRequest::decode(r.body.as_slice()).unwrap();
        for rs in export.resource_spans {
            let resource = rs.resource.unwrap();
            let service = resource.attributes.iter().find(|kv| kv.key == "service.name").unwrap();
            assert_eq!(
                service.value.clone().unwrap().value,
                Some(AnyValue::StringValue("troupe-test".into()))
            );
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    let mut names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["troupe.call", "troupe.run", "troupe.step"]);
    let by_name = |n: &str| spans.iter().find(|s| s.name == n).unwrap();
    let (run, step, call) = (by_name("troupe.run"), by_name("troupe.step"), by_name("troupe.call"));
    assert!(run.parent_span_id.is_empty());
    assert_eq!(step.parent_span_id, run.span_id);
    assert_eq!(call.parent_span_id, step.span_id);
    assert_eq!(call.trace_id, run.trace_id);
    assert_eq!(attr(run, "run_id"), Some(AnyValue::StringValue("r-1".into())));
    assert_eq!(attr(call, "prompt_tokens"), Some(AnyValue::IntValue(42)));
    assert!(call.events.is_empty(), "events are not exported: {:?}", call.events);
}

#[test]
fn without_an_endpoint_nothing_is_exported_and_no_exporter_exists() {
    let plan = TelemetryPlan::resolve(&TelemetryOptions::default(), |_| None);
    assert_eq!(plan, TelemetryPlan::Disabled(DisabledReason::NotConfigured));
    assert!(plan.describe().contains("nothing is exported"));
    // The binary's own set-up with that plan: logging only, no exporter behind the guard.
    let guard = troupe_observability::init(LogOptions::default(), &plan).unwrap();
    assert!(!guard.is_exporting());
    assert!(matches!(
        troupe_observability::init(LogOptions::default(), &plan),
        Err(troupe_observability::Error::AlreadyInitialised)
    ));
}

#[test]
fn offline_mode_refuses_an_endpoint_off_this_machine() {
    let receiver = OtlpReceiver::start().unwrap();
    let remote = TelemetryOptions {
        endpoint: Some("https://otel.example.com:4318".into()),
        offline: true,
        ..Default::default()
    };
    let plan = TelemetryPlan::resolve(&remote, |_| None);
    let TelemetryPlan::Refused { endpoint, source, reason } = &plan else { panic!("{plan:?}") };
    assert_eq!(endpoint, "https://otel.example.com:4318/v1/traces");
    assert_eq!(*source, EndpointSource::Config);
    assert!(reason.contains("offline mode") && reason.contains("not on this machine"), "{reason}");
    // The standard variable is held to the same rule.
    let plan =
        TelemetryPlan::resolve(&TelemetryOptions { offline: true, ..Default::default() }, |v| {
            (v == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://192.0.2.7:4318".to_string())
        });
    assert!(matches!(plan, TelemetryPlan::Refused { source: EndpointSource::Env, .. }), "{plan:?}");
    // A local collector is fine offline.
    let local =
        TelemetryOptions { endpoint: Some(receiver.url()), offline: true, ..Default::default() };
    assert!(TelemetryPlan::resolve(&local, |_| None).is_enabled());
    assert_eq!(receiver.connections(), 0, "planning opens no connection");
}
