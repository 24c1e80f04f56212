//! `troupe models status|list|pull|remove`: the local model servers.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Result;
use serde_json::json;
use troupe_adapters::models::{self, EndpointStatus};
use troupe_adapters::{AdapterError, AgentConfig, CallContext, CancellationToken};
use troupe_workflows::Config;

use super::exit;
use crate::output::Table;

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

/// `troupe models list`.
pub async fn list(config: &Config, json: bool) -> Result<u8> {
    let agents = enabled(config);
    let statuses = models::status(&agents, &interruptible()).await;
    let mut rows = Vec::new();
    for s in &statuses {
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
    let code = if statuses.iter().any(failed) { exit::FAILED } else { exit::OK };
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(code);
    }
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
    Ok(code)
}

fn fail(e: &AdapterError) -> u8 {
    eprintln!("troupe: {e}");
    match e {
        AdapterError::Unsupported { .. } | AdapterError::Config { .. } => exit::USAGE,
        _ => exit::FAILED,
    }
}

/// `troupe models pull NAME`: download a model to an Ollama server, with a progress bar.
pub async fn pull(config: &Config, agent: Option<&str>, name: &str, json: bool) -> Result<u8> {
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

/// `troupe models remove NAME`: delete a model from an Ollama server.
pub async fn remove(config: &Config, agent: Option<&str>, name: &str, json: bool) -> Result<u8> {
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
