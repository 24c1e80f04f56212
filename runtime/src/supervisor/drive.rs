//! A run's state, owned by its Supervisor, and how it goes: the start (plan, workspace,
//! replay, baseline) and one turn of the engine at a time.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tokio::sync::{OwnedSemaphorePermit, broadcast};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};
use troupe_adapters::config::Role;
use troupe_workflows::engine::{Next, StepOutcome, StepPlan, StepPos};

use super::finish::stale_check;
use super::run::{End, Run};
use super::step::{Ended, new_step, run_step};
use super::{RunJob, StepStop, emit};
use crate::audit::AuditEvent;
use crate::memory::ContextBlock;
use crate::model::{CheckRecord, RunEvent, RunRecord, RunState, StepRecord, StepState};
use crate::shared::Shared;
use crate::telemetry;

impl Run {
    /// Start the run: in progress, planned (a dynamic workflow, once), its workspace made
    /// (or found again on resume), the engine replayed from the stored steps, the baseline
    /// check. With the end when the run cannot go on (its workspace could not be made).
    pub(super) async fn start(
        job: RunJob,
        cancel: CancellationToken,
        permit: Option<OwnedSemaphorePermit>,
        span: Span,
    ) -> (Run, Option<End>) {
        let RunJob { shared, mut record, steps, events } = job;
        let run_id = record.id.clone();
        let resumed = record.resumed > 0;
        shared.metrics.add_active_run("pending", -1);
        shared.metrics.add_active_run("in_progress", 1);
        record.state = RunState::InProgress;
        record.started_at.get_or_insert_with(Utc::now);
        // The run's start need not be on disk before its first step runs (a run still
        // `pending` on disk is resumed the same way): the first step's end waits for it.
        // It is written once its workspace is made — before that only when a plan comes
        // first (which may take a while).
        let mut unsynced = Vec::new();
        let mut write_soon = |record: &RunRecord, what: &str| match shared
            .store
            .put_run_soon(record)
        {
            Ok(p) => unsynced.push(p),
            Err(e) => tracing::error!(run = %run_id, error = %e, "cannot persist the run{what}"),
        };
        // The project's memory relevant to the task: searched once (while the workspace is
        // made), for the planner and every step.
        let search = shared.context_of(&run_id, record.project_id.clone(), record.task.clone());
        // A dynamic workflow is planned once; the plan is persisted so a resume follows it.
        let (context, prepared) = if record.workflow.steps.is_empty() {
            write_soon(&record, "");
            let context = search.await;
            plan(&shared, &mut record, &context, &events, &cancel).await;
            (context, crate::work::prepare(&shared, &mut record).await)
        } else {
            // The run's workspace and validators (a resumed run continues in its workspace).
            tokio::join!(search, crate::work::prepare(&shared, &mut record))
        };
        write_soon(&record, "'s workspace");
        let mut checks =
            if resumed { shared.store.checks(&run_id).unwrap_or_default() } else { Vec::new() };
        // Only checks of steps that are kept count (a step run again is checked again).
        // The baseline (before any step, `after` iteration 0) always counts.
        checks.retain(|c| {
            c.after.iteration == 0
                || steps.iter().any(|s| s.pos == c.after && s.state == StepState::Completed)
        });
        let engine = super::replay::replay(
            record.workflow.clone(),
            shared.config.settings.review_max_suggestions,
            &steps,
            &checks,
        );
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
        let project_budgets = shared.config.settings.project_token_budget.is_some()
            || shared.config.settings.project_cost_budget.is_some();
        let mut run = Run {
            conversation: shared.conversation_text(&record),
            context,
            shared,
            record,
            events,
            cancel,
            span,
            permit,
            engine,
            last_check: checks.last().cloned(),
            findings: Vec::new(),
            context_nodes: Vec::new(),
            answered_by: Vec::new(),
            project_budgets,
            unsynced,
            last_end: None,
        };
        // Findings of reviews that completed before a resume still count.
        for s in steps.iter().filter(|s| s.state == StepState::Completed) {
            run.learn(s);
        }
        if let Err(e) = prepared {
            return (run, Some(End::Failed(e)));
        }
        // The baseline: the validators on the project as it is, before any change, so the
        // first step already sees what fails (a bug's failing test is the best description).
        if run.last_check.is_none()
            && !run.record.validators.is_empty()
            && run.record.workspace.is_some()
            && !run.cancel.is_cancelled()
            && let Err(e) = run.check(StepPos { iteration: 0, step: 0 }).await
        {
            tracing::warn!(run = %run_id, error = %e, "the baseline check failed to run");
        }
        (run, None)
    }

