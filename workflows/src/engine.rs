//! The iteration engine: which step runs next, with what input, and when a run is done.
//!
//! Pure state, no I/O: the runtime asks [`Engine::next`], runs the step, and reports the
//! outcome with [`Engine::record`]. Resuming a run after a crash is the same calls replayed
//! from the persisted step records, so a resumed run continues exactly where it stopped.
//!
//! Rules:
//! - Steps run in order; each step's input is the latest *work* (the output of the latest
//!   non-review step). Review steps produce a [`Verdict`]; later steps see its findings.
//! - A `refine` step is skipped when the latest review of this iteration passed (there is
//!   nothing to refine); a step's `condition` can skip it too.
//! - After each iteration the run stops when every step succeeded and the latest review
//!   passed. A workflow without a review step runs once. At `max_iterations` it stops.
//! - A failed step ends the run.

use serde::{Deserialize, Serialize};
use troupe_agent_config::config::Role;

use crate::config::{StepCondition, WorkflowConfig};
use crate::verdict::{Verdict, VerdictStatus, parse_verdict};

/// Where a step sits in a run.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub struct StepPos {
    /// The iteration, from 1.
    pub iteration: u32,
    /// The step's index in the workflow, from 0.
    pub step: usize,
}

/// A step to run now.
#[derive(Debug, Clone, PartialEq)]
pub struct StepPlan {
    /// Where it is.
    pub pos: StepPos,
    /// What it does.
    pub role: Role,
    /// The agent to run it.
    pub agent: String,
    /// Agents to try, in order, when the agent fails (before the agent's own fallbacks).
    pub fallback: Vec<String>,
    /// The latest work (empty for the first step of the first iteration).
    pub input: String,
    /// The latest review's findings, when that review asked for changes.
    pub review: Option<String>,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum FinishReason {
    /// The review passed.
    ReviewPassed,
    /// The workflow has no review step: one iteration is the whole run.
    NoReview,
    /// The iteration limit was reached with the review still asking for changes.
    MaxIterations,
    /// A step failed.
    StepFailed,
    /// The project's validators (tests, linters) still fail on the change.
    ValidatorsFailed,
}

impl std::fmt::Display for FinishReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FinishReason::ReviewPassed => "the review passed",
            FinishReason::NoReview => "the workflow has no review step",
            FinishReason::MaxIterations => "the iteration limit was reached",
            FinishReason::StepFailed => "a step failed",
            FinishReason::ValidatorsFailed => "the project's checks still fail",
        })
    }
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finish {
    /// Whether the run succeeded (a failed step, or running out of iterations, is not success).
    pub success: bool,
    /// Why it ended.
    pub reason: FinishReason,
    /// Iterations started.
    pub iterations: u32,
    /// The latest work.
    pub output: Option<String>,
    /// The latest verdict.
    pub verdict: Option<Verdict>,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Run this step.
    Run(StepPlan),
    /// This step does not run (record it as skipped with the reason and call `next` again).
    Skip {
        /// Where it is.
        pos: StepPos,
        /// Why it is skipped.
        reason: String,
    },
    /// The run is over.
    Done(Finish),
}

/// What happened to a step, as reported to (or replayed into) the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StepOutcome {
    /// The step produced `output`.
    Completed {
        /// The answer.
        output: String,
    },
    /// The step was skipped.
    Skipped,
    /// The step failed.
    Failed {
        /// Why.
        error: String,
    },
}

/// The iteration state machine for one run.
#[derive(Debug, Clone)]
pub struct Engine {
    workflow: WorkflowConfig,
    max_suggestions: usize,
    pos: StepPos,
    work: Option<String>,
    verdict: Option<Verdict>,
    /// Whether a review has run in the current iteration, and its verdict passed.
    reviewed_this_iteration: Option<bool>,
    failed: Option<String>,
    has_review: bool,
    /// Whether the latest run of the validators passed (`None`: none ran yet).
    check: Option<bool>,
}

