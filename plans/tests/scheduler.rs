//! The plan scheduler with scripted agents over a real git repository: approval gating,
//! dependency order (each task's workspace holds the changes of the tasks it comes after),
//! peak concurrency, failures blocking dependents, merge conflicts, pause/resume, retry and
//! skip, and the combined change applied.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::{Act, Coder, World, world};
use troupe_adapters::agent::Agent;
use troupe_plans::{Error, Plan, PlanSpec, PlanState, TaskSpec, TaskState};

/// Make `s` a plan, approve it, run it (at most `at_once` tasks at a time) and wait for its end.
async fn run_plan(w: &World, s: PlanSpec, at_once: Option<usize>) -> Plan {
    let plan = w.plans.create_from("spec", w.project(), s).unwrap();
    w.plans.approve(&plan.id).unwrap();
    w.plans.run(&plan.id, at_once).unwrap();
    w.plans.wait(&plan.id).await.unwrap()
}

fn spec(tasks: &[(&str, &[&str])]) -> PlanSpec {
    PlanSpec {
        title: "Demo".into(),
        goal: "Demonstrate".into(),
        tasks: tasks
            .iter()
            .map(|(id, after)| TaskSpec {
                id: id.to_string(),
                description: format!("Do {id}"),
                acceptance: vec![format!("{id} is done")],
                after: after.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })
            .collect(),
    }
}

fn write(file: &'static str, content: &'static str) -> Act {
    Act::Write(vec![(file, content)])
}

fn coder(c: &Arc<Coder>) -> (&'static str, Arc<dyn Agent>) {
    ("coder", c.clone() as Arc<dyn Agent>)
}

#[actix::test]
async fn nothing_runs_before_approval_and_tasks_run_in_dependency_order() {
    let c = Coder::new(
        &[("a", write("a.txt", "A")), ("b", write("b.txt", "B")), ("c", write("c.txt", "C"))],
        1,
    );
    let w = world(&[coder(&c)]);
    let plan = w
        .plans
        .create_from("spec", w.project(), spec(&[("c", &["b"]), ("b", &["a"]), ("a", &[])]))
        .unwrap();
    assert_eq!(plan.state, PlanState::Draft);

    // Unapproved: refused, and nothing ran.
    let err = w.plans.run(&plan.id, None).unwrap_err();
    assert!(matches!(err, Error::WrongState { state: PlanState::Draft, .. }), "{err}");
    assert!(err.to_string().contains("troupe plan approve"), "{err}");
    w.plans.reject(&plan.id).unwrap();
    assert!(w.plans.run(&plan.id, None).is_err());
    assert!(c.calls().is_empty());
    assert!(w.plans.runtime().store().runs().unwrap().is_empty());

    w.plans.approve(&plan.id).unwrap();
    w.plans.run(&plan.id, Some(3)).unwrap();
    let done = w.plans.wait(&plan.id).await.unwrap();
    assert_eq!(done.state, PlanState::Done, "{:?} {:?}", done.error, done.tasks);
    assert_eq!(c.calls(), vec!["a", "b", "c"]);
    // Each task's workspace started from the integration branch with the earlier changes.
    assert!(c.saw("b").contains(&"a.txt".to_string()), "{:?}", c.saw("b"));
    assert!(c.saw("c").contains(&"a.txt".to_string()) && c.saw("c").contains(&"b.txt".to_string()));
    assert!(!c.saw("a").contains(&"b.txt".to_string()));
    for t in ["a", "b", "c"] {
        let s = &done.tasks[t];
        assert_eq!(s.state, TaskState::Green);
        assert_eq!(s.runs.len(), 1, "no task ran twice");
        assert!(s.merged.is_some());
    }
    // The project is untouched until apply; apply brings all three changes.
    assert!(!w.repo.path().join("a.txt").exists());
    let change = w.plans.diff(&plan.id).await.unwrap();
    assert_eq!(change.files.len(), 3, "{}", change.stat());
    w.plans.apply(&plan.id, None).await.unwrap();
    for (f, body) in [("a.txt", "A"), ("b.txt", "B"), ("c.txt", "C")] {
        assert_eq!(std::fs::read_to_string(w.repo.path().join(f)).unwrap().trim(), body);
    }
}

#[actix::test]
async fn independent_tasks_run_at_once_up_to_the_limit() {
    let acts: Vec<(&str, Act)> = vec![
        ("t1", write("t1.txt", "1")),
        ("t2", write("t2.txt", "2")),
        ("t3", write("t3.txt", "3")),
        ("t4", write("t4.txt", "4")),
    ];
    // Each call waits (up to a second) for 4 calls in flight: only the limit keeps it lower.
    let c = Coder::new(&acts, 4);
    let w = world(&[coder(&c)]);
    let done =
        run_plan(&w, spec(&[("t1", &[]), ("t2", &[]), ("t3", &[]), ("t4", &[])]), Some(2)).await;
    assert_eq!(done.state, PlanState::Done, "{:?}", done.tasks);
    assert_eq!(c.peak.load(Ordering::SeqCst), 2);
}

