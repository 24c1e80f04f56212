//! A run's end: the last check, its change's outcome, the final record, the memory taught.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::broadcast;
use troupe_workflows::engine::{FinishReason, StepPos};

use super::run::{End, Run};
use super::{RunJob, emit};
use crate::audit::AuditEvent;
use crate::model::{CheckRecord, RunEvent, RunRecord, RunState};
use crate::shared::Shared;

impl Run {
    /// End the run: a change that moved since the validators last ran is checked once more
    /// (a run is green only when they pass), the record says how it ended (written after
    /// the audit trail's last entry; with the last step's end, in one durable write), the
    /// slot is given back, the memory taught. Returns the final record.
    pub(super) async fn finish(mut self, end: End) -> RunRecord {
        // The last step's end is told first (events keep their order); it goes to disk with
        // the run's end, below.
        if let Some(step) = &self.last_end {
            emit(&self.events, crate::events::step_finished(step));
        }
        let end = match end {
            End::Done(mut f) if f.success => {
                let last = self.engine.position();
                match stale_check(&self.record, self.last_check.as_ref(), last) {
                    Some(after) => match self.check(after).await {
                        Ok(c) => {
                            if !c.passed() {
                                f.success = false;
                                f.reason = FinishReason::ValidatorsFailed;
                            }
                            End::Done(f)
                        }
                        Err(e) => End::Failed(e),
                    },
                    None => End::Done(f),
                }
            }
            other => other,
        };
        let Run {
            shared, mut record, events, span, permit, last_check, last_end, unsynced, ..
        } = self;
        finish_change(&mut record, last_check.as_ref()).await;
        record.finished_at = Some(Utc::now());
        match end {
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
        if record.change.apply && record.state == RunState::Completed {
            apply_change(&shared, &mut record, &events).await;
        }
        // The trail's last entry is written before the record says the run ended, so whoever
        // sees it ended reads a complete trail.
        if let RunEvent::RunFinished { state, reason, iterations, tokens, cost, error, .. } =
            crate::events::run_finished(&record)
        {
            let end = AuditEvent::RunFinished { state, reason, iterations, tokens, cost, error };
            shared.audit.append(&record.id, end);
        }
        // The last step's end and the run's end go to disk in one write.
        let stored = match &last_end {
            Some(step) => shared.store.put_step_and_run(step, &record).await,
            None => shared.store.put_run(&record).await,
        };
        let mut stored = stored.err();
        for pending in unsynced {
            stored = stored.or(pending.wait().await.err());
        }
        if let Some(e) = stored {
            tracing::error!(run = %record.id, error = %e, "cannot persist the run's end");
        }
        crate::telemetry::record_run(&span, &record);
        shared.metrics.add_active_run("in_progress", -1);
        shared.metrics.record_run_finished(record.state.as_str());
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
                agents: dedup(self.answered_by),
                findings: self.findings,
                context_nodes: dedup(self.context_nodes),
                files: project_files(&record),
            };
            let memory = shared.memory.clone();
            match tokio::task::spawn_blocking(move || memory.record_run(&outcome)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(run = %record.id, error = %e, "cannot store the run in memory")
                }
                Err(e) => {
                    tracing::warn!(run = %record.id, error = %e, "storing the run in memory died")
                }
            }
        }
        emit(&events, crate::events::run_finished(&record));
        record
    }
}

/// End a run that was cancelled while it waited for its slot.
pub(super) async fn cancel_pending(job: RunJob) -> RunRecord {
    let mut record = job.record;
    record.state = RunState::Cancelled;
    record.finished_at = Some(Utc::now());
    record.error = Some("cancelled before it started".into());
    if let Err(e) = job.shared.store.put_run(&record).await {
        tracing::error!(run = %record.id, error = %e, "cannot persist the run's end");
    }
    job.shared.metrics.add_active_run("pending", -1);
    job.shared.metrics.record_run_finished("cancelled");
    emit(&job.events, crate::events::run_finished(&record));
    record
}

/// Where the validators must run before the step at `pos` (or at the end): the step before
/// it, when the run has validators and its change moved since they last ran (or they never
/// ran). `None` when no check is due.
pub(super) fn stale_check(
    record: &RunRecord,
    last: Option<&CheckRecord>,
    pos: StepPos,
) -> Option<StepPos> {
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
async fn finish_change(record: &mut RunRecord, last_check: Option<&CheckRecord>) {
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

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|x| seen.insert(x.clone()));
    v
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
