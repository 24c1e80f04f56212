//! A work step's change: edits applied from the answer, one re-ask, candidates.

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use troupe_adapters::agent::{AgentRequest, Message};
use troupe_workflows::engine::StepPlan;

use super::emit;
use crate::audit::AuditEvent;
use crate::call::Caller;
use crate::model::{CheckRecord, RunEvent, RunRecord, StepChange, StepRecord, StepState};
use crate::shared::Shared;
/// What a work step's change is made from: the step, the request its answer came from, the
/// files shown with it, the latest check.
#[derive(Clone, Copy)]
pub(super) struct WorkStep<'a> {
    pub shared: &'a Arc<Shared>,
    pub plan: &'a StepPlan,
    pub request: &'a AgentRequest,
    pub shown: &'a [String],
    pub last_check: Option<&'a CheckRecord>,
    pub events: &'a broadcast::Sender<RunEvent>,
    pub cancel: &'a CancellationToken,
}

/// Check a work step's change; when it fails and `[edits] candidates` allows, sample more
/// answers from the step's start at `candidate_temperature`, each applied, committed and
/// checked, and keep the first that passes — else go back to the first answer. Returns the
/// check of the change that is kept.
pub(super) async fn sample_candidates(
    w: &WorkStep<'_>,
    record: &mut RunRecord,
    step: &mut StepRecord,
    caller: &mut Caller<'_>,
) -> Result<Option<CheckRecord>, String> {
    let WorkStep { shared, plan, request, shown, last_check, events, cancel } = *w;
    let (Some(change), Some(head)) =
        (step.change.clone(), record.workspace.as_ref().map(|w| w.head.clone()))
    else {
        return Ok(None);
    };
    let committed = change.commit.is_some();
    // A step that changed nothing leaves the last check standing; one that changed files is
    // checked now.
    let first = match last_check.filter(|c| !committed && c.commit == head) {
        Some(c) => c.clone(),
        None if !committed => return Ok(None),
        None => crate::work::check(shared, record, plan.pos, events, cancel).await?,
    };
    let edits = &shared.config.edits;
    if first.passed() || edits.candidates == 0 || cancel.is_cancelled() {
        return Ok(committed.then_some(first));
    }
    let first_head = head;
    // The step's start: the commit its change was made on (its head when it changed nothing).
    let start = if !committed {
        first_head.clone()
    } else {
        let Some(ws) = record.workspace.as_ref() else { return Ok(Some(first)) };
        match crate::work::parent(ws, &first_head).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(run = %record.id, error = %e, "no candidates: the step's start is unknown");
                return Ok(Some(first));
            }
        }
    };
    let Some(dir) = record.workspace.as_ref().map(|w| w.dir.clone()) else { return Ok(None) };
    let policy = crate::settings::edit_policy(&shared.config);
    // When none passes, the answer that leaves the fewest tests failing is kept (the first
    // on a tie; only when every failing command named its failing tests).
    let mut fewest = failing_tests(&first);
    let mut best: Option<Candidate> = None;
    for i in 1..=edits.candidates {
        if cancel.is_cancelled() {
            break;
        }
        let note = format!(
            "the checks fail; trying another answer ({i} of {}) at temperature {}",
            edits.candidates, edits.candidate_temperature
        );
        emit(events, RunEvent::Agent { run_id: record.id.clone(), pos: plan.pos, message: note });
        let Some(ws) = record.workspace.as_mut() else { break };
        if !crate::work::reset_to(ws, &start).await? {
            break; // in place: the folder is the user's, nothing is rolled back
        }
        caller.used(step.tokens, step.cost);
        let mut again = request.clone();
        again.options.temperature = Some(edits.candidate_temperature);
        again.options.seed = Some(u64::from(i));
        let Ok(answer) = caller.call(&again).await else { continue };
        step.tokens.add(answer.tokens);
        step.cost += answer.cost;
        let (outcome, _) = crate::work::apply_answer(&dir, &answer.text, shown, &policy).await?;
        let message = format!("{}:{} (candidate {i})", plan.agent, plan.role);
        let Some(commit) = crate::work::commit(ws, message).await? else { continue };
        let check = crate::work::check(shared, record, plan.pos, events, cancel).await?;
        let mut change = crate::work::step_change(Some(&outcome), Some(commit), false);
        change.candidate = i;
        let candidate = Candidate { change, text: answer.text, check };
        if candidate.check.passed() {
            return Ok(Some(keep(record, step, w, candidate).await));
        }
        if let (Some(n), Some(f)) = (failing_tests(&candidate.check), fewest)
            && n < f
        {
            fewest = Some(n);
            best = Some(candidate);
        }
    }
    // None passed: the answer that left the fewest tests failing stands, with its check.
    if let Some(candidate) = best
        && let (Some(ws), Some(commit)) = (record.workspace.as_mut(), &candidate.change.commit)
    {
        crate::work::reset_to(ws, commit).await?;
        let note = format!(
            "no answer passed the checks; kept answer {} of {}, which leaves {} failing (the first left {})",
            candidate.change.candidate + 1,
            edits.candidates + 1,
            plural(fewest.unwrap_or(0)),
            plural(failing_tests(&first).unwrap_or(0)),
        );
        emit(events, RunEvent::Agent { run_id: record.id.clone(), pos: plan.pos, message: note });
        store_check(shared, &candidate.check).await?;
        return Ok(Some(keep(record, step, w, candidate).await));
    }
    // None did better: the first answer's change (or no change) stands, with its check.
    if let Some(ws) = record.workspace.as_mut() {
        crate::work::reset_to(ws, &first_head).await?;
    }
    store_check(shared, &first).await?;
    step.change = Some(change);
    Ok(Some(first))
}

