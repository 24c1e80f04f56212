//! Local model management: what each configured local endpoint serves, and pulling or
//! removing models on Ollama servers.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::agent::CallContext;
use crate::config::{AgentConfig, AgentKind};
use crate::error::{AdapterError, Result};
use crate::http::{LlamaHealth, ModelInfo, OllamaClient, OpenAiAgent, PullProgress};

/// One local model server, and the agents that use it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LocalEndpoint {
    /// The server root (`http://127.0.0.1:8765`).
    pub url: String,
    /// The API it speaks.
    pub kind: AgentKind,
    /// The agents configured against it.
    pub agents: Vec<String>,
    /// Whether troupe starts it on demand.
    pub managed: bool,
    /// The configuration of its first agent (used to reach it).
    #[serde(skip)]
    config: AgentConfig,
}

/// What `troupe models status` reports for one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EndpointStatus {
    /// The endpoint.
    pub endpoint: LocalEndpoint,
    /// Whether it answered.
    pub reachable: bool,
    /// Round-trip time of the model list request.
    pub latency_ms: Option<u64>,
    /// llama.cpp's `/health` (`ok`, `loading`), when it has one.
    pub health: Option<String>,
    /// The models it serves.
    pub models: Vec<ModelInfo>,
    /// Why it could not be reached, or a note (a managed server that is not running yet).
    pub note: Option<String>,
}

fn root_of(cfg: &AgentConfig) -> Option<String> {
    let base = cfg.base_url.as_deref()?.trim().trim_end_matches('/');
    let root = base.strip_suffix("/v1").or_else(|| base.strip_suffix("/api")).unwrap_or(base);
    Some(root.to_string())
}

/// The enabled HTTP agents on this machine, grouped by server.
pub fn local_endpoints(agents: &BTreeMap<String, AgentConfig>) -> Vec<LocalEndpoint> {
    let mut out: Vec<LocalEndpoint> = Vec::new();
    for (name, cfg) in agents {
        if !cfg.enabled || !cfg.kind.is_http() || !cfg.is_local() {
            continue;
        }
        let Some(url) = root_of(cfg) else { continue };
        match out.iter_mut().find(|e| e.url == url) {
            Some(e) => {
                e.agents.push(name.clone());
                e.managed |= cfg.server.is_some();
            }
            None => out.push(LocalEndpoint {
                url,
                kind: cfg.kind,
                agents: vec![name.clone()],
                managed: cfg.server.is_some(),
                config: cfg.clone(),
            }),
        }
    }
    out
}

fn short_timeouts(cfg: &AgentConfig) -> AgentConfig {
    let mut c = cfg.clone();
    c.timeout_secs = c.timeout_secs.min(15);
    c.connect_timeout_secs = c.connect_timeout_secs.min(3);
    c
}

/// The models an endpoint serves.
pub async fn list_models(endpoint: &LocalEndpoint, ctx: &CallContext) -> Result<Vec<ModelInfo>> {
    let name = endpoint.agents.first().map(String::as_str).unwrap_or("local");
    let cfg = short_timeouts(&endpoint.config);
    match endpoint.kind {
        AgentKind::Ollama => OllamaClient::new(name, &cfg)?.tags(ctx).await,
        _ => {
            let mut c = cfg;
            c.model.get_or_insert_with(|| "default".into());
            OpenAiAgent::new(name, &c)?.list_models(ctx).await
        }
    }
}

/// Reach every endpoint: reachable, health, models served, latency.
pub async fn status(
    agents: &BTreeMap<String, AgentConfig>,
    ctx: &CallContext,
) -> Vec<EndpointStatus> {
    let mut out = Vec::new();
    for endpoint in local_endpoints(agents) {
        let started = Instant::now();
        let listed = list_models(&endpoint, ctx).await;
        let latency = started.elapsed();
        let health = if endpoint.kind == AgentKind::Llamacpp && listed.is_ok() {
            let name = endpoint.agents.first().map(String::as_str).unwrap_or("local");
            match OpenAiAgent::new(name, &short_timeouts(&endpoint.config)) {
                Ok(a) => match a.health(ctx).await {
                    Ok(LlamaHealth::Ok) => Some("ok".to_string()),
                    Ok(LlamaHealth::Loading) => Some("loading".to_string()),
                    Err(_) => None,
                },
                Err(_) => None,
            }
        } else {
            None
        };
        let status = match listed {
            Ok(models) => EndpointStatus {
                endpoint,
                reachable: true,
                latency_ms: Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX)),
                health,
                models,
                note: None,
            },
            Err(e) => {
                let note = if endpoint.managed && e.is_transient() {
                    "not running; troupe starts it on first use".to_string()
                } else {
                    e.to_string()
                };
                EndpointStatus {
                    endpoint,
                    reachable: false,
                    latency_ms: None,
                    health: None,
                    models: Vec::new(),
                    note: Some(note),
                }
            }
        };
        out.push(status);
    }
    out
}

