//! The audit trail: for every run, an append-only record of what was sent and received —
//! prompts, responses, which agent answered, retries, fallbacks, the memory used, refused
//! calls — with secrets masked before anything is written.
//!
//! Two files per run in `<data dir>/audit/`: `<run id>.jsonl` (one [`AuditEntry`] per line,
//! for machines: `troupe runs audit ID --json`) and `<run id>.log` (the same entries as
//! text, for people: `less` or `tail -f` it while the run goes). Both are only ever
//! appended to; a resumed run continues its files. They are plain files outside the store,
//! so they can be read while another process holds the store.
//!
//! A run's two files stay open from its first entry to its `RunFinished` entry (one handle
//! pair per running run, not an open per entry); every entry is still one `write` with
//! `O_APPEND`. A torn last line left by a crash is cut off when the trail is opened again.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use troupe_adapters::config::Role;
use troupe_observability::redact::Redactor;
use troupe_workflows::engine::{FinishReason, StepPos};

use crate::model::{Budget, RunState, Tokens};

/// The audit folder inside a data folder.
pub fn audit_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("audit")
}

/// One thing that happened in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// The run.
    pub run_id: String,
    /// What.
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// What an [`AuditEntry`] records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum AuditEvent {
    /// The run started, or was resumed.
    RunStarted {
        /// The task.
        task: String,
        /// The workflow's name.
        workflow: String,
        /// The steps of one iteration, as `agent:role`.
        steps: Vec<String>,
        /// The project folder.
        project: PathBuf,
        /// Only local agents.
        offline: bool,
        /// How many times it was resumed before (0 for a new run).
        resumed: u32,
        /// Its budget.
        #[serde(default)]
        budget: Budget,
    },
    /// A prompt went to an agent.
    PromptSent {
        /// Where in the run.
        pos: StepPos,
        /// The step's role.
        role: Role,
        /// The agent called.
        agent: String,
        /// The memory nodes put into the prompt.
        context_nodes: Vec<String>,
        /// The most tokens asked of the answer.
        max_tokens: u32,
        /// The prompt, as sent (secrets masked).
        prompt: String,
    },
    /// A retry, fallback, breaker change, rate-limit wait or local server start.
    Agent {
        /// Where in the run.
        pos: StepPos,
        /// What happened.
        message: String,
    },
    /// An answer came back.
    ResponseReceived {
        /// Where in the run.
        pos: StepPos,
        /// The agent that answered.
        agent: String,
        /// Its model.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        /// Tokens used.
        tokens: Tokens,
        /// Whether the counts are estimates.
        tokens_estimated: bool,
        /// Cost of the call.
        cost: f64,
        /// Milliseconds.
        latency_ms: u64,
        /// Retries of transient failures.
        retries: u32,
        /// Agents that failed before this one answered.
        fallback_from: Vec<String>,
        /// The answer (secrets masked).
        response: String,
    },
    /// The call failed (after retries and fallbacks) or was cancelled.
    CallFailed {
        /// Where in the run.
        pos: StepPos,
        /// The agent called.
        agent: String,
        /// Agents that failed.
        fallback_from: Vec<String>,
        /// Why.
        error: String,
    },
    /// A call was not made because it could have crossed a budget.
    CallRefused {
        /// Where in the run.
        pos: StepPos,
        /// The agent that would have been called.
        agent: String,
        /// Which budget, and the numbers.
        reason: String,
    },
    /// A step was skipped by its condition.
    StepSkipped {
        /// Where in the run.
        pos: StepPos,
        /// Why.
        reason: String,
    },
    /// A step's edits were applied to the workspace (refusals and failures named).
    EditsApplied {
        /// Where in the run.
        pos: StepPos,
        /// What changed, in words.
        summary: String,
        /// Edits refused by patch safety (never applied).
        refused: Vec<String>,
        /// Edits that did not apply.
        failed: Vec<String>,
    },
    /// The validators ran on the change.
    Validated {
        /// The step whose change was checked.
        after: StepPos,
        /// The workspace commit checked.
        commit: String,
        /// Whether every command passed.
        passed: bool,
        /// One line per command.
        summary: String,
        /// The failures as shown to the agents.
        evidence: String,
    },
    /// The run's change was applied to the project.
    ChangeApplied {
        /// The files written.
        files: Vec<PathBuf>,
        /// The commit made on the user's branch, if asked for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit: Option<String>,
    },
    /// An applied change was undone.
    ChangeReverted {
        /// The files restored.
        files: Vec<PathBuf>,
    },
    /// The run ended.
    RunFinished {
        /// How.
        state: RunState,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<FinishReason>,
        /// Iterations run.
        iterations: u32,
        /// Tokens used.
        tokens: Tokens,
        /// Cost.
        cost: f64,
        /// The error, when it did not complete.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// Writes audit entries; a no-op without a folder (in-memory runtimes in tests). Clones
/// share the open files.
#[derive(Debug, Clone, Default)]
pub struct AuditLog {
    dir: Option<PathBuf>,
    redactor: Redactor,
    /// The open files of each running run, by run id.
    open: Arc<Mutex<HashMap<String, Arc<Mutex<RunFiles>>>>>,
}

/// One run's two files, open for appending.
#[derive(Debug)]
struct RunFiles {
    jsonl: File,
    log: File,
}

/// More runs than this with open trails (runs that ended without a `RunFinished` entry,
/// say) and every idle handle is closed; the next entry of a run reopens its files.
const MAX_OPEN_RUNS: usize = 256;

/// Why an audit trail could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// There is no trail for the run.
    #[error("no audit trail for run {0} (runs started before the audit trail existed have none)")]
    Missing(String),
    /// Reading failed.
    #[error("cannot read the audit trail {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not an entry.
    #[error("{path}:{line}: not an audit entry: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Why.
        message: String,
    },
}

