//! Dynamic workflows: ask a planner agent for the steps, validate and repair its plan, and
//! fall back to a static workflow when it cannot give a usable one.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use troupe_adapters::agent::{AgentRequest, GenerationOptions, OutputFormat};
use troupe_adapters::config::{AgentKind, Role};
use troupe_adapters::which::find_program;
use troupe_workflows::WorkflowConfig;
use troupe_workflows::plan::{AgentCandidate, RoutingPolicy, parse_plan, plan_to_workflow};

use crate::call::{Caller, Failure};
use crate::memory::ContextBlock;
use crate::model::{RunRecord, Tokens};
use crate::shared::Shared;

/// The outcome of planning.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub workflow: WorkflowConfig,
    pub notes: Vec<String>,
    /// The agent whose plan is used; `None` when a static workflow replaced it.
    pub planned_by: Option<String>,
    /// What the planner's calls used (they count in the run's totals and budgets).
    pub tokens: Tokens,
    /// Their cost.
    pub cost: f64,
}

/// What the router knows about every configured agent: configuration, whether the CLI is
/// installed, breaker state, and call counts from the metrics.
pub(crate) fn candidates(shared: &Shared) -> Vec<AgentCandidate> {
    shared
        .config
        .agents
        .iter()
        .map(|(name, a)| {
            let (calls, successes) = shared.metrics.agent_stats(name);
            let available = shared.agents.contains(name)
                && match a.kind {
                    AgentKind::Cli => a.command.as_deref().and_then(find_program).is_some(),
                    _ => true,
                };
            AgentCandidate {
                name: name.clone(),
                role: a.role,
                local: a.is_local(),
                enabled: a.enabled,
                available,
                breaker_open: shared.breaker_open(name),
                calls,
                successes,
            }
        })
        .collect()
}

/// The routing policy for a run.
pub(crate) fn policy(shared: &Shared, offline: bool) -> RoutingPolicy {
    RoutingPolicy {
        min_success_rate: shared.config.settings.min_success_rate,
        min_samples: shared.config.settings.min_success_samples,
        offline,
    }
}

/// The planner: `configured` if eligible, else an eligible `plan` agent, else the best
/// eligible agent (preferring reviewers, which tend to follow instructions).
pub(crate) fn pick_planner(
    policy: &RoutingPolicy,
    cands: &[AgentCandidate],
    configured: Option<&str>,
) -> Option<String> {
    let eligible = policy.eligible(cands);
    configured
        .and_then(|p| eligible.iter().find(|c| c.name == p))
        .or_else(|| eligible.iter().find(|c| c.role == Some(Role::Plan)))
        .or_else(|| eligible.iter().find(|c| c.role == Some(Role::Review)))
        .or_else(|| eligible.first())
        .map(|c| c.name.clone())
}

fn plan_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "steps": {
                "type": "array",
                "minItems": 1,
                "maxItems": troupe_workflows::plan::MAX_PLAN_STEPS,
                "items": {
                    "type": "object",
                    "properties": {
                        "role": {"type": "string", "enum": ["implement", "review", "refine", "document"]},
                        "agent": {"type": "string"},
                        "why": {"type": "string"}
                    },
                    "required": ["role", "agent"]
                }
            },
            "max_iterations": {"type": "integer", "minimum": 1, "maximum": 10}
        },
        "required": ["steps"]
    })
}

/// The static workflow used when planning fails: the default one, or `offline-default` in
/// offline mode when the default needs remote agents.
fn fallback_workflow(shared: &Shared, offline: bool) -> (String, WorkflowConfig) {
    let config = &shared.config;
    let default = config.settings.default_workflow.clone();
    let usable = |w: &WorkflowConfig| {
        !offline
            || config.agents_of(w).iter().all(|a| config.agent(a).is_some_and(|c| c.is_local()))
    };
    for name in [default.as_str(), "default", "offline-default"] {
        if let Some(w) = config.workflow(name).filter(|w| usable(w)) {
            return (name.to_string(), w.clone());
        }
    }
    let any = config.workflows.iter().find(|(_, w)| usable(w));
    match any {
        Some((n, w)) => (n.clone(), w.clone()),
        None => (
            "default".into(),
            config.workflows.values().next().cloned().unwrap_or(WorkflowConfig::new(1, Vec::new())),
        ),
    }
}

/// Plan the steps of `record`'s task. The planner's calls are budget-checked like steps,
/// audited, and what they used is returned with the plan.
pub(crate) async fn plan(
    shared: &Arc<Shared>,
    record: &RunRecord,
    context: &ContextBlock,
    cancel: &CancellationToken,
) -> Planned {
    let mut used = (Tokens::default(), 0.0);
    let mut planned = plan_with(shared, record, context, cancel, &mut used).await;
    (planned.tokens, planned.cost) = used;
    planned
}

