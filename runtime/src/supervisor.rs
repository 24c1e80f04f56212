//! The Supervisor: one actor per run, driving its workflow step by step.
//!
//! For each step: build the prompt (role template, the project's relevant memory, the
//! conversation so far, the previous step's output, the latest review's findings), write
//! the step as `running` with its prompt, call the agent (the step's fallbacks after it),
//! stream its answer as events, write the step as ended, and tell the engine. A crash at any
//! point leaves the store consistent: a `running` step is simply run again on resume.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use chrono::Utc;
use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};
use troupe_adapters::agent::{AgentRequest, GenerationOptions, OutputFormat};
use troupe_adapters::config::Role;
use troupe_workflows::engine::{FinishReason, Next, StepOutcome, StepPlan};
use troupe_workflows::verdict::{Finding, VerdictStatus};

use crate::audit::AuditEvent;
use crate::call::{Caller, Failure};
use crate::model::{RunEvent, RunRecord, RunState, StepRecord, StepState, Tokens};
use crate::runtime::Shared;
use crate::telemetry;

/// Cancel the run.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Cancel;

/// The actor of one run.
#[derive(Debug)]
pub struct Supervisor {
    job: Option<RunJob>,
    cancel: CancellationToken,
}

/// Everything a run needs to go.
#[derive(Debug)]
pub(crate) struct RunJob {
    pub shared: Arc<Shared>,
    pub record: RunRecord,
    /// Steps stored by earlier attempts (empty for a new run), replayed into the engine.
    pub steps: Vec<StepRecord>,
    pub events: broadcast::Sender<RunEvent>,
    pub done: oneshot::Sender<RunRecord>,
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Supervisor {
    pub(crate) fn new(job: RunJob, cancel: CancellationToken) -> Supervisor {
        Supervisor { job: Some(job), cancel }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(job) = self.job.take() else {
            ctx.stop();
            return;
        };
        let cancel = self.cancel.clone();
        ctx.spawn(drive(job, cancel).into_actor(self).map(|_, _, ctx| ctx.stop()));
    }
}

impl Handler<Cancel> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Cancel, _: &mut Context<Self>) {
        self.cancel.cancel();
    }
}

fn step_label(agent: &str, role: Role) -> String {
    format!("{agent}:{role}")
}

/// Why a step could not be run to an end.
#[derive(Debug)]
enum StepStop {
    /// The store cannot be written: the run cannot continue durably.
    Store(String),
    /// The call could cross a budget, so it was not made.
    Budget(String),
}

fn emit(events: &broadcast::Sender<RunEvent>, event: RunEvent) {
    // No subscriber is fine: events are also reconstructible from the store.
    let _ = events.send(event);
}

/// Run the job to its end, inside its `troupe.run` span.
async fn drive(job: RunJob, cancel: CancellationToken) {
    let span = telemetry::run_span(&job.record);
    drive_run(job, cancel, span.clone()).instrument(span).await
}

