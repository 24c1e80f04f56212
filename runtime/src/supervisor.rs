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
use troupe_adapters::agent::{AgentRequest, GenerationOptions, Message, OutputFormat};
use troupe_adapters::config::{AgentKind, Role};
use troupe_workflows::engine::{FinishReason, Next, StepOutcome, StepPlan, StepPos};
use troupe_workflows::verdict::Finding;

use crate::audit::AuditEvent;
use crate::call::{Caller, Failure};
use crate::model::{
    CheckRecord, RunEvent, RunRecord, RunState, StepChange, StepRecord, StepState, Tokens,
};
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
    /// The prompt cannot fit the model's context window.
    Unfit(String),
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
    if let Err(e) = shared.store.put_run(&record).await {
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
        if let Err(e) = shared.store.put_run(&record).await {
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
    // The run's workspace and validators (a resumed run continues in its workspace).
    let prepared = crate::work::prepare(&shared, &mut record).await;
    if prepared.is_ok()
        && let Err(e) = shared.store.put_run(&record).await
    {
        tracing::error!(run = %run_id, error = %e, "cannot persist the run's workspace");
    }
    let mut checks =
        if resumed { shared.store.checks(&run_id).unwrap_or_default() } else { Vec::new() };
    // Only checks of steps that are kept count (a step run again is checked again).
    // The baseline (before any step, `after` iteration 0) always counts.
    checks.retain(|c| {
        c.after.iteration == 0
            || steps.iter().any(|s| s.pos == c.after && s.state == StepState::Completed)
    });
    let mut engine = crate::runtime::replay(
        record.workflow.clone(),
        shared.config.settings.review_max_suggestions,
        &steps,
        &checks,
    );
    let mut last_check: Option<CheckRecord> = checks.last().cloned();
    let project_budgets = shared.config.settings.project_token_budget.is_some()
        || shared.config.settings.project_cost_budget.is_some();
    shared.audit.append(
        &run_id,
        AuditEvent::RunStarted {
            task: record.task.clone(),
            workflow: record.workflow_name.clone(),
            steps: crate::events::step_labels(&record),
            project: record.project_path.clone(),
            offline: record.offline,
            resumed: record.resumed,
            budget: record.budget,
        },
    );
    emit(&events, crate::events::run_started(&record));
    // The baseline: the validators on the project as it is, before any change, so the first
    // step already sees what fails (a bug's failing test is the best description of it).
    if prepared.is_ok()
        && last_check.is_none()
        && !record.validators.is_empty()
        && record.workspace.is_some()
        && !cancel.is_cancelled()
    {
        let before = StepPos { iteration: 0, step: 0 };
        match crate::work::check(&shared, &record, before, &events, &cancel).await {
            Ok(c) => {
                engine.record_check(c.passed());
                last_check = Some(c);
            }
            Err(e) => tracing::warn!(run = %run_id, error = %e, "the baseline check failed to run"),
        }
    }

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

    let finish = if let Err(e) = prepared {
        End::Failed(e)
    } else {
        loop {
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
                        change: None,
                        unverified: false,
                    };
                    let span = telemetry::step_span(&run_id, pos, rec.role, &rec.agent);
                    telemetry::record_step(&span, &rec, None);
                    drop(span);
                    if let Err(e) = shared.store.put_step(&rec).await {
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
                    // A review judges the change with fresh evidence: the validators run first
                    // when the change moved since they last ran.
                    if plan.role == Role::Review
                        && let Some(after) = stale_check(&record, last_check.as_ref(), plan.pos)
                    {
                        match crate::work::check(&shared, &record, after, &events, &cancel).await {
                            Ok(c) => {
                                engine.record_check(c.passed());
                                last_check = Some(c);
                            }
                            Err(e) => break End::Failed(e),
                        }
                    }
                    let span = telemetry::step_span(&run_id, plan.pos, plan.role, &plan.agent);
                    let result = run_step(
                        &shared,
                        &mut record,
                        &plan,
                        &conversation,
                        last_check.as_ref(),
                        &events,
                        &cancel,
                        &span,
                    )
                    .instrument(span.clone())
                    .await;
                    drop(span);
                    match result {
                        Ok((step, checked)) => {
                            if let Some(c) = checked {
                                engine.record_check(c.passed());
                                last_check = Some(c);
                            }
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
                                && let Err(e) = shared.store.put_run(&record).await
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
                            } else if step.change.as_ref().is_some_and(|c| c.commit.is_some())
                                && !record.validators.is_empty()
                                && last_check.as_ref().is_none_or(|c| {
                                    record.workspace.as_ref().is_some_and(|w| w.head != c.commit)
                                })
                                && crate::settings::validate(&shared.config, &record.workflow)
                                    .after_change
                            {
                                match crate::work::check(
                                    &shared, &record, plan.pos, &events, &cancel,
                                )
                                .await
                                {
                                    Ok(c) => {
                                        engine.record_check(c.passed());
                                        last_check = Some(c);
                                    }
                                    Err(e) => break End::Failed(e),
                                }
                            }
                        }
                        Err(StepStop::Store(e)) => break End::Failed(e),
                        Err(StepStop::Budget(reason)) => break End::Budget(reason),
                        Err(StepStop::Unfit(e)) => break End::Failed(e),
                    }
                    record.iterations = engine.position().iteration.max(record.iterations);
                }
                Next::Done(f) => break End::Done(f),
            }
        }
    };
    // The end: a change that moved since the validators last ran is checked once more, and
    // a run is green only when they pass.
    let finish = match finish {
        End::Done(mut f) if f.success => {
            let last = engine.position();
            match stale_check(&record, last_check.as_ref(), last) {
                Some(after) => {
                    match crate::work::check(&shared, &record, after, &events, &cancel).await {
                        Ok(c) => {
                            if !c.passed() {
                                f.success = false;
                                f.reason = FinishReason::ValidatorsFailed;
                            }
                            last_check = Some(c);
                            End::Done(f)
                        }
                        Err(e) => End::Failed(e),
                    }
                }
                None => End::Done(f),
            }
        }
        other => other,
    };
    finish_change(&shared, &mut record, last_check.as_ref(), &finish, &events).await;

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
            } else if f.reason == FinishReason::ValidatorsFailed {
                record.error = Some(format!(
                    "the project's checks still fail after {} iteration(s): {}",
                    f.iterations,
                    record.validation.as_ref().map(|r| r.summary()).unwrap_or_default()
                ));
            }
        }
    }
    if record.apply && record.state == RunState::Completed {
        apply_change(&shared, &mut record, &events).await;
    }
    // The trail's last entry is written before the record says the run ended, so whoever
    // sees it ended reads a complete trail.
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
    if let Err(e) = shared.store.put_run(&record).await {
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
            files: project_files(&record),
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
    emit(&events, crate::events::run_finished(&record));
    let _ = done.send(record);
}