/// The endpoint a pull or remove goes to: the one of agent `agent`, or the only Ollama
/// endpoint configured.
pub fn ollama_target(
    agents: &BTreeMap<String, AgentConfig>,
    agent: Option<&str>,
    what: &str,
) -> Result<LocalEndpoint> {
    let endpoints = local_endpoints(agents);
    let chosen = match agent {
        Some(a) => {
            let cfg = agents.get(a).ok_or_else(|| AdapterError::Config {
                agent: a.to_string(),
                message: "no agent of that name is configured".into(),
            })?;
            let root = root_of(cfg);
            endpoints.into_iter().find(|e| Some(&e.url) == root.as_ref()).ok_or_else(|| {
                AdapterError::Config {
                    agent: a.to_string(),
                    message: "the agent is not an enabled local HTTP agent".into(),
                }
            })?
        }
        None => {
            let mut ollama: Vec<LocalEndpoint> =
                endpoints.iter().filter(|e| e.kind == AgentKind::Ollama).cloned().collect();
            match ollama.len() {
                1 => ollama.remove(0),
                0 => {
                    let url =
                        endpoints.first().map(|e| e.url.clone()).unwrap_or_else(|| "-".into());
                    return Err(AdapterError::Unsupported {
                        what: what.to_string(),
                        endpoint: url,
                        hint: "only Ollama servers download and delete models; no Ollama agent \
                               is configured (llama.cpp serves the model file it was started with)"
                            .into(),
                    });
                }
                _ => {
                    let names: Vec<String> =
                        ollama.iter().flat_map(|e| e.agents.first().cloned()).collect();
                    return Err(AdapterError::Config {
                        agent: names.join(", "),
                        message: "several Ollama servers are configured; name one with --agent"
                            .into(),
                    });
                }
            }
        }
    };
    if chosen.kind != AgentKind::Ollama {
        return Err(AdapterError::Unsupported {
            what: what.to_string(),
            endpoint: chosen.url,
            hint: "only Ollama servers download and delete models; llama.cpp serves the model \
                   file it was started with (change the server's -m argument instead)"
                .into(),
        });
    }
    Ok(chosen)
}

fn client_for(endpoint: &LocalEndpoint, total: Duration) -> Result<OllamaClient> {
    let name = endpoint.agents.first().map(String::as_str).unwrap_or("ollama");
    let mut cfg = endpoint.config.clone();
    cfg.timeout_secs = total.as_secs().max(1);
    OllamaClient::new(name, &cfg)
}

/// Download `model` to an Ollama endpoint, reporting progress. Allowed up to 6 hours.
pub async fn pull(
    endpoint: &LocalEndpoint,
    model: &str,
    ctx: &CallContext,
    progress: impl FnMut(&PullProgress) + Send,
) -> Result<()> {
    client_for(endpoint, Duration::from_secs(6 * 3600))?.pull(model, ctx, progress).await
}

/// Delete `model` from an Ollama endpoint.
pub async fn remove(endpoint: &LocalEndpoint, model: &str, ctx: &CallContext) -> Result<()> {
    client_for(endpoint, Duration::from_secs(60))?.delete(model, ctx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(kind: AgentKind, url: &str) -> AgentConfig {
        let mut c = AgentConfig::new(kind);
        c.base_url = Some(url.into());
        c.model = Some("m".into());
        c
    }

    #[test]
    fn endpoints_are_grouped_by_server() {
        let agents = BTreeMap::from([
            ("a".to_string(), http(AgentKind::Llamacpp, "http://127.0.0.1:8765/v1")),
            ("b".to_string(), http(AgentKind::Llamacpp, "http://127.0.0.1:8765/v1/")),
            ("o".to_string(), http(AgentKind::Ollama, "http://localhost:11434")),
            ("cloud".to_string(), http(AgentKind::Openai, "https://api.example.com/v1")),
        ]);
        let e = local_endpoints(&agents);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].url, "http://127.0.0.1:8765");
        assert_eq!(e[0].agents, ["a", "b"]);
        assert_eq!(ollama_target(&agents, None, "pull").unwrap().url, "http://localhost:11434");
        let err = ollama_target(&agents, Some("a"), "pull").unwrap_err();
        assert!(err.to_string().contains("not supported by this server"), "{err}");
    }
}
