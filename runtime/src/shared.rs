//! What every run shares: configuration, agents, templates, memory, store, metrics, audit.
//!
//! Its own module so that the runtime's parts (the supervisor, the call path, budgets, the
//! planner, work) can use it without importing the façade that starts them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;
use troupe_adapters::registry::AgentRegistry;
use troupe_observability::Metrics;
use troupe_observability::redact::Redactor;
use troupe_workflows::Config;
use troupe_workflows::engine::StepPos;
use troupe_workflows::template::{Template, Templates, resolve_prompt_path};

use crate::agents::AgentPool;
use crate::audit::AuditLog;
use crate::memory::{ContextBlock, Memory};
use crate::model::RunRecord;
use crate::store::RunStore;

/// Earlier turns of a conversation put into a prompt.
const CONVERSATION_TURNS: usize = 5;
/// Characters of an earlier turn's answer kept in the conversation.
const TURN_CHARS: usize = 1500;

/// What every run shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub config_path: Option<PathBuf>,
    pub agents: AgentPool,
    pub templates: Templates,
    pub step_templates: HashMap<PathBuf, Template>,
    pub memory: Arc<dyn Memory>,
    pub store: RunStore,
    pub metrics: Arc<Metrics>,
    pub max_tokens: u32,
    pub registry: Option<Arc<AgentRegistry>>,
    pub context: Option<troupe_context::Store>,
    pub audit: AuditLog,
    pub redactor: Redactor,
    pub workspaces: Option<PathBuf>,
}

impl Shared {
    /// The relevant memory for `record`'s task (empty, with a warning, on failure).
    pub(crate) async fn context_for(&self, record: &RunRecord) -> ContextBlock {
        self.context_of(&record.id, record.project_id.clone(), record.task.clone()).await
    }

    /// The memory of project `project` relevant to `task`, for run `run_id` (empty, with a
    /// warning, on failure). Searched on the blocking pool.
    pub(crate) async fn context_of(
        &self,
        run_id: &str,
        project: String,
        task: String,
    ) -> ContextBlock {
        let memory = self.memory.clone();
        let budget = self.config.settings.context_token_budget;
        let span = crate::telemetry::context_span(run_id, task.chars().count(), budget);
        let started = Instant::now();
        let result =
            tokio::task::spawn_blocking(move || memory.relevant_context(&project, &task, budget))
                .instrument(span.clone())
                .await;
        self.metrics.record_context_search("hybrid", started.elapsed());
        let (nodes, tokens, ok) = match &result {
            Ok(Ok(block)) => (block.nodes.len(), block.tokens, true),
            _ => (0, 0, false),
        };
        crate::telemetry::record_context(&span, nodes, tokens, started.elapsed(), ok);
        match result {
            Ok(Ok(block)) => block,
            Ok(Err(e)) => {
                tracing::warn!(run = %run_id, error = %e, "no project memory for this run");
                ContextBlock::default()
            }
            Err(e) => {
                tracing::warn!(run = %run_id, error = %e, "the memory search died");
                ContextBlock::default()
            }
        }
    }

    /// The template of the step at `pos`: its own prompt file, else its role's.
    /// (`None` only if a role had no template, which the built-ins rule out.)
    pub(crate) fn template_for(&self, record: &RunRecord, pos: StepPos) -> Option<&Template> {
        let step = &record.workflow.steps[pos.step];
        step.prompt
            .as_ref()
            .and_then(|p| {
                self.step_templates.get(&resolve_prompt_path(p, self.config_path.as_deref()))
            })
            .or_else(|| self.templates.get(step.role))
    }

    /// Earlier turns of the run's conversation, for the prompt.
    pub(crate) fn conversation_text(&self, record: &RunRecord) -> String {
        let Some(conv) = &record.conversation else { return String::new() };
        let Ok(runs) = self.store.conversation(conv) else { return String::new() };
        let turns: Vec<_> = runs
            .into_iter()
            .filter(|r| r.id != record.id && r.created_at < record.created_at)
            .collect();
        let skip = turns.len().saturating_sub(CONVERSATION_TURNS);
        let mut out = String::new();
        for r in turns.into_iter().skip(skip) {
            let answer = r.output.or(r.error).unwrap_or_default();
            let answer: String = answer.chars().take(TURN_CHARS).collect();
            out.push_str(&format!("User: {}\nResult ({}): {}\n\n", r.task, r.state, answer.trim()));
        }
        out.trim_end().to_string()
    }

    /// Whether an agent's breaker is open, as its breaker (in the registry) says now.
    /// Without a registry (agents given directly, in tests) there are no breakers.
    pub(crate) fn breaker_open(&self, agent: &str) -> bool {
        self.registry.as_ref().and_then(|r| r.breaker(agent)).is_some_and(|b| {
            matches!(b.state(), troupe_adapters::resilience::BreakerState::Open { .. })
        })
    }
}
