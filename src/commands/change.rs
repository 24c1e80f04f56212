//! A run's change after the run: `troupe runs diff | apply | revert | discard`, the shell's
//! `/diff`, `/apply`, `/revert`, `/discard`, and the question after a green run. The same
//! output and exit codes whether the runtime is in this process or behind `troupe serve`.

use std::io::{IsTerminal, Write};

use anyhow::Result;
use troupe_change::workspace::{Change, WorkspaceKind};
use troupe_runtime::{RunRecord, RunState, Runtime};
use troupe_workflows::Config;

use super::exit;
use crate::client::Client;
use crate::render::change::{render_patch, render_stat};
use crate::render::short_id;

pub use troupe_workflows::config::ApplyMode;

/// What to do with a green run's change when `--apply` was not given: `settings.apply`.
pub fn apply_mode(config: &Config) -> ApplyMode {
    config.settings.apply
}

/// Whether stdout gets colour (a terminal, not `--json`).
fn colour(json: bool) -> bool {
    !json && std::io::stdout().is_terminal()
}

/// Print a run's change: the patch, its `--stat`, or the [`Change`] as JSON.
pub fn print_change(change: &Change, stat: bool, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(change)?)?;
    } else if change.is_empty() {
        writeln!(out, "The run changed no file.")?;
    } else if stat {
        write!(out, "{}", render_stat(change, colour(false)))?;
    } else {
        write!(out, "{}", render_patch(&change.patch, colour(false)))?;
    }
    out.flush()?;
    Ok(())
}

/// Say what an apply did.
fn print_applied(r: &RunRecord, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    let Some(ws) = &r.workspace else {
        println!("run {}: applied", short_id(&r.id));
        return Ok(());
    };
    let Some(applied) = &ws.applied else {
        println!("run {}: nothing was applied", short_id(&r.id));
        return Ok(());
    };
    let names: Vec<String> = applied.files.iter().map(|f| f.display().to_string()).collect();
    println!(
        "✔ applied run {}'s change to {}: {}",
        short_id(&r.id),
        ws.project.display(),
        names.join(", ")
    );
    if let Some(c) = &applied.commit {
        println!("  committed as {} on your current branch", c.get(..10).unwrap_or(c));
    }
    println!("  undo it with `troupe runs revert {}`", short_id(&r.id));
    Ok(())
}

/// Where the change commands go: the runtime in this process, or `troupe serve`.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// This process holds the store.
    Local(&'a Runtime),
    /// A running `troupe serve` holds it.
    Remote(&'a Client),
}

impl Target<'_> {
    /// The run's change.
    pub async fn diff(&self, id: &str) -> Result<Change, String> {
        match self {
            Target::Local(rt) => rt.diff(id).await.map_err(|e| e.to_string()),
            Target::Remote(c) => c.diff(id).await.map_err(|e| e.to_string()),
        }
    }

    /// Apply the run's change; with `commit`, also commit it with [`crate::render::change::commit_message`].
    pub async fn apply(&self, id: &str, commit: bool) -> Result<RunRecord, String> {
        match self {
            Target::Local(rt) => {
                let message = if commit {
                    let (r, _) = rt.run(id).map_err(|e| e.to_string())?;
                    Some(crate::render::change::commit_message(&r))
                } else {
                    None
                };
                rt.apply(id, message).await.map_err(|e| e.to_string())
            }
            Target::Remote(c) => c.change(id, "apply", commit).await.map_err(|e| e.to_string()),
        }
    }

    /// Undo the run's applied change.
    pub async fn revert(&self, id: &str) -> Result<RunRecord, String> {
        match self {
            Target::Local(rt) => rt.revert(id).await.map_err(|e| e.to_string()),
            Target::Remote(c) => c.change(id, "revert", false).await.map_err(|e| e.to_string()),
        }
    }

    /// Remove the run's workspace and branch.
    pub async fn discard(&self, id: &str) -> Result<RunRecord, String> {
        match self {
            Target::Local(rt) => rt.discard(id).await.map_err(|e| e.to_string()),
            Target::Remote(c) => c.change(id, "discard", false).await.map_err(|e| e.to_string()),
        }
    }
}