/// Run the job to its end; sends the final record to `job.done`.
async fn drive_run(job: RunJob, cancel: CancellationToken, run_span: Span) {
    let RunJob { shared, mut record, steps, events, done, permit } = job;
    let run_id = record.id.clone();
    let metrics = shared.metrics.clone();
    let resumed = record.resumed > 0;
    metrics.add_active_run("pending", -1);
    metrics.add_active_run("in_progress", 1);
    record.state = RunState::InProgress;
    record.started_at.get_or_insert_with(Utc::now);
    if let Err(e) = shared.store.put_run(&record) {
        tracing::error!(run = %run_id, error = %e, "cannot persist the run");
    }
    // A dynamic workflow is planned once; the plan is persisted so a resume follows it.
    if record.workflow.steps.is_empty() {
        let span = telemetry::plan_span(&run_id);
        let started = Instant::now();
        let planned =
            crate::planner::plan(&shared, &record, &cancel).instrument(span.clone()).await;
        telemetry::record_plan(
            &span,
            planned.planned_by.as_deref(),
            planned.workflow.steps.len(),
            started.elapsed(),
        );
        record.workflow = planned.workflow;
        record.plan_notes.extend(planned.notes.iter().cloned());
        record.tokens.add(planned.tokens);
        record.cost += planned.cost;
        if let Err(e) = shared.store.put_run(&record) {
            tracing::error!(run = %run_id, error = %e, "cannot persist the plan");
        }
        emit(
            &events,
            RunEvent::Planned {
                run_id: run_id.clone(),
                steps: record.workflow.steps.iter().map(|s| step_label(&s.agent, s.role)).collect(),
                notes: record.plan_notes.clone(),
            },
        );
    }
    let mut engine = crate::runtime::replay(
        record.workflow.clone(),
        shared.config.settings.review_max_suggestions,
        &steps,
    );
    let step_labels: Vec<String> =
        record.workflow.steps.iter().map(|s| step_label(&s.agent, s.role)).collect();
    let project_budgets = shared.config.settings.project_token_budget.is_some()
        || shared.config.settings.project_cost_budget.is_some();
    shared.audit.append(
        &run_id,
        AuditEvent::RunStarted {
            task: record.task.clone(),
            workflow: record.workflow_name.clone(),
            steps: step_labels.clone(),
            project: record.project_path.clone(),
            offline: record.offline,
            resumed: record.resumed,
            budget: record.budget,
        },
    );
    emit(
        &events,
        RunEvent::RunStarted {
            run_id: run_id.clone(),
            workflow: record.workflow_name.clone(),
            steps: step_labels,
            resumed,
            notes: record.plan_notes.clone(),
        },
    );

    let conversation = shared.conversation_text(&record);
    let mut findings: Vec<Finding> = Vec::new();
    let mut context_nodes: Vec<String> = Vec::new();
    let mut answered_by: Vec<String> = Vec::new();
    // Findings of reviews that completed before a resume still count.
    {
        for s in steps.iter().filter(|s| s.state == StepState::Completed) {
            if let Some(v) = &s.verdict {
                findings.extend(v.findings.iter().cloned());
            }
            answered_by.extend(s.answered_by.iter().cloned());
            context_nodes.extend(s.context_nodes.iter().cloned());
        }
    }

    let finish = loop {
        if cancel.is_cancelled() {
            break End::Cancelled;
        }
        match engine.next() {
            Next::Skip { pos, reason } => {
                let step = &engine.workflow().steps[pos.step];
                let rec = StepRecord {
                    run_id: run_id.clone(),
                    pos,
                    role: step.role,
                    agent: step.agent.clone(),
                    answered_by: None,
                    model: None,
                    state: StepState::Skipped,
                    prompt: String::new(),
                    context_nodes: Vec::new(),
                    response: None,
                    verdict: None,
                    note: Some(reason.clone()),
                    tokens: Tokens::default(),
                    cost: 0.0,
                    tokens_estimated: false,
                    retries: 0,
                    fallback_from: Vec::new(),
                    started_at: Utc::now(),
                    finished_at: Some(Utc::now()),
                    latency_ms: 0,
                };
                let span = telemetry::step_span(&run_id, pos, rec.role, &rec.agent);
                telemetry::record_step(&span, &rec, None);
                drop(span);
                if let Err(e) = shared.store.put_step(&rec) {
                    break End::Failed(format!("cannot persist step: {e}"));
                }
                shared
                    .audit
                    .append(&run_id, AuditEvent::StepSkipped { pos, reason: reason.clone() });
                engine.record(pos, &StepOutcome::Skipped);
                emit(
                    &events,
                    RunEvent::StepFinished {
                        run_id: run_id.clone(),
                        pos,
                        state: StepState::Skipped,
                        answered_by: None,
                        model: None,
                        tokens: Tokens::default(),
                        cost: 0.0,
                        latency_ms: 0,
                        retries: 0,
                        fallback_from: Vec::new(),
                        verdict: None,
                        note: Some(reason),
                    },
                );
            }
            Next::Run(plan) => {
                let span = telemetry::step_span(&run_id, plan.pos, plan.role, &plan.agent);
                let result =
                    run_step(&shared, &record, &plan, &conversation, &events, &cancel, &span)
                        .instrument(span.clone())
                        .await;
                drop(span);
                match result {
                    Ok(step) => {
                        record.tokens.add(step.tokens);
                        record.cost += step.cost;
                        context_nodes.extend(step.context_nodes.iter().cloned());
                        answered_by.extend(step.answered_by.iter().cloned());
                        if let Some(v) = &step.verdict {
                            findings.extend(v.findings.iter().cloned());
                        }
                        // While a project budget is set, the run's totals go to disk after
                        // every call: the project's other runs check against them. (A crash
                        // loses nothing either way: resume sums the stored steps.)
                        if step.answered_by.is_some()
                            && project_budgets
                            && let Err(e) = shared.store.put_run(&record)
                        {
                            break End::Failed(format!("cannot persist the run: {e}"));
                        }
                        if step.state == StepState::Cancelled {
                            break End::Cancelled;
                        }
                        let outcome = match (&step.state, &step.response) {
                            (StepState::Completed, Some(text)) => {
                                StepOutcome::Completed { output: text.clone() }
                            }
                            _ => StepOutcome::Failed {
                                error: step
                                    .note
                                    .clone()
                                    .unwrap_or_else(|| "the step failed".into()),
                            },
                        };
                        engine.record(plan.pos, &outcome);
                        if let StepOutcome::Failed { error } = outcome {
                            record.error = Some(error);
                        }
                    }
                    Err(StepStop::Store(e)) => break End::Failed(e),
                    Err(StepStop::Budget(reason)) => break End::Budget(reason),
                }
                record.iterations = engine.position().iteration.max(record.iterations);
            }
            Next::Done(f) => break End::Done(f),
        }
    };

    record.finished_at = Some(Utc::now());
    match finish {
        End::Cancelled => {
            record.state = RunState::Cancelled;
            record.error = Some("cancelled".into());
        }
        End::Failed(e) => {
            record.state = RunState::Failed;
            record.error = Some(e);
        }
        End::Budget(reason) => {
            record.state = RunState::BudgetExceeded;
            record.error = Some(format!("budget exceeded: {reason}"));
        }
        End::Done(f) => {
            record.iterations = f.iterations;
            record.finish_reason = Some(f.reason);
            record.output = f.output.clone();
            record.state = if f.success { RunState::Completed } else { RunState::Failed };
            if f.reason == FinishReason::MaxIterations {
                record.error = Some(format!(
                    "the review still asked for changes after {} iteration(s)",
                    f.iterations
                ));
            }
        }
    }
    if let Err(e) = shared.store.put_run(&record) {
        tracing::error!(run = %run_id, error = %e, "cannot persist the run's end");
    }
    telemetry::record_run(&run_span, &record);
    metrics.add_active_run("in_progress", -1);
    metrics.record_run_finished(record.state.as_str());
    drop(permit);

    // Teach the memory (not for cancelled runs: they taught nothing).
    if record.state != RunState::Cancelled {
        let outcome = crate::memory::RunOutcome {
            run_id: record.id.clone(),
            project_id: record.project_id.clone(),
            conversation: record.conversation.clone(),
            task: record.task.clone(),
            workflow: record.workflow_name.clone(),
            success: record.state == RunState::Completed,
            output: record.output.clone().or_else(|| record.error.clone()).unwrap_or_default(),
            agents: dedup(answered_by),
            findings,
            context_nodes: dedup(context_nodes),
        };
        let memory = shared.memory.clone();
        match tokio::task::spawn_blocking(move || memory.record_run(&outcome)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(run = %run_id, error = %e, "cannot store the run in memory")
            }
            Err(e) => tracing::warn!(run = %run_id, error = %e, "storing the run in memory died"),
        }
    }
    shared.audit.append(
        &run_id,
        AuditEvent::RunFinished {
            state: record.state,
            reason: record.finish_reason,
            iterations: record.iterations,
            tokens: record.tokens,
            cost: record.cost,
            error: record.error.clone(),
        },
    );
    emit(
        &events,
        RunEvent::RunFinished {
            run_id: run_id.clone(),
            state: record.state,
            reason: record.finish_reason,
            iterations: record.iterations,
            tokens: record.tokens,
            cost: record.cost,
            error: record.error.clone(),
        },
    );
    let _ = done.send(record);
}

