//! What the runtime persists and publishes: runs, steps and run events.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
pub use troupe_adapters::Tokens;
use troupe_adapters::config::Role;
pub use troupe_change::validate::{CommandResult, Report};
pub use troupe_change::workspace::{FileStat, Workspace};
use troupe_workflows::WorkflowConfig;
use troupe_workflows::engine::{FinishReason, StepPos};
use troupe_workflows::verdict::Verdict;

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

/// A step's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum StepState {
    /// The call is under way (a crash leaves it here; resume runs it again).
    Running,
    /// Done.
    Completed,
    /// Skipped by a condition.
    Skipped,
    /// Failed (after retries and fallbacks).
    Failed,
    /// Cancelled.
    Cancelled,
}

/// One step of a run, as persisted: written when it starts (with its prompt) and when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepRecord {
    /// The run.
    pub run_id: String,
    /// Where the step is.
    pub pos: StepPos,
    /// What it does.
    pub role: Role,
    /// The agent the workflow named.
    pub agent: String,
    /// The agent that answered (differs when a fallback ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// The model that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Where the step is.
    pub state: StepState,
    /// The prompt sent.
    pub prompt: String,
    /// The ids of the memory nodes put into the prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context_nodes: Vec<String>,
    /// The answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// For review steps: the parsed verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Tokens used.
    pub tokens: Tokens,
    /// Cost of the call, where the answering agent has a price.
    #[serde(default)]
    pub cost: f64,
    /// Whether the token counts are estimates (the agent reported none).
    #[serde(default)]
    pub tokens_estimated: bool,
    /// Retries of transient failures.
    pub retries: u32,
    /// Agents that failed before the one that answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback_from: Vec<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Wall time of the call, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// What the step changed in the workspace (work steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<StepChange>,
    /// For reviews: no evidence (validator results) was available, so the verdict is a
    /// judgement by reading only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unverified: bool,
}

/// What a step changed in the run's workspace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepChange {
    /// The commit in the workspace holding the step's change (none when nothing changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The files changed, with lines added and removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileStat>,
    /// Edits refused by patch safety (path and reason), never applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
    /// Edits that did not apply, after the automatic re-ask.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    /// Whether the agent was asked again because its edits did not apply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reasked: bool,
    /// Which sampled answer this change is (0: the first answer; n: the n-th extra candidate,
    /// kept because it passed the validators where the first did not).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub candidate: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl StepChange {
    /// Lines added over the files.
    pub fn added(&self) -> u64 {
        self.files.iter().map(|f| f.added).sum()
    }

    /// Lines removed over the files.
    pub fn removed(&self) -> u64 {
        self.files.iter().map(|f| f.removed).sum()
    }

    /// One line for people: "2 files changed (+10 -3)", refusals and failures included.
    pub fn summary(&self) -> String {
        let mut s = match self.files.len() {
            0 => "no files changed".to_string(),
            1 => format!("1 file changed (+{} -{})", self.added(), self.removed()),
            n => format!("{n} files changed (+{} -{})", self.added(), self.removed()),
        };
        if !self.refused.is_empty() {
            s.push_str(&format!("; {} edit(s) refused", self.refused.len()));
        }
        if !self.failed.is_empty() {
            s.push_str(&format!("; {} edit(s) did not apply", self.failed.len()));
        }
        if self.candidate > 0 {
            s.push_str(&format!("; candidate {} passed the checks", self.candidate));
        }
        s
    }
}

/// A run of the validators (a `validate` step), after the step at `after`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckRecord {
    /// The run.
    pub run_id: String,
    /// The step whose change was checked.
    pub after: StepPos,
    /// The workspace commit checked.
    pub commit: String,
    /// Running, completed or cancelled.
    pub state: StepState,
    /// The commands.
    pub commands: Vec<String>,
    /// Their results, when they ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Wall time, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
}

impl CheckRecord {
    /// Whether the validators ran and passed.
    pub fn passed(&self) -> bool {
        self.state == StepState::Completed && self.report.as_ref().is_some_and(Report::passed)
    }
}