/// One of the change commands.
#[derive(Debug, Clone)]
pub enum ChangeCommand {
    /// Show the change (`--stat`, `--json`).
    Diff {
        /// The run.
        id: String,
        /// Only the files and their counts.
        stat: bool,
        /// The [`Change`] as JSON.
        json: bool,
    },
    /// Apply it.
    Apply {
        /// The run.
        id: String,
        /// Also commit it on the user's branch.
        commit: bool,
        /// Print the run record as JSON.
        json: bool,
    },
    /// Undo an apply.
    Revert {
        /// The run.
        id: String,
        /// Print the run record as JSON.
        json: bool,
    },
    /// Remove the workspace.
    Discard {
        /// The run.
        id: String,
        /// Print the run record as JSON.
        json: bool,
    },
}

/// Run a change command against `target`; the exit code (1 when refused, with the reason on
/// standard error).
pub async fn run(target: Target<'_>, command: ChangeCommand) -> Result<u8> {
    let refused = |e: String| {
        eprintln!("troupe: {e}");
        exit::FAILED
    };
    Ok(match command {
        ChangeCommand::Diff { id, stat, json } => match target.diff(&id).await {
            Ok(change) => {
                print_change(&change, stat, json)?;
                exit::OK
            }
            Err(e) => refused(e),
        },
        ChangeCommand::Apply { id, commit, json } => match target.apply(&id, commit).await {
            Ok(r) => {
                print_applied(&r, json)?;
                exit::OK
            }
            Err(e) => refused(e),
        },
        ChangeCommand::Revert { id, json } => match target.revert(&id).await {
            Ok(r) if json => {
                println!("{}", serde_json::to_string_pretty(&r)?);
                exit::OK
            }
            Ok(r) => {
                let project = r.workspace.as_ref().map(|w| w.project.display().to_string());
                println!(
                    "✔ reverted run {}'s change in {}",
                    short_id(&r.id),
                    project.unwrap_or_else(|| "the project".into())
                );
                exit::OK
            }
            Err(e) => refused(e),
        },
        ChangeCommand::Discard { id, json } => match target.discard(&id).await {
            Ok(r) if json => {
                println!("{}", serde_json::to_string_pretty(&r)?);
                exit::OK
            }
            Ok(r) => {
                println!(
                    "✔ discarded run {}'s workspace (the run's record stays)",
                    short_id(&r.id)
                );
                exit::OK
            }
            Err(e) => refused(e),
        },
    })
}

/// Whether to ask about a finished run's change: a green run with a change that is neither
/// applied nor made in place, asked for in a terminal, without `--json` or `--apply`.
pub fn should_ask(mode: ApplyMode, r: &RunRecord, json: bool, terminal: bool) -> bool {
    mode == ApplyMode::Ask
        && terminal
        && !json
        && !r.change.apply
        && r.state == RunState::Completed
        && !r.files.is_empty()
        && r.workspace
            .as_ref()
            .is_some_and(|w| w.applied.is_none() && w.kind != WorkspaceKind::InPlace)
}

/// An answer to `Apply these changes? [y/N/d=diff]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Apply.
    Yes,
    /// Leave it (the default).
    No,
    /// Show the diff, then ask again.
    Diff,
}

/// Read an answer: `y`/`yes`, `d`/`diff`; anything else (an empty line too) is no.
pub fn parse_answer(line: &str) -> Answer {
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Answer::Yes,
        "d" | "diff" => Answer::Diff,
        _ => Answer::No,
    }
}

/// Whether standard input and output are both a terminal (someone can be asked).
pub fn terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// The most diff lines printed after a green run when nobody is asked (more: the stat).
const SHOWN_DIFF_LINES: usize = 300;

/// After a green run with a change that nobody is asked about (piped, `settings.apply =
/// "never"`): show the change — its diff, or its stat when the diff is long — so the run's
/// product is on the screen, not only its name.
async fn show_green_change(target: &Target<'_>, r: &RunRecord, json: bool) {
    let applied = r.workspace.as_ref().is_none_or(|w| w.applied.is_some());
    if json || r.state != RunState::Completed || r.files.is_empty() || applied {
        return;
    }
    let Ok(change) = target.diff(&r.id).await else { return };
    println!();
    if change.patch.lines().count() <= SHOWN_DIFF_LINES {
        print!("{}", render_patch(&change.patch, colour(false)));
    } else {
        print!("{}", render_stat(&change, colour(false)));
    }
}

