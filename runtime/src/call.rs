//! The one path by which the runtime calls an agent.
//!
//! Steps, the dynamic planner and automatic re-asks (an edit that did not apply, an answer
//! that was not a valid plan) all go through [`Caller`]: the budget check before each
//! candidate (never after), the audit entries (prompt sent, agent events, answer or
//! failure, refusal), secret masking of everything that comes back, the call through the
//! agent's actor (the step's fallbacks after the agent's own chain, each in a
//! `troupe.fallback` span), and the metrics and usage of every call (tokens, cost, retries,
//! fallbacks, breaker changes, rate-limit waits). A second copy of this sequence drifts —
//! the planner's copy once lost the retry and fallback metrics — so there is none.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};
use troupe_adapters::agent::{AgentEvent, AgentRequest, CallContext, ChunkSink, EventSink};
use troupe_adapters::config::{Role, fallback_chain};
use troupe_adapters::error::AdapterError;
use troupe_observability::redact::StreamRedactor;
use troupe_workflows::engine::StepPos;

use crate::audit::AuditEvent;
use crate::model::{RunEvent, RunRecord, Tokens};
use crate::shared::Shared;

/// What came back from a call that answered.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    /// The agent that answered (differs from the one called when a fallback ran).
    pub agent: String,
    /// Its model, when it said.
    pub model: Option<String>,
    /// The answer, secrets masked.
    pub text: String,
    /// Tokens used.
    pub tokens: Tokens,
    /// Whether the counts are estimates (the agent reported none).
    pub tokens_estimated: bool,
    /// Cost at the answering agent's price.
    pub cost: f64,
    /// Retries of transient failures.
    pub retries: u32,
    /// Agents that failed before the one that answered.
    pub fallback_from: Vec<String>,
}

/// Why a call gave no answer.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// Every candidate failed (or the call was cancelled).
    Failed {
        /// Why, secrets masked.
        error: String,
        /// The error's class (for spans and metrics).
        class: &'static str,
        /// Whether it was a cancellation.
        cancelled: bool,
        /// Agents that failed.
        fallback_from: Vec<String>,
    },
    /// A candidate could cross a budget, so it was not called.
    Refused {
        /// Which budget, with the numbers.
        reason: String,
        /// Agents that failed before it.
        fallback_from: Vec<String>,
    },
}

/// Calls agents for one place in one run (a step, the planner's turn, a re-ask).
#[derive(Debug)]
pub(crate) struct Caller<'a> {
    shared: &'a Arc<Shared>,
    run: RunRecord,
    pos: StepPos,
    role: Role,
    /// The agents tried in order: the agent's [`fallback_chain`] (its own fallbacks, then
    /// the step's, each with theirs) — the one fallback mechanism of a run.
    candidates: Vec<String>,
    context_nodes: Vec<String>,
    workdir: PathBuf,
    events: Option<broadcast::Sender<RunEvent>>,
    cancel: CancellationToken,
    /// The run's tokens and cost before this caller's first call.
    before: (Tokens, f64),
}

