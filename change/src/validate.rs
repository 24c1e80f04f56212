//! Validators: the project's tests and linters, detected or configured, run as subprocesses.
//!
//! Their results are the review's evidence: measured with a 1.5B local reviewer, judging code
//! by reading it approved a buggy function 3 times out of 3; with the failing test output in
//! the prompt it judged 12 of 12 cases correctly. [`Report::evidence`] is that text.
//!
//! Each command is a string split with shell quoting rules (`shlex`) and run **without a
//! shell**, in the workspace, in its own process group, with stdin closed, a timeout and a
//! cancellation token that kill the whole group (a test runner's children too), and its
//! combined stdout and stderr kept as a bounded tail (a command printing megabytes costs no
//! more memory than the tail). Environment: inherited, plus `CI=1` (test runners such as
//! jest then run once instead of watching, and tools stop prompting), `NO_COLOR=1` and
//! `CARGO_TERM_COLOR=never` (colour codes would clutter the evidence) and
//! `PYTHONDONTWRITEBYTECODE=1` (no `__pycache__` folders in the change).
//!
//! One command is built in: `troupe-expect NAME…` passes when every NAME is in some file of
//! the workspace and fails naming the missing ones ([`expect_command`]; a plan's task expects
//! the code names it gives).

mod detect;
mod expect;
mod failures;
pub mod names;
mod process;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use detect::{Detected, detect};
pub use expect::{COMMAND as EXPECT, command as expect_command, unmet as unmet_expectations};
pub use failures::{assertion_lines, failing_tests};

/// How validators run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Each command is killed (with its process group) after this long.
    pub timeout: Duration,
    /// The output kept per command: its last this many characters.
    pub max_output_chars: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(600), max_output_chars: 20_000 }
    }
}

/// How one command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum Outcome {
    /// Exit status 0.
    Passed,
    /// A non-zero exit status (`None`: killed by a signal).
    Failed {
        /// The exit code.
        code: Option<i32>,
    },
    /// Still running at the timeout; its process group was killed.
    TimedOut,
    /// The command could not start (a missing program, a command that cannot be split).
    NotFound {
        /// What was wrong and what to do.
        message: String,
    },
    /// The run was cancelled while it ran; its process group was killed.
    Cancelled,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Passed => f.write_str("passed"),
            Self::Failed { code: Some(code) } => write!(f, "failed (exit code {code})"),
            Self::Failed { code: None } => f.write_str("failed (killed by a signal)"),
            Self::TimedOut => f.write_str("timed out"),
            Self::NotFound { message } => write!(f, "could not run: {message}"),
            Self::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// One command's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommandResult {
    /// The command as configured.
    pub command: String,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// The tail of its combined stdout and stderr, trimmed.
    pub output: String,
    /// The failing tests' names, when the output is a test runner's we recognise (pytest,
    /// unittest, cargo test, go test).
    pub failing: Vec<String>,
}

impl CommandResult {
    /// Whether the command passed.
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Passed
    }
}

impl fmt::Display for CommandResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} in {}", self.command, self.outcome, seconds(self.duration_ms))?;
        if !self.failing.is_empty() {
            write!(f, "; failing: {}", self.failing.join(", "))?;
        }
        Ok(())
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// The results of one run of the validators.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    /// One result per command, in order (commands after a cancellation are not run).
    pub results: Vec<CommandResult>,
}

impl Report {
    /// Whether every command passed (a report without commands passes).
    pub fn passed(&self) -> bool {
        self.results.iter().all(CommandResult::passed)
    }

    /// One line for people: "2/2 passed (cargo test 3.1 s, cargo clippy 5.0 s)".
    pub fn summary(&self) -> String {
        if self.results.is_empty() {
            return "no validators ran".to_string();
        }
        let passed = self.results.iter().filter(|r| r.passed()).count();
        let parts: Vec<String> = self
            .results
            .iter()
            .map(|r| {
                let time = seconds(r.duration_ms);
                match &r.outcome {
                    Outcome::Passed => format!("{} {time}", r.command),
                    Outcome::Failed { .. } => format!("{} failed {time}", r.command),
                    Outcome::TimedOut => format!("{} timed out {time}", r.command),
                    Outcome::NotFound { .. } => format!("{} not found", r.command),
                    Outcome::Cancelled => format!("{} cancelled", r.command),
                }
            })
            .collect();
        format!("{passed}/{} passed ({})", self.results.len(), parts.join(", "))
    }

    /// The evidence for review and refine prompts, at most about `max_chars` characters:
    /// which command failed and how, the failing tests' names, the assertion lines with their
    /// values first, then the end of the output.
    pub fn evidence(&self, max_chars: usize) -> String {
        if self.results.is_empty() {
            return "No validators ran: the project has no tests troupe could find.".to_string();
        }
        if self.passed() {
            return format!("All validators passed: {}.", self.summary());
        }
        let failed: Vec<&CommandResult> = self.results.iter().filter(|r| !r.passed()).collect();
        let mut out = format!("Validators: {}.\n", self.summary());
        for r in &self.results {
            if r.passed() {
                out.push_str(&format!("`{}` passed.\n", r.command));
            }
        }
        let share = max_chars.saturating_sub(out.len()) / failed.len().max(1);
        for r in failed {
            let mut part = format!("\n`{}` {}.\n", r.command, r.outcome);
            if !r.failing.is_empty() {
                part.push_str(&format!("Failing tests: {}.\n", r.failing.join(", ")));
            }
            let assertions = assertion_lines(&r.output);
            if !assertions.is_empty() {
                part.push_str("Assertions:\n");
                for line in &assertions {
                    part.push_str(line);
                    part.push('\n');
                }
            }
            if !r.output.is_empty() {
                let room = share.saturating_sub(part.len() + 30);
                if room > 0 {
                    part.push_str("Output (end):\n");
                    part.push_str(&tail_chars(&r.output, room));
                    part.push('\n');
                }
            }
            out.push_str(&head_chars(&part, share.max(200)));
        }
        head_chars(&out, max_chars.max(200))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

/// The last `max` characters of `text`, starting at a line when one starts close by.
fn tail_chars(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let start = text.char_indices().nth(count - max).map_or(0, |(i, _)| i);
    let tail = &text[start..];
    match tail.find('\n') {
        Some(nl) if nl < 200 && nl + 1 < tail.len() => tail[nl + 1..].to_string(),
        _ => tail.to_string(),
    }
}

/// The first `max` characters of `text`.
fn head_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Runs `commands` one after another in `dir` and reports each. A command that fails does not
/// stop the others (the evidence wants every failure); a cancellation stops the run.
pub async fn run(
    dir: &Path,
    commands: &[String],
    opts: &Options,
    cancel: &CancellationToken,
) -> Report {
    let mut report = Report::default();
    for command in commands {
        if cancel.is_cancelled() {
            break;
        }
        let result = process::run_one(dir, command, opts, cancel).await;
        let stop = result.outcome == Outcome::Cancelled;
        tracing::info!(
            command = %result.command,
            outcome = %result.outcome,
            duration_ms = result.duration_ms,
            "validator finished"
        );
        report.results.push(result);
        if stop {
            break;
        }
    }
    report
}
