//! `troupe doctor`'s lines about the local models: per model file that a local agent's
//! managed server loads, whether it is installed, its size, context window, whether the
//! machine has the memory for it, and — when its server is already running — tokens per
//! second from a short warm-up. A server that is not running is not started (doctor stays
//! fast); it starts on first use.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use troupe_adapters::catalog::{self, ModelFiles, ModelSpec};
use troupe_adapters::http::OpenAiAgent;
use troupe_adapters::{AgentConfig, AgentKind, CallContext};
use troupe_workflows::Config;

use super::doctor::{Check, Status};

/// Memory available now (`MemAvailable` of /proc/meminfo), in bytes.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// The value after `flag` in a server's arguments.
fn arg_after<'a>(args: &'a [String], flags: &[&str]) -> Option<&'a str> {
    let i = args.iter().position(|a| flags.contains(&a.as_str()))?;
    args.get(i + 1).map(String::as_str)
}

/// The window one request gets from the server's arguments: `-c` shared by `-np` slots.
fn configured_window(cfg: &AgentConfig) -> Option<u32> {
    if let Some(n) = cfg.context_tokens {
        return Some(n);
    }
    let args = &cfg.server.as_ref()?.args;
    let ctx: u32 = arg_after(args, &["-c", "--ctx-size"])?.parse().ok()?;
    let slots: u32 =
        arg_after(args, &["-np", "--parallel"]).and_then(|n| n.parse().ok()).unwrap_or(1);
    Some(ctx / slots.max(1))
}

/// One check per model file the enabled local agents' managed servers load.
pub async fn checks(config: &Config, needed: &std::collections::BTreeSet<String>) -> Vec<Check> {
    let assets = config.assets_dir();
    // Model file → the agents that use it (in name order).
    let mut by_file: BTreeMap<String, Vec<(&String, &AgentConfig)>> = BTreeMap::new();
    for (name, agent) in &config.agents {
        if !agent.enabled || agent.kind != AgentKind::Llamacpp {
            continue;
        }
        if let Some(m) = catalog::server_model_arg(agent) {
            let file = m.replace("{assets}", &assets.display().to_string());
            by_file.entry(file).or_default().push((name, agent));
        }
    }
    let available = mem_available();
    let mut out = Vec::new();
    for (file, agents) in by_file {
        let names: Vec<&str> = agents.iter().map(|(n, _)| n.as_str()).collect();
        let spec = catalog::by_file(&file);
        let label = format!("model {}", spec.map(|s| s.name).unwrap_or(file.as_str()));
        let is_needed = names.iter().any(|n| needed.contains(*n));
        out.push(model_check(&label, &file, spec, &agents, &assets, available, is_needed).await);
    }
    out
}

async fn model_check(
    label: &str,
    file: &str,
    spec: Option<&'static ModelSpec>,
    agents: &[(&String, &AgentConfig)],
    assets: &Path,
    available: Option<u64>,
    needed: bool,
) -> Check {
    let names: Vec<&str> = agents.iter().map(|(n, _)| n.as_str()).collect();
    let used_by = format!("for {}", names.join(", "));
    let missing = if needed { Status::Fail } else { Status::Warn };
    let size = match std::fs::metadata(file) {
        Ok(m) => m.len(),
        Err(_) => {
            let how = match spec {
                Some(s) => {
                    format!("`troupe models pull {}` or `scripts/setup.sh` installs it", s.name)
                }
                None => "fix the server's -m argument".to_string(),
            };
            return Check {
                name: label.to_string(),
                status: missing,
                message: format!("{file} is not installed ({used_by}); {how}"),
            };
        }
    };
    if let Some(s) = spec
        && !s.state(assets, false).is_usable()
    {
        return Check {
            name: label.to_string(),
            status: missing,
            message: format!(
                "{file} is damaged (expected {} bytes, sha256 {}); `troupe models pull {}` installs it again",
                s.bytes, s.sha256, s.name
            ),
        };
    }
    let mut parts = vec![format!("{} {}", gb(size), used_by)];
    let (first_name, first_cfg) = agents[0];
    // Is the server up already? Then ask it (window, speed); otherwise leave it be.
    let running = match OpenAiAgent::new(first_name, &quick(first_cfg)) {
        Ok(a) => a.health(&CallContext::new()).await.is_ok().then_some(a),
        Err(_) => None,
    };
    let window = match &running {
        Some(a) => troupe_adapters::Agent::context_window(a, &CallContext::new()).await,
        None => None,
    }
    .or_else(|| configured_window(first_cfg));
    if let Some(w) = window {
        parts.push(format!("context {w} tokens"));
    }
    let mut status = Status::Ok;
    let need = spec.map(|s| s.memory_bytes).unwrap_or(size + size / 2);
    match available {
        Some(avail) if running.is_none() && avail < need => {
            status = Status::Warn;
            parts.push(format!(
                "needs ~{} of memory but {} is available: the server may fail to start or swap; \
                 use a smaller model (local-fast) or free memory",
                gb(need),
                gb(avail)
            ));
        }
        Some(avail) => {
            parts.push(format!("needs ~{} of memory, {} available", gb(need), gb(avail)))
        }
        None => parts.push(format!("needs ~{} of memory", gb(need))),
    }
    match running {
        Some(a) => {
            let started = tokio::time::Instant::now();
            let measured = tokio::time::timeout(
                Duration::from_secs(60),
                troupe_adapters::speed::measure(
                    &a,
                    "Write a haiku about the sea.",
                    16,
                    &CallContext::new(),
                ),
            )
            .await;
            let took = started.elapsed().as_secs_f64();
            match measured {
                Ok(Ok(s)) => parts.push(format!(
                    "running: {:.1} tokens/s decode, first token in {:.0} ms (warm-up took {took:.1} s)",
                    s.decode_tokens_per_sec(),
                    s.first_token_ms
                )),
                Ok(Err(e)) => {
                    status = Status::Warn;
                    parts.push(format!("running, but the warm-up failed: {e}"));
                }
                Err(_) => {
                    status = Status::Warn;
                    parts.push("running, but the warm-up took over 60 s".to_string());
                }
            }
        }
        None => parts.push(
            "server not running (starts on first use; speed not measured — see docs/BENCHMARKS.md)"
                .to_string(),
        ),
    }
    Check { name: label.to_string(), status, message: parts.join("; ") }
}

/// The agent's configuration with short time bounds, for probing.
fn quick(cfg: &AgentConfig) -> AgentConfig {
    let mut c = cfg.clone();
    c.connect_timeout_secs = 1;
    c.timeout_secs = c.timeout_secs.min(60);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_windows() {
        let meminfo =
            "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(parse_mem_available(meminfo), Some(20_000_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        let c = Config::builtin();
        assert_eq!(configured_window(c.agent("local-code").unwrap()), Some(8192));
        let mut a = c.agent("local-code").unwrap().clone();
        if let Some(s) = a.server.as_mut() {
            let i = s.args.iter().position(|x| x == "-np").unwrap();
            s.args[i + 1] = "2".into();
        }
        assert_eq!(configured_window(&a), Some(4096), "-c is shared by the slots");
        a.context_tokens = Some(1000);
        assert_eq!(configured_window(&a), Some(1000), "the configured window wins");
    }
}