/// Keep `candidate` as the step's answer and change (the workspace is at its commit): the
/// run's files, the event, the step's record. Its check.
async fn keep(
    record: &mut RunRecord,
    step: &mut StepRecord,
    w: &WorkStep<'_>,
    candidate: Candidate,
) -> CheckRecord {
    let Candidate { change, text, check } = candidate;
    record.files = match record.workspace.as_ref() {
        Some(ws) => crate::work::diff(ws).await.map(|d| d.files).unwrap_or_default(),
        None => Vec::new(),
    };
    emit(
        w.events,
        RunEvent::Changed { run_id: record.id.clone(), pos: w.plan.pos, change: change.clone() },
    );
    step.response = Some(text);
    step.change = Some(change);
    check
}

/// Store `check` again: the last stored check of a step is of the change that stands.
async fn store_check(shared: &Shared, check: &CheckRecord) -> Result<(), String> {
    shared
        .store
        .put_check(check)
        .await
        .map_err(|e| format!("cannot persist the validators' run: {e}"))
}

/// A sampled answer that failed the checks, kept while it leaves the fewest tests failing.
struct Candidate {
    change: StepChange,
    text: String,
    check: CheckRecord,
}

/// How many tests `check` found failing: `None` when that is not known — the validators did
/// not run to an end, a failing command named no failing tests (a build error, a linter), or
/// a test module could not even be loaded (unittest's `_FailedTest`, pytest's `ERROR
/// tests/test_x.py`: its tests were not counted, so one such line may hide many).
fn failing_tests(check: &CheckRecord) -> Option<usize> {
    if check.state != StepState::Completed {
        return None;
    }
    let report = check.report.as_ref()?;
    let mut n = 0;
    for r in report.results.iter().filter(|r| !r.passed()) {
        let unloaded =
            |t: &String| t.contains("._FailedTest.") || (t.ends_with(".py") && !t.contains("::"));
        if r.failing.is_empty() || r.failing.iter().any(unloaded) {
            return None;
        }
        n += r.failing.len();
    }
    Some(n)
}

fn plural(n: usize) -> String {
    if n == 1 { "1 test".to_string() } else { format!("{n} tests") }
}

