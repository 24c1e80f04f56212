//! Calls troupe makes outside runs (`troupe test-agent`, a plan's planner), recorded so `troupe usage` and
//! the metrics count them, marked with where they came from.
//!
//! They live in an append-only log, `<data folder>/usage/calls.jsonl` (one JSON record per
//! line, one `write` per record with `O_APPEND`), not in the store: a test call must be
//! counted also while a `troupe serve` holds the store. A torn last line (a crash mid-write)
//! is skipped when reading.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use troupe_observability::Metrics;

use crate::error::{Error, Result};
use crate::model::{Tokens, UsageReport};
use crate::runtime::Runtime;

/// The source of a call made by `troupe test-agent`.
pub const TEST_AGENT: &str = "test-agent";

/// The source of a plan's planner call ([`Runtime::ask`](crate::Runtime::ask)).
pub const PLANNER: &str = "planner";

/// One call made outside a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// What made it (`test-agent`).
    pub source: String,
    /// When it ended.
    pub at: DateTime<Utc>,
    /// The project folder it ran in (canonical when it could be resolved).
    pub project: PathBuf,
    /// The agent asked.
    pub agent: String,
    /// The agent that answered (a fallback, perhaps); none when the call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// The model that answered, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `success`, or the error class (`timeout`, `transient`, …).
    pub outcome: String,
    /// Tokens used (0 when the call failed).
    pub tokens: Tokens,
    /// Cost at the answering agent's price (0 without one).
    pub cost: f64,
    /// How long the call took, retries and fallbacks included.
    pub latency_ms: u64,
}

impl CallRecord {
    /// The record of a call to `agent` made by `source` in `project`: what answered and
    /// what it used, or the class of the error.
    pub fn of_call(
        source: &str,
        config: &troupe_workflows::Config,
        agent: &str,
        project: &Path,
        result: &std::result::Result<troupe_adapters::AgentResponse, troupe_adapters::AdapterError>,
        latency: std::time::Duration,
    ) -> CallRecord {
        let project = project.canonicalize().unwrap_or_else(|_| project.to_path_buf());
        let (answered_by, model, outcome, tokens) = match result {
            Ok(r) => (
                Some(r.agent.clone()),
                r.model.clone(),
                troupe_observability::metrics::SUCCESS.to_string(),
                r.usage,
            ),
            Err(e) => (None, None, e.kind().to_string(), Tokens::default()),
        };
        let cost =
            answered_by.as_deref().map_or(0.0, |a| crate::budget::cost_of(config, a, tokens));
        CallRecord {
            source: source.to_string(),
            at: Utc::now(),
            project,
            agent: agent.to_string(),
            answered_by,
            model,
            outcome,
            tokens,
            cost,
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Whether it answered (only answered calls count in usage, as for steps).
    pub fn answered(&self) -> bool {
        self.outcome == troupe_observability::metrics::SUCCESS
    }

    /// The agent the call is counted for: the one that answered, else the one asked.
    pub fn counted_agent(&self) -> &str {
        self.answered_by.as_deref().unwrap_or(&self.agent)
    }
}

/// The log of calls made outside runs, in one data folder.
#[derive(Debug, Clone)]
pub struct CallLog {
    path: PathBuf,
}

impl CallLog {
    /// The log of the data folder `data_dir`.
    pub fn new(data_dir: &Path) -> CallLog {
        CallLog { path: data_dir.join("usage").join("calls.jsonl") }
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Add one record (one write, appended).
    pub fn append(&self, record: &CallRecord) -> Result<()> {
        let io = |e: std::io::Error| {
            Error::Invalid(format!(
                "cannot record the call in {}: {e}; check that the data folder is writable",
                self.path.display()
            ))
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        let mut f =
            std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(io)?;
        f.write_all(&line).map_err(io)
    }

    /// Every record, oldest first; none when the log does not exist. Unreadable lines (a
    /// torn last line) are skipped.
    pub fn read(&self) -> Result<Vec<CallRecord>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::Invalid(format!("cannot read {}: {e}", self.path.display())));
            }
        };
        Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
    }

