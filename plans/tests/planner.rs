//! The planner's turn with a scripted planner: a valid answer becomes a draft; an invalid
//! one is re-asked once with the problems named; two invalid answers fail with the raw
//! answer kept; a revision makes a new version and keeps the old one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{World, world};
use troupe_adapters::agent::Agent;
use troupe_adapters::testing::ScriptedAgent;
use troupe_plans::{Error, NewPlan, Plan, PlanState};

const VALID: &str = r#"{"title": "Word count", "goal": "Count words", "tasks": [
  {"id": "count", "description": "Add count_words", "acceptance": ["tabs separate words"], "files": ["textkit/core.py"], "after": []},
  {"id": "cli", "description": "Expose it", "acceptance": ["prints the count"], "after": ["count"]}]}"#;
const CYCLE: &str = r#"{"title": "W", "goal": "G", "tasks": [
  {"id": "a", "description": "d", "acceptance": [], "after": ["b"]},
  {"id": "b", "description": "d", "acceptance": [], "after": ["a"]}]}"#;
const REVISED: &str = r#"{"title": "Word count", "goal": "Count words", "tasks": [
  {"id": "count", "description": "Add count_words with tests", "acceptance": ["tests pass"], "after": []}]}"#;

fn planner(p: &Arc<ScriptedAgent>) -> (&'static str, Arc<dyn Agent>) {
    ("planner", p.clone() as Arc<dyn Agent>)
}

/// A world whose planner answers `answers` in turn (the last one again after that), and what `plan new SPEC` made of them.
async fn create(
    answers: &[&str],
    spec: &str,
    approve: bool,
) -> (World, Arc<ScriptedAgent>, troupe_plans::Result<Plan>) {
    let p = Arc::new(answers.iter().fold(ScriptedAgent::new("planner"), |a, t| a.then_answer(t)));
    let w = world(&[planner(&p)]);
    let plan = w
        .plans
        .create(NewPlan {
            spec: spec.into(),
            project: Some(w.project()),
            approve,
            ..Default::default()
        })
        .await;
    (w, p, plan)
}

#[actix::test]
async fn an_invalid_plan_is_asked_again_with_its_problems_named() {
    let (w, p, plan) = create(&[CYCLE, VALID], "count words", false).await;
    let plan = plan.unwrap();
    assert_eq!(plan.state, PlanState::Draft);
    assert_eq!(plan.spec.tasks.len(), 2);
    assert_eq!(plan.revisions[0].by, "planner planner");
    let prompts = p.prompts();
    assert_eq!(prompts.len(), 2);
    assert!(
        prompts[0].contains("count words") && prompts[0].contains("README.md"),
        "{}",
        prompts[0]
    );
    assert!(prompts[1].contains("dependency cycle: a → b → a"), "{}", prompts[1]);
    // Stored.
    assert_eq!(w.plans.get(&plan.id).unwrap(), plan);
    // Both planner calls are in `troupe usage`, marked as the planner's.
    let usage = troupe_runtime::usage::usage_report(w.plans.runtime(), None, None).unwrap();
    assert_eq!(usage.by_source.get("planner").map(|t| t.calls), Some(2), "{usage:?}");
    assert_eq!(usage.by_agent.get("planner").map(|t| t.calls), Some(2), "{usage:?}");
}

#[actix::test]
async fn two_invalid_answers_fail_with_the_raw_answer_kept() {
    let answers = ["I think you should add a function.", "{\"title\": \"x\"}"];
    let (w, _, plan) = create(&answers, "count words", false).await;
    let err = plan.unwrap_err();
    match err {
        Error::PlannerFailed { agent, problems, answer, .. } => {
            assert_eq!(agent, "planner");
            assert_eq!(answer, "{\"title\": \"x\"}");
            assert!(problems.contains(&"missing field `goal`".to_string()), "{problems:?}");
        }
        e => panic!("{e}"),
    }
    assert!(w.plans.list().unwrap().is_empty());
}

#[actix::test]
async fn revise_and_edit_make_new_versions_and_need_approval_again() {
    let (w, p, plan) = create(&[VALID, REVISED], "count words", true).await;
    let plan = plan.unwrap();
    assert_eq!(plan.state, PlanState::Approved);
    let revised = w.plans.revise(&plan.id, "one task is enough").await.unwrap();
    assert_eq!(revised.version(), 2);
    assert_eq!(revised.state, PlanState::Draft);
    assert_eq!(revised.spec.tasks.len(), 1);
    assert_eq!(revised.revisions[0].spec.tasks.len(), 2, "the first version is kept");
    assert!(revised.revisions[1].by.contains("one task is enough"));
    let prompt = p.prompts()[1].clone();
    assert!(prompt.contains("one task is enough") && prompt.contains("\"cli\""), "{prompt}");

    // An edit that names an unknown task is refused; a good one is version 3.
    let mut bad = revised.spec.clone();
    bad.tasks[0].after = vec!["nope".into()];
    let err = w.plans.edit(&plan.id, bad).unwrap_err();
    assert!(err.to_string().contains("task `count` comes after unknown task `nope`"), "{err}");
    let mut good = revised.spec.clone();
    good.title = "Edited".into();
    assert_eq!(w.plans.edit(&plan.id, good).unwrap().version(), 3);
}

const SPEC_TWO_PARTS: &str =
    "First fix word_count in textkit/words.py, then add longest_word(text) beside it.";
const PARTIAL: &str = r#"{"title": "Longest word", "goal": "Add it", "tasks": [
  {"id": "longest", "description": "Add longest_word", "acceptance": ["ties keep the first"], "files": ["textkit/words.py"], "after": []}]}"#;
const WHOLE: &str = r#"{"title": "Words", "goal": "Fix and add", "tasks": [
  {"id": "fix", "description": "Fix word_count", "acceptance": ["tabs separate words"], "files": ["textkit/words.py"], "after": []},
  {"id": "longest", "description": "Add longest_word", "acceptance": ["ties keep the first"], "after": ["fix"]}]}"#;

async fn plan_two_parts(answers: &[&str]) -> (Plan, Vec<String>) {
    let (_w, p, plan) = create(answers, SPEC_TWO_PARTS, false).await;
    let prompts = p.prompts();
    (plan.unwrap(), prompts)
}

#[actix::test]
async fn a_plan_that_leaves_out_part_of_the_spec_is_asked_again() {
    let (plan, prompts) = plan_two_parts(&[PARTIAL, WHOLE]).await;
    assert_eq!(prompts.len(), 2);
    assert!(
        prompts[1].contains("no task covers what the spec names: `word_count`"),
        "{}",
        prompts[1]
    );
    let ids: Vec<&str> = plan.spec.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["fix", "longest"]);
}

#[actix::test]
async fn a_partial_plan_stands_when_the_second_answer_is_no_plan_and_gets_a_task_for_the_rest() {
    let (plan, prompts) = plan_two_parts(&[PARTIAL, "Sorry, I cannot."]).await;
    assert_eq!(prompts.len(), 2);
    // What the planner left out is a task of its own, first as the spec asks.
    let ids: Vec<&str> = plan.spec.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["word-count", "longest"]);
    assert_eq!(plan.spec.tasks[0].description, "First fix word_count in textkit/words.py");
    assert_eq!(plan.spec.tasks[1].after, ["word-count"]);
}

#[actix::test]
async fn a_plan_still_partial_when_asked_again_gets_a_task_for_the_rest() {
    let (plan, prompts) = plan_two_parts(&[PARTIAL, PARTIAL]).await;
    assert_eq!(prompts.len(), 2);
    let ids: Vec<&str> = plan.spec.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["word-count", "longest"]);
}
