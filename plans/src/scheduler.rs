//! The scheduler of one plan: tasks become runs in dependency order, at most `concurrency`
//! at once; each run's workspace starts at the integration branch `troupe/plan-<id>` as it
//! is when the task starts; a green task is merged into that branch before the tasks after
//! it start (a conflict marks it `conflict`, naming the files); a failed, conflicting or
//! blocked task blocks the tasks after it.
//!
//! Durability: every state change is stored before anything acts on it. A task's run id is
//! stored (state `running`) *before* its run is submitted with that id, so after a crash
//! the scheduler finds the run — finished (its outcome is taken), interrupted (resumed with
//! [`Runtime::resume`] from its last finished step) or never made (submitted with the same
//! id) — and no task runs twice. A merge a crash interrupted is aborted and made again; one
//! that happened is found in the branch and not made twice.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use futures::future::LocalBoxFuture;
use futures::stream::FuturesUnordered;
use tokio::sync::{Notify, watch};
use troupe_change::workspace::{Merge, Workspaces};
use troupe_runtime::{ChangeOptions, RunRecord, RunRequest, RunState, Runtime};

use crate::error::{Error, Result};
use crate::model::{Plan, PlanState, TaskSpec, TaskState};
use crate::shared::{Driver, Shared};

type Finished = (String, Result<RunRecord>);

/// Start the plan's scheduler in this process (or wake the one that runs).
pub(crate) fn spawn(shared: &Arc<Shared>, id: &str) {
    let (done_tx, done_rx) = watch::channel(false);
    let wake = Arc::new(Notify::new());
    {
        let Ok(mut drivers) = shared.drivers.lock() else { return };
        if let Some(d) = drivers.get(id) {
            d.wake.notify_one();
            return;
        }
        drivers.insert(id.to_string(), Driver { wake: wake.clone(), done: done_rx });
    }
    let shared = shared.clone();
    let id = id.to_string();
    actix::spawn(async move {
        if let Err(e) = drive(&shared, &id, &wake).await {
            tracing::warn!(plan = %id, error = %e, "the plan stopped");
            let message = e.to_string();
            let _ = shared.update(&id, |p| {
                p.state = PlanState::Failed;
                p.error = Some(message);
                Ok(())
            });
        }
        remember(&shared, &id).await;
        if let Ok(mut d) = shared.drivers.lock() {
            d.remove(&id);
        }
        let _ = done_tx.send(true);
    });
}

async fn drive(shared: &Shared, id: &str, wake: &Notify) -> Result<()> {
    let runtime = shared.runtime.clone();
    ensure_integration(shared, id).await?;
    let mut running: FuturesUnordered<LocalBoxFuture<'static, Finished>> = FuturesUnordered::new();
    // Tasks a previous process left running: find their runs again.
    let plan = shared.get(id)?;
    for t in &plan.spec.tasks {
        let status = plan.tasks.get(&t.id).cloned().unwrap_or_default();
        if let (TaskState::Running, Some(run_id)) = (status.state, status.run_id) {
            running.push(follow(runtime.clone(), request(&plan, t)?, run_id, t.id.clone()));
        }
    }
    loop {
        let (plan, started) = shared.update(id, |p| {
            reblock(p);
            let mut started = Vec::new();
            if p.state != PlanState::Running {
                return Ok(started);
            }
            let order = crate::validate::order(&p.spec).map_err(|c| {
                Error::Invalid(vec![format!("dependency cycle: {}", c.join(" → "))])
            })?;
            let index: BTreeMap<String, TaskSpec> =
                p.spec.tasks.iter().map(|t| (t.id.clone(), t.clone())).collect();
            for tid in &order {
                let ready = index[tid].after.iter().all(|d| p.task_state(d).satisfies());
                if let Some(s) = p.tasks.get_mut(tid)
                    && s.state == TaskState::Pending
                    && ready
                {
                    s.state = TaskState::Queued;
                }
            }
            let in_flight = p.tasks.values().filter(|s| s.state == TaskState::Running).count();
            let mut free = p.concurrency.max(1).saturating_sub(in_flight);
            for tid in &order {
                if free == 0 {
                    break;
                }
                if let Some(s) = p.tasks.get_mut(tid)
                    && s.state == TaskState::Queued
                {
                    let run_id = uuid::Uuid::now_v7().to_string();
                    s.state = TaskState::Running;
                    s.run_id = Some(run_id.clone());
                    s.runs.push(run_id.clone());
                    s.reason = None;
                    started.push((tid.clone(), run_id));
                    free -= 1;
                }
            }
            Ok(started)
        })?;
        for (tid, run_id) in started {
            let task = plan.task(&tid).cloned().unwrap_or_default();
            running.push(follow(runtime.clone(), request(&plan, &task)?, run_id, tid));
        }
        if running.is_empty() {
            finish(shared, id)?;
            return Ok(());
        }
        tokio::select! {
            Some((tid, outcome)) = running.next() => settle(shared, id, &tid, outcome).await?,
            _ = wake.notified() => {}
        }
    }
}

