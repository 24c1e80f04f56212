//! One step: its prompt, the call, its record.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::Span;
use troupe_adapters::agent::{AgentRequest, GenerationOptions, OutputFormat};
use troupe_adapters::config::{AgentKind, Role};
use troupe_workflows::engine::{StepPlan, StepPos};

use super::change::{WorkStep, change_of_step, sample_candidates};
use super::{StepStop, emit};
use crate::call::{Caller, Failure};
use crate::memory::ContextBlock;
use crate::model::{CheckRecord, RunEvent, RunRecord, StepRecord, StepState, Tokens};
use crate::shared::Shared;
use crate::telemetry;
use crate::writer::Pending;
/// The JSON schema a review must follow (enforced by servers that support it). The
/// reasoning and findings come before the verdict (measured: small models asked for the
/// verdict first approve nearly everything), and every string and list is bounded so a
/// model stuck in a loop cannot run away. The keys are in alphabetical order too, so the
/// order holds whether or not a JSON library keeps insertion order.
pub(crate) fn verdict_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "analysis": {"type": "string", "maxLength": 1200},
            "findings": {
                "type": "array",
                "maxItems": 8,
                "items": {
                    "type": "object",
                    "properties": {
                        "kind": {"type": "string", "enum": ["bug", "mistake", "decision", "pattern", "style"]},
                        "message": {"type": "string", "maxLength": 400},
                        "severity": {"type": "string", "enum": ["error", "warning", "suggestion"]}
                    },
                    "required": ["kind", "message", "severity"]
                }
            },
            "summary": {"type": "string", "maxLength": 300},
            "verdict": {"type": "string", "enum": ["approved", "changes_requested"]}
        },
        "required": ["analysis", "findings", "summary", "verdict"]
    })
}