/// Where the validators must run before the step at `pos` (or at the end): the step before
/// it, when the run has validators and its change moved since they last ran (or they never
/// ran). `None` when no check is due.
fn stale_check(record: &RunRecord, last: Option<&CheckRecord>, pos: StepPos) -> Option<StepPos> {
    let ws = record.workspace.as_ref()?;
    if record.validators.is_empty() || last.is_some_and(|c| c.commit == ws.head) {
        return None;
    }
    let steps = record.workflow.steps.len().max(1);
    Some(if pos.step > 0 {
        StepPos { iteration: pos.iteration, step: pos.step - 1 }
    } else if pos.iteration > 1 {
        StepPos { iteration: pos.iteration - 1, step: steps - 1 }
    } else {
        pos
    })
}

/// Put the change's outcome into the record: the files it touches, the latest validators'
/// results, whether the result is backed by evidence.
async fn finish_change(
    shared: &Arc<Shared>,
    record: &mut RunRecord,
    last_check: Option<&CheckRecord>,
    finish: &End,
    events: &broadcast::Sender<RunEvent>,
) {
    let _ = (shared, events, finish);
    if let Some(ws) = &record.workspace {
        match crate::work::diff(ws).await {
            Ok(change) => record.files = change.files,
            Err(e) => tracing::warn!(run = %record.id, error = %e, "cannot diff the run's change"),
        }
    }
    record.validation = last_check.and_then(|c| c.report.clone());
    if record.workspace.is_some() {
        record.verified = Some(last_check.is_some_and(CheckRecord::passed));
    }
}

