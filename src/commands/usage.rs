//! `troupe usage`: tokens and cost per project, agent and run.

use anyhow::Result;
use troupe_runtime::{Runtime, UsageReport, UsageTotals};
use troupe_workflows::Config;
use troupe_workflows::config::ConfigSource;

use super::exit;
use crate::cli::UsageArgs;
use crate::render::{Table, short_id};

/// How many runs the text report lists.
const RUNS_SHOWN: usize = 20;

/// `troupe usage [--project P] [--since WHEN] [--json]` in this process (`main` sends it
/// through a running `troupe serve` instead when there is one: `via_api`).
pub fn usage_command(config: Config, source: ConfigSource, args: UsageArgs) -> Result<u8> {
    let offline = config.settings.offline;
    super::run::with_runtime(
        config,
        source,
        offline,
        |runtime| async move { usage(&runtime, &args) },
    )
}

/// The report for `args` from `runtime`'s store, printed.
pub fn usage(runtime: &Runtime, args: &UsageArgs) -> Result<u8> {
    let report =
        match troupe_runtime::usage::usage_report(runtime, args.project.as_deref(), args.since) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("troupe: {e}");
                return Ok(exit::USAGE);
            }
        };
    print_report(&report, args.json)?;
    Ok(exit::OK)
}

/// Print a usage report as text or JSON.
pub fn print_report(report: &UsageReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let mut scope = Vec::new();
    if let Some(p) = &report.project {
        scope.push(format!("project {}", p.display()));
    }
    if let Some(s) = report.since {
        scope.push(format!("since {}", s.format("%Y-%m-%d %H:%M UTC")));
    }
    if !scope.is_empty() {
        println!("usage of {}", scope.join(", "));
    }
    if report.total.runs == 0 && report.total.calls == 0 {
        println!("No runs{}.", if scope.is_empty() { " yet" } else { " match" });
        return Ok(());
    }
    let priced = report.total.cost > 0.0;
    let mut header = vec!["PROJECT", "RUNS", "CALLS", "TOKENS", "IN", "OUT"];
    if priced {
        header.push("COST");
    }
    let mut t = Table::new(&header);
    for (project, u) in &report.by_project {
        t.row(totals_row(project.clone(), Some(u.runs), u, priced));
    }
    print!("{}", t.render());

    header[0] = "AGENT";
    header.remove(1);
    let mut t = Table::new(&header);
    for (agent, u) in &report.by_agent {
        t.row(totals_row(agent.clone(), None, u, priced));
    }
    println!();
    print!("{}", t.render());

    if !report.by_source.is_empty() {
        header[0] = "OUTSIDE RUNS";
        let mut t = Table::new(&header);
        for (source, u) in &report.by_source {
            t.row(totals_row(source.clone(), None, u, priced));
        }
        println!();
        print!("{}", t.render());
    }

    if !report.runs.is_empty() {
        let mut header = vec!["RUN", "STATE", "CALLS", "TOKENS"];
        if priced {
            header.push("COST");
        }
        header.extend(["CREATED", "TASK"]);
        let mut t = Table::new(&header);
        for r in report.runs.iter().take(RUNS_SHOWN) {
            let mut row = vec![
                short_id(&r.run_id).to_string(),
                r.state.to_string(),
                r.totals.calls.to_string(),
                r.totals.tokens.total().to_string(),
            ];
            if priced {
                row.push(cost(r.totals.cost));
            }
            row.push(r.created_at.format("%Y-%m-%d %H:%M").to_string());
            row.push(r.task.clone());
            t.row(row);
        }
        println!();
        print!("{}", t.render());
        if report.runs.len() > RUNS_SHOWN {
            println!("… and {} older run(s) (`--json` lists all)", report.runs.len() - RUNS_SHOWN);
        }
    }
    let u = &report.total;
    println!(
        "\ntotal: {} run(s), {} call(s), {} tokens ({} in, {} out){}",
        u.runs,
        u.calls,
        u.tokens.total(),
        u.tokens.prompt,
        u.tokens.completion,
        if priced { format!(", cost {}", cost(u.cost)) } else { String::new() }
    );
    Ok(())
}

fn totals_row(name: String, runs: Option<u64>, u: &UsageTotals, priced: bool) -> Vec<String> {
    let mut row = vec![name];
    if let Some(r) = runs {
        row.push(r.to_string());
    }
    row.extend([
        u.calls.to_string(),
        u.tokens.total().to_string(),
        u.tokens.prompt.to_string(),
        u.tokens.completion.to_string(),
    ]);
    if priced {
        row.push(cost(u.cost));
    }
    row
}

fn cost(c: f64) -> String {
    format!("{c:.4}")
}