/// Run one step; returns its final record (completed, failed or cancelled), also recorded
/// on `span` (the step's, which the caller runs this inside), for the caller to store.
/// `Err` when the store cannot be written (the run cannot continue durably) or a budget
/// stops the call.
///
/// A work step (implement, refine, document) in a run with a workspace changes files there:
/// a CLI agent edits them itself (its working folder is the workspace); an HTTP model is
/// shown the files that matter and answers in an edit format that is parsed and applied
/// with patch safety — edits that do not apply go back to it in one automatic re-ask. What
/// changed is committed in the workspace.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_step(
    shared: &Arc<Shared>,
    record: &mut RunRecord,
    plan: &StepPlan,
    conversation: &str,
    context: &ContextBlock,
    last_check: Option<&CheckRecord>,
    events: &broadcast::Sender<RunEvent>,
    cancel: &CancellationToken,
    span: &Span,
) -> Result<Ended, StepStop> {
    let run_id = record.id.clone();
    let pos = plan.pos;
    let started = Instant::now();
    let work_step = matches!(plan.role, Role::Implement | Role::Refine | Role::Document);
    let edits_by_answer = work_step
        && record.workspace.is_some()
        && shared.config.agent(&plan.agent).is_some_and(|a| a.kind != AgentKind::Cli);
    let workdir =
        record.workspace.as_ref().map(|w| w.dir.clone()).unwrap_or(record.project_path.clone());

    // The project's relevant memory (searched when the run started), within the budget.
    let without_files;
    let context = if edits_by_answer {
        without_files = crate::work::without_file_notes(context);
        &without_files
    } else {
        context
    };
    let Some(template) = shared.template_for(record, pos) else {
        return Err(StepStop::Store(format!("no prompt template for the {} role", plan.role)));
    };
    let mut vars = prompt_vars(record, plan, conversation, &context.text);
    let evidence = last_check.and_then(|c| c.report.as_ref()).map(crate::work::evidence);
    if let Some(e) = &evidence {
        vars.insert("evidence", e.clone());
    }
    let mut unverified = false;
    let mut shown: Vec<String> = Vec::new();
    if let Some(ws) = &record.workspace {
        if work_step {
            let changed: Vec<std::path::PathBuf> =
                record.files.iter().map(|f| f.path.clone()).collect();
            let dir = ws.dir.clone();
            let task = record.task.clone();
            let ev = evidence.clone().unwrap_or_default();
            let budget = crate::prompt::file_budget_chars(shared, &plan.agent).await;
            let (files, all) = tokio::task::spawn_blocking(move || {
                crate::work::prompt_files(&dir, &task, &changed, &ev, budget)
            })
            .await
            .unwrap_or_default();
            vars.insert("file_list", all.join("\n"));
            shown = all;
            if edits_by_answer {
                vars.insert("files", crate::work::files_text(&files));
                vars.insert(
                    "edit_format",
                    crate::work::edit_instructions(
                        crate::settings::edit_format(&shared.config),
                        &files,
                    ),
                );
            } else {
                vars.insert(
                    "edit_format",
                    format!(
                        "Make the change by editing the files in your working folder ({}) directly; change nothing outside it. Then say in a few sentences what you changed.",
                        ws.dir.display()
                    ),
                );
            }
        } else if plan.role == Role::Review {
            match crate::work::diff(ws).await {
                Ok(change) if !change.is_empty() => {
                    vars.insert("changes", crate::work::diff_text(&change));
                }
                Ok(_) => {
                    vars.insert("changes", "(the change is empty: no file was changed)".into());
                }
                Err(e) => tracing::warn!(run = %run_id, error = %e, "no diff for the review"),
            }
            if evidence.is_none() {
                unverified = true;
                vars.insert(
                    "unverified",
                    "No tests or linters ran on this change (the project has none configured or detected), so there is no evidence: judge it by reading, carefully, and say so in the summary.".into(),
                );
            }
        }
    }
    // The answer's room and temperature: the step's own, else the agent's configured ones
    // (the adapter fills those in), else troupe's `max_output_tokens`.
    let step_config = &record.workflow.steps[pos.step];
    let agent_max = shared.config.agent(&plan.agent).and_then(|a| a.max_tokens);
    let max_answer = step_config.max_tokens.or(agent_max).unwrap_or(shared.max_tokens);
    // The prompt fits the model's window (its least important parts cut or left out), and
    // known secrets are masked before it goes anywhere: the agent, the store, the audit trail.
    let fitted = fit_prompt(shared, &plan.agent, template, &vars, max_answer)
        .await
        .map_err(StepStop::Unfit)?;
    let prompt = shared.redactor.redact_string(fitted.prompt.clone());
    let mut options = GenerationOptions {
        max_tokens: Some(max_answer),
        temperature: step_config.temperature,
        ..Default::default()
    };
    if plan.role == Role::Review {
        options.output =
            OutputFormat::JsonSchema { name: "review_verdict".into(), schema: verdict_schema() };
    }
    let request = AgentRequest::prompt(prompt.clone()).with_options(options);

    let mut step = StepRecord {
        context_nodes: context.nodes.clone(),
        unverified,
        ..new_step(&run_id, pos, plan.role, &plan.agent, prompt)
    };

    // The step's agent, then its fallback chain (the agent's own fallbacks, the step's).
    let mut caller =
        Caller::new(shared, record, pos, plan.role, &plan.agent, &plan.fallback, workdir, cancel)
            .streaming(events)
            .with_context_nodes(context.nodes.clone());
    if !fitted.left_out.is_empty() {
        caller.announce(format!(
            "the prompt was fitted to {}'s context window ({} tokens): {}",
            plan.agent,
            fitted.tokens,
            fitted.left_out.join("; ")
        ));
    }

    // Budgets are checked before anything is written or sent: a call that could cross one
    // is not made.
    let checked = match caller.check(&request) {
        Ok(r) => r,
        Err(Failure::Refused { reason, .. }) => return Err(StepStop::Budget(reason)),
        Err(Failure::Failed { error, .. }) => return Err(StepStop::Store(error)),
    };
    // The running step is written while the agent works (it is on disk before the step's
    // end is: the writer keeps their order). A crash before it is on disk loses nothing: a
    // step without an end runs again on resume.
    let running = shared
        .store
        .put_step_soon(&step)
        .map_err(|e| StepStop::Store(format!("cannot persist step: {e}")))?;
    emit(
        events,
        RunEvent::StepStarted {
            run_id: run_id.clone(),
            pos,
            role: plan.role,
            agent: plan.agent.clone(),
        },
    );

    let result = caller.send(checked, &request).await;
    let mut error_class = None;
    let mut refused = None;
    match result {
        Ok(answer) => {
            step.tokens = answer.tokens;
            step.cost = answer.cost;
            step.tokens_estimated = answer.tokens_estimated;
            step.retries = answer.retries;
            step.fallback_from = answer.fallback_from;
            step.answered_by = Some(answer.agent);
            step.model = answer.model;
            step.state = StepState::Completed;
            if plan.role == Role::Review {
                step.verdict = Some(troupe_workflows::verdict::parse_verdict(&answer.text));
            }
            step.response = Some(answer.text);
        }
        Err(Failure::Failed { error, class, cancelled, fallback_from }) => {
            step.state = if cancelled { StepState::Cancelled } else { StepState::Failed };
            step.fallback_from = fallback_from;
            step.note = Some(error);
            error_class = Some(class);
        }
        Err(Failure::Refused { reason, fallback_from, .. }) => {
            // The step's agent failed and the fallback that would answer could cross a
            // budget: the step ends failed with the reason, and the run stops on the budget.
            step.state = StepState::Failed;
            step.fallback_from = fallback_from;
            step.note = Some(format!("budget exceeded: {reason}"));
            refused = Some(reason);
        }
    }

    let work =
        WorkStep { shared, plan, request: &request, shown: &shown, last_check, events, cancel };
    // The step's change: edits from the answer (asked again once when they do not apply),
    // then a commit in the workspace.
    if step.state == StepState::Completed && work_step && record.workspace.is_some() {
        let change =
            match change_of_step(&work, record, &mut step, &mut caller, edits_by_answer).await {
                Ok(c) => c,
                Err(e) => {
                    step.state = StepState::Failed;
                    step.note = Some(e);
                    None
                }
            };
        if let Some(change) = change {
            emit(events, RunEvent::Changed { run_id: run_id.clone(), pos, change: change.clone() });
            step.change = Some(change);
        }
    }
    // When the change fails the validators, other answers sampled from the same start may
    // not: each is checked, and the first that passes is kept.
    let mut checked = None;
    if step.state == StepState::Completed
        && edits_by_answer
        && step.change.is_some()
        && !record.validators.is_empty()
    {
        match sample_candidates(&work, record, &mut step, &mut caller).await {
            Ok(c) => checked = c,
            Err(e) => {
                step.state = StepState::Failed;
                step.note = Some(e);
            }
        }
    }
    step.finished_at = Some(Utc::now());
    step.latency_ms = started.elapsed().as_millis() as u64;
    shared.metrics.record_step(plan.role.as_str(), started.elapsed());
    telemetry::record_step(span, &step, error_class);
    Ok(Ended { step, checked, refused, started: running })
}

