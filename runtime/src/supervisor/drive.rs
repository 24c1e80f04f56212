//! The drive loop: the engine's decisions, one after another, until the run ends.

use std::time::Instant;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};
use troupe_adapters::config::Role;
use troupe_workflows::engine::{FinishReason, Next, StepOutcome, StepPos};
use troupe_workflows::verdict::Finding;

use super::finish::{End, apply_change, dedup, finish_change, project_files, stale_check};
use super::step::run_step;
use super::{RunJob, StepStop, emit, step_label};
use crate::audit::AuditEvent;
use crate::model::{CheckRecord, RunEvent, RunState, StepRecord, StepState, Tokens};
use crate::telemetry;
/// Run the job to its end, inside its `troupe.run` span.
pub(super) async fn drive(job: RunJob, cancel: CancellationToken) {
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
    let mut engine = super::replay::replay(
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
