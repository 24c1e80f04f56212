//! Run events: built here from the records, both live (by the supervisor) and replayed from
//! the store (for a client that connects late). Front-ends render them; they never rebuild
//! them.

use troupe_workflows::verdict::{Verdict, VerdictStatus};

use crate::model::{CheckRecord, RunEvent, RunRecord, StepRecord, StepState};

/// The steps of one iteration, as `agent:role`.
pub(crate) fn step_labels(record: &RunRecord) -> Vec<String> {
    record.workflow.steps.iter().map(|s| format!("{}:{}", s.agent, s.role)).collect()
}

/// A verdict in words: "approved, 0 finding(s)", with "unverified" when the reviewer had no
/// evidence.
pub fn verdict_text(verdict: &Verdict, unverified: bool) -> String {
    let status = match verdict.status {
        VerdictStatus::Approved => "approved",
        VerdictStatus::ChangesRequested => "changes requested",
    };
    let mut s = format!("{status}, {} finding(s)", verdict.findings.len());
    if unverified {
        s.push_str(", unverified (no tests ran)");
    }
    s
}

/// The run's start.
pub(crate) fn run_started(record: &RunRecord) -> RunEvent {
    RunEvent::RunStarted {
        run_id: record.id.clone(),
        workflow: record.workflow_name.clone(),
        steps: step_labels(record),
        resumed: record.resumed > 0,
        notes: record.plan_notes.clone(),
        workspace: record.workspace.as_ref().map(|w| w.describe()),
        validators: validators_text(record),
    }
}

/// The validators in words, or why none run.
pub(crate) fn validators_text(record: &RunRecord) -> Option<String> {
    match (record.validators.is_empty(), &record.validators_source) {
        (true, None) => None,
        (true, Some(why)) => Some(format!("none ({why})")),
        (false, source) => Some(format!(
            "{}{}",
            record.validators.join(", "),
            source.as_ref().map(|s| format!(" ({s})")).unwrap_or_default()
        )),
    }
}

/// A step's end.
pub(crate) fn step_finished(step: &StepRecord) -> RunEvent {
    RunEvent::StepFinished {
        run_id: step.run_id.clone(),
        pos: step.pos,
        state: step.state,
        answered_by: step.answered_by.clone(),
        model: step.model.clone(),
        tokens: step.tokens,
        cost: step.cost,
        latency_ms: step.latency_ms,
        retries: step.retries,
        fallback_from: step.fallback_from.clone(),
        verdict: step.verdict.as_ref().map(|v| verdict_text(v, step.unverified)),
        note: step.note.clone(),
    }
}

/// A run of the validators: its start, and its end when it ended.
pub(crate) fn check_events(check: &CheckRecord) -> Vec<RunEvent> {
    let mut out = vec![RunEvent::ValidateStarted {
        run_id: check.run_id.clone(),
        after: check.after,
        commands: check.commands.clone(),
    }];
    if let Some(report) = &check.report {
        out.push(RunEvent::ValidateFinished {
            run_id: check.run_id.clone(),
            after: check.after,
            passed: report.passed(),
            results: report.results.clone(),
        });
    }
    out
}

/// The run's end.
pub(crate) fn run_finished(record: &RunRecord) -> RunEvent {
    RunEvent::RunFinished {
        run_id: record.id.clone(),
        state: record.state,
        reason: record.finish_reason,
        iterations: record.iterations,
        tokens: record.tokens,
        cost: record.cost,
        error: record.error.clone(),
    }
}

/// A run's event stream rebuilt from what is stored: its start, each step's start, answer
/// (as one chunk), change and end, each run of the validators, and the run's end when it
/// has ended.
pub fn replay(record: &RunRecord, steps: &[StepRecord], checks: &[CheckRecord]) -> Vec<RunEvent> {
    let mut out = vec![run_started(record)];
    let mut checks = checks.iter().peekable();
    // The baseline, before any step.
    while let Some(c) = checks.next_if(|c| c.after.iteration == 0) {
        out.extend(check_events(c));
    }
    for s in steps {
        out.push(RunEvent::StepStarted {
            run_id: record.id.clone(),
            pos: s.pos,
            role: s.role,
            agent: s.agent.clone(),
        });
        if let Some(text) = s.response.as_ref().filter(|t| !t.is_empty()) {
            out.push(RunEvent::Chunk { run_id: record.id.clone(), pos: s.pos, text: text.clone() });
        }
        if s.state == StepState::Running {
            continue;
        }
        if let Some(change) = &s.change {
            out.push(RunEvent::Changed {
                run_id: record.id.clone(),
                pos: s.pos,
                change: change.clone(),
            });
        }
        out.push(step_finished(s));
        while let Some(c) = checks.next_if(|c| c.after <= s.pos) {
            out.extend(check_events(c));
        }
    }
    for c in checks {
        out.extend(check_events(c));
    }
    if let Some(applied) = record.workspace.as_ref().and_then(|w| w.applied.as_ref()) {
        out.push(RunEvent::Applied { run_id: record.id.clone(), files: applied.files.clone() });
    }
    if record.state.is_final() {
        out.push(run_finished(record));
    }
    out
}
