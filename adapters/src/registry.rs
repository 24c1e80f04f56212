//! Every configured agent with its full resilience stack, built once per process.
//!
//! ```no_run
//! # async fn demo(configs: std::collections::BTreeMap<String, troupe_adapters::AgentConfig>) -> troupe_adapters::Result<()> {
//! use troupe_adapters::registry::{AgentRegistry, RegistryOptions};
//! use troupe_adapters::resilience::OfflineMode;
//! use troupe_adapters::{AgentRequest, CallContext, ChunkSink, EventSink};
//!
//! let registry = AgentRegistry::build(&configs, RegistryOptions {
//!     offline: OfflineMode::resolve(false),
//!     assets_dir: "/home/me/.local/share/troupe/assets".into(),
//!     ..Default::default()
//! });
//! let agent = registry.agent("local-code")?;
//! let ctx = CallContext::new()
//!     .with_workdir("/path/to/project")
//!     .with_chunks(ChunkSink::new(|text| print!("{text}")))
//!     .with_events(EventSink::new(|event| eprintln!("{event:?}")));
//! let answer = agent.call(&AgentRequest::prompt("Say hello"), &ctx).await?;
//! println!("\n{} answered ({} tokens)", answer.agent, answer.usage.total());
//! registry.shutdown().await;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::agent::Agent;
use crate::cli::CliAgent;
use crate::config::{AgentConfig, AgentKind};
use crate::error::{AdapterError, Result};
use crate::http::{OllamaAgent, OpenAiAgent};
use crate::resilience::{
    Breaker, BreakerState, CircuitBreaker, Fallback, LimiterRegistry, OfflineGuard, OfflineMode,
    RateLimit, Retry,
};
use crate::server::{ManagedServer, ServerPool, WithServer};
use crate::telemetry::Traced;

/// Builds the bare adapter of one agent; [`build_adapter`] unless a test swaps in fakes.
pub type AdapterFactory = dyn Fn(&str, &AgentConfig) -> Result<Arc<dyn Agent>> + Send + Sync;

/// What the registry needs besides the agents' configuration.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Offline mode: see [`OfflineMode::resolve`].
    pub offline: OfflineMode,
    /// What `{assets}` expands to in managed server commands (`Config::assets_dir()`).
    pub assets_dir: PathBuf,
    /// The rate limiters; none means the process-wide [`LimiterRegistry::global`].
    pub limiters: Option<Arc<LimiterRegistry>>,
}

/// The bare adapter for `cfg`: [`CliAgent`], [`OpenAiAgent`] (openai, llamacpp) or
/// [`OllamaAgent`].
pub fn build_adapter(name: &str, cfg: &AgentConfig) -> Result<Arc<dyn Agent>> {
    Ok(match cfg.kind {
        AgentKind::Cli => Arc::new(CliAgent::new(name, cfg)?),
        AgentKind::Openai | AgentKind::Llamacpp => Arc::new(OpenAiAgent::new(name, cfg)?),
        AgentKind::Ollama => Arc::new(OllamaAgent::new(name, cfg)?),
    })
}

/// One agent's layers.
#[derive(Debug)]
struct Built {
    /// The adapter, with its managed server but no resilience.
    adapter: Arc<dyn Agent>,
    /// Its managed server, shared with every agent at the same address.
    server: Option<Arc<ManagedServer>>,
    /// Call span, offline guard, breaker, retry and rate limit around the adapter (no
    /// fallback).
    stack: Arc<dyn Agent>,
    breaker: Arc<CircuitBreaker>,
}

/// Every configured agent, each wrapped in its resilience stack; cheap to share (`Arc`).
#[derive(Debug)]
pub struct AgentRegistry {
    configs: BTreeMap<String, AgentConfig>,
    built: BTreeMap<String, Built>,
    /// Agents that could not be built, and why.
    broken: BTreeMap<String, AdapterError>,
    servers: ServerPool,
    offline: OfflineMode,
    /// Makes the bare adapters: kept so that [`AgentRegistry::fresh`] can make new ones.
    factory: Factory,
    limiters: Option<Arc<LimiterRegistry>>,
}

