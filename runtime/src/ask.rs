//! One call outside a run's workflow (a plan's planner turn), through the one call path:
//! budget check, audit (under the caller's label, e.g. `plan-<id>`), masking, metrics; and
//! recorded in the log of calls outside runs (source `planner`) so `troupe usage` counts it.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use troupe_adapters::agent::{AgentRequest, GenerationOptions, OutputFormat};
use troupe_adapters::config::Role;
use troupe_workflows::engine::StepPos;

use crate::call::{Caller, Failure};
use crate::error::{Error, Result};
use crate::model::{Budget, ChangeOptions, RunRecord, RunState, Tokens};
use crate::runtime::Runtime;
use crate::shared::Shared;
use crate::usage::{CallLog, CallRecord, PLANNER};

/// A call to make.
#[derive(Debug, Clone, Default)]
pub struct Ask {
    /// What the call is for; names its audit trail (`<data>/audit/<label>.jsonl`).
    pub label: String,
    /// The agent; without one, the planner the dynamic workflow would pick (the configured
    /// `planner_agent` when eligible).
    pub agent: Option<String>,
    /// The prompt (masked before it is sent).
    pub prompt: String,
    /// The project folder the agent works in; the configured project when none.
    pub project: Option<PathBuf>,
    /// Only local agents (on top of the configuration's setting).
    pub offline: bool,
    /// A JSON schema the answer should follow (name, schema), for servers that enforce it.
    pub schema: Option<(String, serde_json::Value)>,
}

/// An answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Asked {
    /// The agent that answered.
    pub agent: String,
    /// The answer, secrets masked.
    pub text: String,
    /// Tokens used.
    pub tokens: Tokens,
    /// Its cost.
    pub cost: f64,
}

impl Runtime {
    /// Make one call outside a run's workflow (a plan's planner turn) through the runtime's
    /// one call path: budgets are checked before it, the prompt and answer are audited under
    /// `ask.label`, secrets are masked, metrics counted.
    pub async fn ask(&self, ask: Ask) -> Result<Asked> {
        let shared = self.shared();
        let offline = ask.offline || shared.config.settings.offline;
        let agent = match ask.agent.clone() {
            Some(a) if shared.agents.contains(&a) => a,
            Some(a) => {
                let names: Vec<&String> = shared.config.agents.keys().collect();
                return Err(Error::Invalid(format!(
                    "no agent named `{a}`; configured agents: {names:?}"
                )));
            }
            None => {
                let policy = crate::planner::policy(shared, offline);
                let cands = crate::planner::candidates(shared);
                let configured = shared.config.settings.planner_agent.as_deref();
                crate::planner::pick_planner(&policy, &cands, configured).ok_or_else(|| {
                    Error::Invalid(
                        "no agent is eligible to plan; configure one (`planner_agent` in \
                         [settings]) or name one with --planner"
                            .into(),
                    )
                })?
            }
        };
        let record = self.ask_record(&ask, offline).await?;
        let options = GenerationOptions {
            max_tokens: Some(shared.max_tokens),
            temperature: Some(0.0),
            output: match &ask.schema {
                Some((name, schema)) => {
                    OutputFormat::JsonSchema { name: name.clone(), schema: schema.clone() }
                }
                None => OutputFormat::Text,
            },
            ..Default::default()
        };
        let prompt = shared.redactor.redact_string(ask.prompt.clone());
        let request = AgentRequest::prompt(prompt).with_options(options);
        let pos = StepPos { iteration: 0, step: 0 };
        let cancel = CancellationToken::new();
        let workdir = record.project_path.clone();
        let caller = Caller::new(shared, &record, pos, Role::Plan, &agent, &[], workdir, &cancel);
        let started = std::time::Instant::now();
        let result = caller.call(&request).await;
        let logged = CallRecord {
            source: PLANNER.to_string(),
            at: Utc::now(),
            project: record.project_path.clone(),
            agent: agent.clone(),
            answered_by: result.as_ref().ok().map(|a| a.agent.clone()),
            model: result.as_ref().ok().and_then(|a| a.model.clone()),
            outcome: match &result {
                Ok(_) => troupe_observability::metrics::SUCCESS.to_string(),
                Err(Failure::Failed { class, .. }) => class.to_string(),
                Err(Failure::Refused { .. }) => "refused".to_string(),
            },
            tokens: result.as_ref().map(|a| a.tokens).unwrap_or_default(),
            cost: result.as_ref().map(|a| a.cost).unwrap_or_default(),
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        // The call itself is already in the metrics (the call path counted it); the log
        // carries it into `troupe usage` and into the next process's metrics.
        shared.metrics.record_outside_call(PLANNER, logged.counted_agent(), &logged.outcome);
        let log = CallLog::new(&shared.config.data_dir());
        let appended = tokio::task::spawn_blocking(move || log.append(&logged)).await;
        if let Ok(Err(e)) | Err(e) = appended.map_err(|e| Error::Join(e.to_string())) {
            tracing::warn!(error = %e, "the planner's call is not in the usage log");
        }
        match result {
            Ok(a) => Ok(Asked { agent: a.agent, text: a.text, tokens: a.tokens, cost: a.cost }),
            Err(Failure::Refused { reason, .. }) => {
                Err(Error::Invalid(format!("the call was not made: {reason}")))
            }
            Err(Failure::Failed { error, .. }) => Err(Error::Invalid(error)),
        }
    }

    /// The project memory relevant to `query` in `project` (empty when there is none).
    pub async fn project_context(&self, project: Option<PathBuf>, query: &str) -> Result<String> {
        let ask = Ask { label: "context".into(), project, ..Default::default() };
        let mut record = self.ask_record(&ask, false).await?;
        record.task = self.shared().redactor.redact(query).into_owned();
        Ok(self.shared().context_for(&record).await.text)
    }

    /// The run-shaped record a call outside a run is audited and budgeted under (never
    /// stored as a run).
    async fn ask_record(&self, ask: &Ask, offline: bool) -> Result<RunRecord> {
        let shared: &Arc<Shared> = self.shared();
        let config = &shared.config;
        let project = ask.project.clone().unwrap_or_else(|| config.project_path());
        let project_path = project.canonicalize().map_err(|e| {
            Error::Invalid(format!("the project folder {} cannot be used: {e}", project.display()))
        })?;
        let memory = shared.memory.clone();
        let p = project_path.clone();
        let project_id = tokio::task::spawn_blocking(move || memory.ensure_project(&p))
            .await
            .map_err(|e| Error::Join(e.to_string()))??;
        let budget = Budget {
            tokens: config.settings.run_token_budget,
            cost: config.settings.run_cost_budget,
        };
        let workflow = troupe_workflows::WorkflowConfig::new(1, Vec::new());
        Ok(RunRecord {
            offline,
            state: RunState::InProgress,
            started_at: Some(Utc::now()),
            change: ChangeOptions { no_validate: true, ..Default::default() },
            ..RunRecord::pending(
                ask.label.clone(),
                String::new(),
                "ask".into(),
                workflow,
                project_path,
                project_id,
                budget,
            )
        })
    }
}