/// How the step loop ended.
enum End {
    Cancelled,
    Failed(String),
    Budget(String),
    Done(troupe_workflows::engine::Finish),
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|x| seen.insert(x.clone()));
    v
}

/// The JSON schema a review must follow (enforced by servers that support it).
fn verdict_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": ["approved", "changes_requested"]},
            "summary": {"type": "string"},
            "findings": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "severity": {"type": "string", "enum": ["error", "warning", "suggestion"]},
                        "kind": {"type": "string", "enum": ["bug", "mistake", "decision", "pattern", "style"]},
                        "message": {"type": "string"}
                    },
                    "required": ["severity", "message"]
                }
            }
        },
        "required": ["verdict", "findings"]
    })
}

/// Run one step; returns its final record (completed, failed or cancelled), also recorded
/// on `span` (the step's, which the caller runs this inside). `Err` when the store cannot be
/// written (the run cannot continue durably) or a budget stops the call.
async fn run_step(
    shared: &Arc<Shared>,
    record: &RunRecord,
    plan: &StepPlan,
    conversation: &str,
    events: &broadcast::Sender<RunEvent>,
    cancel: &CancellationToken,
    span: &Span,
) -> Result<StepRecord, StepStop> {
    let run_id = record.id.clone();
    let pos = plan.pos;
    let started = Instant::now();

    // The project's relevant memory, within the budget.
    let context = shared.context_for(record).await;
    let Some(template) = shared.template_for(record, pos) else {
        return Err(StepStop::Store(format!("no prompt template for the {} role", plan.role)));
    };
    // Known secrets are masked before the prompt goes anywhere: to the agent, the store,
    // the audit trail.
    let prompt = shared.redactor.redact_string(template.render(&prompt_vars(
        record,
        plan,
        conversation,
        &context.text,
    )));

    let mut options =
        GenerationOptions { max_tokens: Some(shared.max_tokens), ..Default::default() };
    if plan.role == Role::Review {
        options.output =
            OutputFormat::JsonSchema { name: "review_verdict".into(), schema: verdict_schema() };
    }
    let request = AgentRequest::prompt(prompt.clone()).with_options(options);

    let mut step = StepRecord {
        run_id: run_id.clone(),
        pos,
        role: plan.role,
        agent: plan.agent.clone(),
        answered_by: None,
        model: None,
        state: StepState::Running,
        prompt,
        context_nodes: context.nodes.clone(),
        response: None,
        verdict: None,
        note: None,
        tokens: Tokens::default(),
        cost: 0.0,
        tokens_estimated: false,
        retries: 0,
        fallback_from: Vec::new(),
        started_at: Utc::now(),
        finished_at: None,
        latency_ms: 0,
    };

    // The step's agent, then the step's own fallbacks (each with its own fallback chain).
    let mut candidates = vec![plan.agent.clone()];
    candidates.extend(plan.fallback.iter().cloned());
    let caller = Caller::new(
        shared,
        record,
        pos,
        plan.role,
        candidates,
        record.project_path.clone(),
        cancel,
    )
    .streaming(events)
    .with_context_nodes(context.nodes.clone());

    // Budgets are checked before anything is written or sent: a call that could cross one
    // is not made.
    let checked = match caller.check(&request) {
        Ok(r) => r,
        Err(Failure::Refused { reason, .. }) => return Err(StepStop::Budget(reason)),
        Err(Failure::Failed { error, .. }) => return Err(StepStop::Store(error)),
    };
    shared
        .store
        .put_step(&step)
        .map_err(|e| StepStop::Store(format!("cannot persist step: {e}")))?;
    emit(
        events,
        RunEvent::StepStarted {
            run_id: run_id.clone(),
            pos,
            role: plan.role,
            agent: plan.agent.clone(),
        },
    );

    let result = caller.send(checked, &request).await;
    step.finished_at = Some(Utc::now());
    step.latency_ms = started.elapsed().as_millis() as u64;
    let mut error_class = None;
    let mut refused = None;
    match result {
        Ok(answer) => {
            step.tokens = answer.tokens;
            step.cost = answer.cost;
            step.tokens_estimated = answer.tokens_estimated;
            step.retries = answer.retries;
            step.fallback_from = answer.fallback_from;
            step.answered_by = Some(answer.agent);
            step.model = answer.model;
            step.state = StepState::Completed;
            if plan.role == Role::Review {
                step.verdict = Some(troupe_workflows::verdict::parse_verdict(&answer.text));
            }
            step.response = Some(answer.text);
        }
        Err(Failure::Failed { error, class, cancelled, fallback_from }) => {
            step.state = if cancelled { StepState::Cancelled } else { StepState::Failed };
            step.fallback_from = fallback_from;
            step.note = Some(error);
            error_class = Some(class);
        }
        Err(Failure::Refused { reason, fallback_from, .. }) => {
            // The step's agent failed and the fallback that would answer could cross a
            // budget: the step ends failed with the reason, and the run stops on the budget.
            step.state = StepState::Failed;
            step.fallback_from = fallback_from;
            step.note = Some(format!("budget exceeded: {reason}"));
            refused = Some(reason);
        }
    }
    shared.metrics.record_step(plan.role.as_str(), started.elapsed());
    telemetry::record_step(span, &step, error_class);
    shared
        .store
        .put_step(&step)
        .map_err(|e| StepStop::Store(format!("cannot persist step: {e}")))?;
    if let Some(reason) = refused {
        return Err(StepStop::Budget(reason));
    }
    let verdict = step.verdict.as_ref().map(|v| {
        let status = match v.status {
            VerdictStatus::Approved => "approved",
            VerdictStatus::ChangesRequested => "changes requested",
        };
        format!("{status}, {} finding(s)", v.findings.len())
    });
    emit(
        events,
        RunEvent::StepFinished {
            run_id,
            pos,
            state: step.state,
            answered_by: step.answered_by.clone(),
            model: step.model.clone(),
            tokens: step.tokens,
            cost: step.cost,
            latency_ms: step.latency_ms,
            retries: step.retries,
            fallback_from: step.fallback_from.clone(),
            verdict,
            note: step.note.clone(),
        },
    );
    Ok(step)
}

fn prompt_vars<'a>(
    record: &RunRecord,
    plan: &StepPlan,
    conversation: &str,
    context: &str,
) -> BTreeMap<&'a str, String> {
    let project = format!(
        "{} at {}",
        record
            .project_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        record.project_path.display()
    );
    let max_iterations = record.workflow.max_iterations;
    BTreeMap::from([
        ("task", record.task.clone()),
        ("project", project),
        ("context", context.to_string()),
        ("conversation", conversation.to_string()),
        ("input", plan.input.clone()),
        ("review", plan.review.clone().unwrap_or_default()),
        ("iteration", plan.pos.iteration.to_string()),
        ("max_iterations", max_iterations.to_string()),
        ("agent", plan.agent.clone()),
        ("role", plan.role.to_string()),
    ])
}