/// The registry's [`AdapterFactory`].
struct Factory(Box<AdapterFactory>);

impl std::fmt::Debug for Factory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdapterFactory")
    }
}

impl AgentRegistry {
    /// Build every agent of `agents` with the real adapters.
    pub fn build(
        agents: &BTreeMap<String, AgentConfig>,
        options: RegistryOptions,
    ) -> AgentRegistry {
        AgentRegistry::build_with(agents, options, build_adapter)
    }

    /// Build every agent of `agents`, making the bare adapters with `factory` (tests use it
    /// to put fakes under the real wrappers).
    pub fn build_with(
        agents: &BTreeMap<String, AgentConfig>,
        options: RegistryOptions,
        factory: impl Fn(&str, &AgentConfig) -> Result<Arc<dyn Agent>> + Send + Sync + 'static,
    ) -> AgentRegistry {
        let mut registry = AgentRegistry {
            configs: agents.clone(),
            built: BTreeMap::new(),
            broken: BTreeMap::new(),
            servers: ServerPool::default(),
            offline: options.offline,
            factory: Factory(Box::new(factory)),
            limiters: options.limiters,
        };
        for (name, cfg) in agents {
            let adapter = (registry.factory.0)(name, cfg).and_then(|a| {
                let server = registry.servers.server_for(name, cfg, &options.assets_dir)?;
                Ok((a, server))
            });
            let (adapter, server) = match adapter {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(agent = %name, error = %e, "agent not available");
                    registry.broken.insert(name.clone(), e);
                    continue;
                }
            };
            let adapter = with_server(adapter, server.as_ref());
            let breaker = Arc::new(CircuitBreaker::new(name, &cfg.breaker));
            let stack = registry.wrap(name, cfg, adapter.clone(), &breaker);
            registry.built.insert(name.clone(), Built { adapter, server, stack, breaker });
        }
        registry
    }

    /// The resilience layers around `adapter`: call span, offline guard, `breaker`, retry,
    /// rate limit.
    fn wrap(
        &self,
        name: &str,
        cfg: &AgentConfig,
        adapter: Arc<dyn Agent>,
        breaker: &Arc<CircuitBreaker>,
    ) -> Arc<dyn Agent> {
        let limiters: &LimiterRegistry = match &self.limiters {
            Some(l) => l,
            None => LimiterRegistry::global(),
        };
        let limited: Arc<dyn Agent> =
            Arc::new(RateLimit::new(adapter, limiters.get(name, &cfg.rate_limit)));
        let retried: Arc<dyn Agent> = Arc::new(Retry::new(limited, cfg.retry.clone()));
        let guarded: Arc<dyn Agent> = Arc::new(Breaker::new(retried, breaker.clone()));
        let offline: Arc<dyn Agent> = Arc::new(OfflineGuard::new(guarded, self.offline.clone()));
        Arc::new(Traced::new(offline))
    }

    /// A new instance of agent `name`'s stack (no fallbacks): a fresh adapter from its
    /// configuration, around the same managed server, rate limiter and circuit breaker (the
    /// breaker's state is the agent's, not the instance's). What an agent's actor is
    /// restarted with after its adapter panicked.
    pub fn fresh(&self, name: &str) -> Result<Arc<dyn Agent>> {
        self.stack(name)?;
        let (cfg, built) = match (self.configs.get(name), self.built.get(name)) {
            (Some(c), Some(b)) => (c, b),
            _ => return Err(self.unknown(name)),
        };
        let adapter = with_server((self.factory.0)(name, cfg)?, built.server.as_ref());
        Ok(self.wrap(name, cfg, adapter, &built.breaker))
    }

    fn unknown(&self, name: &str) -> AdapterError {
        let known: Vec<&str> = self.configs.keys().map(String::as_str).collect();
        AdapterError::Config {
            agent: name.to_string(),
            message: format!("no agent of that name is configured (known: {})", known.join(", ")),
        }
    }

    /// The agent `name` with its whole stack but no fallbacks: the error says why it cannot
    /// be used (unknown, disabled, could not be built).
    pub fn stack(&self, name: &str) -> Result<Arc<dyn Agent>> {
        let cfg = self.configs.get(name).ok_or_else(|| self.unknown(name))?;
        if !cfg.enabled {
            return Err(AdapterError::Config {
                agent: name.to_string(),
                message: format!("the agent is disabled (enabled = false in [agents.{name}])"),
            });
        }
        if let Some(e) = self.broken.get(name) {
            return Err(e.clone());
        }
        self.built.get(name).map(|b| b.stack.clone()).ok_or_else(|| self.unknown(name))
    }

    /// The agent `name` with its whole stack and its configured fallback chain.
    pub fn agent(&self, name: &str) -> Result<Arc<dyn Agent>> {
        self.with_fallbacks(name, &[])
    }

    /// The agent `name` with its whole stack; when it fails, the agents of its
    /// [`fallback_chain`](crate::config::fallback_chain) with `extra` (a workflow step's
    /// fallbacks), each once, in order. Unbuildable fallbacks are skipped; the primary must
    /// be usable. (For calls outside a run; a run's calls go through each agent's actor.)
    pub fn with_fallbacks(&self, name: &str, extra: &[String]) -> Result<Arc<dyn Agent>> {
        let primary = self.stack(name)?;
        let mut chain = Vec::new();
        for f in crate::config::fallback_chain(&self.configs, name, extra).iter().skip(1) {
            match self.stack(f) {
                Ok(a) => chain.push(a),
                Err(e) => {
                    tracing::debug!(agent = %name, fallback = %f, error = %e, "fallback skipped")
                }
            }
        }
        if chain.is_empty() {
            return Ok(primary);
        }
        Ok(Arc::new(Fallback::new(primary, chain)))
    }

    /// The agent `name` without any wrapper (its managed server included): for
    /// benchmarks and diagnostics.
    pub fn adapter(&self, name: &str) -> Result<Arc<dyn Agent>> {
        if let Some(e) = self.broken.get(name) {
            return Err(e.clone());
        }
        self.built.get(name).map(|b| b.adapter.clone()).ok_or_else(|| self.unknown(name))
    }

    /// Agents by name, as configured.
    pub fn configs(&self) -> &BTreeMap<String, AgentConfig> {
        &self.configs
    }

    /// Agents that could not be built, and why.
    pub fn broken(&self) -> &BTreeMap<String, AdapterError> {
        &self.broken
    }

    /// The breaker of `name`.
    pub fn breaker(&self, name: &str) -> Option<Arc<CircuitBreaker>> {
        self.built.get(name).map(|b| b.breaker.clone())
    }

    /// Every agent's breaker state.
    pub fn breaker_states(&self) -> BTreeMap<String, BreakerState> {
        self.built.iter().map(|(n, b)| (n.clone(), b.breaker.state())).collect()
    }

    /// The offline switch every guard of this registry reads.
    pub fn offline(&self) -> &OfflineMode {
        &self.offline
    }

    /// The managed local servers.
    pub fn servers(&self) -> impl Iterator<Item = &Arc<ManagedServer>> {
        self.servers.servers()
    }

    /// Stop every managed server troupe started (also done when the registry is dropped).
    pub async fn shutdown(&self) {
        self.servers.stop_all().await;
    }
}

fn with_server(adapter: Arc<dyn Agent>, server: Option<&Arc<ManagedServer>>) -> Arc<dyn Agent> {
    match server {
        Some(server) => Arc::new(WithServer::new(adapter, server.clone())),
        None => adapter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<AgentRegistry>();
        assert_send_sync::<Arc<dyn Agent>>();
    }
}
