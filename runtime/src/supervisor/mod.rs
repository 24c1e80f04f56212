//! The Supervisor: one actor per run, owning the run's state and driving its workflow.
//!
//! When the run starts, the project's memory is searched for its task (once: while its
//! workspace is made). For each step: build the prompt (role template, that relevant memory, the
//! conversation so far, the previous step's output, the latest review's findings), write
//! the step as `running` with its prompt, call the agent (the step's fallbacks after it),
//! stream its answer as events, write the step as ended, and tell the engine. A crash at any
//! point leaves the store consistent: a `running` step is simply run again on resume.
//!
//! The actor owns the run (`drive::Run`: its record, engine, latest check, what it will
//! teach the memory) and is the only writer of the run's record from the moment it is
//! submitted to its end. It goes one turn at a time: each turn's future borrows the run and
//! hands it back, so the actor keeps handling messages while a step runs. Cancellation is
//! one message ([`Cancel`]); the final record goes straight to the run's handle.
//!
//! `drive.rs` holds the run's state, its start and one turn of the engine, `step.rs` one
//! step (prompt, call, record), `change.rs` a work step's change (edits, re-ask,
//! candidates), `finish.rs` the run's end (final checks, record, memory), `replay.rs` the
//! engine rebuilt from stored steps.

mod change;
mod drive;
mod finish;
mod replay;
mod run;
mod step;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::run::{End, Run};
use crate::error::Result;
use crate::model::{RunEvent, RunRecord, StepRecord};
use crate::shared::Shared;

/// Cancel the run: the step under way stops (a CLI agent's process group is killed), a run
/// still waiting for its slot never starts; either way the run ends `cancelled`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Cancel;

/// A run and what it needs to go.
#[derive(Debug)]
pub(crate) struct RunJob {
    pub shared: Arc<Shared>,
    /// The run, `pending` (new, or prepared for a resume).
    pub record: RunRecord,
    /// Steps stored by earlier attempts (empty for a new run), replayed into the engine.
    pub steps: Vec<StepRecord>,
    pub events: broadcast::Sender<RunEvent>,
}

/// The runs executing in this process: their supervisors and event streams, by run id.
/// A supervisor adds itself when it is made and removes itself when its run has ended.
/// Whoever watches launches hears of each run before its first event.
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveRuns {
    runs: Arc<Mutex<HashMap<String, LiveRun>>>,
    watchers: Arc<Watchers>,
}

/// What is told of every run launched in this process ([`crate::Runtime::watch_launches`]).
pub type LaunchWatcher = dyn Fn(Launched) + Send + Sync;

/// A run launched in this process — submitted or resumed, by whatever caller (the API, a
/// plan's scheduler, a resume at start-up) — as a watcher sees it, before its first event.
#[derive(Debug)]
pub struct Launched {
    /// The run's id.
    pub id: String,
    /// For a resumed run, what its earlier attempts did, as the events a stream of them
    /// would have had (their steps, changes and checks: no start, no end). Whoever keeps a
    /// run's events puts these after this attempt's `run_started`. Empty for a new run.
    pub earlier: Vec<RunEvent>,
    /// This attempt's events, from its first.
    pub events: broadcast::Receiver<RunEvent>,
}

#[derive(Default)]
struct Watchers(Mutex<Vec<Arc<LaunchWatcher>>>);

impl std::fmt::Debug for Watchers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|w| w.len()).unwrap_or(0);
        f.debug_struct("Watchers").field("count", &n).finish()
    }
}

#[derive(Debug, Clone)]
struct LiveRun {
    supervisor: Addr<Supervisor>,
    events: broadcast::Sender<RunEvent>,
}

impl LiveRuns {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LiveRun>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tell `watcher` of every run launched from now on.
    pub(crate) fn watch(&self, watcher: Arc<LaunchWatcher>) {
        self.watchers.0.lock().unwrap_or_else(|e| e.into_inner()).push(watcher);
    }

    /// Tell the watchers of `job`, about to start: before its Supervisor exists, so they
    /// get every event.
    fn announce(&self, job: &RunJob) {
        let watchers = self.watchers.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if watchers.is_empty() {
            return;
        }
        let earlier = if job.steps.is_empty() {
            Vec::new()
        } else {
            let checks = job.shared.store.checks(&job.record.id).unwrap_or_default();
            let mut events = crate::events::replay(&job.record, &job.steps, &checks);
            events.retain(|e| !matches!(e, RunEvent::RunStarted { .. }) && !e.is_final());
            events
        };
        for watcher in watchers {
            watcher(Launched {
                id: job.record.id.clone(),
                earlier: earlier.clone(),
                events: job.events.subscribe(),
            });
        }
    }

    /// The ids of the live runs.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Whether `id` runs in this process.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// The live events of run `id`.
    pub(crate) fn subscribe(&self, id: &str) -> Option<broadcast::Receiver<RunEvent>> {
        self.lock().get(id).map(|r| r.events.subscribe())
    }

