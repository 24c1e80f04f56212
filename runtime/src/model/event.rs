//! What happened in a run, for front-ends.

use serde::{Deserialize, Serialize};
use troupe_adapters::config::Role;
use troupe_workflows::engine::{FinishReason, StepPos};

use super::{CommandResult, RunState, StepChange, StepState, Tokens};

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
