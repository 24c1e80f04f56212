//! `troupe doctor`: is this machine ready, and if not, exactly what to do (the local models
//! in [`local_models`]).

mod local_models;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use troupe_adapters::agent::CallContext;
use troupe_adapters::config::AgentKind;
use troupe_adapters::which::find_program;
use troupe_context::{Error as ContextError, OnnxEmbedder, Store, StoreOptions};
use troupe_observability::TelemetryPlan;
use troupe_workflows::Config;
use troupe_workflows::config::{LoadedConfig, Severity};

use super::exit;

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, with a caveat.
    Warn,
    /// Broken: troupe cannot do part of its job.
    Fail,
    /// Nothing to do: for information.
    Info,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// How it went.
    pub status: Status,
    /// What was found, and what to do about it.
    pub message: String,
}

fn check(name: impl Into<String>, status: Status, message: impl Into<String>) -> Check {
    Check { name: name.into(), status, message: message.into() }
}

/// The agents the workflows people run by default need: the default workflow's (or, offline,
/// `offline-default`'s).
fn needed_agents(config: &Config) -> BTreeSet<String> {
    let name = if config.settings.offline {
        "offline-default"
    } else {
        config.settings.default_workflow.as_str()
    };
    config.workflow(name).map(|w| config.agents_of(w).into_iter().collect()).unwrap_or_default()
}

fn expand(s: &str, assets: &Path) -> String {
    s.replace("{assets}", &assets.display().to_string())
}

async fn version_of(program: &Path) -> Option<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::process::Command::new(program).arg("--version").kill_on_drop(true).output(),
    )
    .await
    .ok()?
    .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let text = if text.trim().is_empty() {
        String::from_utf8_lossy(&out.stderr).into_owned()
    } else {
        text.into_owned()
    };
    text.lines().find(|l| !l.trim().is_empty()).map(|l| l.trim().chars().take(80).collect())
}

