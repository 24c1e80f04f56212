//! A run's events as they arrive, and its summary at the end: what `troupe run`, the shell
//! and `troupe run` through `troupe serve` print.

use std::io::{IsTerminal, Write};

use anyhow::Result;
use troupe_adapters::config::Role;
use troupe_runtime::{RunEvent, RunRecord, RunState, StepState};
use troupe_workflows::verdict::stream::ReviewStream;

use super::{secs, short_id};

/// Prints a run's events as they arrive, and its summary at the end: the same output
/// whether the events come from this process or from `troupe serve` over SSE.
pub struct EventPrinter {
    json: bool,
    color: bool,
    in_chunk: bool,
    /// The review being answered: its verdict and findings are shown, not its raw JSON.
    review: Option<ReviewStream>,
    out: Box<dyn Write + Send>,
}

impl std::fmt::Debug for EventPrinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPrinter").field("json", &self.json).finish_non_exhaustive()
    }
}

impl EventPrinter {
    /// A printer for standard output; `json` prints each event as a JSON line instead.
    pub fn new(json: bool) -> EventPrinter {
        let color = std::io::stdout().is_terminal() && !json;
        EventPrinter::to(Box::new(std::io::stdout()), json, color)
    }

    /// A printer writing to `out`, with colour or without.
    pub fn to(out: Box<dyn Write + Send>, json: bool, color: bool) -> EventPrinter {
        EventPrinter { json, color, in_chunk: false, review: None, out }
    }

    fn dim(&self, s: &str) -> String {
        if self.color { format!("\x1b[2m{s}\x1b[0m") } else { s.to_string() }
    }

    fn bold(&self, s: &str) -> String {
        if self.color { format!("\x1b[1m{s}\x1b[0m") } else { s.to_string() }
    }

    fn review_lines(&mut self, lines: Vec<String>) -> std::io::Result<()> {
        for l in lines {
            writeln!(self.out, "  {l}")?;
        }
        Ok(())
    }

    fn end_chunk(&mut self) -> std::io::Result<()> {
        if self.in_chunk {
            self.in_chunk = false;
            writeln!(self.out)?;
        }
        Ok(())
    }

