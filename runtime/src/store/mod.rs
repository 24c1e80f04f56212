//! Durable run records: runs and their steps, each write on disk before it returns.
//!
//! Keys are chosen so a prefix scan returns a run's steps in order:
//! `runs/<run id>`, `steps/<run id>/<iteration:06>/<step:04>` and, for the validators'
//! runs, `checks/<run id>/<iteration:06>/<step:04>` (the step whose change was checked);
//! secondary keys under `idx/` (`index`) serve the reads made while runs execute.
//!
//! Writes are `async` and go through the one writer thread ([`crate::writer`]): the sync
//! never runs on an async executor. The production backend is the `runs` collection behind
//! the records' journal ([`Journaled`]: a write is durable with one small `sync_data`; sled
//! is flushed at checkpoints). `*_soon` writes are handed over without waiting. Reads are
//! synchronous point reads and prefix scans.

mod index;
mod journal;

pub use journal::Journaled;

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Result;
use crate::model::{
    CheckRecord, RunRecord, RunState, RunStats, RunUsage, StepRecord, Tokens, UsageReport,
    UsageTotals,
};
use troupe_workflows::engine::StepPos;

use crate::backend::Write;
use crate::writer::{Pending, Writer};

pub use crate::backend::Backend;

/// Runs and steps.
#[derive(Debug, Clone)]
pub struct RunStore {
    backend: Arc<dyn Backend>,
    writer: Writer,
}

fn step_key(run_id: &str, pos: StepPos) -> String {
    format!("steps/{run_id}/{:06}/{:04}", pos.iteration, pos.step)
}

fn check_key(run_id: &str, after: StepPos) -> String {
    format!("checks/{run_id}/{:06}/{:04}", after.iteration, after.step)
}

/// A run's record and its index keys.
fn run_writes(run: &RunRecord) -> Result<Vec<Write>> {
    let mut writes = vec![(format!("runs/{}", run.id), Some(encode(run)?))];
    writes.extend(index::of_run(run));
    Ok(writes)
}

/// A step's record and its index key.
fn step_writes(step: &StepRecord) -> Result<Vec<Write>> {
    Ok(vec![(step_key(&step.run_id, step.pos), Some(encode(step)?)), index::of_step(step)])
}

fn encode<T: Serialize>(v: &T) -> Result<Value> {
    Ok(serde_json::to_value(v)?)
}

fn decode<T: DeserializeOwned>(v: Value) -> Result<T> {
    Ok(serde_json::from_value(v)?)
}

/// Write the index keys of every stored run and step, then the index's marker.
fn build_index(backend: &dyn Backend) -> Result<()> {
    let mut writes = Vec::new();
    for (_, run) in backend.scan("runs/")? {
        let run: RunRecord = decode(run)?;
        writes.extend(index::of_run(&run));
        for (_, step) in backend.scan(&format!("steps/{}/", run.id))? {
            writes.push(index::of_step(&decode(step)?));
        }
    }
    writes.push((index::MARKER.to_string(), Some(Value::from(index::VERSION))));
    backend.write(&writes)
}

impl RunStore {
    /// A store over `backend`, with its writer thread; a store written before the index
    /// existed is indexed first (once; the caller waits).
    pub fn new(backend: Arc<dyn Backend>) -> Result<RunStore> {
        if backend.get(index::MARKER)?.is_none() {
            crate::writer::off_executor(|| build_index(backend.as_ref()))?;
        }
        let writer = Writer::start(&backend)?;
        Ok(RunStore { backend, writer })
    }

    /// Write a run (and its index keys); on disk when it returns.
    pub async fn put_run(&self, run: &RunRecord) -> Result<()> {
        self.writer.write(run_writes(run)?).await
    }

    /// Hand a run's record to the writer without waiting for the disk (later writes land
    /// after it); wait on it before relying on it.
    pub fn put_run_soon(&self, run: &RunRecord) -> Result<Pending> {
        self.writer.send(run_writes(run)?)
    }