    /// One turn of the engine: a skipped step recorded, or a step run (with the checks due
    /// around it). The end when the run is over.
    pub(super) async fn turn(&mut self) -> Option<End> {
        if self.cancel.is_cancelled() {
            return Some(End::Cancelled);
        }
        match self.engine.next() {
            Next::Skip { pos, reason } => self.skip(pos, reason).await.err(),
            Next::Run(plan) => {
                let end = self.run(&plan).await.err();
                self.record.iterations =
                    self.engine.position().iteration.max(self.record.iterations);
                end
            }
            Next::Done(f) => Some(End::Done(f)),
        }
    }

    /// Store a step's end (with the run when its change made a commit: the workspace's new
    /// head is on disk with the step, before anything runs on it) and wait until it and every
    /// write handed over before it are on disk; then tell the events.
    async fn store_end(&mut self, step: &StepRecord) -> Result<(), End> {
        let stored = if step.change.as_ref().is_some_and(|c| c.commit.is_some()) {
            self.shared.store.put_step_and_run(step, &self.record).await
        } else {
            self.shared.store.put_step(step).await
        };
        stored.map_err(|e| End::Failed(format!("cannot persist step: {e}")))?;
        self.synced().await.map_err(|e| End::Failed(format!("cannot persist the run: {e}")))?;
        emit(&self.events, crate::events::step_finished(step));
        Ok(())
    }

    /// Wait for the writes handed to the writer without waiting (all on disk by now when a
    /// later write is).
    pub(super) async fn synced(&mut self) -> crate::error::Result<()> {
        for pending in std::mem::take(&mut self.unsynced) {
            pending.wait().await?;
        }
        Ok(())
    }

    /// Run the validators (after `pos`) and tell the engine.
    pub(super) async fn check(&mut self, after: StepPos) -> Result<&CheckRecord, String> {
        let c = crate::work::check(&self.shared, &self.record, after, &self.events, &self.cancel)
            .await?;
        Ok(self.checked(c))
    }

    fn checked(&mut self, c: CheckRecord) -> &CheckRecord {
        self.engine.record_check(c.passed());
        self.last_check.insert(c)
    }

    /// What a completed step teaches the memory at the run's end.
    fn learn(&mut self, step: &StepRecord) {
        if let Some(v) = &step.verdict {
            self.findings.extend(v.findings.iter().cloned());
        }
        self.answered_by.extend(step.answered_by.iter().cloned());
        self.context_nodes.extend(step.context_nodes.iter().cloned());
    }

    /// Record a step the engine skips.
    async fn skip(&mut self, pos: StepPos, reason: String) -> Result<(), End> {
        let step = &self.engine.workflow().steps[pos.step];
        let now = Utc::now();
        let rec = StepRecord {
            state: StepState::Skipped,
            note: Some(reason.clone()),
            finished_at: Some(now),
            ..new_step(&self.record.id, pos, step.role, &step.agent, String::new())
        };
        let span = telemetry::step_span(&self.record.id, pos, rec.role, &rec.agent);
        telemetry::record_step(&span, &rec, None);
        drop(span);
        self.shared
            .store
            .put_step(&rec)
            .await
            .map_err(|e| End::Failed(format!("cannot persist step: {e}")))?;
        self.shared.audit.append(&self.record.id, AuditEvent::StepSkipped { pos, reason });
        self.engine.record(pos, &StepOutcome::Skipped);
        emit(&self.events, crate::events::step_finished(&rec));
        Ok(())
    }