impl AuditLog {
    /// Audit into `dir` (created on first write), masking with `redactor`.
    pub fn new(dir: Option<PathBuf>, redactor: Redactor) -> AuditLog {
        AuditLog { dir, redactor, open: Arc::default() }
    }

    /// Where the trail lives, if anywhere.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The masker applied to every entry.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Append one entry to the run's trail. Failure to write is logged, not fatal: the
    /// run's records in the store stay the authority.
    pub fn append(&self, run_id: &str, event: AuditEvent) {
        let Some(dir) = &self.dir else { return };
        let entry = AuditEntry { at: Utc::now(), run_id: run_id.to_string(), event };
        if let Err(e) = self.write(dir, &entry) {
            tracing::warn!(run = %run_id, dir = %dir.display(), error = %e, "cannot append to the audit trail");
        }
    }

    fn write(&self, dir: &Path, entry: &AuditEntry) -> std::io::Result<()> {
        let mut value = serde_json::to_value(entry).map_err(std::io::Error::other)?;
        self.redactor.redact_json(&mut value);
        let mut line = serde_json::to_string(&value).map_err(std::io::Error::other)?;
        line.push('\n');
        let rendered = render(entry);
        let text = self.redactor.redact(&rendered);
        let files = self.files(dir, &entry.run_id)?;
        let result = {
            let mut f = files.lock().unwrap_or_else(PoisonError::into_inner);
            // One write per entry and file: with O_APPEND, entries of concurrent writers
            // never interleave.
            f.jsonl.write_all(line.as_bytes()).and_then(|()| f.log.write_all(text.as_bytes()))
        };
        if result.is_err() || matches!(entry.event, AuditEvent::RunFinished { .. }) {
            // The run is over (or its files are broken): close them; a resumed run reopens.
            self.lock_open().remove(&entry.run_id);
        }
        result
    }

