//! Fallback chains: the next agent answers when one fails transiently, its breaker is open,
//! offline mode refused it or its program is missing.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::time::Instant;
use tracing::{Instrument, Span};

use crate::agent::{Agent, AgentEvent, AgentInfo, AgentRequest, AgentResponse, CallContext};
use crate::error::{AdapterError, AgentFailure, Result};
use crate::telemetry;

/// Tries each agent of a chain in order until one answers.
///
/// An error that [`AdapterError::falls_back`] moves on to the next agent; any other error
/// (auth, invalid request, cancellation) ends the call at once. The response names the
/// agent that answered and lists the ones that failed before it; when every agent fails,
/// [`AdapterError::AllFailed`] reports each error.
#[derive(Debug)]
pub struct Fallback {
    info: AgentInfo,
    chain: Vec<Arc<dyn Agent>>,
}

impl Fallback {
    /// A chain of `primary` then `fallbacks`, in order. Its info is the primary's.
    pub fn new(primary: Arc<dyn Agent>, fallbacks: Vec<Arc<dyn Agent>>) -> Fallback {
        let info = primary.info().clone();
        let mut chain = vec![primary];
        chain.extend(fallbacks);
        Fallback { info, chain }
    }

    /// The names of the chain's agents, in order.
    pub fn chain(&self) -> Vec<&str> {
        self.chain.iter().map(|a| a.name()).collect()
    }
}

#[async_trait]
impl Agent for Fallback {
    /// The primary's window: the prompt is built for the agent asked first.
    async fn context_window(&self, ctx: &CallContext) -> Option<u32> {
        self.chain.first()?.context_window(ctx).await
    }

    async fn count_tokens(&self, text: &str, ctx: &CallContext) -> Option<u64> {
        self.chain.first()?.count_tokens(text, ctx).await
    }

    fn info(&self) -> &AgentInfo {
        &self.info
    }

    async fn call(&self, req: &AgentRequest, ctx: &CallContext) -> Result<AgentResponse> {
        let start = Instant::now();
        let mut failed: Vec<AgentFailure> = Vec::new();
        for (i, agent) in self.chain.iter().enumerate() {
            if ctx.cancel.is_cancelled() {
                return Err(AdapterError::cancelled(agent.name()));
            }
            // After a failure, the next agent's call runs inside a `troupe.fallback` span.
            let span = match failed.last() {
                Some(f) => telemetry::fallback_span(&f.agent, agent.name(), &f.error),
                None => Span::none(),
            };
            match agent.call(req, ctx).instrument(span).await {
                Ok(mut resp) => {
                    resp.failed = failed;
                    resp.latency = start.elapsed();
                    return Ok(resp);
                }
                Err(e) => {
                    let next = self.chain.get(i + 1);
                    let go_on = e.falls_back() && next.is_some();
                    if let AdapterError::OfflineRefused { .. } = e {
                        ctx.emit(AgentEvent::OfflineSkipped { agent: agent.name().to_string() });
                    }
                    if let (true, Some(next)) = (go_on, next) {
                        tracing::warn!(from = %agent.name(), to = %next.name(), error = %e, "falling back");
                        ctx.emit(AgentEvent::FallbackTaken {
                            from: agent.name().to_string(),
                            to: next.name().to_string(),
                            error: e.to_string(),
                        });
                        failed.push(AgentFailure::new(agent.name(), e));
                        continue;
                    }
                    if failed.is_empty() {
                        return Err(e);
                    }
                    failed.push(AgentFailure::new(agent.name(), e));
                    return Err(AdapterError::AllFailed { errors: failed });
                }
            }
        }
        Err(AdapterError::AllFailed { errors: failed })
    }
}