/// After a run: in a terminal, show a green run's change and ask whether to apply it (see
/// [`should_ask`]). Returns the exit code to use instead of the run's, if any (1 when the
/// apply was refused).
pub async fn offer_apply(
    target: Target<'_>,
    mode: ApplyMode,
    r: &RunRecord,
    json: bool,
) -> Result<Option<u8>> {
    if !should_ask(mode, r, json, terminal()) {
        show_green_change(&target, r, json).await;
        return Ok(None);
    }
    let change = match target.diff(&r.id).await {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => return Ok(None),
        Err(e) => {
            eprintln!("troupe: cannot show the change: {e}");
            return Ok(None);
        }
    };
    println!();
    print!("{}", render_stat(&change, colour(false)));
    loop {
        print!("Apply these changes? [y/N/d=diff] ");
        std::io::stdout().flush()?;
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|n| (n, line))
        })
        .await??;
        if line.0 == 0 {
            println!();
        }
        match parse_answer(&line.1) {
            Answer::Diff => print!("{}", render_patch(&change.patch, colour(false))),
            Answer::No => {
                println!(
                    "Left in the run's workspace: `troupe runs apply {}` applies it later.",
                    short_id(&r.id)
                );
                return Ok(None);
            }
            Answer::Yes => {
                return Ok(Some(
                    run(
                        target,
                        ChangeCommand::Apply { id: r.id.clone(), commit: false, json: false },
                    )
                    .await?,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::change::commit_message;

    #[test]
    fn answers() {
        assert_eq!(parse_answer("y\n"), Answer::Yes);
        assert_eq!(parse_answer(" YES "), Answer::Yes);
        assert_eq!(parse_answer("d"), Answer::Diff);
        assert_eq!(parse_answer(""), Answer::No);
        assert_eq!(parse_answer("n"), Answer::No);
        assert_eq!(parse_answer("apply"), Answer::No);
    }

    fn record(state: &str, workspace: serde_json::Value) -> RunRecord {
        serde_json::from_value(serde_json::json!({
            "id": "0192f3a4-5b6c-7d8e-9f00-112233445566",
            "task": "\n  Fix the off-by-one in range()\nand add a test",
            "workflow_name": "w",
            "workflow": { "steps": [] },
            "project_path": "/p",
            "project_id": "p",
            "offline": false,
            "state": state,
            "created_at": "2026-12-04T20:00:00Z",
            "iterations": 1,
            "tokens": { "prompt": 0, "completion": 0 },
            "cost": 0.0,
            "workspace": workspace,
            "files": [{ "path": "a.py", "status": "modified", "added": 1, "removed": 1 }]
        }))
        .unwrap()
    }

    fn worktree(kind: &str) -> serde_json::Value {
        serde_json::json!({
            "kind": kind, "dir": "/w/p", "project": "/p", "base": "b", "branch": "troupe/x",
            "head": "h", "run_id": "r", "checkout": "/w/p"
        })
    }

    #[test]
    fn commit_messages_name_the_task_and_run() {
        let r = record("completed", worktree("worktree"));
        assert_eq!(commit_message(&r), "troupe: Fix the off-by-one in range() (run 0192f3a4-5b6c)");
    }

    #[test]
    fn only_a_green_unapplied_change_in_a_terminal_is_asked_about() {
        let r = record("completed", worktree("worktree"));
        assert!(should_ask(ApplyMode::Ask, &r, false, true));
        assert!(!should_ask(ApplyMode::Ask, &r, true, true), "--json never asks");
        assert!(!should_ask(ApplyMode::Ask, &r, false, false), "piped never asks");
        assert!(!should_ask(ApplyMode::Never, &r, false, true));
        assert!(!should_ask(ApplyMode::Auto, &r, false, true), "auto applies, it does not ask");
        assert!(!should_ask(ApplyMode::Ask, &record("failed", worktree("worktree")), false, true));
        assert!(!should_ask(
            ApplyMode::Ask,
            &record("completed", worktree("in_place")),
            false,
            true
        ));
        assert!(!should_ask(
            ApplyMode::Ask,
            &record("completed", serde_json::Value::Null),
            false,
            true
        ));
        let mut applied = r.clone();
        applied.change.apply = true;
        assert!(!should_ask(ApplyMode::Ask, &applied, false, true), "--apply already applied it");
        let mut empty = r;
        empty.files.clear();
        assert!(!should_ask(ApplyMode::Ask, &empty, false, true), "nothing changed");
    }
}