    /// Run the step `plan`: fresh evidence before a review, the step, its outcome into the
    /// engine, the check after a change.
    async fn run(&mut self, plan: &StepPlan) -> Result<(), End> {
        let shared = self.shared.clone();
        // A review judges the change with fresh evidence: the validators run first when the
        // change moved since they last ran.
        if plan.role == Role::Review
            && let Some(after) = stale_check(&self.record, self.last_check.as_ref(), plan.pos)
        {
            self.check(after).await.map_err(End::Failed)?;
        }
        let span = telemetry::step_span(&self.record.id, plan.pos, plan.role, &plan.agent);
        let result = run_step(
            &shared,
            &mut self.record,
            plan,
            &self.conversation,
            &self.context,
            self.last_check.as_ref(),
            &self.events,
            &self.cancel,
            &span,
        )
        .instrument(span.clone())
        .await;
        drop(span);
        let Ended { step, checked, refused, started } = result.map_err(|stop| match stop {
            StepStop::Store(e) | StepStop::Unfit(e) => End::Failed(e),
            StepStop::Budget(reason) => End::Budget(reason),
        })?;
        self.unsynced.push(started);
        if let Some(reason) = refused {
            self.store_end(&step).await?;
            return Err(End::Budget(reason));
        }
        if let Some(c) = checked {
            self.checked(c);
        }
        self.record.tokens.add(step.tokens);
        self.record.cost += step.cost;
        self.learn(&step);
        let cancelled = step.state == StepState::Cancelled;
        let outcome = match (&step.state, &step.response) {
            (StepState::Completed, Some(text)) => StepOutcome::Completed { output: text.clone() },
            _ => StepOutcome::Failed {
                error: step.note.clone().unwrap_or_else(|| "the step failed".into()),
            },
        };
        if !cancelled {
            self.engine.record(plan.pos, &outcome);
        }
        let commit = step.change.as_ref().is_some_and(|c| c.commit.is_some());
        // The run's last step (nothing runs on its change) is stored with the run's end, in
        // one durable write; any other step's end is on disk before anything goes on.
        if !cancelled
            && !commit
            && !self.project_budgets
            && matches!(self.engine.next(), Next::Done(_))
        {
            if let StepOutcome::Failed { error } = outcome {
                self.record.error = Some(error);
            }
            self.last_end = Some(step);
            return Ok(());
        }
        self.store_end(&step).await?;
        // While a project budget is set, the run's totals go to disk after every call: the
        // project's other runs check against them. (A crash loses nothing either way: resume
        // sums the stored steps.)
        if step.answered_by.is_some() && self.project_budgets {
            shared
                .store
                .put_run(&self.record)
                .await
                .map_err(|e| End::Failed(format!("cannot persist the run: {e}")))?;
        }
        if cancelled {
            return Err(End::Cancelled);
        }
        if let StepOutcome::Failed { error } = outcome {
            self.record.error = Some(error);
        } else if commit
            && !self.record.validators.is_empty()
            && self
                .last_check
                .as_ref()
                .is_none_or(|c| self.record.workspace.as_ref().is_some_and(|w| w.head != c.commit))
            && crate::settings::validate(&shared.config, &self.record.workflow).after_change
        {
            self.check(plan.pos).await.map_err(End::Failed)?;
        }
        Ok(())
    }
}

/// Plan a dynamic workflow into `record` (persisted, so a resume follows the plan).
async fn plan(
    shared: &Arc<Shared>,
    record: &mut RunRecord,
    context: &ContextBlock,
    events: &broadcast::Sender<RunEvent>,
    cancel: &CancellationToken,
) {
    let span = telemetry::plan_span(&record.id);
    let started = Instant::now();
    let planned =
        crate::planner::plan(shared, record, context, cancel).instrument(span.clone()).await;
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
    if let Err(e) = shared.store.put_run(record).await {
        tracing::error!(run = %record.id, error = %e, "cannot persist the plan");
    }
    emit(
        events,
        RunEvent::Planned {
            run_id: record.id.clone(),
            steps: crate::events::step_labels(record),
            notes: record.plan_notes.clone(),
        },
    );
}