/// A step that ran to an end, whose end is not stored yet (the caller stores it: at once,
/// or — the run's last step — with the run's end).
#[derive(Debug)]
pub(super) struct Ended {
    /// The step's final record (completed, failed or cancelled).
    pub step: StepRecord,
    /// The validators' run on a candidate kept from sampling.
    pub checked: Option<CheckRecord>,
    /// Why the call that would have answered was not made (a budget); the run stops.
    pub refused: Option<String>,
    /// The step's start record, handed to the writer.
    pub started: Pending,
}

fn prompt_vars<'a>(
    record: &RunRecord,
    plan: &StepPlan,
    conversation: &str,
    context: &str,
) -> BTreeMap<&'a str, String> {
    let project = format!(
        "{} at {}",
        record
            .project_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        record.project_path.display()
    );
    let max_iterations = record.workflow.max_iterations;
    BTreeMap::from([
        ("task", record.task.clone()),
        ("project", project),
        ("context", context.to_string()),
        ("conversation", conversation.to_string()),
        ("input", plan.input.clone()),
        ("review", plan.review.clone().unwrap_or_default()),
        ("iteration", plan.pos.iteration.to_string()),
        ("max_iterations", max_iterations.to_string()),
        ("agent", plan.agent.clone()),
        ("role", plan.role.to_string()),
    ])
}

/// Render a step's prompt so it fits `agent`'s context window with room for `max_answer`
/// tokens: estimated first, then checked with the model's own tokenizer where the server has
/// one (a prompt the server would reject for its size is never sent). Without a known window
/// (CLI agents, remote APIs that do not say) the prompt is rendered whole.
async fn fit_prompt(
    shared: &Arc<Shared>,
    agent: &str,
    template: &troupe_workflows::template::Template,
    vars: &BTreeMap<&str, String>,
    max_answer: u32,
) -> Result<crate::prompt::Fitted, String> {
    let Some(budget) = crate::prompt::budget_for(shared, agent, max_answer).await else {
        let prompt = template.render(vars);
        let tokens = crate::prompt::estimate(&prompt);
        return Ok(crate::prompt::Fitted { prompt, left_out: Vec::new(), tokens });
    };
    let mut aim = budget;
    for _ in 0..3 {
        let fitted = crate::prompt::fit(template, vars, aim, &crate::prompt::estimate)?;
        match shared.agents.count_tokens(agent, &fitted.prompt).await {
            None => return Ok(fitted),
            Some(real) if real <= budget => {
                return Ok(crate::prompt::Fitted { tokens: real, ..fitted });
            }
            // The estimate was low for this text: aim lower by the ratio seen.
            Some(real) => aim = (aim * budget / real.max(1)).saturating_sub(16),
        }
    }
    // Still too big by the model's count: the prompt without any optional part.
    let bare = crate::prompt::without_optional(template, vars);
    if let Some(real) = shared.agents.count_tokens(agent, &bare.prompt).await
        && real <= budget
    {
        return Ok(crate::prompt::Fitted { tokens: real, ..bare });
    }
    Err(format!(
        "the prompt for {agent} could not be made to fit its context window ({budget} tokens for the prompt)"
    ))
}

/// A step's record as it starts: `running`, with its prompt, nothing used yet.
pub(super) fn new_step(
    run_id: &str,
    pos: StepPos,
    role: Role,
    agent: &str,
    prompt: String,
) -> StepRecord {
    StepRecord {
        run_id: run_id.to_string(),
        pos,
        role,
        agent: agent.to_string(),
        answered_by: None,
        model: None,
        state: StepState::Running,
        prompt,
        context_nodes: Vec::new(),
        response: None,
        verdict: None,
        note: None,
        tokens: Tokens::default(),
        cost: 0.0,
        tokens_estimated: false,
        retries: 0,
        fallback_from: Vec::new(),
        started_at: Utc::now(),
        finished_at: None,
        latency_ms: 0,
        change: None,
        unverified: false,
    }
}