/// Apply a green run's change to the project (`--apply`); a refusal is reported, and the
/// change stays in the workspace for `troupe runs apply`.
async fn apply_change(
    shared: &Arc<Shared>,
    record: &mut RunRecord,
    events: &broadcast::Sender<RunEvent>,
) {
    let Some(ws) = record.workspace.clone() else { return };
    if record.files.is_empty() {
        return;
    }
    match crate::apply::apply(shared, ws, None).await {
        Ok(ws) => {
            let files = ws.applied.as_ref().map(|a| a.files.clone()).unwrap_or_default();
            shared.audit.append(
                &record.id,
                AuditEvent::ChangeApplied { files: files.clone(), commit: None },
            );
            record.workspace = Some(ws);
            emit(events, RunEvent::Applied { run_id: record.id.clone(), files });
        }
        Err(e) => {
            let message = format!("the change was not applied: {e}");
            emit(
                events,
                RunEvent::Agent {
                    run_id: record.id.clone(),
                    pos: StepPos { iteration: record.iterations, step: 0 },
                    message: message.clone(),
                },
            );
            record.plan_notes.push(message);
        }
    }
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

/// The JSON schema a review must follow (enforced by servers that support it). The
/// reasoning and findings come before the verdict (measured: small models asked for the
/// verdict first approve nearly everything), and every string and list is bounded so a
/// model stuck in a loop cannot run away. The keys are in alphabetical order too, so the
/// order holds whether or not a JSON library keeps insertion order.
pub(crate) fn verdict_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "analysis": {"type": "string", "maxLength": 1200},
            "findings": {
                "type": "array",
                "maxItems": 8,
                "items": {
                    "type": "object",
                    "properties": {
                        "kind": {"type": "string", "enum": ["bug", "mistake", "decision", "pattern", "style"]},
                        "message": {"type": "string", "maxLength": 400},
                        "severity": {"type": "string", "enum": ["error", "warning", "suggestion"]}
                    },
                    "required": ["kind", "message", "severity"]
                }
            },
            "summary": {"type": "string", "maxLength": 300},
            "verdict": {"type": "string", "enum": ["approved", "changes_requested"]}
        },
        "required": ["analysis", "findings", "summary", "verdict"]
    })
}