#[actix::test]
async fn a_failed_task_blocks_its_dependents_and_retry_and_skip_go_on() {
    let c = Coder::new(
        &[("a", Act::Fail), ("b", write("b.txt", "B")), ("side", write("side.txt", "S"))],
        1,
    );
    let w = world(&[coder(&c)]);
    let failed = run_plan(&w, spec(&[("a", &[]), ("b", &["a"]), ("side", &[])]), Some(2)).await;
    assert_eq!(failed.state, PlanState::Failed);
    assert_eq!(failed.tasks["a"].state, TaskState::Failed);
    assert_eq!(failed.tasks["b"].state, TaskState::Blocked);
    assert!(failed.tasks["b"].reason.as_deref().unwrap().contains("`a`"));
    assert_eq!(failed.tasks["side"].state, TaskState::Green, "independent work goes on");
    assert!(!c.calls().contains(&"b".to_string()));
    assert!(failed.error.as_deref().unwrap().contains("`a` failed"), "{:?}", failed.error);
    assert!(matches!(w.plans.apply(&failed.id, None).await, Err(Error::WrongState { .. })));

    // Retry: the script now succeeds; `b` is unblocked and runs after it.
    c.acts.lock().unwrap().insert("a".into(), write("a.txt", "A"));
    w.plans.retry(&failed.id, "a").unwrap();
    let done = w.plans.wait(&failed.id).await.unwrap();
    assert_eq!(done.state, PlanState::Done, "{:?}", done.tasks);
    assert_eq!(done.tasks["a"].runs.len(), 2);
    assert_eq!(done.tasks["b"].runs.len(), 1);
    assert!(c.saw("b").contains(&"a.txt".to_string()));
    assert!(matches!(w.plans.retry(&failed.id, "zz"), Err(Error::NoSuchTask { .. })));
}

#[actix::test]
async fn skipping_a_failed_task_lets_the_tasks_after_it_run() {
    let c = Coder::new(&[("a", Act::Fail), ("b", write("b.txt", "B"))], 1);
    let w = world(&[coder(&c)]);
    let plan = w.plans.create_from("s", w.project(), spec(&[("a", &[]), ("b", &["a"])])).unwrap();
    w.plans.approve(&plan.id).unwrap();
    w.plans.run(&plan.id, None).unwrap();
    assert_eq!(w.plans.wait(&plan.id).await.unwrap().state, PlanState::Failed);
    w.plans.skip(&plan.id, "a").unwrap();
    let done = w.plans.wait(&plan.id).await.unwrap();
    assert_eq!(done.state, PlanState::Done, "{:?}", done.tasks);
    assert_eq!(done.tasks["a"].state, TaskState::Skipped);
    assert_eq!(done.tasks["b"].state, TaskState::Green);
}

#[actix::test]
async fn a_merge_conflict_marks_the_task_and_stops_its_dependents() {
    // Both rewrite shared.txt differently; `x` merges first (concurrency 1, written first).
    let c = Coder::new(
        &[
            ("x", write("shared.txt", "one\nTWO from x\nthree")),
            ("y", write("shared.txt", "one\nTWO from y\nthree")),
            ("z", write("z.txt", "Z")),
        ],
        1,
    );
    let w = world(&[coder(&c)]);
    let plan = w
        .plans
        .create_from("s", w.project(), spec(&[("x", &[]), ("y", &[]), ("z", &["y"])]))
        .unwrap();
    w.plans.approve(&plan.id).unwrap();
    // Both start from the same base: two slots.
    w.plans.run(&plan.id, Some(2)).unwrap();
    let end = w.plans.wait(&plan.id).await.unwrap();
    let (green, conflict) =
        if end.tasks["x"].state == TaskState::Green { ("x", "y") } else { ("y", "x") };
    assert_eq!(end.tasks[green].state, TaskState::Green, "{:?}", end.tasks);
    assert_eq!(end.tasks[conflict].state, TaskState::Conflict, "{:?}", end.tasks);
    assert_eq!(end.tasks[conflict].files, vec![std::path::PathBuf::from("shared.txt")]);
    assert!(end.tasks[conflict].reason.as_deref().unwrap().contains("shared.txt"));
    if conflict == "y" {
        assert_eq!(end.tasks["z"].state, TaskState::Blocked);
    }
    assert_eq!(end.state, PlanState::Failed);
    // The integration branch is clean (the merge was aborted) and holds the green change.
    let ws = end.integration.unwrap();
    assert_eq!(common::git(&ws.dir, &["status", "--porcelain"]).trim(), "");
}

