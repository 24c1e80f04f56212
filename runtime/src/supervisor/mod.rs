//! The Supervisor: one actor per run, driving its workflow step by step.
//!
//! For each step: build the prompt (role template, the project's relevant memory, the
//! conversation so far, the previous step's output, the latest review's findings), write
//! the step as `running` with its prompt, call the agent (the step's fallbacks after it),
//! stream its answer as events, write the step as ended, and tell the engine. A crash at any
//! point leaves the store consistent: a `running` step is simply run again on resume.
//!
//! `drive.rs` is the loop over the engine's decisions, `step.rs` one step (prompt, call,
//! record), `change.rs` a work step's change (edits, re-ask, candidates), `finish.rs` the
//! run's end (final checks, record, memory), `replay.rs` the engine rebuilt from stored steps.

mod change;
mod drive;
mod finish;
mod replay;
mod step;

pub(crate) use finish::cancel_pending;

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;
use troupe_adapters::config::Role;

use crate::model::{RunEvent, RunRecord, StepRecord};
use crate::shared::Shared;

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
        ctx.spawn(drive::drive(job, cancel).into_actor(self).map(|_, _, ctx| ctx.stop()));
    }
}

impl Handler<Cancel> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Cancel, _: &mut Context<Self>) {
        self.cancel.cancel();
    }
}

pub(super) fn step_label(agent: &str, role: Role) -> String {
    format!("{agent}:{role}")
}

/// Why a step could not be run to an end.
#[derive(Debug)]
pub(super) enum StepStop {
    /// The store cannot be written: the run cannot continue durably.
    Store(String),
    /// The call could cross a budget, so it was not made.
    Budget(String),
    /// The prompt cannot fit the model's context window.
    Unfit(String),
}

pub(super) fn emit(events: &broadcast::Sender<RunEvent>, event: RunEvent) {
    // No subscriber is fine: events are also reconstructible from the store.
    let _ = events.send(event);
}