/// Run one step; returns its final record (completed, failed or cancelled), also recorded
/// on `span` (the step's, which the caller runs this inside). `Err` when the store cannot be
/// written (the run cannot continue durably) or a budget stops the call.
///
/// A work step (implement, refine, document) in a run with a workspace changes files there:
/// a CLI agent edits them itself (its working folder is the workspace); an HTTP model is
/// shown the files that matter and answers in an edit format that is parsed and applied
/// with patch safety — edits that do not apply go back to it in one automatic re-ask. What
/// changed is committed in the workspace.
#[allow(clippy::too_many_arguments)]
async fn run_step(
    shared: &Arc<Shared>,
    record: &mut RunRecord,
    plan: &StepPlan,
    conversation: &str,
    last_check: Option<&CheckRecord>,
    events: &broadcast::Sender<RunEvent>,
    cancel: &CancellationToken,
    span: &Span,
) -> Result<(StepRecord, Option<CheckRecord>), StepStop> {
    let run_id = record.id.clone();
    let pos = plan.pos;
    let started = Instant::now();
    let work_step = matches!(plan.role, Role::Implement | Role::Refine | Role::Document);
    let edits_by_answer = work_step
        && record.workspace.is_some()
        && shared.config.agent(&plan.agent).is_some_and(|a| a.kind != AgentKind::Cli);
    let workdir =
        record.workspace.as_ref().map(|w| w.dir.clone()).unwrap_or(record.project_path.clone());

    // The project's relevant memory, within the budget.
    let mut context = shared.context_for(record).await;
    if edits_by_answer {
        context = crate::work::without_file_notes(&context);
    }
    let Some(template) = shared.template_for(record, pos) else {
        return Err(StepStop::Store(format!("no prompt template for the {} role", plan.role)));
    };
    let mut vars = prompt_vars(record, plan, conversation, &context.text);
    let evidence = last_check.and_then(|c| c.report.as_ref()).map(crate::work::evidence);
    if let Some(e) = &evidence {
        vars.insert("evidence", e.clone());
    }
    let mut unverified = false;
    let mut shown: Vec<String> = Vec::new();
    if let Some(ws) = &record.workspace {
        if work_step {
            let changed: Vec<std::path::PathBuf> =
                record.files.iter().map(|f| f.path.clone()).collect();
            let dir = ws.dir.clone();
            let task = record.task.clone();
            let ev = evidence.clone().unwrap_or_default();
            let budget = crate::prompt::file_budget_chars(shared, &plan.agent).await;
            let (files, all) = tokio::task::spawn_blocking(move || {
                crate::work::prompt_files(&dir, &task, &changed, &ev, budget)
            })
            .await
            .unwrap_or_default();
            vars.insert("file_list", all.join("\n"));
            shown = all;
            if edits_by_answer {
                vars.insert("files", crate::work::files_text(&files));
                vars.insert(
                    "edit_format",
                    crate::work::edit_instructions(
                        crate::settings::edit_format(&shared.config),
                        &files,
                    ),
                );
            } else {
                vars.insert(
                    "edit_format",
                    format!(
                        "Make the change by editing the files in your working folder ({}) directly; change nothing outside it. Then say in a few sentences what you changed.",
                        ws.dir.display()
                    ),
                );
            }
        } else if plan.role == Role::Review {
            match crate::work::diff(ws).await {
                Ok(change) if !change.is_empty() => {
                    vars.insert("changes", crate::work::diff_text(&change));
                }
                Ok(_) => {
                    vars.insert("changes", "(the change is empty: no file was changed)".into());
                }
                Err(e) => tracing::warn!(run = %run_id, error = %e, "no diff for the review"),
            }
            if evidence.is_none() {
                unverified = true;
                vars.insert(
                    "unverified",
                    "No tests or linters ran on this change (the project has none configured or detected), so there is no evidence: judge it by reading, carefully, and say so in the summary.".into(),
                );
            }
        }
    }
    // The answer's room and temperature: the step's own, else the agent's configured ones
    // (the adapter fills those in), else troupe's `max_output_tokens`.
    let step_config = &record.workflow.steps[pos.step];
    let agent_max = shared.config.agent(&plan.agent).and_then(|a| a.max_tokens);
    let max_answer = step_config.max_tokens.or(agent_max).unwrap_or(shared.max_tokens);
    // The prompt fits the model's window (its least important parts cut or left out), and
    // known secrets are masked before it goes anywhere: the agent, the store, the audit trail.
    let fitted = fit_prompt(shared, &plan.agent, template, &vars, max_answer)
        .await
        .map_err(StepStop::Unfit)?;
    let prompt = shared.redactor.redact_string(fitted.prompt.clone());
    let mut options = GenerationOptions {
        max_tokens: Some(max_answer),
        temperature: step_config.temperature,
        ..Default::default()
    };
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
        change: None,
        unverified,
    };

    // The step's agent, then the step's own fallbacks (each with its own fallback chain).
    let mut candidates = vec![plan.agent.clone()];
    candidates.extend(plan.fallback.iter().cloned());
    let mut caller = Caller::new(shared, record, pos, plan.role, candidates, workdir, cancel)
        .streaming(events)
        .with_context_nodes(context.nodes.clone());
    if !fitted.left_out.is_empty() {
        caller.announce(format!(
            "the prompt was fitted to {}'s context window ({} tokens): {}",
            plan.agent,
            fitted.tokens,
            fitted.left_out.join("; ")
        ));
    }

    // Budgets are checked before anything is written or sent: a call that could cross one
    // is not made.
    let checked = match caller.check(&request) {
        Ok(r) => r,
        Err(Failure::Refused { reason, .. }) => return Err(StepStop::Budget(reason)),
        Err(Failure::Failed { error, .. }) => return Err(StepStop::Store(error)),
    };
    // The running step is written while the agent works; it is on disk before the step's
    // end is (below).
    let running = shared
        .store
        .put_step_soon(&step)
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

    // The step's change: edits from the answer (asked again once when they do not apply),
    // then a commit in the workspace.
    if step.state == StepState::Completed && work_step && record.workspace.is_some() {
        let change = match change_of_step(
            shared,
            record,
            plan,
            &request,
            &shown,
            &mut step,
            &mut caller,
            last_check,
            cancel,
            edits_by_answer,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                step.state = StepState::Failed;
                step.note = Some(e);
                None
            }
        };
        if let Some(change) = change {
            emit(events, RunEvent::Changed { run_id: run_id.clone(), pos, change: change.clone() });
            step.change = Some(change);
        }
    }
    // When the change fails the validators, other answers sampled from the same start may
    // not: each is checked, and the first that passes is kept.
    let mut checked = None;
    if step.state == StepState::Completed
        && edits_by_answer
        && step.change.is_some()
        && !record.validators.is_empty()
    {
        match sample_candidates(
            shared,
            record,
            plan,
            &request,
            &shown,
            &mut step,
            &mut caller,
            last_check,
            events,
            cancel,
        )
        .await
        {
            Ok(c) => checked = c,
            Err(e) => {
                step.state = StepState::Failed;
                step.note = Some(e);
            }
        }
    }
    step.finished_at = Some(Utc::now());
    step.latency_ms = started.elapsed().as_millis() as u64;
    shared.metrics.record_step(plan.role.as_str(), started.elapsed());
    telemetry::record_step(span, &step, error_class);
    // With a new commit, the workspace's new head (in the run) is on disk with the step,
    // before anything runs on it.
    running.wait().await.map_err(|e| StepStop::Store(format!("cannot persist step: {e}")))?;
    let stored = if step.change.as_ref().is_some_and(|c| c.commit.is_some()) {
        shared.store.put_step_and_run(&step, record).await
    } else {
        shared.store.put_step(&step).await
    };
    stored.map_err(|e| StepStop::Store(format!("cannot persist step: {e}")))?;
    if let Some(reason) = refused {
        return Err(StepStop::Budget(reason));
    }
    emit(events, crate::events::step_finished(&step));
    Ok((step, checked))
}

