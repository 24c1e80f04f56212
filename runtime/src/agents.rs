//! One actor per configured agent: it owns its agent's stack and is the only way the runtime
//! calls it.
//!
//! The actor builds its stack from an [`AgentSource`] when it starts and builds a fresh one
//! whenever it is restarted: a panicking adapter does not take the process down — the call's
//! future runs under `catch_unwind`, its caller gets [`AdapterError::Failed`], and the actor
//! stops, so its actix supervisor restarts it and the (possibly broken) instance is dropped.
//! Calls still under way on the old instance end with a clear error; later calls reach the
//! fresh one. When the agent's configuration bounds its concurrent calls
//! (`max_concurrent_calls`, e.g. 1 for a local server with one slot), the actor admits that
//! many at a time and queues the rest.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::prelude::*;
use futures::FutureExt;
use tokio::sync::Semaphore;
use tracing::Instrument;
use troupe_adapters::agent::{Agent, AgentRequest, AgentResponse, CallContext};
use troupe_adapters::error::AdapterError;

/// Builds an agent's stack: once when its actor starts and again after every restart.
pub type BuildAgent = dyn Fn() -> Arc<dyn Agent> + Send + Sync;

/// Where an agent actor gets its stack from, and how many calls it admits at once.
#[derive(Clone)]
pub struct AgentSource {
    build: Arc<BuildAgent>,
    max_calls: Option<usize>,
}

impl fmt::Debug for AgentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentSource").field("max_calls", &self.max_calls).finish_non_exhaustive()
    }
}

impl AgentSource {
    /// A source that calls `build` for every (re)start: a restart gets a fresh instance.
    pub fn new(build: impl Fn() -> Arc<dyn Agent> + Send + Sync + 'static) -> AgentSource {
        AgentSource { build: Arc::new(build), max_calls: None }
    }

    /// A source that hands out the same instance every time (a restart keeps it): for an
    /// agent that has no configuration to be rebuilt from (tests, examples).
    pub fn shared(agent: Arc<dyn Agent>) -> AgentSource {
        AgentSource::new(move || agent.clone())
    }

    /// At most `n` calls at once (at least 1); the others wait their turn in the actor.
    pub fn with_max_calls(mut self, n: Option<usize>) -> AgentSource {
        self.max_calls = n.map(|n| n.max(1));
        self
    }

    fn build(&self) -> Arc<dyn Agent> {
        (self.build)()
    }
}

/// Ask the agent to answer a request.
#[derive(Debug, Message)]
#[rtype(result = "Result<AgentResponse, AdapterError>")]
pub struct Call {
    /// The request.
    pub request: AgentRequest,
    /// Cancellation, working directory, chunk and event sinks.
    pub ctx: CallContext,
    /// The caller's span: the call runs inside it although the actor polls it on its own
    /// task (so a call's spans stay children of its step's).
    pub span: tracing::Span,
}

/// Ask the agent for its model's context window (configured, or as its server reports).
#[derive(Debug, Message)]
#[rtype(result = "Option<u32>")]
pub struct ContextWindow;

/// Ask the agent to count a text's tokens with its model's own tokenizer.
#[derive(Debug, Message)]
#[rtype(result = "Option<u64>")]
pub struct CountTokens(pub String);

/// The actor of one agent.
#[derive(Debug)]
pub struct AgentActor {
    name: String,
    source: AgentSource,
    /// The stack calls go to: built from `source` at start and after each restart.
    agent: Arc<dyn Agent>,
    /// Admits `max_calls` calls at once (none: no bound). Kept across restarts: the bound
    /// is the agent's, not the instance's.
    slots: Option<Arc<Semaphore>>,
    restarts: Arc<AtomicU64>,
}

impl AgentActor {
    fn new(name: String, source: AgentSource, restarts: Arc<AtomicU64>) -> AgentActor {
        let slots = source.max_calls.map(|n| Arc::new(Semaphore::new(n)));
        AgentActor { name, agent: source.build(), source, slots, restarts }
    }
}

impl Actor for AgentActor {
    type Context = Context<Self>;
}

impl Supervised for AgentActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        // A fresh stack: the instance that panicked may be in any state.
        self.agent = self.source.build();
        self.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(agent = %self.name, "agent actor restarted with a fresh adapter after a panic");
    }
}

impl Handler<ContextWindow> for AgentActor {
    type Result = ResponseFuture<Option<u32>>;