    /// Count the answered calls of the project in folder `project` (all without it), made at
    /// or after `since` (all without it), into `report`: its totals, per agent, per project
    /// and per source. They belong to no run.
    pub fn add_to(
        &self,
        report: &mut UsageReport,
        project: Option<&Path>,
        since: Option<DateTime<Utc>>,
    ) -> Result<()> {
        for c in self.read()? {
            if !c.answered()
                || project.is_some_and(|p| p != c.project)
                || since.is_some_and(|s| c.at < s)
            {
                continue;
            }
            report.total.add_call(c.tokens, c.cost);
            report
                .by_agent
                .entry(c.counted_agent().to_string())
                .or_default()
                .add_call(c.tokens, c.cost);
            report
                .by_project
                .entry(c.project.display().to_string())
                .or_default()
                .add_call(c.tokens, c.cost);
            report.by_source.entry(c.source.clone()).or_default().add_call(c.tokens, c.cost);
        }
        Ok(())
    }

    /// Count every logged call in `metrics`, as [`Metrics::record_call`] would have when it
    /// was made, and per source in `troupe_calls_outside_runs_total`.
    pub fn seed(&self, metrics: &Metrics) {
        let Ok(calls) = self.read() else { return };
        for c in calls {
            record(metrics, &c);
        }
    }
}

/// Count one call made outside a run in `metrics`.
pub fn record(metrics: &Metrics, c: &CallRecord) {
    let agent = c.counted_agent();
    metrics.record_call(agent, &c.outcome, std::time::Duration::from_millis(c.latency_ms));
    metrics.record_tokens(agent, c.tokens.prompt, c.tokens.completion);
    metrics.record_cost(agent, c.cost);
    metrics.record_outside_call(&c.source, agent, &c.outcome);
}

/// `troupe usage`'s report: the runs' usage ([`Runtime::usage`]) and the calls made outside
/// runs (marked by source in [`UsageReport::by_source`]).
pub fn usage_report(
    runtime: &Runtime,
    project: Option<&Path>,
    since: Option<DateTime<Utc>>,
) -> Result<UsageReport> {
    let mut report = runtime.usage(project, since)?;
    let project = project.and_then(|p| p.canonicalize().ok());
    CallLog::new(&runtime.config().data_dir()).add_to(&mut report, project.as_deref(), since)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(agent: &str, outcome: &str, project: &str, prompt: u64) -> CallRecord {
        CallRecord {
            source: TEST_AGENT.into(),
            at: Utc::now(),
            project: project.into(),
            agent: agent.into(),
            answered_by: (outcome == "success").then(|| agent.to_string()),
            model: None,
            outcome: outcome.into(),
            tokens: Tokens { prompt, completion: 5 },
            cost: 0.0,
            latency_ms: 12,
        }
    }

    #[test]
    fn answered_calls_count_per_agent_project_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let log = CallLog::new(dir.path());
        assert!(log.read().unwrap().is_empty(), "no log yet is no calls");
        log.append(&call("a", "success", "/p", 10)).unwrap();
        log.append(&call("a", "timeout", "/p", 0)).unwrap();
        log.append(&call("b", "success", "/q", 20)).unwrap();
        // A torn last line is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .unwrap()
            .write_all(b"{\"source\":\"test-ag")
            .unwrap();
        assert_eq!(log.read().unwrap().len(), 3);

        let mut report = UsageReport::default();
        log.add_to(&mut report, None, None).unwrap();
        assert_eq!(report.total.calls, 2, "the failed call used nothing");
        assert_eq!(report.total.runs, 0, "calls outside runs are no runs");
        assert_eq!(report.total.tokens, Tokens { prompt: 30, completion: 10 });
        assert_eq!(report.by_source[TEST_AGENT].calls, 2);
        assert_eq!(report.by_agent["a"].calls, 1);
        assert_eq!(report.by_project["/q"].tokens.prompt, 20);

        let mut report = UsageReport::default();
        log.add_to(&mut report, Some(Path::new("/p")), None).unwrap();
        assert_eq!(report.total.calls, 1);
        let mut report = UsageReport::default();
        log.add_to(&mut report, None, Some(Utc::now() + chrono::Duration::hours(1))).unwrap();
        assert_eq!(report.total.calls, 0);

        let metrics = Metrics::new().unwrap();
        log.seed(&metrics);
        assert_eq!(metrics.agent_stats("a"), (2, 1), "both calls of a, one a success");
        assert!(
            metrics.render().contains(
                "troupe_calls_outside_runs_total{agent=\"a\",outcome=\"timeout\",source=\"test-agent\"} 1"
            ),
            "{}",
            metrics.render()
        );
    }
}