/// Check a work step's change; when it fails and `[edits] candidates` allows, sample more
/// answers from the step's start at `candidate_temperature`, each applied, committed and
/// checked, and keep the first that passes — else go back to the first answer. Returns the
/// check of the change that is kept.
#[allow(clippy::too_many_arguments)]
async fn sample_candidates(
    shared: &Arc<Shared>,
    record: &mut RunRecord,
    plan: &StepPlan,
    request: &AgentRequest,
    shown: &[String],
    step: &mut StepRecord,
    caller: &mut Caller<'_>,
    last_check: Option<&CheckRecord>,
    events: &broadcast::Sender<RunEvent>,
    cancel: &CancellationToken,
) -> Result<Option<CheckRecord>, String> {
    let (Some(change), Some(head)) =
        (step.change.clone(), record.workspace.as_ref().map(|w| w.head.clone()))
    else {
        return Ok(None);
    };
    let committed = change.commit.is_some();
    // A step that changed nothing leaves the last check standing; one that changed files is
    // checked now.
    let first = match last_check.filter(|c| !committed && c.commit == head) {
        Some(c) => c.clone(),
        None if !committed => return Ok(None),
        None => crate::work::check(shared, record, plan.pos, events, cancel).await?,
    };
    let edits = &shared.config.edits;
    if first.passed() || edits.candidates == 0 || cancel.is_cancelled() {
        return Ok(committed.then_some(first));
    }
    let first_head = head;
    // The step's start: the commit its change was made on (its head when it changed nothing).
    let start = if !committed {
        first_head.clone()
    } else {
        let Some(ws) = record.workspace.as_ref() else { return Ok(Some(first)) };
        match crate::work::parent(ws, &first_head).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(run = %record.id, error = %e, "no candidates: the step's start is unknown");
                return Ok(Some(first));
            }
        }
    };
    let Some(dir) = record.workspace.as_ref().map(|w| w.dir.clone()) else { return Ok(None) };
    let policy = crate::settings::edit_policy(&shared.config);
    for i in 1..=edits.candidates {
        if cancel.is_cancelled() {
            break;
        }
        let note = format!(
            "the checks fail; trying another answer ({i} of {}) at temperature {}",
            edits.candidates, edits.candidate_temperature
        );
        emit(events, RunEvent::Agent { run_id: record.id.clone(), pos: plan.pos, message: note });
        let Some(ws) = record.workspace.as_mut() else { break };
        if !crate::work::reset_to(ws, &start).await? {
            break; // in place: the folder is the user's, nothing is rolled back
        }
        caller.used(step.tokens, step.cost);
        let mut again = request.clone();
        again.options.temperature = Some(edits.candidate_temperature);
        again.options.seed = Some(u64::from(i));
        let Ok(answer) = caller.call(&again).await else { continue };
        step.tokens.add(answer.tokens);
        step.cost += answer.cost;
        let (outcome, _) = crate::work::apply_answer(&dir, &answer.text, shown, &policy).await?;
        let message = format!("{}:{} (candidate {i})", plan.agent, plan.role);
        let Some(commit) = crate::work::commit(ws, message).await? else { continue };
        let check = crate::work::check(shared, record, plan.pos, events, cancel).await?;
        if check.passed() {
            let mut kept = crate::work::step_change(Some(&outcome), Some(commit), false);
            kept.candidate = i;
            record.files = match record.workspace.as_ref() {
                Some(ws) => crate::work::diff(ws).await.map(|d| d.files).unwrap_or_default(),
                None => Vec::new(),
            };
            emit(
                events,
                RunEvent::Changed {
                    run_id: record.id.clone(),
                    pos: plan.pos,
                    change: kept.clone(),
                },
            );
            step.response = Some(answer.text);
            step.change = Some(kept);
            return Ok(Some(check));
        }
    }
    // None passed: the first answer's change (or no change) stands, with its check.
    if let Some(ws) = record.workspace.as_mut() {
        crate::work::reset_to(ws, &first_head).await?;
    }
    shared
        .store
        .put_check(&first)
        .await
        .map_err(|e| format!("cannot persist the validators' run: {e}"))?;
    step.change = Some(change);
    Ok(Some(first))
}