/// Something that happened in a run, for front-ends (the shell, SSE, `troupe run`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum RunEvent {
    /// The run started (or resumed).
    RunStarted {
        /// The run.
        run_id: String,
        /// The workflow.
        workflow: String,
        /// The steps of one iteration, as `agent:role`.
        steps: Vec<String>,
        /// Whether this is a resumption.
        resumed: bool,
        /// Why this workflow (offline substitution, planner notes).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notes: Vec<String>,
        /// Where the run works, in words.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
        /// The validators and where they came from, in words (or why none run).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        validators: Option<String>,
    },
    /// The planner chose the steps.
    Planned {
        /// The run.
        run_id: String,
        /// The steps, as `agent:role`.
        steps: Vec<String>,
        /// Reasons and repairs.
        notes: Vec<String>,
    },
    /// A step started.
    StepStarted {
        /// The run.
        run_id: String,
        /// Where.
        pos: StepPos,
        /// What.
        role: Role,
        /// Which agent.
        agent: String,
    },
    /// A piece of a step's answer.
    Chunk {
        /// The run.
        run_id: String,
        /// Where.
        pos: StepPos,
        /// The text.
        text: String,
    },
    /// A retry, fallback, breaker change, rate-limit wait or local server start.
    Agent {
        /// The run.
        run_id: String,
        /// Where.
        pos: StepPos,
        /// What happened, in words.
        message: String,
    },
    /// A step ended.
    StepFinished {
        /// The run.
        run_id: String,
        /// Where.
        pos: StepPos,
        /// How it ended.
        state: StepState,
        /// The agent that answered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answered_by: Option<String>,
        /// The model that answered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        /// Tokens used.
        tokens: Tokens,
        /// Cost of the call.
        #[serde(default)]
        cost: f64,
        /// Milliseconds.
        latency_ms: u64,
        /// Retries.
        retries: u32,
        /// Agents that failed first.
        fallback_from: Vec<String>,
        /// For reviews: approved or changes requested, with the number of findings.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verdict: Option<String>,
        /// Why it failed or was skipped.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A step's edits were applied to the workspace (and committed there).
    Changed {
        /// The run.
        run_id: String,
        /// The step.
        pos: StepPos,
        /// What changed.
        change: StepChange,
    },
    /// The validators started on the change after the step at `after`.
    ValidateStarted {
        /// The run.
        run_id: String,
        /// The step whose change is checked.
        after: StepPos,
        /// The commands.
        commands: Vec<String>,
    },
    /// The validators ended.
    ValidateFinished {
        /// The run.
        run_id: String,
        /// The step whose change was checked.
        after: StepPos,
        /// Whether every command passed.
        passed: bool,
        /// Each command's result (output tails included).
        results: Vec<CommandResult>,
    },
    /// The run's change was applied to the project.
    Applied {
        /// The run.
        run_id: String,
        /// The files written.
        files: Vec<std::path::PathBuf>,
    },
    /// The run ended.
    RunFinished {
        /// The run.
        run_id: String,
        /// How.
        state: RunState,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<FinishReason>,
        /// Iterations run.
        iterations: u32,
        /// Tokens used.
        tokens: Tokens,
        /// Cost of all its calls.
        #[serde(default)]
        cost: f64,
        /// The error, when it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl RunEvent {
    /// Whether this event ends the run's stream.
    pub fn is_final(&self) -> bool {
        matches!(self, RunEvent::RunFinished { .. })
    }
}

/// Counts and timings over the stored runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunStats {
    /// Runs by state.
    pub by_state: std::collections::BTreeMap<String, u64>,
    /// Average duration of ended runs, in seconds.
    pub average_duration_secs: Option<f64>,
    /// Tokens over all runs.
    pub tokens: Tokens,
    /// Cost over all runs.
    #[serde(default)]
    pub cost: f64,
}

/// Tokens, cost and calls of one slice of the history (a project, an agent, a run).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageTotals {
    /// Runs counted.
    pub runs: u64,
    /// Calls that answered (steps with an answering agent).
    pub calls: u64,
    /// Tokens.
    pub tokens: Tokens,
    /// Cost, where prices are configured.
    pub cost: f64,
}

impl UsageTotals {
    /// Count one call.
    pub fn add_call(&mut self, tokens: Tokens, cost: f64) {
        self.calls += 1;
        self.tokens.add(tokens);
        self.cost += cost;
    }
}

/// Usage of a run, in a [`UsageReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunUsage {
    /// The run.
    pub run_id: String,
    /// Its project's folder.
    pub project: PathBuf,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// How it ended (or where it is).
    pub state: RunState,
    /// Its task, shortened.
    pub task: String,
    /// Its totals.
    pub totals: UsageTotals,
}

/// Tokens and cost per project, per agent and per run (`troupe usage`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageReport {
    /// Only runs created at or after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Only this project's runs (its folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<PathBuf>,
    /// Everything counted.
    pub total: UsageTotals,
    /// By project folder.
    pub by_project: std::collections::BTreeMap<String, UsageTotals>,
    /// By answering agent.
    pub by_agent: std::collections::BTreeMap<String, UsageTotals>,
    /// By run, newest first.
    pub runs: Vec<RunUsage>,
    /// Calls made outside runs, by source (`test-agent`); also in the totals, per agent
    /// and per project. See `troupe_runtime::usage`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub by_source: std::collections::BTreeMap<String, UsageTotals>,
}

#[cfg(test)]
mod tests;
