//! Trace spans of real runs, seen by an in-memory OpenTelemetry exporter through the same
//! layer the binary installs: the run → step → call hierarchy (across the agent actors),
//! attempts and fallbacks, and the attributes — never the task, prompts or answers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanId, Status};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;
use troupe_adapters::agent::Agent;
use troupe_adapters::config::{AgentConfig, AgentKind, Role};
use troupe_adapters::error::AdapterError;
use troupe_adapters::registry::{AgentRegistry, RegistryOptions};
use troupe_adapters::resilience::LimiterRegistry;
use troupe_adapters::testing::ScriptedAgent;
use troupe_runtime::{
    ContextBlock, Memory, MemoryBackend, RunOutcome, RunRecord, RunRequest, RunState, Runtime,
    RuntimeParts, StepRecord,
};
use troupe_workflows::config::{Config, StepConfig, WorkflowConfig};

const TASK: &str = "reverse a string without allocating";
const CODE: &str = "fn reverse_in_place(s: &mut [u8]) { s.reverse() }";
const APPROVE: &str = r#"{"verdict": "approved", "summary": "fine", "findings": []}"#;

/// The process-wide subscriber: troupe's layer over an in-memory exporter (a simple
/// processor, so a span is exported as soon as it ends).
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    &EXPORTER
        .get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider =
                SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
            let subscriber = tracing_subscriber::registry()
                .with(troupe_observability::telemetry::layer(&provider));
            tracing::subscriber::set_global_default(subscriber).unwrap();
            (exporter, provider)
        })
        .0
}

#[derive(Debug)]
struct TwoNodes;

impl Memory for TwoNodes {
    fn ensure_project(&self, _: &Path) -> troupe_runtime::Result<String> {
        Ok("project-1".into())
    }
    fn relevant_context(&self, _: &str, _: &str, _: usize) -> troupe_runtime::Result<ContextBlock> {
        Ok(ContextBlock {
            text: "earlier: a mistake about UTF-8".into(),
            nodes: vec!["n1".into(), "n2".into()],
            tokens: 12,
        })
    }
    fn record_run(&self, _: &RunOutcome) -> troupe_runtime::Result<String> {
        Ok("task".into())
    }
}

fn agent_config(role: Role) -> AgentConfig {
    let mut a = AgentConfig::new(AgentKind::Llamacpp);
    a.base_url = Some("http://127.0.0.1:1/v1".into());
    a.role = Some(role);
    a.retry.max_attempts = 2;
    a.retry.initial_backoff_ms = 1;
    a.retry.max_backoff_ms = 1;
    a
}

/// Agents `coder`, `reviewer`, `spare`; workflow `ir` (implement → review, with `spare` as
/// the implement step's fallback).
fn config() -> Config {
    let mut c = Config::builtin();
    c.agents.insert("coder".into(), agent_config(Role::Implement));
    c.agents.insert("reviewer".into(), agent_config(Role::Review));
    c.agents.insert("spare".into(), agent_config(Role::Implement));
    let mut implement = StepConfig::new("coder", Role::Implement);
    implement.fallback = vec!["spare".into()];
    c.workflows.insert(
        "ir".into(),
        WorkflowConfig::new(1, vec![implement, StepConfig::new("reviewer", Role::Review)]),
    );
    c
}

struct Harness {
    runtime: Runtime,
    project: tempfile::TempDir,
}

/// A runtime whose agents are the scripted ones under the real registry stack (call span,
/// offline guard, breaker, retry, rate limit).
fn harness(agents: Vec<ScriptedAgent>) -> Harness {
    harness_with(config(), agents)
}

