//! A run's end: its change's outcome, the final record, the memory taught.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::broadcast;
use troupe_workflows::engine::StepPos;

use super::{RunJob, emit};
use crate::audit::AuditEvent;
use crate::model::{CheckRecord, RunEvent, RunRecord, RunState, Tokens};
use crate::shared::Shared;
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
pub(super) async fn finish_change(
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
pub(super) async fn apply_change(
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
pub(super) enum End {
    Cancelled,
    Failed(String),
    Budget(String),
    Done(troupe_workflows::engine::Finish),
}

pub(super) fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|x| seen.insert(x.clone()));
    v
}

/// The run's changed files relative to the project (the workspace's paths are relative to
/// its repository, which may hold the project in a subfolder).
pub(super) fn project_files(record: &RunRecord) -> Vec<String> {
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

/// End a run that was cancelled while it waited for a slot.
pub(crate) async fn cancel_pending(job: RunJob) {
    let mut record = job.record;
    record.state = RunState::Cancelled;
    record.finished_at = Some(Utc::now());
    record.error = Some("cancelled before it started".into());
    let _ = job.shared.store.put_run(&record).await;
    job.shared.metrics.add_active_run("pending", -1);
    job.shared.metrics.record_run_finished("cancelled");
    let _ = job.events.send(RunEvent::RunFinished {
        run_id: record.id.clone(),
        state: RunState::Cancelled,
        reason: None,
        iterations: 0,
        tokens: Tokens::default(),
        cost: 0.0,
        error: record.error.clone(),
    });
    let _ = job.done.send(record);
}