/// A plan that ended (done or failed) into the project memory, when there is one.
async fn remember(shared: &Shared, id: &str) {
    let Some(store) = shared.runtime.context_store().cloned() else { return };
    let Ok(plan) = shared.get(id) else { return };
    if !matches!(plan.state, PlanState::Done | PlanState::Failed) {
        return;
    }
    let recorded = tokio::task::spawn_blocking(move || crate::memory::record(&store, &plan)).await;
    match recorded {
        Ok(Ok(node)) => {
            let _ = shared.update(id, |p| {
                p.memory_node = Some(node);
                Ok(())
            });
        }
        Ok(Err(e)) => {
            tracing::warn!(plan = %id, error = %e, "the plan was not recorded in the project memory")
        }
        Err(e) => tracing::warn!(plan = %id, error = %e, "recording the plan died"),
    }
}

/// The plan's end when nothing runs: done when every task is green or skipped, failed when
/// one stops the rest; a paused plan stays paused.
fn finish(shared: &Shared, id: &str) -> Result<()> {
    shared.update(id, |p| {
        if p.state != PlanState::Running {
            return Ok(());
        }
        let stopped: Vec<String> = p
            .spec
            .tasks
            .iter()
            .filter(|t| matches!(p.task_state(&t.id), TaskState::Failed | TaskState::Conflict))
            .map(|t| format!("`{}` {}", t.id, p.task_state(&t.id)))
            .collect();
        if p.spec.tasks.iter().all(|t| p.task_state(&t.id).satisfies()) {
            p.state = PlanState::Done;
        } else {
            p.state = PlanState::Failed;
            p.error = Some(if stopped.is_empty() {
                "tasks are left that cannot start".into()
            } else {
                format!(
                    "{} (retry with `troupe plan retry {} TASK`, or skip with `troupe plan skip`)",
                    stopped.join(", "),
                    p.short_id()
                )
            });
        }
        Ok(())
    })?;
    Ok(())
}

/// Mark tasks after a failed, conflicting or blocked task `blocked` (and free ones whose
/// blockers were retried or skipped), in dependency order.
pub(crate) fn reblock(p: &mut Plan) {
    let Ok(order) = crate::validate::order(&p.spec) else { return };
    for tid in order {
        let Some(task) = p.task(&tid).cloned() else { continue };
        let blocker = task.after.iter().find(|d| p.task_state(d).stops()).cloned();
        if let Some(s) = p.tasks.get_mut(&tid) {
            match (&blocker, s.state) {
                (Some(b), TaskState::Pending | TaskState::Queued | TaskState::Blocked) => {
                    s.state = TaskState::Blocked;
                    s.reason = Some(format!("after `{b}`, which did not go green"));
                }
                (None, TaskState::Blocked) => {
                    s.state = TaskState::Pending;
                    s.reason = None;
                }
                _ => {}
            }
        }
    }
}

