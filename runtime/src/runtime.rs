//! The runtime handle front-ends use: start, resume, cancel and watch runs.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{Semaphore, broadcast, oneshot};
use troupe_adapters::registry::AgentRegistry;
use troupe_observability::Metrics;
use troupe_observability::redact::Redactor;
use troupe_workflows::config::DYNAMIC_WORKFLOW;
use troupe_workflows::template::{Templates, load_file, resolve_prompt_path};
use troupe_workflows::{Config, WorkflowConfig};

use crate::agents::{AgentPool, AgentSource};
use crate::audit::AuditLog;
use crate::error::{Error, Result};
use crate::memory::Memory;
use crate::model::{
    Budget, RunEvent, RunRecord, RunRequest, RunState, RunStats, StepRecord, Tokens, UsageReport,
};
use crate::shared::Shared;
use crate::store::{Backend, RunStore};
use crate::supervisor::{Launched, LiveRuns, RunJob};

/// How many events a slow subscriber may fall behind before it misses some.
const EVENT_BUFFER: usize = 4096;
/// The workflow offline mode uses when the default one needs agents off this machine.
const OFFLINE_WORKFLOW: &str = "offline-default";

/// What the runtime is built from. The binary assembles it from the configuration: agents
/// from `troupe-adapters`, memory and the record backend from `troupe-context`.
#[derive(Debug)]
pub struct RuntimeParts {
    /// The validated configuration.
    pub config: Config,
    /// The configuration file, for resolving step prompt files.
    pub config_path: Option<PathBuf>,
    /// Every configured agent's source, by name: its actor builds the agent's stack from
    /// it when it starts and again after a panic.
    pub agents: BTreeMap<String, AgentSource>,
    /// The project memory.
    pub memory: Arc<dyn Memory>,
    /// Where run records live.
    pub backend: Arc<dyn Backend>,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// `max_tokens` asked of every step's answer.
    pub max_tokens: u32,
    /// The adapter registry the agents came from (breaker states, managed servers), if any.
    pub registry: Option<Arc<AgentRegistry>>,
    /// The context store behind `memory`, if any (for search, stats and exports).
    pub context: Option<troupe_context::Store>,
    /// Where each run's audit trail is appended (and the masker it applies).
    pub audit: AuditLog,
    /// Masks secrets in prompts, answers, records and events.
    pub redactor: Redactor,
    /// Where runs' workspaces are made (`<data>/workspaces`); `None`: runs work in the
    /// project folder and produce text only (in-memory runtimes in tests).
    pub workspaces: Option<PathBuf>,
}

impl RuntimeParts {
    /// A runtime of `config` and `agents` keeping its records in `backend`, and nothing more:
    /// no project memory ([`NoMemory`](crate::memory::NoMemory)), fresh metrics, the
    /// configured `max_output_tokens`, no registry, context store, audit trail, masking or
    /// workspaces. Set what else it needs with struct update syntax.
    pub fn new(
        config: Config,
        agents: BTreeMap<String, AgentSource>,
        backend: Arc<dyn Backend>,
    ) -> Result<RuntimeParts> {
        Ok(RuntimeParts {
            max_tokens: config.settings.max_output_tokens,
            config,
            config_path: None,
            agents,
            memory: Arc::new(crate::memory::NoMemory),
            backend,
            metrics: Metrics::new().map_err(|e| Error::Invalid(e.to_string()))?,
            registry: None,
            context: None,
            audit: AuditLog::default(),
            redactor: Redactor::default(),
            workspaces: None,
        })
    }
}

/// A run started by [`Runtime::submit`] or [`Runtime::resume`].
#[derive(Debug)]
pub struct RunHandle {
    /// The run's id.
    pub id: String,
    /// Its events, live.
    pub events: broadcast::Receiver<RunEvent>,
    done: oneshot::Receiver<RunRecord>,
}

impl RunHandle {
    /// Wait for the run to end; its final record.
    pub async fn wait(self) -> Result<RunRecord> {
        self.done
            .await
            .map_err(|_| Error::Join("the run's supervisor stopped without a result".into()))
    }
}

/// troupe's runtime: a Supervisor actor per run, an actor per agent, durable records.
#[derive(Debug, Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    /// The runs executing in this process.
    live: LiveRuns,
}