fn harness_with(config: Config, agents: Vec<ScriptedAgent>) -> Harness {
    let scripted: BTreeMap<String, Arc<dyn Agent>> = agents
        .into_iter()
        .map(|a| (a.info().name.clone(), Arc::new(a.with_kind("llamacpp")) as Arc<dyn Agent>))
        .collect();
    let registry = AgentRegistry::build_with(
        &config.agents,
        RegistryOptions {
            limiters: Some(Arc::new(LimiterRegistry::default())),
            ..Default::default()
        },
        move |name: &str, _: &AgentConfig| {
            Ok(scripted
                .get(name)
                .cloned()
                .unwrap_or_else(|| Arc::new(ScriptedAgent::new(name)) as Arc<dyn Agent>))
        },
    );
    let registry = Arc::new(registry);
    let agents = troupe_runtime::agents_of(&registry);
    let backend = Arc::new(MemoryBackend::default());
    let runtime = Runtime::new(RuntimeParts {
        memory: Arc::new(TwoNodes),
        max_tokens: 256,
        registry: Some(registry),
        ..RuntimeParts::new(config, agents, backend).unwrap()
    })
    .unwrap();
    Harness { runtime, project: tempfile::tempdir().unwrap() }
}

/// Run `TASK` through `workflow`; the record, its stored steps and its trace's spans.
async fn run(h: &Harness, workflow: &str) -> (RunRecord, Vec<StepRecord>, Vec<SpanData>) {
    let exporter = exporter();
    let request = RunRequest {
        task: TASK.into(),
        workflow: Some(workflow.into()),
        project: Some(h.project.path().to_path_buf()),
        ..Default::default()
    };
    let handle = h.runtime.submit(request).await.unwrap();
    let record = handle.wait().await.unwrap();
    let steps = h.runtime.store().steps(&record.id).unwrap();
    // The run span ends just after the record is handed over: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans = exporter.get_finished_spans().unwrap();
        if let Some(root) =
            spans.iter().find(|s| s.name == "troupe.run" && attr(s, "run_id") == record.id)
        {
            let trace = root.span_context.trace_id();
            let trace: Vec<SpanData> =
                spans.iter().filter(|s| s.span_context.trace_id() == trace).cloned().collect();
            return (record, steps, trace);
        }
        assert!(Instant::now() < deadline, "no troupe.run span for {}", record.id);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn value(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes.iter().find(|kv: &&KeyValue| kv.key.as_str() == key).map(|kv| kv.value.clone())
}

/// An attribute as text (numbers and booleans included); empty when absent.
fn attr(span: &SpanData, key: &str) -> String {
    value(span, key).map(|v| v.as_str().into_owned()).unwrap_or_default()
}

fn int(span: &SpanData, key: &str) -> i64 {
    match value(span, key) {
        Some(Value::I64(n)) => n,
        other => panic!("{} has no integer `{key}`: {other:?}", span.name),
    }
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn children<'a>(spans: &'a [SpanData], parent: &SpanData, name: &str) -> Vec<&'a SpanData> {
    let id: SpanId = parent.span_context.span_id();
    spans.iter().filter(|s| s.name == name && s.parent_span_id == id).collect()
}

/// No attribute of any span carries the task, a prompt, the context text or an answer.
fn assert_no_text(spans: &[SpanData]) {
    for s in spans {
        for kv in &s.attributes {
            let v = kv.value.as_str();
            for secret in [TASK, CODE, "verdict", "UTF-8", "connection reset", "denied"] {
                assert!(!v.contains(secret), "{}.{} carries text: {v}", s.name, kv.key);
            }
        }
    }
}

