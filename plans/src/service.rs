//! [`Plans`]: the front-ends' handle on plans — make (by the planner), edit, revise,
//! approve or reject, run (the [`scheduler`]), retry, skip, pause,
//! resume, apply. Every change is written to the store before it is announced.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::broadcast;
use troupe_runtime::Runtime;

use crate::error::{Error, Result};
use crate::model::{Plan, PlanEvent, PlanSpec, PlanState, TaskState};
use crate::planner::{self, PlanRequest};
use crate::scheduler;
use crate::shared::Shared;
use crate::store::PlanStore;

/// What to plan (`troupe plan new`).
#[derive(Debug, Clone, Default)]
pub struct NewPlan {
    /// The spec.
    pub spec: String,
    /// The project folder; the configured project when none.
    pub project: Option<PathBuf>,
    /// The planner agent; the runtime's pick when none.
    pub planner: Option<String>,
    /// Only local agents.
    pub offline: bool,
    /// Approve it at once.
    pub approve: bool,
}

/// Plans over a runtime and a plan store.
#[derive(Debug, Clone)]
pub struct Plans {
    shared: Arc<Shared>,
}

impl Plans {
    /// Plans run by `runtime`, kept in `store`.
    pub fn new(runtime: Runtime, store: PlanStore) -> Plans {
        Plans { shared: Arc::new(Shared::new(runtime, store)) }
    }

    /// Plans kept in the store `runtime` opened (its `plans` collection).
    pub fn open(runtime: Runtime) -> Result<Plans> {
        let store = match runtime.context_store() {
            Some(s) => PlanStore::of(s)?,
            None => {
                return Err(Error::Refused("this runtime has no store to keep plans in".into()));
            }
        };
        Ok(Plans::new(runtime, store))
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.shared.runtime
    }

    /// The plan store.
    pub fn store(&self) -> &PlanStore {
        &self.shared.store
    }

    /// Plan events, live.
    pub fn subscribe(&self) -> broadcast::Receiver<PlanEvent> {
        self.shared.events.subscribe()
    }

    /// A plan by id or prefix.
    pub fn get(&self, id: &str) -> Result<Plan> {
        self.shared.store.get(id)
    }

    /// Every plan, oldest first.
    pub fn list(&self) -> Result<Vec<Plan>> {
        self.shared.store.list()
    }