    /// A run by id.
    pub fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        self.backend.get(&format!("runs/{id}"))?.map(decode).transpose()
    }

    /// A run by id or by a unique prefix of its id (as people type them).
    pub fn find_run(&self, id_or_prefix: &str) -> Result<Option<RunRecord>> {
        if let Some(r) = self.run(id_or_prefix)? {
            return Ok(Some(r));
        }
        let matches = self.backend.scan(&format!("runs/{id_or_prefix}"))?;
        if matches.len() == 1 {
            return matches.into_iter().next().map(|(_, v)| decode(v)).transpose();
        }
        Ok(None)
    }

    /// Every run, oldest first (ids are time-ordered).
    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        self.backend.scan("runs/")?.into_iter().map(|(_, v)| decode(v)).collect()
    }

    /// Write a step (and its index key); on disk when it returns.
    pub async fn put_step(&self, step: &StepRecord) -> Result<()> {
        self.writer.write(step_writes(step)?).await
    }

    /// Hand a step's record to the writer without waiting for the disk: for a step that
    /// starts (a crash before it is on disk loses nothing — resume runs a step that did not
    /// end again). Later writes land after it; wait on it before relying on it.
    pub fn put_step_soon(&self, step: &StepRecord) -> Result<Pending> {
        self.writer.send(step_writes(step)?)
    }

    /// Write a step and then its run, together; both on disk when it returns.
    pub async fn put_step_and_run(&self, step: &StepRecord, run: &RunRecord) -> Result<()> {
        let mut writes = step_writes(step)?;
        writes.extend(run_writes(run)?);
        self.writer.write(writes).await
    }

    /// A run's steps, in order.
    pub fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        self.backend
            .scan(&format!("steps/{run_id}/"))?
            .into_iter()
            .map(|(_, v)| decode(v))
            .collect()
    }

    /// Write a run of the validators; on disk when it returns.
    pub async fn put_check(&self, check: &CheckRecord) -> Result<()> {
        self.writer.write(vec![(check_key(&check.run_id, check.after), Some(encode(check)?))]).await
    }

    /// A run's runs of the validators, in order.
    pub fn checks(&self, run_id: &str) -> Result<Vec<CheckRecord>> {
        self.backend
            .scan(&format!("checks/{run_id}/"))?
            .into_iter()
            .map(|(_, v)| decode(v))
            .collect()
    }

    /// Runs that were pending or in progress when the process that ran them stopped.
    pub fn interrupted(&self) -> Result<Vec<RunRecord>> {
        Ok(self.runs()?.into_iter().filter(|r| !r.state.is_final()).collect())
    }

    /// Remove ended runs (and their steps) that finished before `before`. Returns how many.
    pub async fn cleanup(&self, before: chrono::DateTime<chrono::Utc>) -> Result<usize> {
        let mut removed = 0;
        let mut writes = Vec::new();
        for run in self.runs()? {
            if run.state.is_final() && run.finished_at.is_some_and(|f| f < before) {
                for prefix in ["steps/", "checks/", index::CALLS_PREFIX] {
                    for (key, _) in self.backend.scan(&format!("{prefix}{}/", run.id))? {
                        writes.push((key, None));
                    }
                }
                writes.extend(index::keys_of_run(&run).into_iter().map(|k| (k, None)));
                writes.push((format!("runs/{}", run.id), None));
                removed += 1;
            }
        }
        self.writer.write(writes).await?;
        Ok(removed)
    }

    /// Counts by state, average duration of ended runs, total tokens.
    pub fn stats(&self) -> Result<RunStats> {
        let mut stats = RunStats::default();
        let mut durations = Vec::new();
        for run in self.runs()? {
            *stats.by_state.entry(run.state.as_str().to_string()).or_default() += 1;
            stats.tokens.add(run.tokens);
            stats.cost += run.cost;
            if run.state.is_final()
                && let Some(d) = run.duration_secs()
            {
                durations.push(d);
            }
        }
        if !durations.is_empty() {
            stats.average_duration_secs =
                Some(durations.iter().sum::<f64>() / durations.len() as f64);
        }
        Ok(stats)
    }

    /// Tokens and cost used by the runs of `current`'s project created at or after `since`
    /// (all its runs without it): `current` as it is in memory, the others as stored (runs
    /// store their totals after every call while a project budget is set).
    pub fn project_usage(
        &self,
        current: &RunRecord,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(Tokens, f64)> {
        let mut tokens = current.tokens;
        let mut cost = current.cost;
        for (key, entry) in self.backend.scan(&index::project_prefix(&current.project_id))? {
            let entry: index::ProjectEntry = decode(entry)?;
            if index::run_id_of(&key) != current.id && since.is_none_or(|s| entry.created_at >= s) {
                tokens.add(entry.tokens);
                cost += entry.cost;
            }
        }
        Ok((tokens, cost))
    }

    /// Usage per project, per agent and per run, from the stored calls (steps): runs of
    /// the project in folder `project` (canonical) only when given, created at or after
    /// `since` when given.
    pub fn usage(
        &self,
        project: Option<&std::path::Path>,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<UsageReport> {
        let mut report =
            UsageReport { since, project: project.map(|p| p.to_path_buf()), ..Default::default() };
        for run in self.runs()? {
            if project.is_some_and(|p| p != run.project_path)
                || since.is_some_and(|s| run.created_at < s)
            {
                continue;
            }
            let mut totals = UsageTotals { runs: 1, ..Default::default() };
            for step in self.steps(&run.id)? {
                let Some(agent) = &step.answered_by else { continue };
                totals.add_call(step.tokens, step.cost);
                let a = report.by_agent.entry(agent.clone()).or_default();
                a.add_call(step.tokens, step.cost);
            }
            // Calls stopped by a crash before their step ended still count in the run's
            // totals; the run record is the authority for the run.
            totals.tokens = Tokens {
                prompt: totals.tokens.prompt.max(run.tokens.prompt),
                completion: totals.tokens.completion.max(run.tokens.completion),
            };
            totals.cost = totals.cost.max(run.cost);
            let p = report.by_project.entry(run.project_path.display().to_string()).or_default();
            p.runs += 1;
            p.calls += totals.calls;
            p.tokens.add(totals.tokens);
            p.cost += totals.cost;
            report.total.runs += 1;
            report.total.calls += totals.calls;
            report.total.tokens.add(totals.tokens);
            report.total.cost += totals.cost;
            report.runs.push(RunUsage {
                run_id: run.id.clone(),
                project: run.project_path.clone(),
                created_at: run.created_at,
                state: run.state,
                task: run.task.chars().take(60).collect(),
                totals,
            });
        }
        report.runs.reverse();
        Ok(report)
    }

    /// The runs of a conversation, oldest first.
    pub fn conversation(&self, conversation: &str) -> Result<Vec<RunRecord>> {
        let mut runs = Vec::new();
        for (key, _) in self.backend.scan(&index::conversation_prefix(conversation))? {
            runs.extend(self.run(index::run_id_of(&key))?);
        }
        Ok(runs)
    }

    /// Every ended step's call (agent, outcome, latency), oldest run first: what the
    /// agents' call counters are seeded from.
    pub fn calls(&self) -> Result<Vec<(String, String, u64)>> {
        self.backend
            .scan(index::CALLS_PREFIX)?
            .into_iter()
            .map(|(_, v)| {
                let c: index::CallEntry = decode(v)?;
                Ok((c.agent, c.outcome, c.latency_ms))
            })
            .collect()
    }

    /// Mark a run that is not running anywhere as cancelled (for runs left behind by a
    /// crash that the user does not want to resume).
    pub async fn cancel_stored(&self, id: &str) -> Result<RunRecord> {
        let mut run =
            self.run(id)?.ok_or_else(|| crate::error::Error::NoSuchRun(id.to_string()))?;
        if run.state.is_final() {
            return Err(crate::error::Error::WrongState {
                id: run.id,
                state: run.state,
                hint: "only pending or in-progress runs can be cancelled",
            });
        }
        run.state = RunState::Cancelled;
        run.finished_at = Some(chrono::Utc::now());
        run.error = Some("cancelled".into());
        self.put_run(&run).await?;
        Ok(run)
    }
}

/// An in-memory [`Backend`] for tests.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    map: std::sync::Mutex<std::collections::BTreeMap<String, Value>>,
}

impl Backend for MemoryBackend {
    fn put(&self, key: &str, value: &Value) -> Result<()> {
        if let Ok(mut m) = self.map.lock() {
            m.insert(key.to_string(), value.clone());
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Value>> {
        Ok(self.map.lock().ok().and_then(|m| m.get(key).cloned()))
    }

    fn scan(&self, prefix: &str) -> Result<Vec<(String, Value)>> {
        Ok(self
            .map
            .lock()
            .map(|m| {
                m.range(prefix.to_string()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn remove(&self, key: &str) -> Result<()> {
        if let Ok(mut m) = self.map.lock() {
            m.remove(key);
        }
        Ok(())
    }
}
