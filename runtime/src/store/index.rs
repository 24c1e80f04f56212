//! Secondary keys kept beside the records, written in the same batch as the record they
//! index, so the hot reads are prefix scans of small values instead of scans of every run:
//!
//! - `idx/project/<project id>/<run id>` → the run's [`ProjectEntry`] (its totals), for a
//!   project budget checked before every call;
//! - `idx/conversation/<conversation>/<run id>` → null, for a conversation's earlier turns;
//! - `idx/calls/<run id>/<iteration:06>/<step:04>` → the ended step's [`CallEntry`], for the
//!   agents' call counters seeded at start-up.
//!
//! `meta/index` holds [`VERSION`]; a store without it (written before the index existed) is
//! indexed once when it is opened.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::Write;
use crate::model::{RunRecord, StepRecord, StepState, Tokens};

/// The key saying which version of the index the store holds.
pub(crate) const MARKER: &str = "meta/index";
/// The index's version.
pub(crate) const VERSION: u64 = 1;

/// A run's totals, under its project.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProjectEntry {
    /// When the run was created.
    pub created_at: DateTime<Utc>,
    /// Its tokens so far.
    pub tokens: Tokens,
    /// Its cost so far.
    pub cost: f64,
}

/// An ended step's call, for the call counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CallEntry {
    /// The agent counted.
    pub agent: String,
    /// `success` or `failed`.
    pub outcome: String,
    /// How long it took.
    pub latency_ms: u64,
}

/// A key part that cannot end a prefix early (`/` and `%` escaped).
fn part(s: &str) -> String {
    s.replace('%', "%25").replace('/', "%2F")
}

pub(crate) fn project_prefix(project_id: &str) -> String {
    format!("idx/project/{}/", part(project_id))
}

pub(crate) fn conversation_prefix(conversation: &str) -> String {
    format!("idx/conversation/{}/", part(conversation))
}

pub(crate) const CALLS_PREFIX: &str = "idx/calls/";

/// The run id at the end of an index key.
pub(crate) fn run_id_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// The index writes that go with storing `run`.
pub(crate) fn of_run(run: &RunRecord) -> Vec<Write> {
    let entry = ProjectEntry { created_at: run.created_at, tokens: run.tokens, cost: run.cost };
    let mut writes = vec![(
        format!("{}{}", project_prefix(&run.project_id), run.id),
        serde_json::to_value(entry).ok(),
    )];
    if let Some(c) = &run.conversation {
        writes
            .push((format!("{}{}", conversation_prefix(c), run.id), Some(serde_json::Value::Null)));
    }
    writes
}

/// The index write that goes with storing `step`: its call once it ended, none before.
pub(crate) fn of_step(step: &StepRecord) -> Write {
    let key =
        format!("{CALLS_PREFIX}{}/{:06}/{:04}", step.run_id, step.pos.iteration, step.pos.step);
    let entry = match step.state {
        StepState::Completed => Some(CallEntry {
            agent: step.answered_by.clone().unwrap_or_else(|| step.agent.clone()),
            outcome: troupe_observability::metrics::SUCCESS.to_string(),
            latency_ms: step.latency_ms,
        }),
        StepState::Failed => Some(CallEntry {
            agent: step.agent.clone(),
            outcome: "failed".to_string(),
            latency_ms: step.latency_ms,
        }),
        _ => None,
    };
    (key, entry.and_then(|e| serde_json::to_value(e).ok()))
}

/// The index keys of `run` to remove with it (its calls are removed by prefix).
pub(crate) fn keys_of_run(run: &RunRecord) -> Vec<String> {
    of_run(run).into_iter().map(|(k, _)| k).collect()
}
