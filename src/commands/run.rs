//! `troupe run` and `troupe runs …`: the main job and its records.

use anyhow::Result;
use serde_json::json;
use troupe_runtime::audit::AuditEntry;
use troupe_runtime::{
    ChangeOptions, CheckRecord, RunHandle, RunRecord, RunRequest, RunState, RunStats, Runtime,
    StepRecord,
};
use troupe_workflows::Config;
use troupe_workflows::config::ConfigSource;

use super::change::{self, ApplyMode, Target};
use super::exit;
use crate::cli::{RunArgs, RunsArgs, RunsCommand};
use crate::open::note_interrupted;
use crate::render::{EventPrinter, Table, secs, short_id};

/// Print a run's events as they arrive, until it ends; returns the final record.
/// Ctrl-C cancels the run (the running step's process group is killed); a second Ctrl-C
/// exits at once.
pub async fn follow(runtime: &Runtime, mut handle: RunHandle, json: bool) -> Result<RunRecord> {
    let id = handle.id.clone();
    let mut printer = EventPrinter::new(json);
    let mut ctrl_c = Box::pin(tokio::signal::ctrl_c());
    let mut cancelled = false;
    loop {
        let event = tokio::select! {
            e = handle.events.recv() => e,
            _ = &mut ctrl_c => {
                if cancelled {
                    eprintln!("troupe: exiting; resume with `troupe runs resume {id}`");
                    std::process::exit(130);
                }
                cancelled = true;
                eprintln!("\ntroupe: cancelling run {} (Ctrl-C again to exit now)", short_id(&id));
                let _ = runtime.cancel(&id).await;
                ctrl_c = Box::pin(tokio::signal::ctrl_c());
                continue;
            }
        };
        let event = match event {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                eprintln!("troupe: (the display fell {n} events behind; the record is complete)");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        };
        if printer.event(&event)? {
            break;
        }
    }
    let record = handle.wait().await?;
    printer.finish(&record)?;
    Ok(record)
}

/// The exit code of a finished run.
pub fn exit_code(r: &RunRecord) -> u8 {
    if r.state == RunState::Completed { exit::OK } else { exit::FAILED }
}

/// `troupe runs [list]`.
pub fn list(runtime: &Runtime, json: bool) -> Result<u8> {
    let mut runs = runtime.store().runs()?;
    runs.reverse();
    print_runs(&runs, json)?;
    Ok(exit::OK)
}

