//! The errors of plans.

/// What went wrong with a plan, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No plan has that id.
    #[error("no plan with id `{0}`; list plans with `troupe plan list`")]
    NoSuchPlan(String),
    /// The plan has no task of that id.
    #[error("plan `{plan}` has no task `{task}`; its tasks: {known}")]
    NoSuchTask {
        /// The plan.
        plan: String,
        /// The task asked for.
        task: String,
        /// The tasks it has.
        known: String,
    },
    /// A plan (from a model, an edit or a request) is not valid; every problem is listed.
    #[error("the plan is not valid:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// The planner gave no valid plan, twice; its last answer is kept.
    #[error(
        "the planner `{agent}` gave no valid plan after a re-ask:\n{}\nits answer is kept in {}",
        problems.join("\n"), answer_file.as_deref().map_or_else(|| "the error".to_string(), |p| p.display().to_string())
    )]
    PlannerFailed {
        /// The agent that planned.
        agent: String,
        /// What was wrong with its last answer.
        problems: Vec<String>,
        /// Its last answer, raw.
        answer: String,
        /// Where the raw answer was written, when it was.
        answer_file: Option<std::path::PathBuf>,
    },
    /// The plan cannot do what was asked in its state.
    #[error("plan `{id}` is {state}; {hint}")]
    WrongState {
        /// The plan.
        id: String,
        /// Its state.
        state: crate::model::PlanState,
        /// What can be done instead.
        hint: String,
    },
    /// The request cannot be done (a task in the wrong state, a plan file that cannot be read, …).
    #[error("{0}")]
    Refused(String),
    /// The runtime (runs, the store, agent calls) failed.
    #[error(transparent)]
    Runtime(#[from] troupe_runtime::Error),
    /// The integration branch (git) failed.
    #[error(transparent)]
    Change(#[from] troupe_change::Error),
    /// A stored plan could not be encoded or decoded.
    #[error("a stored plan is unreadable: {0}")]
    Record(#[from] serde_json::Error),
}

/// The result type of plans.
pub type Result<T, E = Error> = std::result::Result<T, E>;