    fn lock_open(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mutex<RunFiles>>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The run's open files, opened (and a torn last line cut off) on its first entry.
    fn files(&self, dir: &Path, run_id: &str) -> std::io::Result<Arc<Mutex<RunFiles>>> {
        if let Some(f) = self.lock_open().get(run_id) {
            return Ok(f.clone());
        }
        std::fs::create_dir_all(dir)?;
        let jsonl = dir.join(format!("{run_id}.jsonl"));
        cut_torn_line(&jsonl)?;
        let files = Arc::new(Mutex::new(RunFiles {
            jsonl: open_append(&jsonl)?,
            log: open_append(&dir.join(format!("{run_id}.log")))?,
        }));
        let mut open = self.lock_open();
        if open.len() >= MAX_OPEN_RUNS {
            open.retain(|_, f| Arc::strong_count(f) > 1);
        }
        // Another thread may have opened them meanwhile: use one pair.
        Ok(open.entry(run_id.to_string()).or_insert(files).clone())
    }

    /// How many runs have their trail open (for tests).
    #[cfg(test)]
    fn open_runs(&self) -> usize {
        self.lock_open().len()
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

/// A crash in the middle of a write can leave a last line without its `\n`: cut it off
/// before appending, so the next entry starts on a line of its own.
fn cut_torn_line(path: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    // Look back in blocks for the last newline.
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let start = end.saturating_sub(buf.len() as u64);
        let n = usize::try_from(end - start).unwrap_or(buf.len());
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if end == len && buf[n - 1] == b'\n' {
            return Ok(());
        }
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            tracing::warn!(file = %path.display(), dropped = len - keep, "cut a torn last line off the audit trail");
            return f.set_len(keep);
        }
        if start == 0 {
            return f.set_len(0);
        }
        end = start;
    }
}

#[cfg(test)]
fn append_to(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    open_append(path)?.write_all(bytes)
}

/// The run's trail from `dir`, oldest first. `run_id` must be the full id.
pub fn read(dir: &Path, run_id: &str) -> Result<Vec<AuditEntry>, AuditError> {
    let path = dir.join(format!("{run_id}.jsonl"));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AuditError::Missing(run_id.to_string()));
        }
        Err(source) => return Err(AuditError::Io { path, source }),
    };
    let mut entries = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(e) => entries.push(e),
            // A crash mid-write can leave a torn last line; earlier lines are whole.
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => {
                return Err(AuditError::Corrupt { path, line: i + 1, message: e.to_string() });
            }
        }
    }
    Ok(entries)
}

fn pos_label(pos: StepPos) -> String {
    format!("iteration {}, step {}", pos.iteration, pos.step + 1)
}

fn quoted(out: &mut String, text: &str) {
    if text.is_empty() {
        out.push_str("  | (empty)\n");
    }
    for line in text.lines() {
        let _ = writeln!(out, "  | {line}");
    }
}

