//! Trace spans of runs: `troupe.run` per run (a root), `troupe.plan` for the dynamic
//! planner, `troupe.step` per step, `troupe.context` per memory search. Agent calls inside a
//! step are `troupe.call` spans from `troupe_adapters::telemetry`.
//!
//! Spans carry ids, names, counts, durations, outcomes and error classes — never the task,
//! prompts, answers or error messages. Whether they go anywhere is the binary's choice.

use std::time::Duration;

use tracing::Span;
use tracing::field::Empty;
use troupe_adapters::config::Role;
use troupe_adapters::telemetry::int;
use troupe_workflows::engine::StepPos;

use crate::model::{RunRecord, StepRecord, StepState};

fn millis(d: Duration) -> i64 {
    int(d.as_millis())
}

/// A step's state as a span outcome.
pub(crate) fn step_outcome(state: StepState) -> &'static str {
    match state {
        StepState::Running => "running",
        StepState::Completed => "completed",
        StepState::Skipped => "skipped",
        StepState::Failed => "failed",
        StepState::Cancelled => "cancelled",
    }
}

/// The `troupe.run` span of `record`: a root (a run outlives whatever submitted it).
pub(crate) fn run_span(record: &RunRecord) -> Span {
    tracing::info_span!(
        parent: None,
        "troupe.run",
        run_id = %record.id,
        workflow = %record.workflow_name,
        project = %record.project_id,
        offline = record.offline,
        resumed = int(record.resumed),
        steps = Empty,
        iterations = Empty,
        prompt_tokens = Empty,
        completion_tokens = Empty,
        outcome = Empty,
        finish_reason = Empty,
        otel.status_code = Empty,
    )
}

/// Record how the run ended on its [`run_span`].
pub(crate) fn record_run(span: &Span, record: &RunRecord) {
    span.record("steps", int(record.workflow.steps.len()));
    span.record("iterations", int(record.iterations));
    span.record("prompt_tokens", int(record.tokens.prompt));
    span.record("completion_tokens", int(record.tokens.completion));
    span.record("outcome", record.state.as_str());
    // As stored (`review_passed`, `max_iterations`, …).
    if let Some(reason) = record.finish_reason.and_then(|r| serde_json::to_value(r).ok())
        && let Some(reason) = reason.as_str()
    {
        span.record("finish_reason", reason);
    }
    if record.state == crate::model::RunState::Failed {
        span.record("otel.status_code", "ERROR");
    }
}

/// The `troupe.plan` span: the dynamic planner choosing the steps.
pub(crate) fn plan_span(run_id: &str) -> Span {
    tracing::info_span!(
        "troupe.plan",
        run_id = %run_id,
        planner = Empty,
        steps = Empty,
        outcome = Empty,
        latency_ms = Empty,
    )
}

/// Record the plan on its [`plan_span`]: `planner` when one planned, else the static
/// workflow was used (`outcome = fallback`).
pub(crate) fn record_plan(span: &Span, planner: Option<&str>, steps: usize, latency: Duration) {
    if let Some(p) = planner {
        span.record("planner", p);
    }
    span.record("steps", int(steps));
    span.record("outcome", if planner.is_some() { "planned" } else { "fallback" });
    span.record("latency_ms", millis(latency));
}

/// The `troupe.step` span of the step at `pos`.
pub(crate) fn step_span(run_id: &str, pos: StepPos, role: Role, agent: &str) -> Span {
    tracing::info_span!(
        "troupe.step",
        run_id = %run_id,
        step = int(pos.step),
        name = %format_args!("{agent}:{role}"),
        role = role.as_str(),
        agent = %agent,
        iteration = int(pos.iteration),
        answered_by = Empty,
        model = Empty,
        prompt_tokens = Empty,
        completion_tokens = Empty,
        retries = Empty,
        fallbacks = Empty,
        context_nodes = Empty,
        latency_ms = Empty,
        outcome = Empty,
        error_class = Empty,
        otel.status_code = Empty,
    )
}

/// Record how the step ended on its [`step_span`]; `error_class` is the failing call's
/// error kind, when it failed.
pub(crate) fn record_step(span: &Span, step: &StepRecord, error_class: Option<&str>) {
    if let Some(a) = &step.answered_by {
        span.record("answered_by", a.as_str());
    }
    if let Some(m) = &step.model {
        span.record("model", m.as_str());
    }
    span.record("prompt_tokens", int(step.tokens.prompt));
    span.record("completion_tokens", int(step.tokens.completion));
    span.record("retries", int(step.retries));
    span.record("fallbacks", int(step.fallback_from.len()));
    span.record("context_nodes", int(step.context_nodes.len()));
    span.record("latency_ms", int(step.latency_ms));
    span.record("outcome", step_outcome(step.state));
    if let Some(class) = error_class {
        span.record("error_class", class);
    }
    if step.state == StepState::Failed {
        span.record("otel.status_code", "ERROR");
    }
}

/// The `troupe.context` span of one memory search (`query_chars`: the query's length).
pub(crate) fn context_span(run_id: &str, query_chars: usize, budget: usize) -> Span {
    tracing::info_span!(
        "troupe.context",
        run_id = %run_id,
        query_chars = int(query_chars),
        token_budget = int(budget),
        nodes = Empty,
        tokens = Empty,
        latency_ms = Empty,
        outcome = Empty,
    )
}

/// Record a memory search's result on its [`context_span`].
pub(crate) fn record_context(
    span: &Span,
    nodes: usize,
    tokens: usize,
    latency: Duration,
    ok: bool,
) {
    span.record("nodes", int(nodes));
    span.record("tokens", int(tokens));
    span.record("latency_ms", millis(latency));
    span.record("outcome", if ok { "success" } else { "error" });
}