impl Engine {
    /// A run of `workflow` from its start. A review passes with at most `max_suggestions`
    /// suggestions (see [`Verdict::passes`]).
    pub fn new(workflow: WorkflowConfig, max_suggestions: usize) -> Engine {
        let has_review = workflow.steps.iter().any(|s| s.role == Role::Review);
        Engine {
            workflow,
            max_suggestions,
            pos: StepPos { iteration: 1, step: 0 },
            work: None,
            verdict: None,
            reviewed_this_iteration: None,
            failed: None,
            has_review,
            check: None,
        }
    }

    /// The workflow being run.
    pub fn workflow(&self) -> &WorkflowConfig {
        &self.workflow
    }

    /// The position of the step `next` will consider.
    pub fn position(&self) -> StepPos {
        self.pos
    }

    /// The latest work.
    pub fn work(&self) -> Option<&str> {
        self.work.as_deref()
    }

    /// The latest verdict.
    pub fn verdict(&self) -> Option<&Verdict> {
        self.verdict.as_ref()
    }

    /// What to do next.
    pub fn next(&self) -> Next {
        if self.failed.is_some() {
            return Next::Done(self.finish(false, FinishReason::StepFailed));
        }
        if self.pos.step >= self.workflow.steps.len() {
            // Between iterations: `record` moves on, so this is only reached at the end.
            return Next::Done(self.end_of_iteration_finish());
        }
        let step = &self.workflow.steps[self.pos.step];
        let changes_requested =
            self.verdict.as_ref().is_some_and(|v| v.status == VerdictStatus::ChangesRequested);
        let skip = match step.condition.unwrap_or(StepCondition::Always) {
            StepCondition::Always => None,
            StepCondition::FirstIteration if self.pos.iteration > 1 => {
                Some("runs in the first iteration only".to_string())
            }
            StepCondition::LaterIterations if self.pos.iteration == 1 => {
                Some("runs after the first iteration only".to_string())
            }
            StepCondition::ChangesRequested if !self.review_failed() => {
                Some("the latest review did not ask for changes".to_string())
            }
            _ => None,
        };
        let skip = skip.or_else(|| {
            (step.role == Role::Refine && self.reviewed_this_iteration == Some(true))
                .then(|| "the review passed; nothing to refine".to_string())
        });
        if let Some(reason) = skip {
            return Next::Skip { pos: self.pos, reason };
        }
        let review = self
            .verdict
            .as_ref()
            .filter(|_| changes_requested || self.review_failed())
            .map(Verdict::findings_text)
            .filter(|t| !t.is_empty());
        Next::Run(StepPlan {
            pos: self.pos,
            role: step.role,
            agent: step.agent.clone(),
            fallback: step.fallback.clone(),
            input: self.work.clone().unwrap_or_default(),
            review,
        })
    }

    fn review_failed(&self) -> bool {
        let backed = self.check == Some(true)
            && self.verdict.as_ref().is_some_and(|v| v.status == VerdictStatus::Approved);
        (!backed && self.verdict.as_ref().is_some_and(|v| !v.passes(self.max_suggestions)))
            || (self.verdict.is_some() && self.check == Some(false))
    }

    /// Report a run of the project's validators on the work so far (it does not move the
    /// position). Failing validators are evidence that outweighs any review: a review that
    /// approves failing work counts as asking for changes, and a run ends in success only
    /// when the latest validators passed (or none ran).
    pub fn record_check(&mut self, passed: bool) {
        self.check = Some(passed);
    }

    /// Whether the latest validators passed (`None`: none ran).
    pub fn check(&self) -> Option<bool> {
        self.check
    }