/// An entry as text, the way the `.log` file and `troupe runs audit` show it.
pub fn render(entry: &AuditEntry) -> String {
    let mut out = String::new();
    let at = entry.at.format("%Y-%m-%d %H:%M:%S%.3f UTC");
    match &entry.event {
        AuditEvent::RunStarted { task, workflow, steps, project, offline, resumed, budget } => {
            let what = if *resumed > 0 { "RUN RESUMED" } else { "RUN STARTED" };
            let _ = writeln!(out, "{at}  {what} {}", entry.run_id);
            let _ = writeln!(out, "  workflow {workflow}: {}", steps.join(" → "));
            let _ = writeln!(
                out,
                "  project {}{}",
                project.display(),
                if *offline { " (offline)" } else { "" }
            );
            if budget.is_set() {
                let mut parts = Vec::new();
                if let Some(t) = budget.tokens {
                    parts.push(format!("{t} tokens"));
                }
                if let Some(c) = budget.cost {
                    parts.push(format!("cost {c}"));
                }
                let _ = writeln!(out, "  budget {}", parts.join(", "));
            }
            let _ = writeln!(out, "  task:");
            quoted(&mut out, task);
        }
        AuditEvent::PromptSent { pos, role, agent, context_nodes, max_tokens, prompt } => {
            let _ = writeln!(
                out,
                "{at}  PROMPT → {agent} ({role}, {}, at most {max_tokens} tokens back)",
                pos_label(*pos)
            );
            if !context_nodes.is_empty() {
                let _ = writeln!(out, "  memory used: {}", context_nodes.join(", "));
            }
            quoted(&mut out, prompt);
        }
        AuditEvent::Agent { pos, message } => {
            let _ = writeln!(out, "{at}  AGENT ({}): {message}", pos_label(*pos));
        }
        AuditEvent::EditsApplied { pos, summary, refused, failed } => {
            let _ = writeln!(out, "{at}  EDITS ({}): {summary}", pos_label(*pos));
            for r in refused {
                let _ = writeln!(out, "  refused: {r}");
            }
            for f in failed {
                let _ = writeln!(out, "  did not apply: {f}");
            }
        }
        AuditEvent::Validated { after, commit, passed, summary, evidence } => {
            let verdict = if *passed { "passed" } else { "FAILED" };
            let short: String = commit.chars().take(10).collect();
            let _ = writeln!(
                out,
                "{at}  VALIDATORS {verdict} on {short} (after {}): {summary}",
                pos_label(*after)
            );
            if !*passed {
                quoted(&mut out, evidence);
            }
        }
        AuditEvent::ChangeApplied { files, commit } => {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            let _ = writeln!(out, "{at}  APPLIED to the project: {}", names.join(", "));
            if let Some(c) = commit {
                let _ = writeln!(out, "  committed as {c}");
            }
        }
        AuditEvent::ChangeReverted { files } => {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            let _ = writeln!(out, "{at}  REVERTED in the project: {}", names.join(", "));
        }
        AuditEvent::ResponseReceived {
            pos,
            agent,
            model,
            tokens,
            tokens_estimated,
            cost,
            latency_ms,
            retries,
            fallback_from,
            response,
        } => {
            let mut facts = Vec::new();
            if let Some(m) = model {
                facts.push(format!("model {m}"));
            }
            facts.push(format!(
                "{} prompt + {} completion tokens{}",
                tokens.prompt,
                tokens.completion,
                if *tokens_estimated { " (estimated)" } else { "" }
            ));
            if *cost > 0.0 {
                facts.push(format!("cost {cost:.6}"));
            }
            facts.push(format!("{:.1} s", *latency_ms as f64 / 1000.0));
            if *retries > 0 {
                facts.push(format!("{retries} retr{}", if *retries == 1 { "y" } else { "ies" }));
            }
            if !fallback_from.is_empty() {
                facts.push(format!("after {} failed", fallback_from.join(", ")));
            }
            let _ = writeln!(
                out,
                "{at}  RESPONSE ← {agent} ({}; {})",
                pos_label(*pos),
                facts.join("; ")
            );
            quoted(&mut out, response);
        }
        AuditEvent::CallFailed { pos, agent, fallback_from, error } => {
            let tried = if fallback_from.is_empty() {
                String::new()
            } else {
                format!(" (also failed: {})", fallback_from.join(", "))
            };
            let _ =
                writeln!(out, "{at}  CALL FAILED {agent} ({}){tried}: {error}", pos_label(*pos));
        }
        AuditEvent::CallRefused { pos, agent, reason } => {
            let _ = writeln!(out, "{at}  CALL NOT MADE {agent} ({}): {reason}", pos_label(*pos));
        }
        AuditEvent::StepSkipped { pos, reason } => {
            let _ = writeln!(out, "{at}  STEP SKIPPED ({}): {reason}", pos_label(*pos));
        }
        AuditEvent::RunFinished { state, reason, iterations, tokens, cost, error } => {
            let _ = writeln!(
                out,
                "{at}  RUN FINISHED {state}{} after {iterations} iteration(s); {} tokens ({} in, {} out){}",
                reason.map(|r| format!(" ({r})")).unwrap_or_default(),
                tokens.total(),
                tokens.prompt,
                tokens.completion,
                if *cost > 0.0 { format!("; cost {cost:.6}") } else { String::new() }
            );
            if let Some(e) = error {
                let _ = writeln!(out, "  error: {e}");
            }
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos() -> StepPos {
        StepPos { iteration: 1, step: 0 }
    }

    #[test]
    fn entries_append_masked_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(Some(dir.path().to_path_buf()), Redactor::new(["sk-live-abcdef"]));
        log.append(
            "r1",
            AuditEvent::PromptSent {
                pos: pos(),
                role: Role::Implement,
                agent: "a".into(),
                context_nodes: vec!["task:1".into()],
                max_tokens: 100,
                prompt: "use key sk-live-abcdef please".into(),
            },
        );
        log.append("r1", AuditEvent::Agent { pos: pos(), message: "a: retry 1 in 5 ms".into() });
        let entries = read(dir.path(), "r1").unwrap();
        assert_eq!(entries.len(), 2);
        match &entries[0].event {
            AuditEvent::PromptSent { prompt, .. } => {
                assert_eq!(prompt, "use key [REDACTED] please")
            }
            other => panic!("{other:?}"),
        }
        let text = std::fs::read_to_string(dir.path().join("r1.log")).unwrap();
        let raw = std::fs::read_to_string(dir.path().join("r1.jsonl")).unwrap();
        assert!(!text.contains("sk-live-abcdef") && !raw.contains("sk-live-abcdef"));
        assert!(text.contains("PROMPT → a (implement, iteration 1, step 1"), "{text}");
        assert!(text.contains("memory used: task:1"));
        assert!(text.contains("  | use key [REDACTED] please"));
        assert!(text.find("PROMPT").unwrap() < text.find("retry 1").unwrap());
    }

    #[test]
    fn missing_trail_and_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read(dir.path(), "nope"), Err(AuditError::Missing(_))));
        let log = AuditLog::new(Some(dir.path().to_path_buf()), Redactor::default());
        log.append("r2", AuditEvent::StepSkipped { pos: pos(), reason: "first iteration".into() });
        // A crash in the middle of the next write.
        append_to(&dir.path().join("r2.jsonl"), b"{\"at\":\"2026-").unwrap();
        assert_eq!(read(dir.path(), "r2").unwrap().len(), 1);
        // A broken line in the middle is reported, not skipped.
        append_to(&dir.path().join("r2.jsonl"), b"\n").unwrap();
        log.append("r2", AuditEvent::StepSkipped { pos: pos(), reason: "again".into() });
        assert!(matches!(read(dir.path(), "r2"), Err(AuditError::Corrupt { line: 2, .. })));
    }

    #[test]
    fn a_run_keeps_its_files_open_until_it_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(Some(dir.path().to_path_buf()), Redactor::default());
        let other = log.clone();
        log.append("r4", AuditEvent::StepSkipped { pos: pos(), reason: "one".into() });
        other.append("r5", AuditEvent::StepSkipped { pos: pos(), reason: "two".into() });
        assert_eq!(log.open_runs(), 2, "clones share the open files");
        // The files are appended to through the open handles, not replaced.
        std::fs::remove_file(dir.path().join("r4.log")).unwrap();
        log.append("r4", AuditEvent::StepSkipped { pos: pos(), reason: "three".into() });
        assert!(!dir.path().join("r4.log").exists(), "written through the handle opened first");
        let finished = AuditEvent::RunFinished {
            state: RunState::Completed,
            reason: Some(FinishReason::ReviewPassed),
            iterations: 1,
            tokens: Tokens::default(),
            cost: 0.0,
            error: None,
        };
        log.append("r4", finished);
        assert_eq!(log.open_runs(), 1, "a finished run's files are closed");
        assert_eq!(read(dir.path(), "r4").unwrap().len(), 3);
        // A resumed run opens them again and goes on appending.
        log.append("r4", AuditEvent::StepSkipped { pos: pos(), reason: "resumed".into() });
        assert_eq!(read(dir.path(), "r4").unwrap().len(), 4);
        let text = render(&read(dir.path(), "r4").unwrap()[2]);
        assert!(text.contains("RUN FINISHED completed (the review passed)"), "{text}");
    }

    #[test]
    fn a_torn_last_line_from_a_crash_is_cut_off_when_the_trail_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(Some(dir.path().to_path_buf()), Redactor::default());
        log.append("r6", AuditEvent::StepSkipped { pos: pos(), reason: "before".into() });
        // The process dies in the middle of its next write.
        append_to(&dir.path().join("r6.jsonl"), b"{\"at\":\"2026-").unwrap();
        drop(log);
        // The next process (a resume) appends after the last whole line.
        let log = AuditLog::new(Some(dir.path().to_path_buf()), Redactor::default());
        log.append("r6", AuditEvent::StepSkipped { pos: pos(), reason: "after".into() });
        let entries = read(dir.path(), "r6").unwrap();
        assert_eq!(entries.len(), 2);
        assert!(
            matches!(&entries[1].event, AuditEvent::StepSkipped { reason, .. } if reason == "after")
        );
        // A trail that is only a torn line is emptied.
        std::fs::write(dir.path().join("r7.jsonl"), b"{\"at").unwrap();
        log.append("r7", AuditEvent::StepSkipped { pos: pos(), reason: "x".into() });
        assert_eq!(read(dir.path(), "r7").unwrap().len(), 1);
    }

    #[test]
    fn no_folder_writes_nothing() {
        let log = AuditLog::default();
        log.append("r3", AuditEvent::Agent { pos: pos(), message: "x".into() });
        assert!(log.dir().is_none());
    }
}