impl Runtime {
    /// Start the agent actors and load the templates. Call inside an actix system.
    ///
    /// Prompt templates (the `prompts_dir` overrides and every step's `prompt` file) are
    /// checked here, all at once. The agents' success counters are seeded from the stored
    /// step history, so routing sees more than this process's calls.
    pub fn new(parts: RuntimeParts) -> Result<Runtime> {
        let RuntimeParts {
            config,
            config_path,
            agents,
            memory,
            backend,
            metrics,
            max_tokens,
            registry,
            context,
            audit,
            redactor,
            workspaces,
        } = parts;
        let prompts_dir = config
            .settings
            .prompts_dir
            .as_ref()
            .map(|d| resolve_prompt_path(d, config_path.as_deref()));
        let mut errors: Vec<String> = Vec::new();
        let templates = match Templates::load(prompts_dir.as_deref()) {
            Ok(t) => t,
            Err(errs) => {
                errors.extend(errs.iter().map(|e| e.to_string()));
                Templates::builtin()
            }
        };
        let mut step_templates = HashMap::new();
        for wf in config.workflows.values() {
            for step in &wf.steps {
                if let Some(p) = &step.prompt {
                    let path = resolve_prompt_path(p, config_path.as_deref());
                    if step_templates.contains_key(&path) {
                        continue;
                    }
                    match load_file(&path) {
                        Ok(t) => {
                            step_templates.insert(path, t);
                        }
                        Err(e) => errors.push(e.to_string()),
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(Error::Templates(errors.join("\n")));
        }
        let store = RunStore::new(backend)?;
        // The breakers are the one home of their state; the gauge reads them when scraped.
        if let Some(r) = registry.clone() {
            metrics.read_breakers_from(move || {
                use troupe_adapters::resilience::BreakerState;
                use troupe_observability::metrics::BreakerGauge;
                r.breaker_states()
                    .into_iter()
                    .map(|(agent, state)| {
                        let gauge = match state {
                            BreakerState::Closed { .. } => BreakerGauge::Closed,
                            BreakerState::HalfOpen => BreakerGauge::HalfOpen,
                            BreakerState::Open { .. } => BreakerGauge::Open,
                        };
                        (agent, gauge)
                    })
                    .collect()
            });
        }
        seed_metrics(&store, &metrics);
        let slots = Arc::new(Semaphore::new(config.settings.max_concurrent_runs.max(1)));
        let shared = Arc::new(Shared {
            agents: AgentPool::start(agents),
            config,
            config_path,
            templates,
            step_templates,
            memory,
            store,
            metrics,
            max_tokens,
            registry,
            context,
            audit,
            redactor,
            workspaces,
        });
        Ok(Runtime { shared, slots, live: LiveRuns::default() })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The run records.
    pub fn store(&self) -> &RunStore {
        &self.shared.store
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Whether an agent's breaker is open.
    pub fn breaker_open(&self, agent: &str) -> bool {
        self.shared.breaker_open(agent)
    }

    /// Whether the agent `name` can be called now (offline as `offline` says): what the
    /// configuration says, then whether its adapter was built and its breaker is closed.
    /// `None` for an agent the configuration does not name.
    pub fn availability(&self, name: &str, offline: bool) -> Option<troupe_adapters::Availability> {
        use troupe_adapters::Availability as A;
        let agent = self.shared.config.agent(name)?;
        let of_config = A::of(agent, offline);
        if !of_config.is_usable() {
            return Some(of_config);
        }
        if let Some(e) = self.registry().and_then(|r| r.broken().get(name)) {
            return Some(A::Unusable(e.to_string()));
        }
        if self.breaker_open(name) {
            return Some(A::BreakerOpen);
        }
        Some(of_config)
    }

    /// The adapter registry (breaker states, managed servers), when the runtime was opened
    /// from configuration.
    pub fn registry(&self) -> Option<&Arc<AgentRegistry>> {
        self.shared.registry.as_ref()
    }

    /// The project-memory store, when the runtime was opened from configuration.
    pub fn context_store(&self) -> Option<&troupe_context::Store> {
        self.shared.context.as_ref()
    }

    /// Stop the managed local model servers this process started.
    pub async fn shutdown(&self) {
        if let Some(r) = &self.shared.registry {
            r.shutdown().await;
        }
    }

    /// Runs a previous process left pending or in progress (resume them with
    /// [`Runtime::resume`]).
    pub fn interrupted(&self) -> Result<Vec<RunRecord>> {
        Ok(self
            .shared
            .store
            .interrupted()?
            .into_iter()
            .filter(|r| !self.live.contains(&r.id))
            .collect())
    }

    /// Counts by state and average duration.
    pub fn stats(&self) -> Result<RunStats> {
        self.shared.store.stats()
    }

    /// Tokens and cost per project, agent and run; only `project`'s runs when given (a
    /// folder), only runs created at or after `since` when given.
    pub fn usage(
        &self,
        project: Option<&std::path::Path>,
        since: Option<chrono::DateTime<Utc>>,
    ) -> Result<UsageReport> {
        let project = match project {
            None => None,
            Some(p) => Some(p.canonicalize().map_err(|e| {
                Error::Invalid(format!("the project folder {} cannot be used: {e}", p.display()))
            })?),
        };
        self.shared.store.usage(project.as_deref(), since)
    }

    /// The secret masker every record, event and audit entry passes through.
    pub fn redactor(&self) -> &Redactor {
        &self.shared.redactor
    }

    /// Where runs' workspaces are made, when runs work in workspaces.
    pub fn workspaces_dir(&self) -> Option<&std::path::Path> {
        self.shared.workspaces.as_deref()
    }

    /// Where the audit trails are, if they are written.
    pub fn audit_dir(&self) -> Option<&std::path::Path> {
        self.shared.audit.dir()
    }

    /// Ids of the runs executing in this process.
    pub fn live_runs(&self) -> Vec<String> {
        self.live.ids()
    }

    fn ended_run(&self, id: &str) -> Result<RunRecord> {
        let record =
            self.shared.store.find_run(id)?.ok_or_else(|| Error::NoSuchRun(id.to_string()))?;
        if !record.state.is_final() || self.live.contains(&record.id) {
            return Err(Error::WrongState {
                id: record.id,
                state: record.state,
                hint: "wait for it to end, or cancel it first",
            });
        }
        Ok(record)
    }

    /// A run's change against its base (its workspace's commits).
    pub async fn diff(&self, id: &str) -> Result<troupe_change::workspace::Change> {
        let record =
            self.shared.store.find_run(id)?.ok_or_else(|| Error::NoSuchRun(id.to_string()))?;
        crate::apply::diff(&record).await
    }

    /// Apply an ended run's change to its project (all or nothing: a conflict is refused
    /// with the files named); with `commit_message`, also commit it on the user's branch.
    pub async fn apply(&self, id: &str, commit_message: Option<String>) -> Result<RunRecord> {
        let record = self.ended_run(id)?;
        crate::apply::apply_run(&self.shared, record, commit_message).await
    }

    /// Undo an applied change (refused, with the files named, when they changed since).
    pub async fn revert(&self, id: &str) -> Result<RunRecord> {
        let record = self.ended_run(id)?;
        crate::apply::revert_run(&self.shared, record).await
    }

    /// Remove an ended run's workspace and branch; the run's record stays.
    pub async fn discard(&self, id: &str) -> Result<RunRecord> {
        let record = self.ended_run(id)?;
        crate::apply::discard_run(&self.shared, record).await
    }

    /// Remove the workspaces of ended runs that finished before `before` (only list them
    /// with `dry_run`). Returns the runs whose workspaces were (or would be) removed.
    pub async fn cleanup_workspaces(
        &self,
        before: chrono::DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Vec<RunRecord>> {
        let runs: Vec<RunRecord> = self
            .shared
            .store
            .runs()?
            .into_iter()
            .filter(|r| r.state.is_final() && r.finished_at.is_some_and(|f| f < before))
            .filter(|r| r.workspace.is_some())
            .collect();
        if dry_run {
            return Ok(runs);
        }
        let mut done = Vec::new();
        for r in runs {
            done.push(crate::apply::discard_run(&self.shared, r).await?);
        }
        Ok(done)
    }

    /// The workflow a task runs through: the one asked for, else the configured default —
    /// or, offline with a default that needs agents off this machine, `offline-default`
    /// (with the note that says so). Front-ends show this name, so they name what runs.
    pub fn workflow_for(&self, requested: Option<&str>, offline: bool) -> (String, Option<String>) {
        if let Some(w) = requested {
            return (w.to_string(), None);
        }
        let config = &self.shared.config;
        let default = config.settings.default_workflow.clone();
        let needs_cloud = config.workflow(&default).is_some_and(|w| {
            config.agents_of(w).iter().any(|a| config.agent(a).is_some_and(|c| !c.is_local()))
        });
        if offline && needs_cloud && config.workflow(OFFLINE_WORKFLOW).is_some() {
            let note = format!(
                "offline: the default workflow `{default}` needs agents off this machine; using `{OFFLINE_WORKFLOW}`"
            );
            return (OFFLINE_WORKFLOW.to_string(), Some(note));
        }
        (default, None)
    }

    /// Start a run. It waits for a slot when `max_concurrent_runs` are running.
    pub async fn submit(&self, req: RunRequest) -> Result<RunHandle> {
        // A known secret never reaches an agent, the store or the memory.
        let task = self.shared.redactor.redact(req.task.trim()).into_owned();
        if task.is_empty() {
            return Err(Error::Invalid("the task is empty; say what to do".into()));
        }
        let config = &self.shared.config;
        let offline = req.offline || config.settings.offline;
        let project_path = req.project.clone().unwrap_or_else(|| config.project_path());
        let project_path = project_path.canonicalize().map_err(|e| {
            Error::Invalid(format!(
                "the project folder {} cannot be used: {e}",
                project_path.display()
            ))
        })?;
        let memory = self.shared.memory.clone();
        let p = project_path.clone();
        let project_id = tokio::task::spawn_blocking(move || memory.ensure_project(&p))
            .await
            .map_err(|e| Error::Join(e.to_string()))??;

        let mut notes = Vec::new();
        let (requested, note) = self.workflow_for(req.workflow.as_deref(), offline);
        notes.extend(note);
        // A typo must not quietly become a planned run (a planner call, other agents).
        config.check_workflow(&requested).map_err(|e| Error::Invalid(e.to_string()))?;
        let (workflow_name, mut workflow) = match config.workflow(&requested) {
            Some(w) if requested != DYNAMIC_WORKFLOW => (requested.clone(), w.clone()),
            _ => (DYNAMIC_WORKFLOW.to_string(), empty_workflow()),
        };
        if let Some(n) = req.max_iterations {
            if n == 0 {
                return Err(Error::Invalid("--max-iterations must be at least 1".into()));
            }
            workflow.max_iterations = n;
        }
        if offline && workflow_name != DYNAMIC_WORKFLOW {
            let remote: Vec<String> = config
                .agents_of(&workflow)
                .into_iter()
                .filter(|a| config.agent(a).is_some_and(|c| !c.is_local()))
                .collect();
            let steps_remote = workflow.steps.iter().any(|s| {
                config.agent(&s.agent).is_some_and(|c| !c.is_local())
                    && !s
                        .fallback
                        .iter()
                        .chain(config.agent(&s.agent).map(|c| &c.fallback).into_iter().flatten())
                        .any(|f| config.agent(f).is_some_and(|c| c.is_local()))
            });
            if steps_remote {
                return Err(Error::Invalid(format!(
                    "workflow `{workflow_name}` needs agents that are not on this machine ({}) and offline mode is on; \
                     use `--workflow offline-default` or `--workflow dynamic`",
                    remote.join(", ")
                )));
            }
        }

        let id = match &req.id {
            Some(id) if id.trim().is_empty() || id.contains('/') => {
                return Err(Error::Invalid(format!("`{id}` cannot be a run id")));
            }
            Some(id) if self.shared.store.run(id)?.is_some() => {
                return Err(Error::Invalid(format!("a run with id `{id}` exists already")));
            }
            Some(id) => id.clone(),
            None => uuid::Uuid::now_v7().to_string(),
        };
        if req.base.is_some() && req.change.in_place {
            return Err(Error::Invalid(
                "a run that starts at a given commit works in its own worktree, not in place"
                    .into(),
            ));
        }
        let budget = Budget {
            tokens: req.budget_tokens.or(config.settings.run_token_budget),
            cost: req.budget_cost.or(config.settings.run_cost_budget),
        };
        let record = RunRecord {
            plan_notes: notes,
            conversation: req.conversation.clone(),
            offline,
            change: req.change,
            base: req.base.clone(),
            expect: req.expect.clone(),
            ..RunRecord::pending(
                id,
                task,
                workflow_name,
                workflow,
                project_path,
                project_id,
                budget,
            )
        };
        self.launch(record, Vec::new()).await
    }

    /// Continue a run that did not finish (interrupted by a crash, failed or cancelled) from
    /// its first unfinished step; completed steps are kept, not run again.
    pub async fn resume(&self, id: &str) -> Result<RunHandle> {
        self.resume_with(id, Budget::default()).await
    }

    /// [`Runtime::resume`], with the run's budget raised (or lowered): each limit set in
    /// `budget` replaces the run's own — how a run that ended `budget_exceeded` goes on.
    pub async fn resume_with(&self, id: &str, budget: Budget) -> Result<RunHandle> {
        let mut record =
            self.shared.store.find_run(id)?.ok_or_else(|| Error::NoSuchRun(id.to_string()))?;
        if self.live.contains(&record.id) {
            return Err(Error::WrongState {
                id: record.id,
                state: record.state,
                hint: "it is running in this process",
            });
        }
        if record.state == RunState::Completed {
            return Err(Error::WrongState {
                id: record.id,
                state: record.state,
                hint: "there is nothing left to run",
            });
        }
        let steps = self.shared.store.steps(&record.id)?;
        record.state = RunState::Pending;
        record.finished_at = None;
        record.error = None;
        record.finish_reason = None;
        record.resumed += 1;
        // The totals of every call made so far, whatever a crash left in the record.
        record.tokens = Tokens::default();
        record.cost = 0.0;
        for s in &steps {
            record.tokens.add(s.tokens);
            record.cost += s.cost;
        }
        if let Some(t) = budget.tokens {
            record.budget.tokens = Some(t);
        }
        if let Some(c) = budget.cost {
            record.budget.cost = Some(c);
        }
        self.launch(record, steps).await
    }

    /// Hand the run to a new Supervisor, which writes it (`pending`) and owns it from then.
    async fn launch(&self, record: RunRecord, steps: Vec<StepRecord>) -> Result<RunHandle> {
        let (events, rx) = broadcast::channel(EVENT_BUFFER);
        let (done, done_rx) = oneshot::channel();
        let id = record.id.clone();
        let job = RunJob { shared: self.shared.clone(), record, steps, events };
        crate::supervisor::launch(job, self.slots.clone(), &self.live, done).await?;
        Ok(RunHandle { id, events: rx, done: done_rx })
    }

    /// Cancel a run: a running one stops its current step (killing a CLI agent's process
    /// group) and is marked cancelled by its Supervisor (one message); one left behind by
    /// another process is marked cancelled in the store.
    pub async fn cancel(&self, id: &str) -> Result<RunRecord> {
        let record =
            self.shared.store.find_run(id)?.ok_or_else(|| Error::NoSuchRun(id.to_string()))?;
        if self.live.cancel(&record.id) {
            Ok(record)
        } else {
            self.shared.store.cancel_stored(&record.id).await
        }
    }

    /// Call `watcher` with every run this runtime launches from now on — submitted or
    /// resumed, by any caller — before the run's first event (a server keeps every run's
    /// events this way, a plan's task runs included).
    pub fn watch_launches(&self, watcher: impl Fn(Launched) + Send + Sync + 'static) {
        self.live.watch(Arc::new(watcher));
    }

    /// The live events of a run executing in this process.
    pub fn subscribe(&self, id: &str) -> Option<broadcast::Receiver<RunEvent>> {
        self.live.subscribe(id)
    }

    /// A stored run with its steps.
    pub fn run(&self, id: &str) -> Result<(RunRecord, Vec<StepRecord>)> {
        let record =
            self.shared.store.find_run(id)?.ok_or_else(|| Error::NoSuchRun(id.to_string()))?;
        let steps = self.shared.store.steps(&record.id)?;
        Ok((record, steps))
    }
}

fn empty_workflow() -> WorkflowConfig {
    WorkflowConfig {
        description: Some("planned for this task".into()),
        ..WorkflowConfig::new(2, Vec::new())
    }
}

/// Seed the agents' call counters from the stored steps' calls (an index of small keys,
/// not the steps), so routing knows their history.
fn seed_metrics(store: &RunStore, metrics: &Metrics) {
    let Ok(calls) = store.calls() else { return };
    for (agent, outcome, latency_ms) in calls {
        metrics.record_call(&agent, &outcome, std::time::Duration::from_millis(latency_ms));
    }
}