async fn plan_with(
    shared: &Arc<Shared>,
    record: &RunRecord,
    context: &ContextBlock,
    cancel: &CancellationToken,
    used: &mut (Tokens, f64),
) -> Planned {
    let policy = policy(shared, record.offline);
    let cands = candidates(shared);
    let mut notes = Vec::new();
    let fallback = |notes: &mut Vec<String>, why: String| {
        let (name, wf) = fallback_workflow(shared, record.offline);
        notes.push(format!("{why}; using the `{name}` workflow instead"));
        tracing::warn!(run = %record.id, "{why}; using the `{name}` workflow");
        Planned {
            workflow: wf,
            notes: std::mem::take(notes),
            planned_by: None,
            tokens: Tokens::default(),
            cost: 0.0,
        }
    };

    let configured = shared.config.settings.planner_agent.as_deref();
    let Some(planner) = pick_planner(&policy, &cands, configured) else {
        return fallback(&mut notes, "no agent is eligible to plan".into());
    };
    if let Some(p) = configured.filter(|p| *p != planner) {
        notes.push(format!("planner `{p}` is not eligible; `{planner}` planned instead"));
    }

    let Some(template) = shared.templates.get(Role::Plan) else {
        return fallback(&mut notes, "the plan template is missing".into());
    };
    let vars = BTreeMap::from([
        ("task", record.task.clone()),
        ("project", record.project_path.display().to_string()),
        ("context", context.text.clone()),
        ("agents", policy.describe_for_planner(&cands)),
        ("role", "plan".to_string()),
        ("agent", planner.clone()),
    ]);
    let prompt = shared.redactor.redact_string(template.render(&vars));
    let options = GenerationOptions {
        max_tokens: Some(shared.max_tokens),
        temperature: Some(0.0),
        output: OutputFormat::JsonSchema { name: "plan".into(), schema: plan_schema() },
        ..Default::default()
    };
    // The planner's turn in the audit trail: before the first iteration, as step 0.
    let pos = troupe_workflows::engine::StepPos { iteration: 0, step: 0 };
    let mut caller = Caller::new(
        shared,
        record,
        pos,
        Role::Plan,
        &planner,
        &[],
        record.project_path.clone(),
        cancel,
    )
    .with_context_nodes(context.nodes.clone());
    let mut request = AgentRequest::prompt(prompt.clone()).with_options(options.clone());
    for attempt in 1..=2 {
        // Budgets hold for the planner too, counting what its earlier attempt used.
        let answer = match caller.call(&request).await {
            Ok(a) => {
                used.0.add(a.tokens);
                used.1 += a.cost;
                caller.used(used.0, used.1);
                a.text
            }
            Err(Failure::Refused { reason, .. }) => {
                return fallback(
                    &mut notes,
                    format!("the planner `{planner}` was not called: {reason}"),
                );
            }
            Err(Failure::Failed { error, .. }) => {
                return fallback(&mut notes, format!("the planner `{planner}` failed: {error}"));
            }
        };
        match parse_plan(&answer) {
            Ok(plan) => {
                let default_iters = shared
                    .config
                    .workflow(&shared.config.settings.default_workflow)
                    .map(|w| w.max_iterations)
                    .unwrap_or(2);
                return match plan_to_workflow(&plan, &policy, &cands, default_iters) {
                    Ok(p) => {
                        notes.push(format!("planned by `{planner}`"));
                        for (step, why) in p.workflow.steps.iter().zip(&p.reasons) {
                            if !why.is_empty() {
                                notes.push(format!("{}:{}: {why}", step.agent, step.role));
                            }
                        }
                        notes.extend(p.repairs);
                        Planned {
                            workflow: p.workflow,
                            notes,
                            planned_by: Some(planner),
                            tokens: Tokens::default(),
                            cost: 0.0,
                        }
                    }
                    Err(e) => fallback(&mut notes, format!("the plan cannot run: {e}")),
                };
            }
            Err(why) if attempt == 1 => {
                notes.push(format!("the first plan was invalid ({why}); asked again"));
                request = AgentRequest::prompt(format!(
                    "{prompt}\n\nYour previous answer was not a valid plan: {why}. Answer again with only the JSON object."
                ))
                .with_options(options.clone());
            }
            Err(why) => {
                return fallback(&mut notes, format!("the planner gave no valid plan ({why})"));
            }
        }
    }
    fallback(&mut notes, "the planner gave no valid plan".into())
}