/// Run every check.
pub async fn run_checks(loaded: &LoadedConfig) -> Vec<Check> {
    let mut out = Vec::new();
    let config = &loaded.config;
    let errors = loaded.problems.errors().count();
    let warnings = loaded.problems.0.iter().filter(|p| p.severity == Severity::Warning).count();
    out.push(match (errors, warnings) {
        (0, 0) => check("config", Status::Ok, format!("valid: {}", loaded.source.describe())),
        (0, w) => check(
            "config",
            Status::Warn,
            format!("valid with {w} warning(s); see `troupe validate`"),
        ),
        (e, _) => check(
            "config",
            Status::Fail,
            format!("{e} error(s); `troupe validate` lists them with file:line:col"),
        ),
    });

    // Data folder and store.
    let data = config.data_dir();
    let probe = data.join(format!(".doctor-{}", std::process::id()));
    let writable =
        std::fs::create_dir_all(&data).and_then(|_| std::fs::write(&probe, b"ok")).is_ok();
    let _ = std::fs::remove_file(&probe);
    out.push(if writable {
        check("data folder", Status::Ok, format!("{} is writable", data.display()))
    } else {
        check("data folder", Status::Fail, format!("{} is not writable; set TROUPE_HOME or settings.data_dir to a folder you can write", data.display()))
    });
    if writable {
        out.push(match Store::open(&data, StoreOptions::without_embeddings()) {
            Ok(store) => {
                let projects = store.project_ids().map(|p| p.len()).unwrap_or(0);
                check("store", Status::Ok, format!("opens ({projects} project(s) in memory)"))
            }
            Err(e @ ContextError::Locked { .. }) => check("store", Status::Warn, format!("{e}")),
            Err(e) => check("store", Status::Fail, format!("{e}")),
        });
    }

    // Embeddings.
    let assets = config.assets_dir();
    let hint = format!(
        "run `scripts/setup.sh --assets-only` to install it into {}, or point TROUPE_ASSETS \
         (settings.assets_dir) at the folder it is installed in",
        assets.display()
    );
    out.push(
        match tokio::task::spawn_blocking({
            let assets = assets.clone();
            move || OnnxEmbedder::from_assets_dir(&assets)
        })
        .await
        {
            Ok(Ok(_)) => check(
                "embeddings",
                Status::Ok,
                "all-MiniLM-L6-v2 and ONNX Runtime load; search is hybrid (BM25 + vectors)",
            ),
            Ok(Err(e)) => check(
                "embeddings",
                Status::Warn,
                format!("{e}; search falls back to BM25 only — {hint}"),
            ),
            Err(e) => check(
                "embeddings",
                Status::Warn,
                format!("loading the model crashed ({e}); search falls back to BM25 only"),
            ),
        },
    );

    // Agents.
    let needed = needed_agents(config);
    for (name, agent) in &config.agents {
        let label = format!("agent {name}");
        let severity = if needed.contains(name) { Status::Fail } else { Status::Warn };
        if !agent.enabled {
            out.push(check(label, Status::Ok, "disabled"));
            continue;
        }
        if config.settings.offline && !agent.is_local() {
            out.push(check(
                label,
                Status::Ok,
                "not used: offline mode refuses agents off this machine",
            ));
            continue;
        }
        match agent.kind {
            AgentKind::Cli => {
                let command = agent.command.clone().unwrap_or_default();
                match find_program(&command) {
                    Some(path) => {
                        let version = version_of(&path).await.unwrap_or_else(|| "version unknown".into());
                        out.push(check(label, Status::Ok, format!("{} ({version})", path.display())));
                    }
                    None => out.push(check(
                        label,
                        severity,
                        format!(
                            "`{command}` is not installed (not on PATH){}; install it or set enabled = false in [agents.{name}]",
                            if severity == Status::Fail { ", and the default workflow uses it" } else { "" }
                        ),
                    )),
                }
            }
            _ => {
                if let Some(var) = &agent.api_key_env
                    && std::env::var_os(var).is_none_or(|v| v.is_empty())
                {
                    out.push(check(
                        label.clone(),
                        severity,
                        format!("the API key variable ${var} is not set"),
                    ));
                    continue;
                }
                if let Some(server) = &agent.server {
                    let program = expand(&server.command, &assets);
                    let missing: Vec<String> = std::iter::once(program.clone())
                        .chain(
                            server
                                .args
                                .iter()
                                .filter(|a| a.contains("{assets}"))
                                .map(|a| expand(a, &assets)),
                        )
                        .filter(|p| !Path::new(p).exists())
                        .collect();
                    if missing.is_empty() {
                        out.push(check(
                            label,
                            Status::Ok,
                            format!(
                                "local server {program} is installed; troupe starts it on first use"
                            ),
                        ));
                    } else {
                        // A known model file: say how to get that one (setup --assets-only
                        // leaves the 1.5B out).
                        let pulls: Vec<String> = missing
                            .iter()
                            .filter_map(|p| troupe_adapters::catalog::by_file(p))
                            .map(|m| format!("`troupe models pull {}`", m.name))
                            .collect();
                        let others = missing.len() > pulls.len();
                        let how = match (pulls.is_empty(), others) {
                            (true, _) => hint.to_string(),
                            (false, false) => format!("{} installs it", pulls.join(", ")),
                            (false, true) => {
                                format!("{hint}; {} installs the model", pulls.join(", "))
                            }
                        };
                        out.push(check(
                            label,
                            severity,
                            format!("missing {}; {how}", missing.join(", ")),
                        ));
                    }
                } else if !agent.is_local() {
                    out.push(check(
                        label,
                        Status::Ok,
                        format!(
                            "{} (remote; not probed — `troupe test-agent {name} \"hi\"` checks it)",
                            agent.endpoint()
                        ),
                    ));
                }
            }
        }
    }
    // The local models (issue 15): installed, size, window, memory, speed when running.
    out.extend(local_models::checks(config, &needed).await);

    // Reachability of local endpoints that are not managed (a managed one starts on demand).
    let ctx = CallContext::new();
    for s in troupe_adapters::models::status(&config.agents, &ctx).await {
        let name = format!("endpoint {}", s.endpoint.url);
        if s.reachable {
            let models: Vec<String> = s.models.iter().map(|m| m.name.clone()).collect();
            out.push(check(
                name,
                Status::Ok,
                format!(
                    "reachable in {} ms; models: {}",
                    s.latency_ms.unwrap_or(0),
                    models.join(", ")
                ),
            ));
        } else if s.endpoint.managed {
            out.push(check(
                name,
                Status::Ok,
                s.note.unwrap_or_else(|| "not running; started on first use".into()),
            ));
        } else {
            let used = s.endpoint.agents.iter().any(|a| needed.contains(a));
            out.push(check(
                name,
                if used { Status::Fail } else { Status::Warn },
                format!(
                    "unreachable: {}; start the server or fix base_url of {}",
                    s.note.unwrap_or_default(),
                    s.endpoint.agents.join(", ")
                ),
            ));
        }
    }

    // Offline consistency.
    let local: Vec<&String> =
        config.agents.iter().filter(|(_, a)| a.enabled && a.is_local()).map(|(n, _)| n).collect();
    out.push(match (config.settings.offline, local.is_empty()) {
        (true, true) => check(
            "offline mode",
            Status::Fail,
            "offline mode is on but no enabled agent is on this machine",
        ),
        (true, false) => check(
            "offline mode",
            Status::Ok,
            format!(
                "on; local agents: {}",
                local.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ),
        (false, true) => check(
            "offline mode",
            Status::Warn,
            "no local agent is enabled: `troupe run --offline` cannot work",
        ),
        (false, false) => check(
            "offline mode",
            Status::Ok,
            format!(
                "off; `--offline` would use {}",
                local.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ),
    });
    out.push(telemetry_check(&TelemetryPlan::from_env(&config.telemetry_options())));
    out.push(validators_check(config).await);
    out
}

/// The validators a run in this project would use: configured, detected, or none (then
/// reviews are unverified).
async fn validators_check(config: &Config) -> Check {
    let v = match config.workflow(&config.settings.default_workflow) {
        Some(w) => config.validate_for(w),
        None => config.validate.clone(),
    };
    if !v.enabled {
        return check("validators", Status::Ok, "turned off in [validate]");
    }
    if !v.commands.is_empty() {
        return check("validators", Status::Ok, format!("configured: {}", v.commands.join(", ")));
    }
    let project = config.project_path();
    let dir = project.clone();
    match tokio::task::spawn_blocking(move || troupe_change::validate::detect(&dir)).await {
        Ok(Some(d)) => check(
            "validators",
            Status::Ok,
            format!("detected in {}: {} ({})", project.display(), d.commands.join(", "), d.reason),
        ),
        _ => check(
            "validators",
            Status::Warn,
            format!(
                "none detected in {}: reviews of changes there will be unverified; set [validate] commands",
                project.display()
            ),
        ),
    }
}

/// Where trace spans go (the plan is not acted on: no connection is opened).
fn telemetry_check(plan: &TelemetryPlan) -> Check {
    let status = match plan {
        TelemetryPlan::Enabled(_) => Status::Ok,
        TelemetryPlan::Refused { .. } => Status::Warn,
        TelemetryPlan::Disabled(_) => Status::Info,
    };
    check("telemetry", status, plan.describe())
}

/// `troupe doctor [--json]`: exit 1 on any failure.
pub fn doctor(loaded: &LoadedConfig, json: bool) -> Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let checks = rt.block_on(run_checks(loaded));
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "ok": failed == 0, "checks": checks })
            )?
        );
    } else {
        for c in &checks {
            let mark = match c.status {
                Status::Ok => "✅",
                Status::Warn => "⚠️ ",
                Status::Fail => "❌",
                Status::Info => "ℹ️ ",
            };
            println!("{mark} {}: {}", c.name, c.message);
        }
        if failed > 0 {
            println!("\n{failed} check(s) failed.");
        }
    }
    Ok(if failed == 0 { exit::OK } else { exit::FAILED })
}