impl<'a> Caller<'a> {
    /// A caller for `pos` of `run` (whose tokens and cost so far count against its budget),
    /// calling `agent` and, when it fails in a way worth trying elsewhere, the rest of its
    /// [`fallback_chain`] with the step's `step_fallbacks` — each through its own actor —
    /// in `workdir`. Fallbacks that cannot be built (disabled, misconfigured) are left out.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: &'a Arc<Shared>,
        run: &RunRecord,
        pos: StepPos,
        role: Role,
        agent: &str,
        step_fallbacks: &[String],
        workdir: PathBuf,
        cancel: &CancellationToken,
    ) -> Caller<'a> {
        let usable = |name: &String| {
            shared.agents.contains(name)
                && shared.registry.as_ref().is_none_or(|r| r.stack(name).is_ok())
        };
        let candidates = fallback_chain(&shared.config.agents, agent, step_fallbacks)
            .into_iter()
            .enumerate()
            .filter(|(i, name)| *i == 0 || usable(name))
            .map(|(_, name)| name)
            .collect();
        Caller {
            shared,
            run: run.clone(),
            pos,
            role,
            candidates,
            context_nodes: Vec::new(),
            workdir,
            events: None,
            cancel: cancel.clone(),
            before: (run.tokens, run.cost),
        }
    }

    /// Publish the answer's pieces and the agents' events on the run's event stream.
    pub(crate) fn streaming(mut self, events: &broadcast::Sender<RunEvent>) -> Caller<'a> {
        self.events = Some(events.clone());
        self
    }

    /// The memory nodes the prompt carries (for the audit trail).
    pub(crate) fn with_context_nodes(mut self, nodes: Vec<String>) -> Caller<'a> {
        self.context_nodes = nodes;
        self
    }

    /// What this caller's calls have used so far (in all), counted against the budgets of
    /// its next call on top of what the run had used before.
    pub(crate) fn used(&mut self, tokens: Tokens, cost: f64) {
        self.run.tokens = self.before.0;
        self.run.tokens.add(tokens);
        self.run.cost = self.before.1 + cost;
    }

    /// The agent called first.
    pub(crate) fn agent(&self) -> &str {
        self.candidates.first().map(String::as_str).unwrap_or_default()
    }

    /// Check the first candidate's budgets: the request to send (its `max_tokens` lowered to
    /// fit, where the agent honours it), or the refusal — audited and announced.
    pub(crate) fn check(&self, request: &AgentRequest) -> Result<AgentRequest, Failure> {
        let agent = self.agent().to_string();
        crate::budget::check(self.shared, &self.run, &agent, request)
            .map_err(|reason| self.refuse(agent, reason, Vec::new()))
    }

    /// Send a request [`Caller::check`] returned (`original` is the request before the
    /// check, used for the fallbacks' own checks): audit the prompt, call the candidates in
    /// order, record metrics and usage, mask the answer.
    pub(crate) async fn send(
        &self,
        checked: AgentRequest,
        original: &AgentRequest,
    ) -> Result<Answer, Failure> {
        let shared = self.shared;
        let run_id = self.run.id.clone();
        let pos = self.pos;
        shared.audit.append(
            &run_id,
            AuditEvent::PromptSent {
                pos,
                role: self.role,
                agent: self.agent().to_string(),
                context_nodes: self.context_nodes.clone(),
                max_tokens: checked.options.max_tokens.unwrap_or(shared.max_tokens),
                prompt: checked.render_prompt(),
            },
        );
        // Streamed pieces can split a secret: the stream masker holds back a few characters.
        let stream = Arc::new(Mutex::new(StreamRedactor::new(shared.redactor.clone())));
        let ctx = self.context(&stream);
        let started = Instant::now();

        let mut failed: Vec<String> = Vec::new();
        let mut result: Result<_, AdapterError> = Err(AdapterError::Config {
            agent: self.agent().to_string(),
            message: "no agent to call".into(),
        });
        for (i, name) in self.candidates.iter().enumerate() {
            let request = if i == 0 {
                checked.clone()
            } else {
                match crate::budget::check(shared, &self.run, name, original) {
                    Ok(r) => r,
                    Err(reason) => {
                        self.flush(&stream);
                        return Err(self.refuse(name.clone(), reason, failed));
                    }
                }
            };
            let call_started = Instant::now();
            // After a failure, the next candidate's call runs inside a `troupe.fallback` span.
            let fallback_span = match (&result, failed.last()) {
                (Err(e), Some(from)) => troupe_adapters::telemetry::fallback_span(from, name, e),
                _ => Span::none(),
            };
            result = shared.agents.call(name, request, ctx.clone()).instrument(fallback_span).await;
            let (called, outcome) = match &result {
                Ok(r) => (r.agent.clone(), troupe_observability::metrics::SUCCESS),
                Err(e) => (e.agent().unwrap_or(name).to_string(), e.kind()),
            };
            shared.metrics.record_call(&called, outcome, call_started.elapsed());
            match &result {
                Err(e)
                    if e.falls_back()
                        && i + 1 < self.candidates.len()
                        && !self.cancel.is_cancelled() =>
                {
                    failed.push(name.clone());
                    let to = &self.candidates[i + 1];
                    shared.metrics.record_fallback(name, to);
                    self.announce(format!("fallback from {name} to {to} after: {e}"));
                }
                _ => break,
            }
        }
        self.flush(&stream);

        match result {
            Ok(resp) => {
                let tokens = resp.usage;
                let cost = crate::budget::cost_of(&shared.config, &resp.agent, tokens);
                shared.metrics.record_tokens(&resp.agent, tokens.prompt, tokens.completion);
                shared.metrics.record_cost(&resp.agent, cost);
                for _ in 0..resp.retries() {
                    shared.metrics.record_retry(&resp.agent);
                }
                let answer = Answer {
                    retries: resp.retries(),
                    fallback_from: failed,
                    agent: resp.agent,
                    model: resp.model,
                    text: shared.redactor.redact_string(resp.text),
                    tokens,
                    tokens_estimated: resp.usage_estimated,
                    cost,
                };
                shared.audit.append(
                    &run_id,
                    AuditEvent::ResponseReceived {
                        pos,
                        agent: answer.agent.clone(),
                        model: answer.model.clone(),
                        tokens,
                        tokens_estimated: answer.tokens_estimated,
                        cost,
                        latency_ms: started.elapsed().as_millis() as u64,
                        retries: answer.retries,
                        fallback_from: answer.fallback_from.clone(),
                        response: answer.text.clone(),
                    },
                );
                Ok(answer)
            }
            Err(e) => {
                let cancelled =
                    matches!(e, AdapterError::Cancelled { .. }) || self.cancel.is_cancelled();
                let error = shared.redactor.redact_string(e.to_string());
                shared.audit.append(
                    &run_id,
                    AuditEvent::CallFailed {
                        pos,
                        agent: self.agent().to_string(),
                        fallback_from: failed.clone(),
                        error: error.clone(),
                    },
                );
                Err(Failure::Failed { error, class: e.kind(), cancelled, fallback_from: failed })
            }
        }
    }

    /// [`Caller::check`] then [`Caller::send`].
    pub(crate) async fn call(&self, request: &AgentRequest) -> Result<Answer, Failure> {
        let checked = self.check(request)?;
        self.send(checked, request).await
    }

    /// The call context: cancellation, the working folder, and — when streaming — sinks that
    /// publish masked pieces and the agents' events.
    fn context(&self, stream: &Arc<Mutex<StreamRedactor>>) -> CallContext {
        let shared = self.shared;
        let pos = self.pos;
        let run_id = self.run.id.clone();
        let metrics = shared.metrics.clone();
        let audit = shared.audit.clone();
        let redactor = shared.redactor.clone();
        let agent_events = self.events.clone();
        let mut ctx = CallContext::new()
            .with_cancel(self.cancel.child_token())
            .with_workdir(self.workdir.clone())
            .with_events(EventSink::new(move |e: &AgentEvent| {
                note_agent_event(&metrics, e);
                let message = redactor.redact_string(e.to_string());
                audit.append(&run_id, AuditEvent::Agent { pos, message: message.clone() });
                if let Some(events) = &agent_events {
                    let _ = events.send(RunEvent::Agent { run_id: run_id.clone(), pos, message });
                }
            }));
        if let Some(events) = self.events.clone() {
            let run_id = self.run.id.clone();
            let stream = stream.clone();
            ctx = ctx.with_chunks(ChunkSink::new(move |text: &str| {
                let text = match stream.lock() {
                    Ok(mut s) => s.push(text),
                    Err(_) => return,
                };
                if !text.is_empty() {
                    let _ = events.send(RunEvent::Chunk { run_id: run_id.clone(), pos, text });
                }
            }));
        }
        ctx
    }

    /// Publish what the stream masker held back, now that the answer is complete.
    fn flush(&self, stream: &Arc<Mutex<StreamRedactor>>) {
        let rest = stream.lock().map(|mut s| s.finish()).unwrap_or_default();
        if let (Some(events), false) = (&self.events, rest.is_empty()) {
            let _ = events.send(RunEvent::Chunk {
                run_id: self.run.id.clone(),
                pos: self.pos,
                text: rest,
            });
        }
    }

    /// Audit and announce something that happened to the call.
    pub(crate) fn announce(&self, message: String) {
        let message = self.shared.redactor.redact_string(message);
        self.shared
            .audit
            .append(&self.run.id, AuditEvent::Agent { pos: self.pos, message: message.clone() });
        if let Some(events) = &self.events {
            let _ = events.send(RunEvent::Agent {
                run_id: self.run.id.clone(),
                pos: self.pos,
                message,
            });
        }
    }

    /// A call not made for a budget: audited and announced.
    fn refuse(&self, agent: String, reason: String, fallback_from: Vec<String>) -> Failure {
        self.shared.audit.append(
            &self.run.id,
            AuditEvent::CallRefused { pos: self.pos, agent: agent.clone(), reason: reason.clone() },
        );
        if let Some(events) = &self.events {
            let _ = events.send(RunEvent::Agent {
                run_id: self.run.id.clone(),
                pos: self.pos,
                message: format!("{agent}: not called, budget exceeded: {reason}"),
            });
        }
        Failure::Refused { reason, fallback_from }
    }
}

/// Metrics from an adapter event (breaker states are not among them: the gauge reads the
/// breakers themselves).
pub(crate) fn note_agent_event(metrics: &troupe_observability::Metrics, event: &AgentEvent) {
    if let AgentEvent::RateLimitWait { agent, wait_ms } = event {
        metrics.record_rate_limit_wait(agent, std::time::Duration::from_millis(*wait_ms));
    }
}
