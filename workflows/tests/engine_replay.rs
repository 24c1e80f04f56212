//! Properties of the iteration engine under any sequence of outcomes and checks: it ends
//! within its bounds, only moves forward, never calls failing work a success, and replaying
//! its log — the way resume rebuilds it from the store, where a crash can leave an event
//! stored twice — gives the same decisions at every point.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use troupe_workflows::config::Config;
use troupe_workflows::engine::{Engine, Next, StepOutcome, StepPos};

const APPROVE: &str = r#"{"verdict":"approved","findings":[]}"#;
const REJECT: &str =
    r#"{"verdict":"changes_requested","findings":[{"severity":"error","message":"fix it"}]}"#;

/// What the engine heard, in order.
#[derive(Debug, Clone)]
enum Event {
    Record(StepPos, StepOutcome),
    Check(bool),
}

fn apply(engine: &mut Engine, event: &Event) {
    match event {
        Event::Record(pos, outcome) => {
            engine.record(*pos, outcome);
        }
        Event::Check(passed) => engine.record_check(*passed),
    }
}

/// One choice per decision: how the step ends (0-5) and the check after it (0 none, 1 pass,
/// 2 fail).
fn drive(workflow: &str, max_iterations: u32, choices: &[(u8, u8)]) -> (Vec<Event>, Vec<Next>) {
    let mut wf = Config::builtin().workflows[workflow].clone();
    wf.max_iterations = max_iterations;
    let steps = wf.steps.len();
    let mut engine = Engine::new(wf, 0);
    let (mut events, mut decisions) = (Vec::new(), vec![engine.next()]);
    let mut last = StepPos { iteration: 0, step: 0 };
    let mut choices = choices.iter().cycle();
    let bound = max_iterations as usize * steps + 1;
    for _ in 0..bound {
        let (outcome, check) = *choices.next().unwrap();
        let event = match engine.next() {
            Next::Done(f) => {
                assert!(f.iterations <= max_iterations, "{f:?}");
                if f.success {
                    assert_ne!(engine.check(), Some(false), "failing checks cannot succeed");
                }
                return (events, decisions);
            }
            Next::Skip { pos, .. } => Event::Record(pos, StepOutcome::Skipped),
            Next::Run(plan) => {
                assert!(plan.pos > last, "the engine moved back: {:?} after {last:?}", plan.pos);
                last = plan.pos;
                let output = match outcome {
                    0 => String::new(), // the step fails
                    1 | 2 => APPROVE.to_string(),
                    3 => REJECT.to_string(),
                    4 => "not json at all".to_string(),
                    _ => format!("work {}", plan.pos.step),
                };
                if output.is_empty() {
                    Event::Record(plan.pos, StepOutcome::Failed { error: "boom".into() })
                } else {
                    Event::Record(plan.pos, StepOutcome::Completed { output })
                }
            }
        };
        apply(&mut engine, &event);
        events.push(event);
        decisions.push(engine.next());
        if check > 0 {
            let c = Event::Check(check == 1);
            apply(&mut engine, &c);
            events.push(c);
            decisions.push(engine.next());
        }
    }
    panic!("the engine did not end within {bound} decisions");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn replaying_the_log_gives_the_same_decisions(
        workflow in prop::sample::select(Config::builtin().workflows.keys().cloned().collect::<Vec<_>>()),
        max_iterations in 1u32..4,
        choices in prop::collection::vec((0u8..6, 0u8..3), 1..24),
    ) {
        let (events, decisions) = drive(&workflow, max_iterations, &choices);
        let mut wf = Config::builtin().workflows[&workflow].clone();
        wf.max_iterations = max_iterations;
        // Every step's record stored twice (a crash between two writes): the second one
        // is for a position the engine has left, and must change nothing.
        let mut replayed = Engine::new(wf, 0);
        prop_assert_eq!(&replayed.next(), &decisions[0]);
        for (event, expected) in events.iter().zip(&decisions[1..]) {
            apply(&mut replayed, event);
            if matches!(event, Event::Record(..)) {
                apply(&mut replayed, event);
            }
            prop_assert_eq!(&replayed.next(), expected);
        }
    }
}