/// Apply a work step's answer to the workspace (HTTP models; a CLI agent edited the files
/// itself), ask once more when edits did not apply, and commit what changed.
#[allow(clippy::too_many_arguments)]
async fn change_of_step(
    shared: &Arc<Shared>,
    record: &mut RunRecord,
    plan: &StepPlan,
    request: &AgentRequest,
    shown: &[String],
    step: &mut StepRecord,
    caller: &mut Caller<'_>,
    last_check: Option<&CheckRecord>,
    cancel: &CancellationToken,
    edits_by_answer: bool,
) -> Result<Option<StepChange>, String> {
    let Some(dir) = record.workspace.as_ref().map(|w| w.dir.clone()) else { return Ok(None) };
    let policy = crate::settings::edit_policy(&shared.config);
    let mut outcome = None;
    let mut reasked = false;
    if edits_by_answer {
        let answer = step.response.clone().unwrap_or_default();
        let (first, code_without_files) =
            crate::work::apply_answer(&dir, &answer, shown, &policy).await?;
        let problems = first.problems().or_else(|| {
            code_without_files.then(|| {
                "Your answer has code but no file path before it, so nothing could be applied. \
                 Put the file's path on a line by itself before each code block."
                    .to_string()
            })
        });
        outcome = Some(first);
        if let Some(problems) = problems.filter(|_| !cancel.is_cancelled()) {
            reasked = true;
            let first_line = problems.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
            caller.announce(format!("the edits did not apply; asking again: {first_line}"));
            caller.used(step.tokens, step.cost);
            let mut again = request.clone();
            again.messages.push(Message::assistant(answer.clone()));
            // An answer that repeated the file unchanged would be repeated again at the same
            // temperature: that re-ask samples, and says what still fails.
            let unchanged = problems.contains("changes nothing");
            let failing = if unchanged { failing_assertions(last_check) } else { String::new() };
            if unchanged {
                again.options.temperature = Some(shared.config.edits.candidate_temperature);
            }
            again.messages.push(Message::user(format!(
                "{problems}{failing}\n\nAnswer again with only the corrected edits, in the same format."
            )));
            if let Ok(a) = caller.call(&again).await {
                step.tokens.add(a.tokens);
                step.cost += a.cost;
                let (second, _) = crate::work::apply_answer(&dir, &a.text, shown, &policy).await?;
                if let Some(first) = outcome.as_mut() {
                    first.changed.extend(second.changed);
                    first.refused = second.refused;
                    first.failed = second.failed;
                }
                step.response = Some(format!("{answer}\n\n{}", a.text));
            }
        }
        if let Some(o) = &outcome {
            shared.audit.append(
                &record.id,
                AuditEvent::EditsApplied {
                    pos: plan.pos,
                    summary: o.summary(),
                    refused: o
                        .refused
                        .iter()
                        .map(|r| format!("{}: {}", r.path, r.reason))
                        .collect(),
                    failed: o.failed.iter().map(|f| format!("{}: {}", f.path, f.message)).collect(),
                },
            );
        }
    }
    let first_line =
        record.task.lines().next().unwrap_or_default().chars().take(72).collect::<String>();
    let message = format!("{}:{}: {first_line}", plan.agent, plan.role);
    let Some(ws) = record.workspace.as_mut() else { return Ok(None) };
    let commit = crate::work::commit(ws, message).await?;
    let change = crate::work::step_change(outcome.as_ref(), commit, reasked);
    if let Some(c) = change.commit.as_ref() {
        record.files = crate::work::diff(ws).await.map(|d| d.files).unwrap_or_default();
        tracing::debug!(run = %record.id, commit = %c, "step committed");
    }
    Ok(Some(change))
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

/// Render a step's prompt so it fits `agent`'s context window with room for `max_answer`
/// tokens: estimated first, then checked with the model's own tokenizer where the server has
/// one (a prompt the server would reject for its size is never sent). Without a known window
/// (CLI agents, remote APIs that do not say) the prompt is rendered whole.
async fn fit_prompt(
    shared: &Arc<Shared>,
    agent: &str,
    template: &troupe_workflows::template::Template,
    vars: &BTreeMap<&str, String>,
    max_answer: u32,
) -> Result<crate::prompt::Fitted, String> {
    let Some(budget) = crate::prompt::budget_for(shared, agent, max_answer).await else {
        let prompt = template.render(vars);
        let tokens = crate::prompt::estimate(&prompt);
        return Ok(crate::prompt::Fitted { prompt, left_out: Vec::new(), tokens });
    };
    let mut aim = budget;
    for _ in 0..3 {
        let fitted = crate::prompt::fit(template, vars, aim, &crate::prompt::estimate)?;
        match shared.agents.count_tokens(agent, &fitted.prompt).await {
            None => return Ok(fitted),
            Some(real) if real <= budget => {
                return Ok(crate::prompt::Fitted { tokens: real, ..fitted });
            }
            // The estimate was low for this text: aim lower by the ratio seen.
            Some(real) => aim = (aim * budget / real.max(1)).saturating_sub(16),
        }
    }
    Err(format!(
        "the prompt for {agent} could not be made to fit its context window ({budget} tokens for the prompt)"
    ))
}

/// The run's changed files relative to the project (the workspace's paths are relative to
/// its repository, which may hold the project in a subfolder).
fn project_files(record: &RunRecord) -> Vec<String> {
    let prefix = record
        .workspace
        .as_ref()
        .and_then(|w| w.checkout.as_ref().and_then(|top| w.dir.strip_prefix(top).ok()))
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    record
        .files
        .iter()
        .map(|f| {
            f.path.strip_prefix(&prefix).unwrap_or(&f.path).to_string_lossy().replace('\\', "/")
        })
        .collect()
}

/// The failing tests and their assertions from the latest check, for a re-ask ("" when the
/// checks passed or none ran).
fn failing_assertions(last_check: Option<&CheckRecord>) -> String {
    let Some(report) = last_check.and_then(|c| c.report.as_ref()).filter(|r| !r.passed()) else {
        return String::new();
    };
    let mut lines = Vec::new();
    for r in report.results.iter().filter(|r| !r.passed()) {
        lines.extend(r.failing.iter().map(|t| format!("- failing: {t}")));
        lines.extend(
            troupe_change::validate::assertion_lines(&r.output)
                .into_iter()
                .map(|a| format!("  {a}")),
        );
    }
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "\n\nThe code as it is still fails these tests; change it so they pass:\n{}",
        lines.join("\n")
    )
}