    /// Report what happened to the step at `pos` (which must be [`Engine::position`]).
    /// Returns the parsed verdict when the step was a completed review.
    pub fn record(&mut self, pos: StepPos, outcome: &StepOutcome) -> Option<Verdict> {
        if pos != self.pos || self.pos.step >= self.workflow.steps.len() {
            return None;
        }
        let role = self.workflow.steps[self.pos.step].role;
        let mut verdict_out = None;
        match outcome {
            StepOutcome::Completed { output } => {
                if role == Role::Review {
                    let v = parse_verdict(output);
                    // An approval backed by passing checks stands even when the reviewer
                    // lists "errors" beside it (small models describe the bug that was fixed);
                    // without evidence the stricter reading holds.
                    let backed = self.check == Some(true) && v.status == VerdictStatus::Approved;
                    self.reviewed_this_iteration = Some(
                        (backed || v.passes(self.max_suggestions)) && self.check != Some(false),
                    );
                    self.verdict = Some(v.clone());
                    verdict_out = Some(v);
                } else {
                    self.work = Some(output.clone());
                }
            }
            StepOutcome::Skipped => {}
            StepOutcome::Failed { error } => {
                self.failed = Some(error.clone());
                return None;
            }
        }
        self.pos.step += 1;
        if self.pos.step >= self.workflow.steps.len() && !self.iteration_ends_run() {
            self.pos = StepPos { iteration: self.pos.iteration + 1, step: 0 };
            self.reviewed_this_iteration = None;
        }
        verdict_out
    }

    fn iteration_ends_run(&self) -> bool {
        !self.has_review
            || self.reviewed_this_iteration == Some(true)
            || self.pos.iteration >= self.workflow.max_iterations
    }

    fn end_of_iteration_finish(&self) -> Finish {
        if self.check == Some(false) {
            self.finish(false, FinishReason::ValidatorsFailed)
        } else if !self.has_review {
            self.finish(true, FinishReason::NoReview)
        } else if self.reviewed_this_iteration == Some(true) {
            self.finish(true, FinishReason::ReviewPassed)
        } else {
            self.finish(false, FinishReason::MaxIterations)
        }
    }