/// Take a task's ended run: merge a green one into the integration branch, else mark it
/// failed.
async fn settle(shared: &Shared, id: &str, tid: &str, outcome: Result<RunRecord>) -> Result<()> {
    let record = match outcome {
        Ok(r) => r,
        Err(e) => {
            let reason = e.to_string();
            shared.update(id, |p| {
                set(p, tid, TaskState::Failed, Some(reason), Vec::new());
                Ok(())
            })?;
            return Ok(());
        }
    };
    if record.state != RunState::Completed {
        let reason = format!(
            "run {} ended {}{}",
            short(&record.id),
            record.state,
            record.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        );
        shared.update(id, |p| {
            set(p, tid, TaskState::Failed, Some(reason), Vec::new());
            Ok(())
        })?;
        return Ok(());
    }
    let Some(head) = record.workspace.as_ref().map(|w| w.head.clone()) else {
        shared.update(id, |p| {
            let reason = "its run had no workspace to merge".to_string();
            set(p, tid, TaskState::Failed, Some(reason), Vec::new());
            Ok(())
        })?;
        return Ok(());
    };
    let plan = shared.get(id)?;
    let Some(mut ws) = plan.integration.clone() else {
        return Err(Error::Refused("the plan lost its integration branch".into()));
    };
    let message =
        format!("troupe: plan {} task `{tid}` (run {})", plan.short_id(), short(&record.id));
    let files: Vec<PathBuf> = record.files.iter().map(|f| f.path.clone()).collect();
    let (ws, merged) =
        tokio::task::spawn_blocking(move || ws.merge(&head, &message).map(|m| (ws, m)))
            .await
            .map_err(|e| Error::Refused(format!("the merge task died: {e}")))??;
    shared.update(id, |p| {
        p.integration = Some(ws);
        match merged {
            Merge::Merged { head } => {
                set(p, tid, TaskState::Green, None, files);
                if let Some(s) = p.tasks.get_mut(tid) {
                    s.merged = Some(head);
                }
            }
            Merge::Conflict { files } => {
                let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                let reason = format!(
                    "its change conflicts with the integration branch in {}",
                    names.join(", ")
                );
                set(p, tid, TaskState::Conflict, Some(reason), files);
            }
        }
        reblock(p);
        Ok(())
    })?;
    Ok(())
}

fn set(p: &mut Plan, tid: &str, state: TaskState, reason: Option<String>, files: Vec<PathBuf>) {
    if let Some(s) = p.tasks.get_mut(tid) {
        s.state = state;
        s.reason = reason;
        s.files = files;
    }
}

/// The integration branch's worktree, made (from a snapshot of the user's tree) when the
/// plan first runs.
async fn ensure_integration(shared: &Shared, id: &str) -> Result<()> {
    let plan = shared.get(id)?;
    if plan.integration.as_ref().is_some_and(|w| w.exists()) {
        return Ok(());
    }
    let Some(root) = shared.runtime.workspaces_dir().map(|p| p.to_path_buf()) else {
        return Err(Error::Refused("plans need run workspaces; this runtime makes none".into()));
    };
    let data = shared.runtime.config().data_dir();
    let exclude: Vec<PathBuf> = [data.canonicalize().unwrap_or(data)]
        .into_iter()
        .filter(|d| d.starts_with(&plan.project))
        .collect();
    let project = plan.project.clone();
    let branch = plan.branch();
    let label = format!("plan-{}", plan.id);
    let ws = tokio::task::spawn_blocking(move || {
        Workspaces::new(root).create_branch(&project, &label, Some(&branch), None, &exclude)
    })
    .await
    .map_err(|e| Error::Refused(format!("the workspace task died: {e}")))?
    .map_err(|e| match e {
        troupe_change::Error::NotARepository { path } => Error::Refused(format!(
            "{} is not in a git repository; a plan merges its tasks on a git branch. Run `git init` there (and commit) first",
            path.display()
        )),
        e => Error::Change(e),
    })?;
    shared.update(id, |p| {
        p.integration = Some(ws);
        Ok(())
    })?;
    Ok(())
}

/// The run request of a task (its run starts at the integration branch's head).
fn request(plan: &Plan, task: &TaskSpec) -> Result<RunRequest> {
    let Some(ws) = &plan.integration else {
        return Err(Error::Refused("the plan has no integration branch".into()));
    };
    Ok(RunRequest {
        task: task_prompt(plan, task),
        workflow: task.workflow.clone(),
        offline: plan.offline,
        project: Some(plan.project.clone()),
        base: Some(ws.head.clone()),
        expect: crate::cover::expected_names(task),
        change: ChangeOptions { expect_given_only: true, ..ChangeOptions::default() },
        ..RunRequest::default()
    })
}