#[actix::test]
async fn a_paused_plan_starts_nothing_new_until_resumed() {
    let c = Coder::new(&[("a", write("a.txt", "A")), ("b", write("b.txt", "B"))], 1);
    let w = world(&[coder(&c)]);
    let plan = w.plans.create_from("s", w.project(), spec(&[("a", &[]), ("b", &["a"])])).unwrap();
    w.plans.approve(&plan.id).unwrap();
    // Hold the coder at its gate while `a` runs, pause, then let `a` finish.
    let permits = c.gate.available_permits();
    let held = c.gate.acquire_many(permits as u32).await.unwrap();
    w.plans.run(&plan.id, None).unwrap();
    while c.calls().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let paused = w.plans.pause(&plan.id).unwrap();
    assert_eq!(paused.state, PlanState::Paused);
    drop(held);
    let stopped = w.plans.wait(&plan.id).await.unwrap();
    assert_eq!(stopped.state, PlanState::Paused);
    assert_eq!(stopped.tasks["a"].state, TaskState::Green, "a running task finishes and merges");
    assert_eq!(stopped.tasks["b"].state, TaskState::Pending);
    assert_eq!(c.calls(), vec!["a"]);

    w.plans.resume(&plan.id).unwrap();
    let done = w.plans.wait(&plan.id).await.unwrap();
    assert_eq!(done.state, PlanState::Done);
    assert_eq!(c.calls(), vec!["a", "b"]);
}

#[actix::test]
async fn a_serving_queue_starts_approved_plans_by_itself() {
    let c = Coder::new(&[("a", write("a.txt", "A")), ("b", write("b.txt", "B"))], 1);
    let w = world(&[coder(&c)]);
    let approved = w.plans.create_from("spec", w.project(), spec(&[("a", &[])])).unwrap();
    w.plans.approve(&approved.id).unwrap();
    let draft = w.plans.create_from("spec", w.project(), spec(&[("b", &[])])).unwrap();

    // At start: the approved plan runs, the draft does not.
    assert_eq!(w.plans.serve_queue().unwrap(), vec![approved.id.clone()]);
    assert_eq!(w.plans.wait(&approved.id).await.unwrap().state, PlanState::Done);
    assert_eq!(w.plans.get(&draft.id).unwrap().state, PlanState::Draft);
    assert_eq!(c.calls(), vec!["a"]);

    // Approving a plan while the queue serves starts it.
    w.plans.approve(&draft.id).unwrap();
    for _ in 0..500 {
        if w.plans.is_driving(&draft.id)
            || w.plans.get(&draft.id).unwrap().state != PlanState::Approved
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(w.plans.wait(&draft.id).await.unwrap().state, PlanState::Done);
    assert_eq!(c.calls(), vec!["a", "b"]);
}

#[actix::test]
async fn a_task_run_expects_only_its_own_names_not_those_of_the_tasks_it_quotes() {
    // `a` names no code; its run's task quotes the plan's goal, which asks to add make_b()
    // (b's work). A plain run expects the names its task asks to add; a task's run must not.
    let c = Coder::new(
        &[("a", write("a.txt", "A")), ("b", write("b.py", "def make_b():\n    return 2\n"))],
        1,
    );
    let w = world(&[coder(&c)]);
    let mut s = spec(&[("a", &[]), ("b", &["a"])]);
    s.tasks[0].description = "Write the letter A into a.txt".into();
    s.tasks[1].description = "Add make_b() to b.py".into();
    s.goal = "Write A into a.txt, then add make_b() to b.py".into();
    let done = run_plan(&w, s, None).await;
    assert_eq!(done.tasks["a"].state, TaskState::Green, "{:?}", done.tasks);
    assert_eq!(done.tasks["b"].state, TaskState::Green, "{:?}", done.tasks);
    let (a_run, _) = w.plans.runtime().run(done.tasks["a"].run_id.as_deref().unwrap()).unwrap();
    assert!(a_run.task.contains("make_b"), "{}", a_run.task);
    assert!(a_run.expect.is_empty(), "{:?}", a_run.expect);
    let (b_run, _) = w.plans.runtime().run(done.tasks["b"].run_id.as_deref().unwrap()).unwrap();
    assert_eq!(b_run.expect, ["make_b"]);
}

#[actix::test]
async fn a_task_whose_run_never_writes_the_names_it_gives_is_not_green() {
    // `a` writes the function its description names; `b` is asked for one and writes
    // something else: the project has no checks of its own, and the expected names fail b.
    let c = Coder::new(
        &[("a", write("a.py", "def make_a():\n    return 1\n")), ("b", write("b.txt", "B"))],
        1,
    );
    let w = world(&[coder(&c)]);
    let mut s = spec(&[("a", &[]), ("b", &["a"])]);
    s.tasks[0].description = "Add make_a() to a.py".into();
    s.tasks[1].description = "Add make_b() to b.py".into();
    let done = run_plan(&w, s, None).await;
    assert_eq!(done.tasks["a"].state, TaskState::Green, "{:?}", done.tasks);
    assert_eq!(done.tasks["b"].state, TaskState::Failed, "{:?}", done.tasks);
    let run = done.tasks["b"].run_id.clone().unwrap();
    let (record, _) = w.plans.runtime().run(&run).unwrap();
    assert_eq!(record.validators, ["troupe-expect make_b"]);
    let checks = w.plans.runtime().store().checks(&run).unwrap();
    let evidence = checks.last().and_then(|c| c.report.clone()).unwrap().evidence(4000);
    assert!(
        evidence.contains("The task names `make_b`, but no file of the project has it"),
        "{evidence}"
    );
}