    fn finish(&self, success: bool, reason: FinishReason) -> Finish {
        Finish {
            success,
            reason,
            iterations: self.pos.iteration,
            output: self.work.clone(),
            verdict: self.verdict.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, StepConfig};

    const APPROVE: &str = r#"{"verdict":"approved","findings":[]}"#;
    const REJECT: &str = r#"{"verdict":"changes_requested","findings":[{"severity":"error","message":"fix the bug"}]}"#;

    /// Drive an engine with a scripted model: `answers` are consumed in order by every step
    /// that runs. Returns the steps run (agent:role@iteration), the skips, and the finish.
    fn drive(workflow: WorkflowConfig, answers: &[&str]) -> (Vec<String>, Vec<String>, Finish) {
        let mut engine = Engine::new(workflow, 3);
        let mut answers = answers.iter();
        let mut ran = Vec::new();
        let mut skipped = Vec::new();
        for _ in 0..100 {
            match engine.next() {
                Next::Run(plan) => {
                    ran.push(format!("{}:{}@{}", plan.agent, plan.role, plan.pos.iteration));
                    let outcome = match answers.next() {
                        Some(a) if a.starts_with("FAIL") => {
                            StepOutcome::Failed { error: a.to_string() }
                        }
                        Some(a) => StepOutcome::Completed { output: a.to_string() },
                        None => panic!("script ran out at {plan:?}"),
                    };
                    engine.record(plan.pos, &outcome);
                }
                Next::Skip { pos, reason } => {
                    skipped.push(format!(
                        "{}@{}: {reason}",
                        engine.workflow().steps[pos.step].role,
                        pos.iteration
                    ));
                    engine.record(pos, &StepOutcome::Skipped);
                }
                Next::Done(f) => return (ran, skipped, f),
            }
        }
        panic!("engine did not finish");
    }

    fn default_workflow() -> WorkflowConfig {
        Config::builtin().workflows["default"].clone()
    }

    #[test]
    fn failing_validators_outweigh_an_approving_review() {
        let mut engine = Engine::new(default_workflow(), 3);
        let run = |engine: &mut Engine, output: &str| match engine.next() {
            Next::Run(plan) => {
                engine.record(plan.pos, &StepOutcome::Completed { output: output.into() });
                plan
            }
            other => panic!("expected a step, got {other:?}"),
        };
        run(&mut engine, "code v1");
        engine.record_check(false);
        run(&mut engine, APPROVE);
        // The review approved, but the tests fail: the refine step runs with the review's
        // (empty) findings treated as a request for changes.
        let refine = run(&mut engine, "code v2");
        assert_eq!(refine.role, Role::Refine);
        engine.record_check(true);
        // A new iteration: the work is implemented and reviewed again.
        assert!(matches!(engine.next(), Next::Run(p) if p.pos.iteration == 2));
    }

    #[test]
    fn an_approving_review_of_passing_work_ends_the_run() {
        let mut engine = Engine::new(default_workflow(), 3);
        let Next::Run(p) = engine.next() else { panic!("expected a step") };
        engine.record(p.pos, &StepOutcome::Completed { output: "code".into() });
        engine.record_check(true);
        let Next::Run(p) = engine.next() else { panic!("expected a step") };
        engine.record(p.pos, &StepOutcome::Completed { output: APPROVE.into() });
        assert!(matches!(engine.next(), Next::Skip { .. }));
        let Next::Skip { pos, .. } = engine.next() else { panic!("expected a skip") };
        engine.record(pos, &StepOutcome::Skipped);
        let Next::Done(f) = engine.next() else { panic!("expected the end") };
        assert!(f.success);
        assert_eq!(f.reason, FinishReason::ReviewPassed);
    }

    #[test]
    fn an_approval_backed_by_passing_checks_stands_despite_listed_errors() {
        const APPROVE_WITH_ERROR: &str = r#"{"verdict":"approved","findings":[{"severity":"error","message":"word_count returned 1 for empty text"}]}"#;
        let run = |check: Option<bool>| {
            let mut engine = Engine::new(default_workflow(), 3);
            let Next::Run(p) = engine.next() else { panic!("expected a step") };
            engine.record(p.pos, &StepOutcome::Completed { output: "code".into() });
            if let Some(c) = check {
                engine.record_check(c);
            }
            let Next::Run(p) = engine.next() else { panic!("expected a step") };
            engine.record(p.pos, &StepOutcome::Completed { output: APPROVE_WITH_ERROR.into() });
            engine.next()
        };
        // With passing checks: the refine is skipped, the run passes.
        assert!(matches!(run(Some(true)), Next::Skip { .. }));
        // Without evidence: an approval that lists an error does not pass.
        assert!(matches!(run(None), Next::Run(p) if p.role == Role::Refine));
    }

    #[test]
    fn a_workflow_without_review_fails_on_failing_validators() {
        let quick = Config::builtin().workflows["quick"].clone();
        let mut engine = Engine::new(quick, 3);
        let Next::Run(p) = engine.next() else { panic!("expected a step") };
        engine.record(p.pos, &StepOutcome::Completed { output: "code".into() });
        engine.record_check(false);
        let Next::Done(f) = engine.next() else { panic!("expected the end") };
        assert!(!f.success);
        assert_eq!(f.reason, FinishReason::ValidatorsFailed);
    }

    #[test]
    fn approval_stops_iteration_and_skips_refine() {
        let (ran, skipped, f) = drive(default_workflow(), &["code v1", APPROVE]);
        assert_eq!(ran, ["codex:implement@1", "gemini:review@1"]);
        assert_eq!(skipped, ["refine@1: the review passed; nothing to refine"]);
        assert!(f.success);
        assert_eq!(f.reason, FinishReason::ReviewPassed);
        assert_eq!(f.iterations, 1);
        assert_eq!(f.output.as_deref(), Some("code v1"));
    }

    #[test]
    fn changes_requested_continues_to_the_next_iteration() {
        let (ran, _, f) =
            drive(default_workflow(), &["code v1", REJECT, "code v2", "code v3", APPROVE]);
        assert_eq!(
            ran,
            [
                "codex:implement@1",
                "gemini:review@1",
                "claude:refine@1",
                "codex:implement@2",
                "gemini:review@2"
            ]
        );
        assert!(f.success);
        assert_eq!(f.iterations, 2);
        assert_eq!(f.output.as_deref(), Some("code v3"));
    }

    #[test]
    fn max_iterations_is_respected() {
        let mut wf = default_workflow();
        wf.max_iterations = 2;
        let (ran, _, f) = drive(wf, &["v1", REJECT, "v2", "v3", REJECT, "v4"]);
        assert_eq!(ran.len(), 6);
        assert!(!f.success);
        assert_eq!(f.reason, FinishReason::MaxIterations);
        assert_eq!(f.iterations, 2);
        assert_eq!(f.output.as_deref(), Some("v4"));
    }

    #[test]
    fn a_workflow_without_review_runs_once() {
        let quick = Config::builtin().workflows["quick"].clone();
        let (ran, _, f) = drive(quick, &["done"]);
        assert_eq!(ran, ["codex:implement@1"]);
        assert_eq!(f.reason, FinishReason::NoReview);
        assert!(f.success);
    }

    #[test]
    fn a_failed_step_ends_the_run() {
        let (ran, _, f) = drive(default_workflow(), &["v1", "FAIL: timeout"]);
        assert_eq!(ran.len(), 2);
        assert!(!f.success);
        assert_eq!(f.reason, FinishReason::StepFailed);
    }

    #[test]
    fn inputs_carry_the_latest_work_and_findings() {
        let mut e = Engine::new(default_workflow(), 3);
        let Next::Run(p) = e.next() else { panic!() };
        assert_eq!((p.input.as_str(), p.review.clone()), ("", None));
        e.record(p.pos, &StepOutcome::Completed { output: "v1".into() });
        let Next::Run(p) = e.next() else { panic!() };
        assert_eq!(p.input, "v1");
        e.record(p.pos, &StepOutcome::Completed { output: REJECT.into() });
        let Next::Run(p) = e.next() else { panic!() };
        assert_eq!(p.role, Role::Refine);
        assert_eq!(p.input, "v1");
        assert_eq!(p.review.as_deref(), Some("- [error] fix the bug"));
        e.record(p.pos, &StepOutcome::Completed { output: "v2".into() });
        let Next::Run(p) = e.next() else { panic!() };
        assert_eq!((p.pos.iteration, p.role), (2, Role::Implement));
        assert_eq!(p.input, "v2");
        assert_eq!(p.review.as_deref(), Some("- [error] fix the bug"));
    }

    #[test]
    fn conditions_skip_steps() {
        let mut wf = default_workflow();
        wf.max_iterations = 2;
        wf.steps[0].condition = Some(StepCondition::FirstIteration);
        wf.steps.push(StepConfig {
            condition: Some(StepCondition::LaterIterations),
            ..StepConfig::new("claude", Role::Document)
        });
        let (ran, skipped, f) = drive(wf, &["v1", REJECT, "v2", REJECT, "v3", "docs"]);
        assert_eq!(
            ran,
            [
                "codex:implement@1",
                "gemini:review@1",
                "claude:refine@1",
                "gemini:review@2",
                "claude:refine@2",
                "claude:document@2"
            ]
        );
        assert_eq!(
            skipped,
            [
                "document@1: runs after the first iteration only",
                "implement@2: runs in the first iteration only"
            ]
        );
        assert_eq!(f.reason, FinishReason::MaxIterations);
    }

    #[test]
    fn replaying_recorded_outcomes_resumes_at_the_same_place() {
        // Run two steps, then rebuild an engine from the records: it must ask for step 3.
        let records = [
            (StepPos { iteration: 1, step: 0 }, StepOutcome::Completed { output: "v1".into() }),
            (StepPos { iteration: 1, step: 1 }, StepOutcome::Completed { output: REJECT.into() }),
        ];
        let mut resumed = Engine::new(default_workflow(), 3);
        for (pos, outcome) in &records {
            resumed.record(*pos, outcome);
        }
        let Next::Run(p) = resumed.next() else { panic!() };
        assert_eq!(p.pos, StepPos { iteration: 1, step: 2 });
        assert_eq!(p.input, "v1");
        // Out-of-order records are ignored rather than corrupting the state.
        assert_eq!(resumed.record(StepPos { iteration: 5, step: 0 }, &StepOutcome::Skipped), None);
        assert_eq!(resumed.position(), StepPos { iteration: 1, step: 2 });
    }
}