    /// Ask run `id`'s supervisor to cancel it; `false` when it does not run here.
    pub(crate) fn cancel(&self, id: &str) -> bool {
        let supervisor = self.lock().get(id).map(|r| r.supervisor.clone());
        supervisor.map(|s| s.do_send(Cancel)).is_some()
    }
}

/// Start a run's supervisor: the run's record is written (`pending`; on disk before this
/// returns, while the supervisor already starts), the supervisor waits for a slot in
/// `slots`, drives the run and sends its final record to `done`.
pub(crate) async fn launch(
    job: RunJob,
    slots: Arc<Semaphore>,
    live: &LiveRuns,
    done: oneshot::Sender<RunRecord>,
) -> Result<()> {
    // The record is handed to the writer and the Supervisor starts at once, so the write
    // overlaps the run's start; the caller's answer waits for it (a submitted run is on
    // disk). A run whose record cannot be written is cancelled.
    let written = job.shared.store.put_run_soon(&job.record)?;
    live.announce(&job);
    job.shared.metrics.add_active_run("pending", 1);
    let id = job.record.id.clone();
    let live = live.clone();
    let runs = live.clone();
    Supervisor::create(move |ctx| {
        live.lock().insert(
            job.record.id.clone(),
            LiveRun { supervisor: ctx.address(), events: job.events.clone() },
        );
        Supervisor {
            job: Some(job),
            run: None,
            cancel: CancellationToken::new(),
            slots,
            live,
            done: Some(done),
        }
    });
    if let Err(e) = written.wait().await {
        runs.cancel(&id);
        return Err(e);
    }
    Ok(())
}

/// The actor of one run.
#[derive(Debug)]
pub struct Supervisor {
    /// The run before it starts.
    job: Option<RunJob>,
    /// The run between turns (a turn's future holds it while the turn runs).
    run: Option<Run>,
    /// Stops what the run is doing; cancelled only by this actor, on [`Cancel`].
    cancel: CancellationToken,
    slots: Arc<Semaphore>,
    live: LiveRuns,
    /// Where the final record goes.
    done: Option<oneshot::Sender<RunRecord>>,
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    /// Wait for a slot (or a [`Cancel`]), then start the run.
    fn started(&mut self, ctx: &mut Context<Self>) {
        let slots = self.slots.clone();
        let cancel = self.cancel.clone();
        let slot = async move {
            tokio::select! {
                p = slots.acquire_owned() => p.ok(),
                _ = cancel.cancelled() => None,
            }
        };
        ctx.spawn(slot.into_actor(self).map(|permit, act, ctx| match permit {
            Some(permit) if !act.cancel.is_cancelled() => act.start(permit, ctx),
            _ => act.cancelled_before_start(ctx),
        }));
    }
}

impl Supervisor {
    fn start(&mut self, permit: OwnedSemaphorePermit, ctx: &mut Context<Self>) {
        let Some(job) = self.job.take() else { return ctx.stop() };
        let span = crate::telemetry::run_span(&job.record);
        let start = Run::start(job, self.cancel.clone(), Some(permit), span.clone());
        ctx.spawn(start.instrument(span).into_actor(self).map(|(run, end), act, ctx| {
            act.run = Some(run);
            act.after_turn(end, ctx);
        }));
    }

    /// Take the next turn, or end the run.
    fn after_turn(&mut self, end: Option<End>, ctx: &mut Context<Self>) {
        let Some(mut run) = self.run.take() else { return ctx.stop() };
        match end {
            Some(end) => {
                let span = run.span.clone();
                ctx.spawn(
                    run.finish(end)
                        .instrument(span)
                        .into_actor(self)
                        .map(|record, act, ctx| act.deliver(record, ctx)),
                );
            }
            None => {
                let span = run.span.clone();
                let turn = async move {
                    let end = run.turn().await;
                    (run, end)
                };
                ctx.spawn(turn.instrument(span).into_actor(self).map(|(run, end), act, ctx| {
                    act.run = Some(run);
                    act.after_turn(end, ctx);
                }));
            }
        }
    }

    /// A run cancelled while it waited for its slot.
    fn cancelled_before_start(&mut self, ctx: &mut Context<Self>) {
        let Some(job) = self.job.take() else { return ctx.stop() };
        let cancelled = finish::cancel_pending(job).into_actor(self);
        ctx.spawn(cancelled.map(|record, act, ctx| act.deliver(record, ctx)));
    }

    /// The run has ended: it leaves the live runs and its final record goes to its handle.
    fn deliver(&mut self, record: RunRecord, ctx: &mut Context<Self>) {
        self.live.lock().remove(&record.id);
        if let Some(done) = self.done.take() {
            let _ = done.send(record);
        }
        ctx.stop();
    }
}

impl Handler<Cancel> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Cancel, _: &mut Context<Self>) {
        self.cancel.cancel();
    }
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
