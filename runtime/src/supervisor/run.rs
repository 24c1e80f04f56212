//! A run's state between its turns ([`Run`], owned by its Supervisor) and how a run ends
//! ([`End`]): what `drive.rs` (its start and turns) and `finish.rs` (its end) both work on.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, broadcast};
use tokio_util::sync::CancellationToken;
use tracing::Span;
use troupe_workflows::engine::Engine;
use troupe_workflows::verdict::Finding;

use crate::memory::ContextBlock;
use crate::model::{CheckRecord, RunEvent, RunRecord, StepRecord};
use crate::shared::Shared;
use crate::writer::Pending;

/// Everything a run holds between its steps. The Supervisor owns it (and lends it to the
/// future of the turn under way); nothing else writes the run's record while it runs.
#[derive(Debug)]
pub(super) struct Run {
    pub(super) shared: Arc<Shared>,
    pub(super) record: RunRecord,
    pub(super) events: broadcast::Sender<RunEvent>,
    /// Stops the turn under way: the agent's call (a CLI agent's process group), the
    /// validators. Only the Supervisor cancels it, on its `Cancel` message.
    pub(super) cancel: CancellationToken,
    /// The `troupe.run` span every turn runs in.
    pub(super) span: Span,
    /// The run's slot under `max_concurrent_runs`, given back once the run has ended.
    pub(super) permit: Option<OwnedSemaphorePermit>,
    pub(super) engine: Engine,
    /// The validators' latest run.
    pub(super) last_check: Option<CheckRecord>,
    /// Earlier turns of the conversation, for the prompts.
    pub(super) conversation: String,
    /// The project's memory relevant to the task, searched once when the run starts (every
    /// step's prompt has the same).
    pub(super) context: ContextBlock,
    /// What the run teaches the memory at its end.
    pub(super) findings: Vec<Finding>,
    pub(super) context_nodes: Vec<String>,
    pub(super) answered_by: Vec<String>,
    /// Whether a project budget is set (the run's totals then go to disk after every call).
    pub(super) project_budgets: bool,
    /// Writes handed to the writer without waiting (the run's start, a step's start): on
    /// disk before a step's end is acknowledged, since the writer keeps their order.
    pub(super) unsynced: Vec<Pending>,
    /// The run's last step, whose end is stored with the run's end.
    pub(super) last_end: Option<StepRecord>,
}

/// How a run ended.
#[derive(Debug)]
pub(super) enum End {
    Cancelled,
    Failed(String),
    Budget(String),
    Done(troupe_workflows::engine::Finish),
}