    /// Print one event; true when it is the run's last.
    pub fn event(&mut self, event: &RunEvent) -> Result<bool> {
        if self.json {
            writeln!(self.out, "{}", serde_json::to_string(event)?)?;
            return Ok(event.is_final());
        }
        match event {
            RunEvent::RunStarted {
                run_id,
                workflow,
                steps,
                resumed,
                notes,
                workspace,
                validators,
            } => {
                let verb = if *resumed { "resumed" } else { "started" };
                for n in notes.iter().filter(|n| n.starts_with("offline")) {
                    writeln!(self.out, "{}", self.dim(&format!("· {n}")))?;
                }
                writeln!(
                    self.out,
                    "{}",
                    self.bold(&format!(
                        "run {} {verb}: {workflow} ({})",
                        short_id(run_id),
                        steps.join(" → ")
                    ))
                )?;
                if let Some(w) = workspace {
                    writeln!(self.out, "{}", self.dim(&format!("  workspace: {w}")))?;
                }
                if let Some(v) = validators {
                    writeln!(self.out, "{}", self.dim(&format!("  validators: {v}")))?;
                }
            }
            RunEvent::Changed { change, .. } => {
                self.end_chunk()?;
                let files: Vec<String> =
                    change.files.iter().map(|f| f.path.display().to_string()).collect();
                let mut line = format!("  ✎ {}", change.summary());
                if !files.is_empty() {
                    line.push_str(&format!(": {}", files.join(", ")));
                }
                writeln!(self.out, "{line}")?;
                for r in change.refused.iter().chain(&change.failed) {
                    writeln!(self.out, "{}", self.dim(&format!("    ⚠ {r}")))?;
                }
            }
            RunEvent::ValidateStarted { commands, .. } => {
                self.end_chunk()?;
                writeln!(
                    self.out,
                    "\n{}",
                    self.bold(&format!("▶ validate · {}", commands.join(", ")))
                )?;
            }
            RunEvent::ValidateFinished { passed, results, .. } => {
                for r in results {
                    let mark = if r.passed() { "✔" } else { "✘" };
                    let mut line =
                        format!("{mark} {} · {} · {}", r.command, r.outcome, secs(r.duration_ms));
                    if !r.failing.is_empty() {
                        line.push_str(&format!(" · failing: {}", r.failing.join(", ")));
                    }
                    writeln!(self.out, "{}", self.dim(&line))?;
                    if !r.passed() {
                        let tail: Vec<&str> = r.output.lines().rev().take(8).collect();
                        for l in tail.into_iter().rev() {
                            writeln!(self.out, "{}", self.dim(&format!("    {l}")))?;
                        }
                    }
                }
                let verdict = if *passed { "checks pass" } else { "checks fail" };
                writeln!(self.out, "{}", self.dim(&format!("  {verdict}")))?;
            }
            RunEvent::Applied { files, .. } => {
                let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                writeln!(self.out, "✔ applied to the project: {}", names.join(", "))?;
            }
            RunEvent::Planned { steps, notes, .. } => {
                writeln!(self.out, "{}", self.bold(&format!("planned: {}", steps.join(" → "))))?;
                for n in notes {
                    writeln!(self.out, "{}", self.dim(&format!("  · {n}")))?;
                }
            }
            RunEvent::StepStarted { pos, role, agent, .. } => {
                self.review = (*role == Role::Review).then(ReviewStream::new);
                writeln!(
                    self.out,
                    "\n{}",
                    self.bold(&format!("▶ [{}.{}] {role} · {agent}", pos.iteration, pos.step + 1))
                )?;
            }
            RunEvent::Chunk { text, .. } => {
                if let Some(r) = self.review.as_mut() {
                    let lines = r.push(text);
                    self.review_lines(lines)?;
                    return Ok(false);
                }
                write!(self.out, "{text}")?;
                self.in_chunk = !text.ends_with('\n');
                self.out.flush()?;
            }
            RunEvent::Agent { message, .. } => {
                self.end_chunk()?;
                writeln!(self.out, "{}", self.dim(&format!("  ↻ {message}")))?;
            }
            RunEvent::StepFinished {
                pos,
                state,
                answered_by,
                model,
                tokens,
                latency_ms,
                retries,
                fallback_from,
                verdict,
                note,
                ..
            } => {
                if let Some(mut r) = self.review.take() {
                    self.review_lines(r.finish())?;
                }
                self.end_chunk()?;
                let mark = match state {
                    StepState::Completed => "✔",
                    StepState::Skipped => "–",
                    StepState::Cancelled => "■",
                    _ => "✘",
                };
                let mut line = format!("{mark} [{}.{}]", pos.iteration, pos.step + 1);
                if let Some(a) = answered_by {
                    line.push_str(&format!(" {a}"));
                }
                if let Some(m) = model {
                    line.push_str(&format!(" ({m})"));
                }
                if *state == StepState::Completed {
                    line.push_str(&format!(
                        " · {} tokens ({} in, {} out) · {} · {retries} retries",
                        tokens.total(),
                        tokens.prompt,
                        tokens.completion,
                        secs(*latency_ms)
                    ));
                }
                if !fallback_from.is_empty() {
                    line.push_str(&format!(" · fallback after {}", fallback_from.join(", ")));
                }
                if let Some(v) = verdict {
                    line.push_str(&format!(" · review: {v}"));
                }
                if let Some(n) = note {
                    line.push_str(&format!(" · {n}"));
                }
                writeln!(self.out, "{}", self.dim(&line))?;
            }
            RunEvent::RunFinished { .. } => {}
        }
        Ok(event.is_final())
    }

