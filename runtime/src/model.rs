//! What the runtime persists and publishes: runs (here), steps and validators' runs
//! (`step.rs`), run events (`event.rs`), usage (`usage.rs`).

mod event;
mod step;
mod usage;

pub use event::RunEvent;
pub use step::{CheckRecord, StepChange, StepRecord, StepState};
pub use usage::{RunStats, RunUsage, UsageReport, UsageTotals};

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
pub use troupe_adapters::Tokens;
pub use troupe_change::validate::{CommandResult, Report};
pub use troupe_change::workspace::{FileStat, Workspace};
use troupe_workflows::WorkflowConfig;
use troupe_workflows::engine::FinishReason;

/// A run's lifecycle: pending → in_progress → completed | failed | cancelled |
/// budget_exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum RunState {
    /// Created, waiting for a slot (the global cap on concurrent runs).
    Pending,
    /// Running.
    InProgress,
    /// Ended successfully.
    Completed,
    /// Ended with a failed step or without a passing review.
    Failed,
    /// Cancelled by the user.
    Cancelled,
    /// Stopped before a call that could have crossed its run's or project's budget.
    BudgetExceeded,
}

impl RunState {
    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Completed | RunState::Failed | RunState::Cancelled | RunState::BudgetExceeded
        )
    }

    /// The name used in listings and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::InProgress => "in_progress",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::BudgetExceeded => "budget_exceeded",
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The task, in the user's words.
    pub task: String,
    /// The workflow's name; the configured default when none, `dynamic` to plan one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Overrides the workflow's iteration limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u32>,
    /// Only local agents (on top of the configuration's setting).
    #[serde(default)]
    pub offline: bool,
    /// The project folder; the configured project when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<PathBuf>,
    /// The conversation this run continues (the shell's session), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    /// Overrides the configured `run_token_budget`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u64>,
    /// Overrides the configured `run_cost_budget`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_cost: Option<f64>,
    /// Where the change is made, whether validators check it, whether it is applied.
    #[serde(flatten)]
    pub change: ChangeOptions,
    /// The run's id, when the caller chose it (a plan records its task's run id before it
    /// submits, so a crash in between cannot start the task twice). Must be new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A commit of the project's repository the workspace starts at (a plan's integration
    /// branch) instead of a snapshot of the user's tree; git projects only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Names the change must leave in the project's files (a plan's task expects the code
    /// names it gives): checked with the validators, as `troupe-expect NAME…`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<String>,
}

/// What a run does with its change, as its request asks and its record keeps: stored flat
/// in both (`in_place`, `no_validate`, `apply` beside the other fields, each left out when
/// false), so records written before this type load unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeOptions {
    /// Work in the project folder itself (`--in-place`, with a checkpoint to revert to)
    /// instead of an isolated workspace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_place: bool,
    /// Run no validators (the project's tests and linters) after changes (`--no-validate`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_validate: bool,
    /// Apply the change to the project when the run completes green (`--apply`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub apply: bool,
    /// `expect` is all the run expects: the names its task asks to add are not added to it.
    /// A plan's task run sets it — its task text quotes the plan's other tasks, whose names
    /// are theirs to write.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expect_given_only: bool,
}

/// Limits on what a run may use; checked before each call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Budget {
    /// Most tokens (prompt + completion) over all the run's calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// Most cost over all the run's calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

impl Budget {
    /// Whether it limits anything.
    pub fn is_set(&self) -> bool {
        self.tokens.is_some() || self.cost.is_some()
    }
}

/// A run, as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunRecord {
    /// The run's id (time-ordered).
    pub id: String,
    /// The task.
    pub task: String,
    /// The workflow's name (`dynamic` when planned).
    pub workflow_name: String,
    /// The steps actually run (for a planned workflow, the plan), so a resumed run follows
    /// exactly the same steps.
    pub workflow: WorkflowConfig,
    /// For planned workflows: the planner's reasons and repairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan_notes: Vec<String>,
    /// The project folder.
    pub project_path: PathBuf,
    /// The project's id in the memory.
    pub project_id: String,
    /// The conversation this run belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    /// Only local agents.
    pub offline: bool,
    /// Where the run is.
    pub state: RunState,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Iterations started.
    pub iterations: u32,
    /// Why it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// The final work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Tokens used by all its calls.
    pub tokens: Tokens,
    /// Cost of all its calls, where prices are configured.
    #[serde(default)]
    pub cost: f64,
    /// How many times it was resumed.
    #[serde(default)]
    pub resumed: u32,
    /// The run's own budget (from the request or the configuration when it was created).
    #[serde(default, skip_serializing_if = "is_unset")]
    pub budget: Budget,
    /// Where the run works: its own git worktree (or a copy, or the project itself), the
    /// base its change is measured against, and whether the change was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<Workspace>,
    /// The validators that check each change (the project's tests and linters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validators: Vec<String>,
    /// Where the validators came from ("configured", or what detected them), or why none run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validators_source: Option<String>,
    /// The files the run's change touches, with lines added and removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileStat>,
    /// The latest validators' results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Report>,
    /// What its request asked of the change ([`RunRequest::change`]).
    #[serde(flatten)]
    pub change: ChangeOptions,
    /// Whether the result is backed by evidence: `Some(true)` when validators passed,
    /// `Some(false)` when no validator ran (the review judged by reading: unverified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// The commit the workspace starts at, when not a snapshot of the user's tree
    /// ([`RunRequest::base`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Names the change must leave in the project's files ([`RunRequest::expect`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<String>,
}

fn is_unset(b: &Budget) -> bool {
    !b.is_set()
}

impl RunRecord {
    /// A run that has not started: `pending`, nothing used, no workspace or change yet, its
    /// budget `budget`; the caller sets the rest of what its request asked for.
    pub fn pending(
        id: String,
        task: String,
        workflow_name: String,
        workflow: WorkflowConfig,
        project_path: PathBuf,
        project_id: String,
        budget: Budget,
    ) -> RunRecord {
        RunRecord {
            id,
            task,
            workflow_name,
            workflow,
            plan_notes: Vec::new(),
            project_path,
            project_id,
            conversation: None,
            offline: false,
            state: RunState::Pending,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            iterations: 0,
            finish_reason: None,
            output: None,
            error: None,
            tokens: Tokens::default(),
            cost: 0.0,
            resumed: 0,
            budget,
            workspace: None,
            validators: Vec::new(),
            validators_source: None,
            files: Vec::new(),
            validation: None,
            change: ChangeOptions::default(),
            verified: None,
            base: None,
            expect: Vec::new(),
        }
    }

    /// How long it ran (so far), in seconds.
    pub fn duration_secs(&self) -> Option<f64> {
        let start = self.started_at?;
        let end = self.finished_at.unwrap_or_else(Utc::now);
        Some((end - start).num_milliseconds() as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests;
