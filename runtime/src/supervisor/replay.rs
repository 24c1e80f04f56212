//! The engine rebuilt from a run's stored steps: how resume knows where to go on.

use troupe_workflows::WorkflowConfig;
use troupe_workflows::engine::{Engine, StepOutcome};

use crate::model::{CheckRecord, StepRecord, StepState};

/// Replay a run's stored steps into a fresh engine: completed and skipped steps are
/// recorded; the first step that did not end (running, failed, cancelled) runs again.
pub(super) fn replay(
    workflow: WorkflowConfig,
    max_suggestions: usize,
    steps: &[StepRecord],
    checks: &[CheckRecord],
) -> Engine {
    let mut engine = Engine::new(workflow, max_suggestions);
    let mut checks = checks.iter().filter(|c| c.state == StepState::Completed).peekable();
    for s in steps {
        if s.pos != engine.position() {
            break;
        }
        let outcome = match (s.state, &s.response) {
            (StepState::Completed, Some(text)) => StepOutcome::Completed { output: text.clone() },
            (StepState::Skipped, _) => StepOutcome::Skipped,
            _ => break,
        };
        // A check made before this step (e.g. before a review) counts before it.
        while let Some(c) = checks.next_if(|c| c.after < s.pos) {
            engine.record_check(c.passed());
        }
        engine.record(s.pos, &outcome);
        while let Some(c) = checks.next_if(|c| c.after == s.pos) {
            engine.record_check(c.passed());
        }
    }
    engine
}
