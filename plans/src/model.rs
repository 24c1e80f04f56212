//! The plan model: what a planner (or a person editing) writes — [`PlanSpec`] with its
//! [`TaskSpec`]s — and what troupe keeps about it: [`Plan`] with its state, versions and
//! each task's [`TaskStatus`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use troupe_change::workspace::Workspace;

/// A plan as written: a title, a goal and tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    /// A short title.
    pub title: String,
    /// What the plan achieves, in a sentence or two.
    pub goal: String,
    /// The tasks (each one run), in the order written.
    #[serde(default)]
    pub tasks: Vec<TaskSpec>,
}

/// One task of a plan: one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// A short id (`add-parser`), unique in the plan.
    pub id: String,
    /// What to do (the run's task).
    pub description: String,
    /// How to tell it is done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acceptance: Vec<String>,
    /// Files it will likely touch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Tasks that must be green (merged) before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// The workflow to run it with; the configured default when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
}

/// Where a plan is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanState {
    /// Written, waiting for approval (edit, revise, approve or reject it).
    Draft,
    /// Approved; runs when asked to (or by a server's queue).
    Approved,
    /// Rejected; it never runs.
    Rejected,
    /// Its tasks are running.
    Running,
    /// No new task starts; resume it to go on.
    Paused,
    /// Every task is green (or skipped).
    Done,
    /// A task failed or conflicted, and nothing else can run.
    Failed,
}

impl PlanState {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanState::Draft => "draft",
            PlanState::Approved => "approved",
            PlanState::Rejected => "rejected",
            PlanState::Running => "running",
            PlanState::Paused => "paused",
            PlanState::Done => "done",
            PlanState::Failed => "failed",
        }
    }

    /// Whether the plan may run (it was approved at some point, and is not finished).
    pub fn runnable(self) -> bool {
        matches!(self, PlanState::Approved | PlanState::Running | PlanState::Failed)
    }
}

impl std::fmt::Display for PlanState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a task is.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for the tasks it comes after.
    #[default]
    Pending,
    /// Ready; waits for a free slot.
    Queued,
    /// Its run is running.
    Running,
    /// Its run completed and its change is merged into the integration branch.
    Green,
    /// Its run did not complete.
    Failed,
    /// A task it comes after failed, conflicted or is blocked.
    Blocked,
    /// Its change conflicts with the integration branch.
    Conflict,
    /// Skipped by a person; counts as done for the tasks after it.
    Skipped,
}

impl TaskState {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Green => "green",
            TaskState::Failed => "failed",
            TaskState::Blocked => "blocked",
            TaskState::Conflict => "conflict",
            TaskState::Skipped => "skipped",
        }
    }

    /// Whether the tasks after it may start.
    pub fn satisfies(self) -> bool {
        matches!(self, TaskState::Green | TaskState::Skipped)
    }

    /// Whether it stops the tasks after it.
    pub fn stops(self) -> bool {
        matches!(self, TaskState::Failed | TaskState::Conflict | TaskState::Blocked)
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What troupe knows about a task's execution.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskStatus {
    /// Its state.
    pub state: TaskState,
    /// The run doing (or that did) it; recorded before the run is submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Every run it had, oldest first (a retry adds one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<String>,
    /// Why it failed, is blocked or conflicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The files of a conflict, or the files its change touched once merged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PathBuf>,
    /// The integration branch's commit after its change was merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<String>,
}

/// One version of a plan's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Revision {
    /// 1, 2, …
    pub version: u32,
    /// When.
    pub at: DateTime<Utc>,
    /// Who made it: `planner <agent>`, `edit`, `revise <agent>: <feedback>`.
    pub by: String,
    /// The plan as it was.
    pub spec: PlanSpec,
}

/// A plan, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Plan {
    /// Its id (time-ordered).
    pub id: String,
    /// The spec it was planned from, in the user's words.
    pub spec_text: String,
    /// The project folder.
    pub project: PathBuf,
    /// The planner agent asked for (`None`: the runtime's pick).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planner: Option<String>,
    /// Only local agents.
    #[serde(default)]
    pub offline: bool,
    /// Its state.
    pub state: PlanState,
    /// The current text (the last revision's).
    pub spec: PlanSpec,
    /// Every version, oldest first; the last one is `spec`.
    pub revisions: Vec<Revision>,
    /// Each task's execution, by task id.
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskStatus>,
    /// How many tasks may run at once.
    #[serde(default = "one")]
    pub concurrency: usize,
    /// The integration branch's worktree (`troupe/plan-<id>`), once the plan started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration: Option<Workspace>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The project-memory node recording it, once recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_node: Option<String>,
}

fn one() -> usize {
    1
}

impl Plan {
    /// A new draft plan of `spec`, version 1 by `by`.
    pub fn new(spec_text: &str, project: PathBuf, spec: PlanSpec, by: &str) -> Plan {
        let now = Utc::now();
        let tasks = spec.tasks.iter().map(|t| (t.id.clone(), TaskStatus::default())).collect();
        Plan {
            id: uuid::Uuid::now_v7().to_string(),
            spec_text: spec_text.to_string(),
            project,
            planner: None,
            offline: false,
            state: PlanState::Draft,
            revisions: vec![Revision {
                version: 1,
                at: now,
                by: by.to_string(),
                spec: spec.clone(),
            }],
            spec,
            tasks,
            concurrency: 1,
            integration: None,
            created_at: now,
            updated_at: now,
            error: None,
            memory_node: None,
        }
    }

    /// The current version's number.
    pub fn version(&self) -> u32 {
        self.revisions.last().map_or(1, |r| r.version)
    }

    /// Replace the text with a new version (a draft again: a changed plan needs approval).
    pub fn revise(&mut self, spec: PlanSpec, by: &str) {
        let version = self.version() + 1;
        self.revisions.push(Revision {
            version,
            at: Utc::now(),
            by: by.to_string(),
            spec: spec.clone(),
        });
        self.tasks = spec.tasks.iter().map(|t| (t.id.clone(), TaskStatus::default())).collect();
        self.spec = spec;
        self.state = PlanState::Draft;
        self.updated_at = Utc::now();
    }

    /// A task's spec.
    pub fn task(&self, id: &str) -> Option<&TaskSpec> {
        self.spec.tasks.iter().find(|t| t.id == id)
    }

    /// A task's state.
    pub fn task_state(&self, id: &str) -> TaskState {
        self.tasks.get(id).map(|t| t.state).unwrap_or_default()
    }

    /// The short id people type (the first 8 characters).
    pub fn short_id(&self) -> &str {
        self.id.get(..8).unwrap_or(&self.id)
    }

    /// The integration branch's name.
    pub fn branch(&self) -> String {
        format!(
            "troupe/plan-{}",
            self.id.chars().filter(|c| *c != '-').take(12).collect::<String>()
        )
    }

    /// Counts of tasks by state.
    pub fn counts(&self) -> BTreeMap<TaskState, usize> {
        let mut out = BTreeMap::new();
        for t in &self.spec.tasks {
            *out.entry(self.task_state(&t.id)).or_default() += 1;
        }
        out
    }
}

impl PartialOrd for TaskState {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TaskState {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}

/// Something that happened to a plan (for the server's event stream and front-ends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PlanEvent {
    /// The plan's state changed.
    PlanState {
        /// The plan.
        plan_id: String,
        /// Its new state.
        state: PlanState,
    },
    /// A task's state changed.
    TaskState {
        /// The plan.
        plan_id: String,
        /// The task.
        task: String,
        /// Its new state.
        state: TaskState,
        /// Its run, when it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        /// Why (failed, blocked, conflict).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}