    fn handle(&mut self, _: ContextWindow, _ctx: &mut Context<Self>) -> Self::Result {
        let agent = self.agent.clone();
        Box::pin(async move { agent.context_window(&CallContext::new()).await })
    }
}

impl Handler<CountTokens> for AgentActor {
    type Result = ResponseFuture<Option<u64>>;

    fn handle(&mut self, msg: CountTokens, _ctx: &mut Context<Self>) -> Self::Result {
        let agent = self.agent.clone();
        Box::pin(async move { agent.count_tokens(&msg.0, &CallContext::new()).await })
    }
}

impl Handler<Call> for AgentActor {
    type Result = ResponseActFuture<Self, Result<AgentResponse, AdapterError>>;

    fn handle(&mut self, msg: Call, _ctx: &mut Context<Self>) -> Self::Result {
        let agent = self.agent.clone();
        let slots = self.slots.clone();
        let name = self.name.clone();
        let Call { request, ctx, span } = msg;
        let fut = async move {
            // Waiting for a slot ends when the call is cancelled.
            let _permit = match &slots {
                Some(s) => tokio::select! {
                    p = s.clone().acquire_owned() => p.ok(),
                    _ = ctx.cancel.cancelled() => {
                        return (Err(AdapterError::cancelled(&name)), false);
                    }
                },
                None => None,
            };
            match AssertUnwindSafe(agent.call(&request, &ctx)).catch_unwind().await {
                Ok(result) => (result, false),
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".to_string());
                    tracing::error!(agent = %name, panic = %what, "agent panicked");
                    let err = AdapterError::Failed {
                        agent: name.clone(),
                        message: format!(
                            "the agent panicked ({what}); it was restarted with a fresh adapter"
                        ),
                    };
                    (Err(err), true)
                }
            }
        }
        .instrument(span);
        Box::pin(fut.into_actor(self).map(|(result, panicked), _act, ctx| {
            if panicked {
                // Stopping a supervised actor restarts it: `restarting` builds a fresh stack.
                ctx.stop();
            }
            result
        }))
    }
}

/// The running agent actors, by name.
#[derive(Debug, Clone, Default)]
pub struct AgentPool {
    actors: BTreeMap<String, (Addr<AgentActor>, Arc<AtomicU64>)>,
}

impl AgentPool {
    /// Start one supervised actor per agent (on the current actix arbiter).
    pub fn start(agents: impl IntoIterator<Item = (String, AgentSource)>) -> AgentPool {
        let mut actors = BTreeMap::new();
        for (name, source) in agents {
            let restarts = Arc::new(AtomicU64::new(0));
            let r = restarts.clone();
            let n = name.clone();
            let addr = actix::Supervisor::start(move |_| AgentActor::new(n, source, r));
            actors.insert(name, (addr, restarts));
        }
        AgentPool { actors }
    }

    /// Whether an agent of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.actors.contains_key(name)
    }

    /// How many times an agent's actor was restarted after a panic.
    pub fn restarts(&self, name: &str) -> u64 {
        self.actors.get(name).map(|(_, r)| r.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// The context window of `name`'s model, when it is known.
    pub async fn context_window(&self, name: &str) -> Option<u32> {
        let (addr, _) = self.actors.get(name)?;
        addr.send(ContextWindow).await.ok().flatten()
    }

    /// `text`'s tokens by `name`'s model's own tokenizer, when it offers one.
    pub async fn count_tokens(&self, name: &str, text: &str) -> Option<u64> {
        let (addr, _) = self.actors.get(name)?;
        addr.send(CountTokens(text.to_string())).await.ok().flatten()
    }

    /// Call `name` with `request`, inside the current span.
    pub async fn call(
        &self,
        name: &str,
        request: AgentRequest,
        ctx: CallContext,
    ) -> Result<AgentResponse, AdapterError> {
        let Some((addr, _)) = self.actors.get(name) else {
            return Err(AdapterError::Config {
                agent: name.to_string(),
                message: "no such agent is configured".to_string(),
            });
        };
        match addr.send(Call { request, ctx, span: tracing::Span::current() }).await {
            Ok(result) => result,
            // The actor restarted under this call (another call into the agent panicked):
            // the call was dropped with the instance.
            Err(e) => Err(AdapterError::Failed {
                agent: name.to_string(),
                message: format!(
                    "the agent was restarted while this call was under way ({e}); try again"
                ),
            }),
        }
    }
}