#[actix::test]
async fn a_run_is_a_tree_of_run_step_and_call_spans_with_their_attributes() {
    let h = harness(vec![
        ScriptedAgent::new("coder").then_answer(CODE),
        ScriptedAgent::new("reviewer").then_answer(APPROVE),
    ]);
    let (record, steps, spans) = run(&h, "ir").await;
    assert_eq!(record.state, RunState::Completed);
    assert_no_text(&spans);

    let runs = named(&spans, "troupe.run");
    assert_eq!(runs.len(), 1, "{spans:#?}");
    let root = runs[0];
    assert_eq!(root.parent_span_id, SpanId::INVALID, "a run is a root span");
    assert_eq!(attr(root, "run_id"), record.id);
    assert_eq!(attr(root, "workflow"), "ir");
    assert_eq!(attr(root, "project"), "project-1");
    assert_eq!(attr(root, "outcome"), "completed");
    assert_eq!(attr(root, "finish_reason"), "review_passed");
    assert_eq!(int(root, "prompt_tokens") as u64, record.tokens.prompt);
    assert_eq!(int(root, "completion_tokens") as u64, record.tokens.completion);

    // Two steps, children of the run, in order, each with its stored numbers.
    // The memory is searched once, for the whole run (every step's prompt has the same).
    let ctx = children(&spans, root, "troupe.context");
    assert_eq!(ctx.len(), 1, "{spans:#?}");
    assert_eq!(named(&spans, "troupe.context").len(), 1, "{spans:#?}");
    assert_eq!(int(ctx[0], "nodes"), 2);
    assert_eq!(int(ctx[0], "query_chars"), TASK.chars().count() as i64);
    let mut step_spans = children(&spans, root, "troupe.step");
    step_spans.sort_by_key(|s| int(s, "step"));
    assert_eq!(step_spans.len(), 2, "{spans:#?}");
    assert_eq!(named(&spans, "troupe.step").len(), 2, "every step span hangs off the run");
    for ((span, stored), (agent, role)) in
        step_spans.iter().zip(&steps).zip([("coder", "implement"), ("reviewer", "review")])
    {
        assert_eq!(attr(span, "run_id"), record.id);
        assert_eq!(attr(span, "agent"), agent);
        assert_eq!(attr(span, "role"), role);
        assert_eq!(attr(span, "name"), format!("{agent}:{role}"));
        assert_eq!(int(span, "iteration"), 1);
        assert_eq!(attr(span, "outcome"), "completed");
        assert_eq!(attr(span, "answered_by"), agent);
        assert_eq!(int(span, "prompt_tokens") as u64, stored.tokens.prompt);
        assert_eq!(int(span, "completion_tokens") as u64, stored.tokens.completion);
        assert_eq!(int(span, "context_nodes"), 2);
        assert!(value(span, "latency_ms").is_some());
        assert_eq!(value(span, "error_class"), None);

        // The agent call happens inside the step, though it crosses into the agent's actor.
        assert!(children(&spans, span, "troupe.context").is_empty(), "{span:#?}");
        let calls = children(&spans, span, "troupe.call");
        assert_eq!(calls.len(), 1, "{spans:#?}");
        let call = calls[0];
        assert_eq!(attr(call, "agent"), agent);
        assert_eq!(attr(call, "model"), "scripted-model");
        assert_eq!(attr(call, "kind"), "http");
        assert_eq!(attr(call, "adapter"), "llamacpp");
        assert_eq!(attr(call, "outcome"), "success");
        assert!(stored.tokens.prompt > 0 && stored.tokens.completion > 0);
        assert_eq!(int(call, "prompt_tokens") as u64, stored.tokens.prompt);
        assert_eq!(int(call, "completion_tokens") as u64, stored.tokens.completion);
        assert_eq!(int(call, "attempts"), 1);
        assert_eq!(value(call, "error_class"), None);
        assert_eq!(call.status, Status::Unset);
        // The retry layer's single attempt.
        let attempts = children(&spans, call, "troupe.attempt");
        assert_eq!(attempts.len(), 1);
        assert_eq!(attr(attempts[0], "outcome"), "success");
    }
    // Nothing else: no span of this trace is an orphan.
    let ids: Vec<SpanId> = spans.iter().map(|s| s.span_context.span_id()).collect();
    for s in &spans {
        assert!(
            s.parent_span_id == SpanId::INVALID || ids.contains(&s.parent_span_id),
            "{} has a parent outside the trace",
            s.name
        );
    }
}