    /// Print the final record: as JSON, or as a summary.
    pub fn finish(&mut self, r: &RunRecord) -> Result<()> {
        if self.json {
            writeln!(self.out, "{}", serde_json::to_string(r)?)?;
            return Ok(());
        }
        writeln!(self.out)?;
        let head = match r.state {
            RunState::Completed => "✔ completed",
            RunState::Failed => "✘ failed",
            RunState::Cancelled => "■ cancelled",
            RunState::BudgetExceeded => "⊘ budget exceeded",
            _ => "… unfinished",
        };
        let duration = r.duration_secs().map(|d| format!("{d:.1}s")).unwrap_or_default();
        writeln!(
            self.out,
            "{head}: run {} · {} iteration(s) · {} tokens{} · {duration}",
            r.id,
            r.iterations,
            r.tokens.total(),
            if r.cost > 0.0 { format!(" · cost {:.4}", r.cost) } else { String::new() }
        )?;
        if let Some(e) = &r.error {
            writeln!(self.out, "  {e}")?;
        }
        if let Some(ws) = &r.workspace {
            if r.files.is_empty() {
                writeln!(self.out, "{}", self.dim("  no file was changed"))?;
            } else {
                let added: u64 = r.files.iter().map(|f| f.added).sum();
                let removed: u64 = r.files.iter().map(|f| f.removed).sum();
                writeln!(self.out, "  {} file(s) changed (+{added} -{removed}):", r.files.len())?;
                for f in &r.files {
                    writeln!(self.out, "    {} (+{} -{})", f.path.display(), f.added, f.removed)?;
                }
                match r.verified {
                    Some(true) => writeln!(self.out, "  verified: the project's checks pass")?,
                    Some(false) if r.validators.is_empty() => {
                        writeln!(
                            self.out,
                            "{}",
                            self.dim("  unverified: no tests or checks ran on this change")
                        )?;
                    }
                    _ => {}
                }
                if ws.applied.is_some() {
                    writeln!(self.out, "  applied to {}", ws.project.display())?;
                } else if ws.kind == troupe_change::workspace::WorkspaceKind::InPlace {
                    writeln!(
                        self.out,
                        "{}",
                        self.dim(&format!(
                            "  made in place in {} · undo it: troupe runs revert {}",
                            ws.project.display(),
                            short_id(&r.id)
                        ))
                    )?;
                } else {
                    writeln!(
                self.out,
                        "{}",
                        self.dim(&format!(
                            "  see it: troupe runs diff {id} · apply it: troupe runs apply {id} · drop it: troupe runs discard {id}",
                            id = short_id(&r.id)
                        ))
                    )?;
                }
            }
        }
        if r.state == RunState::BudgetExceeded {
            writeln!(
                self.out,
                "{}",
                self.dim(&format!(
                    "  go on with a larger budget: `troupe runs resume {} --budget-tokens N` (or --budget-cost; project budgets are settings.project_*_budget)",
                    r.id
                ))
            )?;
        } else if r.state != RunState::Completed {
            writeln!(
                self.out,
                "{}",
                self.dim(&format!("  resume with `troupe runs resume {}`", r.id))
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use serde_json::json;

    use super::*;

    /// What the printer wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn event(v: serde_json::Value) -> RunEvent {
        serde_json::from_value(v).unwrap()
    }

    /// A two-step run that reviews and completes, then its summary: what `troupe run`
    /// prints (without colour).
    #[test]
    fn a_run_as_people_read_it() {
        let out = Captured::default();
        let mut p = EventPrinter::to(Box::new(out.clone()), false, false);
        let pos = |step: u32| json!({ "iteration": 1, "step": step });
        let tokens = json!({ "prompt": 120, "completion": 30 });
        let events = [
            json!({ "type": "run_started", "run_id": "0192f3a4-5b6c-7d8e-9f00-112233445566",
                    "workflow": "scripted", "steps": ["coder:implement", "reviewer:review"],
                    "resumed": false, "notes": ["offline: using offline-default"] }),
            json!({ "type": "step_started", "run_id": "r", "pos": pos(0), "role": "implement", "agent": "coder" }),
            json!({ "type": "chunk", "run_id": "r", "pos": pos(0), "text": "def hello():\n    return 'hello'" }),
            json!({ "type": "agent", "run_id": "r", "pos": pos(0), "message": "retrying after a timeout" }),
            json!({ "type": "step_finished", "run_id": "r", "pos": pos(0), "state": "completed",
                    "answered_by": "coder", "model": "m", "tokens": tokens, "cost": 0.0,
                    "latency_ms": 1500, "retries": 1, "fallback_from": [] }),
            json!({ "type": "step_started", "run_id": "r", "pos": pos(1), "role": "review", "agent": "reviewer" }),
            json!({ "type": "step_finished", "run_id": "r", "pos": pos(1), "state": "completed",
                    "tokens": tokens, "latency_ms": 250, "retries": 0, "fallback_from": [],
                    "verdict": "approved" }),
            json!({ "type": "run_finished", "run_id": "r", "state": "completed",
                    "reason": "review_passed", "iterations": 1,
                    "tokens": { "prompt": 240, "completion": 60 }, "cost": 0.0 }),
        ];
        let mut last = false;
        for e in events {
            last = p.event(&event(e)).unwrap();
        }
        assert!(last, "run_finished is the last event");
        let record: RunRecord = serde_json::from_value(json!({
            "id": "0192f3a4-5b6c-7d8e-9f00-112233445566",
            "task": "Write hello",
            "workflow_name": "scripted",
            "workflow": { "steps": [] },
            "project_path": "/p",
            "project_id": "p",
            "offline": false,
            "state": "completed",
            "created_at": "2026-12-04T20:00:00Z",
            "started_at": "2026-12-04T20:00:01Z",
            "finished_at": "2026-12-04T20:00:03Z",
            "iterations": 1,
            "output": "def hello():\n    return 'hello'",
            "tokens": { "prompt": 240, "completion": 60 },
            "cost": 0.0,
            "files": [{ "path": "hello.py", "status": "added", "added": 2, "removed": 0 }]
        }))
        .unwrap();
        p.finish(&record).unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn json_mode_prints_each_event_as_one_line() {
        let out = Captured::default();
        let mut p = EventPrinter::to(Box::new(out.clone()), true, false);
        let e = event(json!({ "type": "chunk", "run_id": "r",
            "pos": { "iteration": 1, "step": 0 }, "text": "hi" }));
        assert!(!p.event(&e).unwrap());
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert_eq!(serde_json::from_str::<RunEvent>(text.trim()).unwrap(), e);
    }
}