/// Apply a work step's answer to the workspace (HTTP models; a CLI agent edited the files
/// itself), ask once more when edits did not apply, and commit what changed.
pub(super) async fn change_of_step(
    w: &WorkStep<'_>,
    record: &mut RunRecord,
    step: &mut StepRecord,
    caller: &mut Caller<'_>,
    edits_by_answer: bool,
) -> Result<Option<StepChange>, String> {
    let WorkStep { shared, plan, request, shown, last_check, cancel, .. } = *w;
    let Some(dir) = record.workspace.as_ref().map(|w| w.dir.clone()) else { return Ok(None) };
    let policy = crate::settings::edit_policy(&shared.config);
    let mut outcome = None;
    let mut reasked = false;
    if edits_by_answer {
        let answer = step.response.clone().unwrap_or_default();
        let (first, code_without_files) =
            crate::work::apply_answer(&dir, &answer, shown, &policy).await?;
        let problems = first.problems().or_else(|| {
            code_without_files.then(|| {
                "Your answer has code but no file path before it, so nothing could be applied. \
                 Put the file's path on a line by itself before each code block."
                    .to_string()
            })
        });
        outcome = Some(first);
        if let Some(problems) = problems.filter(|_| !cancel.is_cancelled()) {
            reasked = true;
            let first_line = problems.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
            caller.announce(format!("the edits did not apply; asking again: {first_line}"));
            caller.used(step.tokens, step.cost);
            let mut again = request.clone();
            again.messages.push(Message::assistant(answer.clone()));
            // An answer that repeated the file unchanged would be repeated again at the same
            // temperature: that re-ask samples, and says what still fails.
            let unchanged = problems.contains("changes nothing");
            let failing = if unchanged { failing_assertions(last_check) } else { String::new() };
            if unchanged {
                again.options.temperature = Some(shared.config.edits.candidate_temperature);
            }
            again.messages.push(Message::user(format!(
                "{problems}{failing}\n\nAnswer again with only the corrected edits, in the same format."
            )));
            if let Ok(a) = caller.call(&again).await {
                step.tokens.add(a.tokens);
                step.cost += a.cost;
                let (second, _) = crate::work::apply_answer(&dir, &a.text, shown, &policy).await?;
                if let Some(first) = outcome.as_mut() {
                    first.changed.extend(second.changed);
                    first.refused = second.refused;
                    first.failed = second.failed;
                }
                step.response = Some(format!("{answer}\n\n{}", a.text));
            }
        }
        if let Some(o) = &outcome {
            shared.audit.append(
                &record.id,
                AuditEvent::EditsApplied {
                    pos: plan.pos,
                    summary: o.summary(),
                    refused: o
                        .refused
                        .iter()
                        .map(|r| format!("{}: {}", r.path, r.reason))
                        .collect(),
                    failed: o.failed.iter().map(|f| format!("{}: {}", f.path, f.message)).collect(),
                },
            );
        }
    }
    let first_line =
        record.task.lines().next().unwrap_or_default().chars().take(72).collect::<String>();
    let message = format!("{}:{}: {first_line}", plan.agent, plan.role);
    let Some(ws) = record.workspace.as_mut() else { return Ok(None) };
    let commit = crate::work::commit(ws, message).await?;
    let change = crate::work::step_change(outcome.as_ref(), commit, reasked);
    if let Some(c) = change.commit.as_ref() {
        record.files = crate::work::diff(ws).await.map(|d| d.files).unwrap_or_default();
        tracing::debug!(run = %record.id, commit = %c, "step committed");
    }
    Ok(Some(change))
}

/// The failing tests and their assertions from the latest check, for a re-ask ("" when the
/// checks passed or none ran).
fn failing_assertions(last_check: Option<&CheckRecord>) -> String {
    let Some(report) = last_check.and_then(|c| c.report.as_ref()).filter(|r| !r.passed()) else {
        return String::new();
    };
    let mut lines = Vec::new();
    for r in report.results.iter().filter(|r| !r.passed()) {
        lines.extend(r.failing.iter().map(|t| format!("- failing: {t}")));
        lines.extend(
            troupe_change::validate::assertion_lines(&r.output)
                .into_iter()
                .map(|a| format!("  {a}")),
        );
    }
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "\n\nThe code as it is still fails these tests; change it so they pass:\n{}",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use troupe_change::validate::{CommandResult, Outcome, Report};
    use troupe_workflows::engine::StepPos;

    use super::*;

    fn check(failing: &[&[&str]]) -> CheckRecord {
        let results = failing
            .iter()
            .map(|f| CommandResult {
                command: "tests".into(),
                outcome: if f.is_empty() {
                    Outcome::Passed
                } else {
                    Outcome::Failed { code: Some(1) }
                },
                duration_ms: 1,
                output: String::new(),
                failing: f.iter().map(|s| s.to_string()).collect(),
            })
            .collect();
        CheckRecord {
            run_id: "r".into(),
            after: StepPos { iteration: 1, step: 0 },
            commit: "c".into(),
            state: StepState::Completed,
            commands: vec!["tests".into()],
            report: Some(Report { results }),
            started_at: chrono::Utc::now(),
            latency_ms: 1,
        }
    }

    #[test]
    fn failing_tests_are_counted_only_when_every_test_was_loaded() {
        assert_eq!(failing_tests(&check(&[&[]])), Some(0));
        assert_eq!(failing_tests(&check(&[&["t.T.a", "t.T.b"], &[], &["x::y"]])), Some(3));
        // A module that did not load hides how many of its tests fail.
        assert_eq!(failing_tests(&check(&[&["unittest.loader._FailedTest.tests"]])), None);
        assert_eq!(failing_tests(&check(&[&["tests/test_x.py"]])), None);
        // A failing command that names no test (a build error, a linter).
        let mut build = check(&[&["t.T.a"]]);
        build.report.as_mut().unwrap().results[0].failing.clear();
        assert_eq!(failing_tests(&build), None);
        let mut cancelled = check(&[&[]]);
        cancelled.state = StepState::Cancelled;
        assert_eq!(failing_tests(&cancelled), None);
    }
}
