//! Assembling a runtime from configuration: the store (project memory and run records),
//! every agent's adapter stack, metrics.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;
use troupe_adapters::agent::{Agent, AgentInfo, AgentRequest, AgentResponse, CallContext};
use troupe_adapters::config::AgentConfig;
use troupe_adapters::error::AdapterError;
use troupe_adapters::registry::{AgentRegistry, RegistryOptions};
use troupe_adapters::resilience::OfflineMode;
use troupe_adapters::telemetry::Traced;
use troupe_context::{Collection, LockWait, Owner, Store, StoreOptions};
use troupe_workflows::Config;

use crate::agents::AgentSource;
use crate::audit::AuditLog;
use crate::context_memory::ContextMemory;
use crate::error::Result;
use crate::runtime::{Runtime, RuntimeParts};
use crate::store::{Backend, Journaled};

/// The collection run records live in.
pub const RUNS_COLLECTION: &str = "runs";

/// Run records in a `troupe-context` collection (sled). A write (or batch) is flushed; an
/// [`Backend::apply`] is not (the records' journal makes it durable).
#[derive(Debug, Clone)]
pub struct CollectionBackend(pub Collection);

impl Backend for CollectionBackend {
    fn put(&self, key: &str, value: &Value) -> Result<()> {
        Ok(self.0.put(key, value)?)
    }

    fn get(&self, key: &str) -> Result<Option<Value>> {
        Ok(self.0.get(key)?)
    }

    fn scan(&self, prefix: &str) -> Result<Vec<(String, Value)>> {
        Ok(self.0.scan_prefix(prefix)?)
    }

    fn remove(&self, key: &str) -> Result<()> {
        self.0.remove::<Value>(key)?;
        Ok(())
    }

    fn write(&self, writes: &[crate::backend::Write]) -> Result<()> {
        Ok(self.0.write_batch(writes)?)
    }

    fn apply(&self, writes: &[crate::backend::Write]) -> Result<()> {
        Ok(self.0.apply_batch(writes)?)
    }

    fn apply_encoded(&self, writes: &[crate::backend::Encoded]) -> Result<()> {
        Ok(self.0.apply_encoded(writes)?)
    }

    fn flush(&self) -> Result<()> {
        Ok(self.0.flush()?)
    }
}

/// The run records of `store`: its `runs` collection behind the records' journal
/// (`<store>/runs.journal`), so a write is durable with one small sync.
fn runs_backend(store: &Store) -> Result<Arc<dyn Backend>> {
    let collection: Arc<dyn Backend> =
        Arc::new(CollectionBackend(store.collection(RUNS_COLLECTION)?));
    Ok(Arc::new(Journaled::open(collection, &store.root().join(JOURNAL_FILE))?))
}

/// The run records' journal, in the store's folder.
pub const JOURNAL_FILE: &str = "runs.journal";

/// A record backend over a store opened (without embeddings) in `dir`; for benchmarks and
/// tests of the real persistence path.
pub fn store_backend(dir: &Path) -> Result<Arc<dyn Backend>> {
    let store = Store::open_in(dir, StoreOptions::without_embeddings())?;
    runs_backend(&store)
}

/// Open the store in the configuration's data folder, build every configured agent's
/// adapter stack, and start the runtime. Call inside an actix system.
pub fn open(config: Config, config_path: Option<PathBuf>, offline: bool) -> Result<Runtime> {
    open_waiting(config, config_path, offline, LockWait::NONE, &mut |_| {})
}

/// [`open`], waiting up to `wait.limit` for a store another process holds
/// ([`Store::open_waiting`]; `on_wait` hears whom it waits for). Blocks the thread while it
/// waits: call it before anything else runs on it.
pub fn open_waiting(
    config: Config,
    config_path: Option<PathBuf>,
    offline: bool,
    wait: LockWait,
    on_wait: &mut dyn FnMut(Option<&Owner>),
) -> Result<Runtime> {
    let mut config = config;
    config.settings.offline |= offline;
    let data_dir = config.data_dir();
    let assets = config.assets_dir();
    let store =
        Store::open_waiting(&data_dir, StoreOptions::with_assets(assets.clone()), wait, on_wait)?;
    let backend = runs_backend(&store)?;
    let memory = Arc::new(ContextMemory::new(store.clone()));
    let registry = Arc::new(AgentRegistry::build(
        &config.agents,
        RegistryOptions {
            offline: OfflineMode::resolve(config.settings.offline),
            assets_dir: assets,
            limiters: None,
        },
    ));
    let agents = agents_of(&registry);
    let redactor = config.redactor();
    let audit = AuditLog::new(Some(crate::audit::audit_dir(&data_dir)), redactor.clone());
    let runtime = Runtime::new(RuntimeParts {
        config_path,
        memory,
        registry: Some(registry),
        context: Some(store),
        audit,
        redactor,
        workspaces: Some(data_dir.join("workspaces")),
        ..RuntimeParts::new(config, agents, backend)?
    })?;
    // Calls made outside runs (`troupe test-agent`) count in the metrics too.
    crate::usage::CallLog::new(&data_dir).seed(runtime.metrics());
    Ok(runtime)
}

/// Every configured agent as its actor's source: each (re)start builds a fresh stack from
/// the agent's configuration ([`AgentRegistry::fresh`]: a new adapter around the same
/// breaker, limiter and managed server), bounded by its `max_concurrent_calls`. An agent
/// that cannot be built (disabled, misconfigured) answers every call with the reason.
/// Fallbacks are not part of a stack: the runtime's call path tries the chain, each agent
/// through its own actor.
pub fn agents_of(registry: &Arc<AgentRegistry>) -> BTreeMap<String, AgentSource> {
    registry
        .configs()
        .iter()
        .map(|(name, cfg)| {
            let (registry, n, c) = (registry.clone(), name.clone(), cfg.clone());
            let source = AgentSource::new(move || {
                registry.fresh(&n).unwrap_or_else(|error| unusable(&n, &c, error))
            })
            .with_max_calls(cfg.max_concurrent_calls.map(|n| n as usize));
            (name.clone(), source)
        })
        .collect()
}

/// An agent that answers every call with `error`, traced like the others (its refusals
/// are `troupe.call` spans too).
fn unusable(name: &str, cfg: &AgentConfig, error: AdapterError) -> Arc<dyn Agent> {
    let unusable = Arc::new(Unusable {
        info: AgentInfo {
            name: name.to_string(),
            kind: cfg.kind.to_string(),
            model: cfg.model.clone(),
            endpoint: cfg.endpoint(),
            local: cfg.is_local(),
        },
        error,
    });
    Arc::new(Traced::new(unusable))
}

/// An agent that cannot be used, and why.
#[derive(Debug)]
struct Unusable {
    info: AgentInfo,
    error: AdapterError,
}

#[async_trait]
impl Agent for Unusable {
    fn info(&self) -> &AgentInfo {
        &self.info
    }

    async fn call(
        &self,
        _: &AgentRequest,
        _: &CallContext,
    ) -> std::result::Result<AgentResponse, AdapterError> {
        Err(self.error.clone())
    }
}