#[actix::test]
async fn retries_fallbacks_and_failures_are_spans_with_their_error_class() {
    // The coder fails twice (both attempts), the step falls back to `spare`, which answers;
    // the reviewer is refused outright (not retried, no fallback), so the run fails.
    let h = harness(vec![
        ScriptedAgent::new("coder").then_fail(AdapterError::transient("coder", "connection reset")),
        ScriptedAgent::new("spare").then_answer(CODE),
        ScriptedAgent::new("reviewer")
            .then_fail(AdapterError::Auth { agent: "reviewer".into(), message: "denied".into() }),
    ]);
    let (record, _, spans) = run(&h, "ir").await;
    assert_eq!(record.state, RunState::Failed);
    assert_no_text(&spans);
    let root = named(&spans, "troupe.run")[0];
    assert_eq!(attr(root, "outcome"), "failed");
    assert!(matches!(root.status, Status::Error { .. }), "{:?}", root.status);

    let mut steps = children(&spans, root, "troupe.step");
    steps.sort_by_key(|s| int(s, "step"));
    let (implement, review) = (steps[0], steps[1]);

    // Implement: coder's call failed after two attempts, each a span with the class.
    assert_eq!(attr(implement, "outcome"), "completed");
    assert_eq!(attr(implement, "answered_by"), "spare");
    assert_eq!(int(implement, "fallbacks"), 1);
    let calls = children(&spans, implement, "troupe.call");
    assert_eq!(calls.len(), 1, "only the first call is a direct child: {spans:#?}");
    let failed = calls[0];
    assert_eq!(attr(failed, "agent"), "coder");
    assert_eq!(attr(failed, "outcome"), "error");
    assert_eq!(attr(failed, "error_class"), "transient");
    assert!(matches!(failed.status, Status::Error { .. }));
    let attempts = children(&spans, failed, "troupe.attempt");
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    for a in &attempts {
        assert_eq!(attr(a, "error_class"), "transient");
    }
    // The fallback is a span of the step, and spare's call runs inside it.
    let fallbacks = children(&spans, implement, "troupe.fallback");
    assert_eq!(fallbacks.len(), 1, "{spans:#?}");
    assert_eq!(attr(fallbacks[0], "from"), "coder");
    assert_eq!(attr(fallbacks[0], "to"), "spare");
    assert_eq!(attr(fallbacks[0], "error_class"), "transient");
    let spare = children(&spans, fallbacks[0], "troupe.call");
    assert_eq!(spare.len(), 1);
    assert_eq!(attr(spare[0], "agent"), "spare");
    assert_eq!(attr(spare[0], "outcome"), "success");
    assert!(int(spare[0], "completion_tokens") > 0);

    // Review: refused, so the step failed with the call's class, not its message.
    assert_eq!(attr(review, "outcome"), "failed");
    assert_eq!(attr(review, "error_class"), "auth");
    assert!(matches!(review.status, Status::Error { .. }));
    let calls = children(&spans, review, "troupe.call");
    assert_eq!(calls.len(), 1);
    assert_eq!(attr(calls[0], "error_class"), "auth");
    assert_eq!(children(&spans, calls[0], "troupe.attempt").len(), 1, "auth is not retried");
}

#[actix::test]
async fn the_dynamic_planner_is_a_plan_span_with_its_own_call() {
    let plan = r#"{"steps": [{"role": "implement", "agent": "coder"}, {"role": "review", "agent": "reviewer"}]}"#;
    let mut c = config();
    c.settings.planner_agent = Some("reviewer".into());
    let h = harness_with(
        c,
        vec![
            ScriptedAgent::new("coder").then_answer(CODE),
            ScriptedAgent::new("reviewer").then_answer(plan).then_answer(APPROVE),
        ],
    );
    let (record, _, spans) = run(&h, "dynamic").await;
    assert_eq!(record.state, RunState::Completed, "{record:?}");
    assert_no_text(&spans);
    let root = named(&spans, "troupe.run")[0];
    assert_eq!(attr(root, "workflow"), "dynamic");
    let plans = children(&spans, root, "troupe.plan");
    assert_eq!(plans.len(), 1, "{spans:#?}");
    assert_eq!(attr(plans[0], "planner"), "reviewer");
    assert_eq!(attr(plans[0], "outcome"), "planned");
    assert_eq!(int(plans[0], "steps"), 2);
    // The planner's call belongs to the plan, not to a step; the memory searched once for
    // the run serves the plan and the steps.
    assert_eq!(children(&spans, root, "troupe.context").len(), 1);
    assert_eq!(named(&spans, "troupe.context").len(), 1);
    let calls = children(&spans, plans[0], "troupe.call");
    assert_eq!(calls.len(), 1);
    assert_eq!(attr(calls[0], "agent"), "reviewer");
    assert_eq!(attr(calls[0], "outcome"), "success");
    assert_eq!(children(&spans, root, "troupe.step").len(), 2);
}