/// A task's run's task: its description, acceptance criteria and files, where it stands in
/// the plan, and what the other tasks do.
fn task_prompt(plan: &Plan, task: &TaskSpec) -> String {
    let mut text = task.description.trim().to_string();
    if !task.acceptance.is_empty() {
        text.push_str("\n\nAcceptance criteria:\n");
        for a in &task.acceptance {
            text.push_str(&format!("- {a}\n"));
        }
    }
    let said = crate::cover::spec_says(&plan.spec_text, task);
    if !said.is_empty() {
        text.push_str("\nWhat the spec says about it:\n");
        for s in said {
            text.push_str(&format!("> {s}\n"));
        }
    }
    if !task.files.is_empty() {
        text.push_str(&format!("\nFiles likely involved: {}\n", task.files.join(", ")));
    }
    // Where the task stands: the plan's title and goal, and the other tasks by id (their work
    // is not this task's: the implementer leaves it and the review does not ask for it — a
    // small reviewer asked a function's task for the tests the next task writes).
    let others: Vec<String> =
        plan.spec.tasks.iter().filter(|t| t.id != task.id).map(|t| format!("`{}`", t.id)).collect();
    text.push_str(&format!(
        "\n(Task `{}` of the plan \"{}\": {}",
        task.id,
        plan.spec.title,
        plan.spec.goal.trim().trim_end_matches('.')
    ));
    if !others.is_empty() {
        text.push_str(&format!(
            ". The plan's other tasks, not part of this one: {}",
            others.join(", ")
        ));
    }
    text.push_str(".)\n");
    text
}

/// A task's run to its end: submitted with its recorded id when it does not exist yet,
/// waited for when it runs in this process, its record when it ended, resumed when a
/// previous process left it unfinished.
fn follow(
    runtime: Runtime,
    mut req: RunRequest,
    run_id: String,
    tid: String,
) -> LocalBoxFuture<'static, Finished> {
    Box::pin(async move {
        let outcome = async {
            match runtime.store().run(&run_id)? {
                None => {
                    req.id = Some(run_id.clone());
                    Ok(runtime.submit(req).await?.wait().await?)
                }
                Some(r) if r.state.is_final() => Ok(r),
                Some(_) if runtime.live_runs().contains(&run_id) => {
                    if let Some(mut events) = runtime.subscribe(&run_id) {
                        while let Ok(e) = events.recv().await {
                            if e.is_final() {
                                break;
                            }
                        }
                    }
                    runtime.store().run(&run_id)?.ok_or_else(|| {
                        Error::Runtime(troupe_runtime::Error::NoSuchRun(run_id.clone()))
                    })
                }
                Some(_) => Ok(runtime.resume(&run_id).await?.wait().await?),
            }
        }
        .await;
        (tid, outcome)
    })
}

fn short(id: &str) -> String {
    id.chars().filter(|c| *c != '-').take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PlanSpec;

    #[test]
    fn a_task_prompt_says_what_the_other_tasks_do_and_not_this_one_twice() {
        let task = |id: &str, d: &str| TaskSpec {
            id: id.into(),
            description: d.into(),
            ..Default::default()
        };
        let spec = PlanSpec {
            title: "Words".into(),
            goal: "Longest word".into(),
            tasks: vec![
                task("add", "Add longest_word.\nIt returns the first on a tie."),
                task("test", "Test longest_word"),
            ],
        };
        let plan = Plan::new("spec", PathBuf::from("/p"), spec.clone(), "planner");
        let text = task_prompt(&plan, &spec.tasks[0]);
        assert!(text.starts_with("Add longest_word.\nIt returns the first on a tie."), "{text}");
        assert!(
            text.contains("(Task `add` of the plan \"Words\": Longest word. The plan's other tasks, not part of this one: `test`.)"),
            "{text}"
        );
        assert!(!text.contains("Test longest_word"), "{text}");
        // The spec's own words about the task's names are quoted.
        let plan = Plan::new(
            "Add longest_word(text), the first on a tie. Fix word_count.",
            PathBuf::from("/p"),
            spec.clone(),
            "planner",
        );
        let text = task_prompt(&plan, &spec.tasks[0]);
        assert!(
            text.contains(
                "What the spec says about it:\n> Add longest_word(text), the first on a tie.\n"
            ),
            "{text}"
        );
        assert!(!text.contains("Fix word_count"), "{text}");
        // A plan of one task has no others.
        let one = PlanSpec { tasks: vec![spec.tasks[1].clone()], ..spec };
        let plan = Plan::new("spec", PathBuf::from("/p"), one.clone(), "planner");
        assert!(
            task_prompt(&plan, &one.tasks[0])
                .ends_with("(Task `test` of the plan \"Words\": Longest word.)\n")
        );
    }
}
