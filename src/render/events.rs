//! A run's events as they arrive, and its summary at the end: what `troupe run`, the shell
//! and `troupe run` through `troupe serve` print.

use std::io::{IsTerminal, Write};

use anyhow::Result;
use troupe_runtime::{RunEvent, RunRecord, RunState, StepState};

use super::{secs, short_id};

/// Prints a run's events as they arrive, and its summary at the end: the same output
/// whether the events come from this process or from `troupe serve` over SSE.
#[derive(Debug)]
pub struct EventPrinter {
    json: bool,
    color: bool,
    in_chunk: bool,
}

impl EventPrinter {
    /// A printer for standard output; `json` prints each event as a JSON line instead.
    pub fn new(json: bool) -> EventPrinter {
        EventPrinter { json, color: std::io::stdout().is_terminal() && !json, in_chunk: false }
    }

    fn dim(&self, s: &str) -> String {
        if self.color { format!("\x1b[2m{s}\x1b[0m") } else { s.to_string() }
    }

    fn bold(&self, s: &str) -> String {
        if self.color { format!("\x1b[1m{s}\x1b[0m") } else { s.to_string() }
    }

    fn end_chunk(&mut self) {
        if self.in_chunk {
            println!();
            self.in_chunk = false;
        }
    }

    /// Print one event; true when it is the run's last.
    pub fn event(&mut self, event: &RunEvent) -> Result<bool> {
        if self.json {
            println!("{}", serde_json::to_string(event)?);
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
                    println!("{}", self.dim(&format!("· {n}")));
                }
                println!(
                    "{}",
                    self.bold(&format!(
                        "run {} {verb}: {workflow} ({})",
                        short_id(run_id),
                        steps.join(" → ")
                    ))
                );
                if let Some(w) = workspace {
                    println!("{}", self.dim(&format!("  workspace: {w}")));
                }
                if let Some(v) = validators {
                    println!("{}", self.dim(&format!("  validators: {v}")));
                }
            }
            RunEvent::Changed { change, .. } => {
                self.end_chunk();
                let files: Vec<String> =
                    change.files.iter().map(|f| f.path.display().to_string()).collect();
                let mut line = format!("  ✎ {}", change.summary());
                if !files.is_empty() {
                    line.push_str(&format!(": {}", files.join(", ")));
                }
                println!("{line}");
                for r in change.refused.iter().chain(&change.failed) {
                    println!("{}", self.dim(&format!("    ⚠ {r}")));
                }
            }
            RunEvent::ValidateStarted { commands, .. } => {
                self.end_chunk();
                println!("\n{}", self.bold(&format!("▶ validate · {}", commands.join(", "))));
            }
            RunEvent::ValidateFinished { passed, results, .. } => {
                for r in results {
                    let mark = if r.passed() { "✔" } else { "✘" };
                    let mut line =
                        format!("{mark} {} · {} · {}", r.command, r.outcome, secs(r.duration_ms));
                    if !r.failing.is_empty() {
                        line.push_str(&format!(" · failing: {}", r.failing.join(", ")));
                    }
                    println!("{}", self.dim(&line));
                    if !r.passed() {
                        let tail: Vec<&str> = r.output.lines().rev().take(8).collect();
                        for l in tail.into_iter().rev() {
                            println!("{}", self.dim(&format!("    {l}")));
                        }
                    }
                }
                let verdict = if *passed { "checks pass" } else { "checks fail" };
                println!("{}", self.dim(&format!("  {verdict}")));
            }
            RunEvent::Applied { files, .. } => {
                let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                println!("✔ applied to the project: {}", names.join(", "));
            }
            RunEvent::Planned { steps, notes, .. } => {
                println!("{}", self.bold(&format!("planned: {}", steps.join(" → "))));
                for n in notes {
                    println!("{}", self.dim(&format!("  · {n}")));
                }
            }
            RunEvent::StepStarted { pos, role, agent, .. } => {
                println!(
                    "\n{}",
                    self.bold(&format!("▶ [{}.{}] {role} · {agent}", pos.iteration, pos.step + 1))
                );
            }
            RunEvent::Chunk { text, .. } => {
                print!("{text}");
                self.in_chunk = !text.ends_with('\n');
                let _ = std::io::stdout().flush();
            }
            RunEvent::Agent { message, .. } => {
                self.end_chunk();
                println!("{}", self.dim(&format!("  ↻ {message}")));
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
                self.end_chunk();
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
                println!("{}", self.dim(&line));
            }
            RunEvent::RunFinished { .. } => {}
        }
        Ok(event.is_final())
    }

    /// Print the final record: as JSON, or as a summary.
    pub fn finish(&mut self, r: &RunRecord) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string(r)?);
            return Ok(());
        }
        println!();
        let head = match r.state {
            RunState::Completed => "✔ completed",
            RunState::Failed => "✘ failed",
            RunState::Cancelled => "■ cancelled",
            RunState::BudgetExceeded => "⊘ budget exceeded",
            _ => "… unfinished",
        };
        let duration = r.duration_secs().map(|d| format!("{d:.1}s")).unwrap_or_default();
        println!(
            "{head}: run {} · {} iteration(s) · {} tokens{} · {duration}",
            r.id,
            r.iterations,
            r.tokens.total(),
            if r.cost > 0.0 { format!(" · cost {:.4}", r.cost) } else { String::new() }
        );
        if let Some(e) = &r.error {
            println!("  {e}");
        }
        if let Some(ws) = &r.workspace {
            if r.files.is_empty() {
                println!("{}", self.dim("  no file was changed"));
            } else {
                let added: u64 = r.files.iter().map(|f| f.added).sum();
                let removed: u64 = r.files.iter().map(|f| f.removed).sum();
                println!("  {} file(s) changed (+{added} -{removed}):", r.files.len());
                for f in &r.files {
                    println!("    {} (+{} -{})", f.path.display(), f.added, f.removed);
                }
                match r.verified {
                    Some(true) => println!("  verified: the project's checks pass"),
                    Some(false) if r.validators.is_empty() => {
                        println!(
                            "{}",
                            self.dim("  unverified: no tests or checks ran on this change")
                        )
                    }
                    _ => {}
                }
                if ws.applied.is_some() {
                    println!("  applied to {}", ws.project.display());
                } else if ws.kind == troupe_change::workspace::WorkspaceKind::InPlace {
                    println!(
                        "{}",
                        self.dim(&format!(
                            "  made in place in {} · undo it: troupe runs revert {}",
                            ws.project.display(),
                            short_id(&r.id)
                        ))
                    );
                } else {
                    println!(
                        "{}",
                        self.dim(&format!(
                            "  see it: troupe runs diff {id} · apply it: troupe runs apply {id} · drop it: troupe runs discard {id}",
                            id = short_id(&r.id)
                        ))
                    );
                }
            }
        }
        if r.state == RunState::BudgetExceeded {
            println!(
                "{}",
                self.dim(&format!(
                    "  go on with a larger budget: `troupe runs resume {} --budget-tokens N` (or --budget-cost; project budgets are settings.project_*_budget)",
                    r.id
                ))
            );
        } else if r.state != RunState::Completed {
            println!("{}", self.dim(&format!("  resume with `troupe runs resume {}`", r.id)));
        }
        Ok(())
    }
}
