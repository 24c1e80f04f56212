//! One actor per configured agent, wrapping its adapter stack.
//!
//! A panicking adapter does not take the process down: the call's future is run under
//! `catch_unwind`, the caller gets [`AdapterError::Failed`], and the actor stops so its
//! actix supervisor restarts it fresh ([`AgentActor::restarting`]).

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::prelude::*;
use futures::FutureExt;
use tracing::Instrument;
use troupe_adapters::agent::{Agent, AgentRequest, AgentResponse, CallContext};
use troupe_adapters::error::AdapterError;

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
    agent: Arc<dyn Agent>,
    restarts: Arc<AtomicU64>,
}

impl Actor for AgentActor {
    type Context = Context<Self>;
}

impl Supervised for AgentActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(agent = self.agent.name(), "agent actor restarted after a panic");
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
        let name = agent.name().to_string();
        let Call { request, ctx, span } = msg;
        let fut = async move {
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
                        message: format!("the agent panicked ({what}); it was restarted"),
                    };
                    (Err(err), true)
                }
            }
        }
        .instrument(span);
        Box::pin(fut.into_actor(self).map(|(result, panicked), _act, ctx| {
            if panicked {
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
    pub fn start(agents: impl IntoIterator<Item = (String, Arc<dyn Agent>)>) -> AgentPool {
        let mut actors = BTreeMap::new();
        for (name, agent) in agents {
            let restarts = Arc::new(AtomicU64::new(0));
            let r = restarts.clone();
            let addr = actix::Supervisor::start(move |_| AgentActor { agent, restarts: r });
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
            Err(e) => Err(AdapterError::Failed {
                agent: name.to_string(),
                message: format!("the agent's actor is not running ({e}); try again"),
            }),
        }
    }
}