/// Print runs (newest first) as a table or JSON.
pub fn print_runs(runs: &[RunRecord], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(runs)?);
        return Ok(());
    }
    if runs.is_empty() {
        println!("No runs yet. Start one with `troupe run \"task\"`.");
        return Ok(());
    }
    let mut t = Table::new(&["ID", "STATE", "WORKFLOW", "ITER", "TOKENS", "CREATED", "TASK"]);
    for r in runs {
        let task: String = r.task.chars().take(60).collect();
        t.row(vec![
            short_id(&r.id).to_string(),
            r.state.to_string(),
            r.workflow_name.clone(),
            r.iterations.to_string(),
            r.tokens.total().to_string(),
            r.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            task,
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

/// `troupe runs show ID [--prompts]`.
pub fn show(runtime: &Runtime, id: &str, prompts: bool, json: bool) -> Result<u8> {
    let (r, steps) = match runtime.run(id) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("troupe: {e}");
            return Ok(exit::FAILED);
        }
    };
    // The audit trail, when asked for and the run has one (runs from before it have none).
    let trail = if prompts {
        runtime.audit_dir().and_then(|dir| troupe_runtime::audit::read(dir, &r.id).ok())
    } else {
        None
    };
    // The validators' runs (a store that cannot read them shows none).
    let checks = runtime.store().checks(&r.id).unwrap_or_default();
    print_run(&r, &steps, &checks, trail.as_deref(), prompts, json)?;
    Ok(exit::OK)
}

/// Print a run with every step and its validators' runs as text or JSON; with `prompts`,
/// its audit trail (every prompt and answer as sent and received) when it has one, else
/// each step's prompt.
pub fn print_run(
    r: &RunRecord,
    steps: &[StepRecord],
    checks: &[CheckRecord],
    trail: Option<&[AuditEntry]>,
    prompts: bool,
    json: bool,
) -> Result<()> {
    if json {
        let mut steps_json = serde_json::to_value(steps)?;
        if !prompts && let Some(arr) = steps_json.as_array_mut() {
            for s in arr {
                if let Some(o) = s.as_object_mut() {
                    o.remove("prompt");
                }
            }
        }
        let mut doc = json!({ "run": r, "steps": steps_json, "checks": checks });
        if let Some(t) = trail {
            doc["audit"] = serde_json::to_value(t)?;
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("run       {}", r.id);
    println!("task      {}", r.task);
    println!(
        "state     {}{}",
        r.state,
        r.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
    );
    println!("workflow  {}", r.workflow_name);
    println!("project   {} ({})", r.project_path.display(), r.project_id);
    println!("created   {}", r.created_at.format("%Y-%m-%d %H:%M:%S UTC"));
    if let Some(d) = r.duration_secs() {
        println!("duration  {d:.1}s");
    }
    println!(
        "tokens    {} ({} in, {} out)",
        r.tokens.total(),
        r.tokens.prompt,
        r.tokens.completion
    );
    if r.cost > 0.0 {
        println!("cost      {:.4}", r.cost);
    }
    if r.budget.is_set() {
        let mut parts = Vec::new();
        if let Some(t) = r.budget.tokens {
            parts.push(format!("{t} tokens"));
        }
        if let Some(c) = r.budget.cost {
            parts.push(format!("cost {c}"));
        }
        println!("budget    {}", parts.join(", "));
    }
    for n in &r.plan_notes {
        println!("plan      {n}");
    }
    print_change_state(r, checks);
    match trail {
        Some(entries) => {
            println!("\n── audit trail ──\n");
            crate::commands::audit::print_trail(entries);
        }
        None => {
            for s in steps {
                print_step(s, prompts);
            }
        }
    }
    if let Some(o) = &r.output {
        println!("\n── final output ──\n{o}");
    }
    Ok(())
}

/// The run's workspace, its change, the validators' results per check and whether the
/// change is applied.
fn print_change_state(r: &RunRecord, checks: &[CheckRecord]) {
    match &r.workspace {
        Some(ws) => {
            println!("workspace {}", ws.describe());
            let short = |c: &str| c.get(..10).unwrap_or(c).to_string();
            let mut line = format!("base      {}", short(&ws.base));
            if let Some(b) = &ws.branch {
                line.push_str(&format!(" · branch {b}"));
            }
            if ws.head != ws.base {
                line.push_str(&format!(" · head {}", short(&ws.head)));
            }
            println!("{line}");
        }
        None if r.change.in_place || !r.files.is_empty() => {
            println!("workspace none (discarded, or removed by `troupe runs cleanup`)")
        }
        None => {}
    }
    if !r.files.is_empty() {
        let added: u64 = r.files.iter().map(|f| f.added).sum();
        let removed: u64 = r.files.iter().map(|f| f.removed).sum();
        println!("files     {} changed (+{added} -{removed})", r.files.len());
        for f in &r.files {
            println!("          {} (+{} -{})", f.path.display(), f.added, f.removed);
        }
    } else if r.workspace.is_some() && r.state.is_final() {
        println!("files     none changed");
    }
    if r.change.no_validate {
        println!("checks    off (--no-validate)");
    } else if !r.validators.is_empty() {
        let from = r.validators_source.as_deref().map(|s| format!(" ({s})")).unwrap_or_default();
        println!("checks    {}{from}", r.validators.join(", "));
    } else if let Some(why) = &r.validators_source {
        println!("checks    none ({why})");
    }
    for c in checks {
        let outcome = match &c.report {
            Some(report) => report.summary(),
            None => format!("{:?}", c.state).to_lowercase(),
        };
        let commit = c.commit.get(..10).unwrap_or(&c.commit);
        println!("  after [{}.{}] · {commit} · {outcome}", c.after.iteration, c.after.step + 1);
        for failing in c.report.iter().flat_map(|rep| &rep.results).filter(|x| !x.passed()) {
            if !failing.failing.is_empty() {
                println!("    {} failing: {}", failing.command, failing.failing.join(", "));
            }
        }
    }
    match r.verified {
        Some(true) => println!("verified  yes: the project's checks pass"),
        Some(false) => println!("verified  no"),
        None => {}
    }
    if let Some(ws) = &r.workspace {
        match &ws.applied {
            Some(a) => {
                let commit = a
                    .commit
                    .as_ref()
                    .map(|c| format!(", committed as {}", c.get(..10).unwrap_or(c)))
                    .unwrap_or_default();
                println!(
                    "applied   {} to {}{commit} (undo: troupe runs revert {})",
                    a.at.format("%Y-%m-%d %H:%M:%S UTC"),
                    ws.project.display(),
                    short_id(&r.id)
                );
            }
            None if ws.kind == troupe_change::workspace::WorkspaceKind::InPlace => {
                println!("applied   in place (undo: troupe runs revert {})", short_id(&r.id))
            }
            None if !r.files.is_empty() => {
                println!("applied   no (apply: troupe runs apply {})", short_id(&r.id))
            }
            None => {}
        }
    }
}

fn print_step(s: &StepRecord, prompts: bool) {
    let who = s.answered_by.clone().unwrap_or_else(|| s.agent.clone());
    println!(
        "\n── [{}.{}] {} · {who}{} · {:?} · {} tokens · {} ──",
        s.pos.iteration,
        s.pos.step + 1,
        s.role,
        s.model.as_ref().map(|m| format!(" ({m})")).unwrap_or_default(),
        s.state,
        s.tokens.total(),
        secs(s.latency_ms),
    );
    if !s.fallback_from.is_empty() {
        println!("fallback after: {}", s.fallback_from.join(", "));
    }
    if !s.context_nodes.is_empty() {
        println!("memory used: {}", s.context_nodes.join(", "));
    }
    if let Some(n) = &s.note {
        println!("note: {n}");
    }
    if prompts && !s.prompt.is_empty() {
        println!("── prompt ──\n{}", s.prompt.trim_end());
        println!("── response ──");
    }
    if let Some(resp) = &s.response {
        println!("{}", resp.trim_end());
    }
}

/// `troupe runs stats`.
pub fn stats(runtime: &Runtime, json: bool) -> Result<u8> {
    print_stats(&runtime.stats()?, json)?;
    Ok(exit::OK)
}

/// Print run statistics as a table or JSON.
pub fn print_stats(s: &RunStats, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    let mut t = Table::new(&["STATE", "RUNS"]);
    for (state, n) in &s.by_state {
        t.row(vec![state.clone(), n.to_string()]);
    }
    print!("{}", t.render());
    if let Some(d) = s.average_duration_secs {
        println!("average duration of ended runs: {d:.1}s");
    }
    println!("tokens: {} ({} in, {} out)", s.tokens.total(), s.tokens.prompt, s.tokens.completion);
    Ok(())
}

/// What `runs cleanup --dry-run` would remove: the ended runs `old` and their workspaces.
pub fn print_cleanup_plan(old: &[RunRecord], older_than: u32) {
    if old.is_empty() {
        println!("nothing to remove: no run ended more than {older_than} day(s) ago");
    }
    for r in old {
        let task: String = r.task.lines().next().unwrap_or("").chars().take(60).collect();
        println!("would remove run {} ({}): {task}", short_id(&r.id), r.state);
        if let Some(ws) = &r.workspace {
            let branch =
                ws.branch.as_deref().map(|b| format!(" and branch {b}")).unwrap_or_default();
            println!("  and its workspace {}{branch}", ws.dir.display());
        }
    }
}

/// The ended runs `runs cleanup --older-than` removes.
pub fn ended_before(runs: Vec<RunRecord>, before: chrono::DateTime<chrono::Utc>) -> Vec<RunRecord> {
    runs.into_iter()
        .filter(|r| r.state.is_final() && r.finished_at.is_some_and(|f| f < before))
        .collect()
}

/// `troupe runs cleanup --older-than DAYS [--dry-run]`: remove the workspaces (worktree or
/// copy, and branch) of ended runs older than that, then their records. When a workspace
/// cannot be removed, no record is removed (the record is what points at the workspace).
pub async fn cleanup(runtime: &Runtime, days: u32, dry_run: bool) -> Result<u8> {
    let before = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    let old = ended_before(runtime.store().runs()?, before);
    if dry_run {
        print_cleanup_plan(&old, days);
        return Ok(exit::OK);
    }
    let with_workspace = runtime.cleanup_workspaces(before, true).await?;
    let mut failed = Vec::new();
    for r in &with_workspace {
        if let Err(e) = runtime.discard(&r.id).await {
            failed.push(format!("run {}: {e}", short_id(&r.id)));
        }
    }
    if !failed.is_empty() {
        for f in &failed {
            eprintln!("troupe: cannot remove the workspace of {f}");
        }
        eprintln!(
            "troupe: no run record was removed, so those workspaces stay findable; fix the cause and run this again"
        );
        return Ok(exit::FAILED);
    }
    let removed = runtime.store().cleanup(before).await?;
    println!(
        "removed {removed} run(s) that ended more than {days} day(s) ago, and {} workspace(s)",
        with_workspace.len()
    );
    Ok(exit::OK)
}

/// `troupe runs cancel ID`.
pub async fn cancel(runtime: &Runtime, id: &str) -> Result<u8> {
    match runtime.cancel(id).await {
        Ok(r) => {
            println!("run {} cancelled", r.id);
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("troupe: {e}");
            Ok(exit::FAILED)
        }
    }
}

/// Start the runtime (store, agents) inside an actix system and run `f` with it.
pub(crate) fn with_runtime<F, Fut>(
    config: Config,
    source: ConfigSource,
    offline: bool,
    f: F,
) -> Result<u8>
where
    F: FnOnce(Runtime) -> Fut,
    Fut: std::future::Future<Output = Result<u8>>,
{
    actix_rt::System::new().block_on(async move {
        let Some(runtime) = crate::commands::open_runtime(config, &source, offline) else {
            return Ok(exit::FAILED);
        };
        let result = f(runtime.clone()).await;
        // Stop the local model servers this process started.
        runtime.shutdown().await;
        result
    })
}

/// `troupe run "task"` in this process (`main` sends it through a running `troupe serve`
/// instead when there is one: `via_api`).
pub fn run_command(config: Config, source: ConfigSource, args: RunArgs) -> Result<u8> {
    let offline = config.settings.offline;
    let mode = change::apply_mode(&config);
    with_runtime(config, source, offline, |runtime| async move {
        note_interrupted(&runtime);
        let req = RunRequest {
            task: args.task,
            workflow: args.workflow,
            max_iterations: args.max_iterations,
            offline,
            project: args.project,
            conversation: None,
            budget_tokens: args.budget_tokens,
            budget_cost: args.budget_cost,
            change: ChangeOptions {
                in_place: args.in_place,
                no_validate: args.no_validate,
                apply: args.apply || mode == ApplyMode::Auto,
                ..ChangeOptions::default()
            },
            ..RunRequest::default()
        };
        let handle = match runtime.submit(req).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("troupe: {e}");
                return Ok(exit::USAGE);
            }
        };
        let record = follow(&runtime, handle, args.json).await?;
        // A green run's change, in a terminal: apply it now?
        if let Some(code) =
            change::offer_apply(Target::Local(&runtime), mode, &record, args.json).await?
        {
            return Ok(code);
        }
        Ok(exit_code(&record))
    })
}

/// `troupe metrics`: the Prometheus exposition once. In a one-shot process the agent call
/// counters come from the stored step history (what routing reads); `troupe serve`'s
/// `/metrics` shows the live process.
pub fn metrics_command(config: Config, source: ConfigSource) -> Result<u8> {
    let offline = config.settings.offline;
    with_runtime(config, source, offline, |runtime| async move {
        print!("{}", runtime.metrics().render());
        Ok(exit::OK)
    })
}

/// `troupe runs …` in this process (`main` sends it through a running `troupe serve`
/// instead when there is one: `via_api`).
pub fn runs_command(config: Config, source: ConfigSource, args: RunsArgs) -> Result<u8> {
    let offline = config.settings.offline;
    with_runtime(config, source, offline, |runtime| async move {
        match args.command {
            None => list(&runtime, args.json),
            Some(RunsCommand::List(f)) => list(&runtime, f.json || args.json),
            Some(RunsCommand::Show { id, prompts, json }) => {
                show(&runtime, &id, prompts, json || args.json)
            }
            Some(RunsCommand::Cancel { id }) => cancel(&runtime, &id).await,
            Some(RunsCommand::Audit { .. }) => Ok(exit::OK), // handled without the store
            Some(RunsCommand::Stats(f)) => stats(&runtime, f.json || args.json),
            Some(RunsCommand::Cleanup { older_than, dry_run }) => {
                cleanup(&runtime, older_than, dry_run).await
            }
            Some(
                c @ (RunsCommand::Diff { .. }
                | RunsCommand::Apply { .. }
                | RunsCommand::Revert { .. }
                | RunsCommand::Discard { .. }),
            ) => match change::ChangeCommand::from_runs(&c, args.json) {
                Some(cmd) => change::run(Target::Local(&runtime), cmd).await,
                None => Ok(exit::USAGE),
            },
            Some(RunsCommand::Resume { id, budget_tokens, budget_cost, json }) => {
                let budget = troupe_runtime::Budget { tokens: budget_tokens, cost: budget_cost };
                let handle = match runtime.resume_with(&id, budget).await {
                    Ok(h) => h,
                    Err(e) => {
                        eprintln!("troupe: {e}");
                        return Ok(exit::FAILED);
                    }
                };
                let record = follow(&runtime, handle, json || args.json).await?;
                Ok(exit_code(&record))
            }
        }
    })
}
