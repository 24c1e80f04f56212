//! Counts, tokens and cost over the stored runs (`troupe runs stats`, `troupe usage`).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{RunState, Tokens};

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