    /// Read, change and write a plan under the write lock; announces what changed.
    fn update<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut Plan) -> Result<T>,
    ) -> Result<(Plan, T)> {
        self.shared.update(id, change)
    }

    /// Ask the planner for a plan of `req.spec` and store it as a draft (approved with
    /// `req.approve`).
    pub async fn create(&self, req: NewPlan) -> Result<Plan> {
        let project = req.project.clone().unwrap_or_else(|| self.runtime().config().project_path());
        let project = project.canonicalize().map_err(|e| {
            Error::Refused(format!("the project folder {} cannot be used: {e}", project.display()))
        })?;
        let id = uuid::Uuid::now_v7().to_string();
        let request = PlanRequest {
            spec: req.spec.clone(),
            project: project.clone(),
            planner: req.planner.clone(),
            offline: req.offline,
            revise: None,
            label: format!("plan-{id}"),
        };
        let (spec, agent) = planner::plan(self.runtime(), &request).await?;
        let mut plan = Plan::new(&req.spec, project, spec, &format!("planner {agent}"));
        plan.id = id;
        plan.planner = req.planner;
        plan.offline = req.offline;
        if req.approve {
            plan.state = PlanState::Approved;
        }
        self.shared.store.put(&plan)?;
        self.shared.announce_plan(&plan);
        Ok(plan)
    }

    /// Store a plan written elsewhere (an API client, a test) as a draft, after checking it.
    pub fn create_from(&self, spec_text: &str, project: PathBuf, spec: PlanSpec) -> Result<Plan> {
        crate::validate::check(&spec).map_err(Error::Invalid)?;
        let project = project.canonicalize().map_err(|e| {
            Error::Refused(format!("the project folder {} cannot be used: {e}", project.display()))
        })?;
        let plan = Plan::new(spec_text, project, spec, "written");
        self.shared.store.put(&plan)?;
        Ok(plan)
    }

    /// Replace a plan's text with an edited one (a new version, a draft again). Refused
    /// once the plan has started.
    pub fn edit(&self, id: &str, spec: PlanSpec) -> Result<Plan> {
        crate::validate::check(&spec).map_err(Error::Invalid)?;
        Ok(self
            .update(id, |p| {
                editable(p)?;
                p.revise(spec, "edit");
                Ok(())
            })?
            .0)
    }

    /// Have the planner revise a plan with `feedback` (a new version, a draft again).
    pub async fn revise(&self, id: &str, feedback: &str) -> Result<Plan> {
        let plan = self.get(id)?;
        editable(&plan)?;
        let request = PlanRequest {
            spec: plan.spec_text.clone(),
            project: plan.project.clone(),
            planner: plan.planner.clone(),
            offline: plan.offline,
            revise: Some((plan.spec.clone(), feedback.to_string())),
            label: format!("plan-{}", plan.id),
        };
        let (spec, agent) = planner::plan(self.runtime(), &request).await?;
        let feedback: String = feedback.chars().take(200).collect();
        Ok(self
            .update(&plan.id, |p| {
                editable(p)?;
                p.revise(spec, &format!("revise {agent}: {feedback}"));
                Ok(())
            })?
            .0)
    }

    /// Approve a draft: it may run now.
    pub fn approve(&self, id: &str) -> Result<Plan> {
        Ok(self
            .update(id, |p| match p.state {
                PlanState::Draft | PlanState::Rejected => {
                    p.state = PlanState::Approved;
                    Ok(())
                }
                PlanState::Approved => Ok(()),
                s => Err(wrong(p, s, "it was approved already")),
            })?
            .0)
    }

    /// Reject a draft: it never runs (edit or revise it to make it a draft again).
    pub fn reject(&self, id: &str) -> Result<Plan> {
        Ok(self
            .update(id, |p| match p.state {
                PlanState::Draft | PlanState::Approved | PlanState::Rejected => {
                    p.state = PlanState::Rejected;
                    Ok(())
                }
                s => Err(wrong(p, s, "it has started; pause it instead")),
            })?
            .0)
    }

    /// Stop starting tasks (running ones finish and are merged).
    pub fn pause(&self, id: &str) -> Result<Plan> {
        let plan = self
            .update(id, |p| match p.state {
                PlanState::Running | PlanState::Approved => {
                    p.state = PlanState::Paused;
                    Ok(())
                }
                PlanState::Paused => Ok(()),
                s => Err(wrong(p, s, "only a running plan can be paused")),
            })?
            .0;
        self.shared.wake(&plan.id);
        Ok(plan)
    }

    /// Go on with a paused plan.
    pub fn resume(&self, id: &str) -> Result<Plan> {
        let plan = self.get(id)?;
        if plan.state != PlanState::Paused {
            return Err(wrong(&plan, plan.state, "only a paused plan can be resumed"));
        }
        self.start(&plan.id, None)
    }

    /// Run an approved plan (or go on with a running, paused or failed one): its scheduler
    /// starts in this process; `concurrency` tasks at most run at once (the plan's own
    /// setting when none). Returns at once; [`Plans::wait`] waits for the end.
    pub fn run(&self, id: &str, concurrency: Option<usize>) -> Result<Plan> {
        self.start(id, concurrency)
    }

    fn start(&self, id: &str, concurrency: Option<usize>) -> Result<Plan> {
        let plan = self
            .update(id, |p| {
                match p.state {
                    PlanState::Draft => {
                        return Err(wrong(p, p.state, &format!(
                            "nothing runs before approval: `troupe plan approve {}` (or edit, revise or reject it)",
                            p.short_id()
                        )));
                    }
                    PlanState::Rejected => {
                        return Err(wrong(p, p.state, "a rejected plan never runs; revise or edit it, then approve it"));
                    }
                    PlanState::Done => return Err(wrong(p, p.state, "every task is done; apply it with `troupe plan apply`")),
                    _ => {}
                }
                if let Some(n) = concurrency {
                    if n == 0 {
                        return Err(Error::Refused("--concurrency must be at least 1".into()));
                    }
                    p.concurrency = n;
                }
                p.state = PlanState::Running;
                p.error = None;
                Ok(())
            })?
            .0;
        scheduler::spawn(&self.shared, &plan.id);
        Ok(plan)
    }

    /// Wait until the plan's scheduler in this process stops (the plan is done, failed or
    /// paused); the plan as it is then.
    pub async fn wait(&self, id: &str) -> Result<Plan> {
        let plan = self.get(id)?;
        let driver = self.shared.drivers.lock().ok().and_then(|d| d.get(&plan.id).cloned());
        if let Some(mut d) = driver {
            while !*d.done.borrow() {
                if d.done.changed().await.is_err() {
                    break;
                }
            }
        }
        self.get(&plan.id)
    }

    /// Whether the plan's scheduler runs in this process.
    pub fn is_driving(&self, id: &str) -> bool {
        self.shared.drivers.lock().is_ok_and(|d| d.contains_key(id))
    }

    /// Run a failed or conflicting task again (a new run, from the integration branch as it
    /// is now); the tasks it blocked wait for it again.
    pub fn retry(&self, id: &str, task: &str) -> Result<Plan> {
        self.update(id, |p| {
            let state = task_of(p, task)?;
            if !matches!(state, TaskState::Failed | TaskState::Conflict) {
                return Err(Error::Refused(format!(
                    "task `{task}` is {state}; only a failed or conflicting task can be retried"
                )));
            }
            if let Some(t) = p.tasks.get_mut(task) {
                t.state = TaskState::Pending;
                t.run_id = None;
                t.reason = None;
                t.files.clear();
            }
            scheduler::reblock(p);
            Ok(())
        })?;
        self.continue_after_change(id)
    }

    /// Skip a task that has not gone green: the tasks after it run without its change.
    pub fn skip(&self, id: &str, task: &str) -> Result<Plan> {
        self.update(id, |p| {
            let state = task_of(p, task)?;
            if matches!(state, TaskState::Green | TaskState::Running | TaskState::Skipped) {
                return Err(Error::Refused(format!(
                    "task `{task}` is {state}; it cannot be skipped"
                )));
            }
            if let Some(t) = p.tasks.get_mut(task) {
                t.state = TaskState::Skipped;
                t.reason = Some("skipped".into());
            }
            scheduler::reblock(p);
            Ok(())
        })?;
        self.continue_after_change(id)
    }

    /// After a retry or a skip: a finished plan runs again; a running one is woken.
    fn continue_after_change(&self, id: &str) -> Result<Plan> {
        let plan = self.get(id)?;
        match plan.state {
            PlanState::Failed | PlanState::Done | PlanState::Running => self.start(&plan.id, None),
            _ => Ok(plan),
        }
    }

    /// Bring the integration branch's change into the user's tree (all or nothing, like
    /// `troupe runs apply`); with `commit_message`, also commit it.
    pub async fn apply(&self, id: &str, commit_message: Option<String>) -> Result<Plan> {
        let plan = self.get(id)?;
        if plan.state != PlanState::Done {
            return Err(wrong(
                &plan,
                plan.state,
                "apply a plan once every task is green or skipped",
            ));
        }
        let Some(mut ws) = plan.integration.clone() else {
            return Err(Error::Refused("the plan has no integration branch".into()));
        };
        let ws =
            tokio::task::spawn_blocking(move || ws.apply(commit_message.as_deref()).map(|_| ws))
                .await
                .map_err(|e| Error::Refused(format!("the apply task died: {e}")))??;
        Ok(self
            .update(&plan.id, |p| {
                p.integration = Some(ws);
                Ok(())
            })?
            .0)
    }

    /// The integration branch's change (what `apply` would bring).
    pub async fn diff(&self, id: &str) -> Result<troupe_change::workspace::Change> {
        let plan = self.get(id)?;
        let Some(ws) = plan.integration else {
            return Err(Error::Refused("the plan has not started; it has no change yet".into()));
        };
        tokio::task::spawn_blocking(move || ws.diff())
            .await
            .map_err(|e| Error::Refused(format!("the diff task died: {e}")))?
            .map_err(Error::from)
    }

    /// Start the schedulers of plans a previous process left running (after a crash or a
    /// restart). Returns their ids.
    pub fn recover(&self) -> Result<Vec<String>> {
        let mut started = Vec::new();
        for plan in self.list()? {
            if plan.state == PlanState::Running && !self.is_driving(&plan.id) {
                scheduler::spawn(&self.shared, &plan.id);
                started.push(plan.id);
            }
        }
        Ok(started)
    }

    /// The durable queue's daemon side (`troupe serve`): go on with the plans a previous
    /// process left running, start the approved ones, and from now on start each plan the
    /// moment it is approved. The ids started now.
    pub fn serve_queue(&self) -> Result<Vec<String>> {
        // Subscribed first, so an approval between the listing and the loop is not missed.
        let mut events = self.subscribe();
        let mut started = self.recover()?;
        started.extend(self.start_approved()?);
        let plans = self.clone();
        actix::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(PlanEvent::PlanState { plan_id, state: PlanState::Approved }) => {
                        if let Err(e) = plans.run(&plan_id, None) {
                            tracing::warn!(plan = %plan_id, error = %e, "an approved plan did not start");
                        }
                    }
                    Ok(_) => {}
                    // Events were missed: look at the store instead.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = plans.start_approved();
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Ok(started)
    }

    /// Start every approved plan; one that cannot start is logged and left approved.
    fn start_approved(&self) -> Result<Vec<String>> {
        let mut started = Vec::new();
        for plan in self.list()? {
            if plan.state != PlanState::Approved {
                continue;
            }
            match self.run(&plan.id, None) {
                Ok(_) => started.push(plan.id),
                Err(e) => {
                    tracing::warn!(plan = %plan.id, error = %e, "an approved plan did not start")
                }
            }
        }
        Ok(started)
    }
}

fn editable(p: &Plan) -> Result<()> {
    match p.state {
        PlanState::Draft | PlanState::Approved | PlanState::Rejected => Ok(()),
        s => Err(wrong(p, s, "a plan that has started cannot change; make a new one")),
    }
}

fn wrong(p: &Plan, state: PlanState, hint: &str) -> Error {
    Error::WrongState { id: p.short_id().to_string(), state, hint: hint.to_string() }
}

fn task_of(p: &Plan, task: &str) -> Result<TaskState> {
    if p.task(task).is_none() {
        return Err(Error::NoSuchTask {
            plan: p.short_id().to_string(),
            task: task.to_string(),
            known: p.spec.tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>().join(", "),
        });
    }
    Ok(p.task_state(task))
}
