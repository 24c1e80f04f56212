//! A step's record (and its change), and a validators' run.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use troupe_adapters::config::Role;
use troupe_workflows::engine::StepPos;
use troupe_workflows::verdict::Verdict;

use super::{FileStat, Report, Tokens};

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
