//! The runtime driven end to end with scripted agents, an in-memory memory and the in-memory
//! record backend: iteration, durability and resume, cancellation, panics, planning,
//! concurrency.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use troupe_adapters::agent::{Agent, Tokens};
use troupe_adapters::config::{AgentConfig, AgentKind, Role};
use troupe_adapters::error::AdapterError;
use troupe_adapters::testing::{ScriptedAgent, Step};
use troupe_observability::redact::Redactor;
use troupe_runtime::agents::AgentSource;
use troupe_runtime::audit::{AuditEvent, AuditLog};
use troupe_runtime::{
    ContextBlock, Memory, MemoryBackend, RunEvent, RunOutcome, RunRequest, RunState, Runtime,
    RuntimeParts, StepState,
};
use troupe_workflows::config::{Config, StepConfig, WorkflowConfig};

const APPROVE: &str = r#"```json
{"verdict": "approved", "summary": "good", "findings": []}
```"#;
const REJECT: &str = r#"{"verdict": "changes_requested", "findings": [{"severity": "error", "kind": "mistake", "message": "handle empty input"}]}"#;

/// What a scripted agent does on a call.
#[derive(Debug, Clone)]
enum Act {
    Say(&'static str),
    /// Answer one character per streamed chunk.
    Trickle(&'static str),
    /// Answer, reporting this many completion tokens (whatever it was asked for).
    Used(&'static str, u64),
    Fail,
    Panic,
    /// Wait until cancelled.
    Hang,
}

/// The scripted agents of these tests: `adapters`' one [`ScriptedAgent`] playing `acts`,
/// then "(script ended)" for every later call.
fn scripted(name: &str, acts: &[Act]) -> Arc<ScriptedAgent> {
    let used = |prompt, completion| Tokens { prompt, completion };
    let words = |text: &str| text.split_inclusive(' ').map(String::from).collect::<Vec<_>>();
    let mut agent = ScriptedAgent::new(name);
    for act in acts.iter().cloned().chain([Act::Say("(script ended)")]) {
        agent = match act {
            Act::Say(text) => agent.then(Step::AnswerUsing(words(text), used(10, 5))),
            Act::Trickle(text) => {
                agent.then(Step::AnswerUsing(text.chars().map(String::from).collect(), used(0, 0)))
            }
            Act::Used(text, completion) => agent.then_answer_using(text, 10, completion),
            Act::Fail => agent.then_fail(AdapterError::transient(name, "connection reset")),
            Act::Panic => agent.then_panic(),
            Act::Hang => agent.then_hang(),
        };
    }
    Arc::new(agent)
}

/// Each call's `max_tokens` and estimated prompt tokens.
fn asked(agent: &ScriptedAgent) -> Vec<(Option<u32>, u64)> {
    agent.calls().iter().map(|r| (r.options.max_tokens, r.estimated_tokens())).collect()
}

/// Memory that returns a fixed block and records what runs taught it.
#[derive(Debug, Default)]
struct FakeMemory {
    outcomes: Mutex<Vec<RunOutcome>>,
}

impl Memory for FakeMemory {
    fn ensure_project(&self, _: &Path) -> troupe_runtime::Result<String> {
        Ok("project-1".into())
    }

    fn relevant_context(
        &self,
        _: &str,
        task: &str,
        _: usize,
    ) -> troupe_runtime::Result<ContextBlock> {
        let learned: Vec<String> = self
            .outcomes
            .lock()
            .unwrap()
            .iter()
            .map(|o| format!("earlier task: {}", o.task))
            .collect();
        Ok(ContextBlock {
            text: if learned.is_empty() {
                String::new()
            } else {
                format!("{}\n(for: {task})", learned.join("\n"))
            },
            nodes: (0..learned.len()).map(|i| format!("node-{i}")).collect(),
            tokens: 10,
        })
    }

    fn record_run(&self, outcome: &RunOutcome) -> troupe_runtime::Result<String> {
        self.outcomes.lock().unwrap().push(outcome.clone());
        Ok(format!("task-{}", outcome.run_id))
    }
}

fn agent_config(role: Role) -> AgentConfig {
    let mut a = AgentConfig::new(AgentKind::Llamacpp);
    a.base_url = Some("http://127.0.0.1:1/v1".into());
    a.role = Some(role);
    a
}

/// A configuration with agents `coder`, `reviewer`, `spare` and workflow `irr`
/// (implement → review → refine).
fn config() -> Config {
    let mut c = Config::builtin();
    c.agents.insert("coder".into(), agent_config(Role::Implement));
    c.agents.insert("reviewer".into(), agent_config(Role::Review));
    c.agents.insert("spare".into(), agent_config(Role::Implement));
    c.workflows.insert(
        "irr".into(),
        WorkflowConfig::new(
            3,
            vec![
                StepConfig::new("coder", Role::Implement),
                StepConfig::new("reviewer", Role::Review),
                StepConfig::new("coder", Role::Refine),
            ],
        ),
    );
    c
}

struct Harness {
    runtime: Runtime,
    memory: Arc<FakeMemory>,
    backend: Arc<MemoryBackend>,
    project: tempfile::TempDir,
}

fn harness(config: Config, agents: &[(&str, Arc<ScriptedAgent>)]) -> Harness {
    harness_with(
        config,
        agents,
        Arc::new(MemoryBackend::default()),
        Arc::new(FakeMemory::default()),
    )
}

fn harness_with(
    config: Config,
    agents: &[(&str, Arc<ScriptedAgent>)],
    backend: Arc<MemoryBackend>,
    memory: Arc<FakeMemory>,
) -> Harness {
    harness_audited(config, agents, backend, memory, AuditLog::default())
}

fn harness_audited(
    config: Config,
    agents: &[(&str, Arc<ScriptedAgent>)],
    backend: Arc<MemoryBackend>,
    memory: Arc<FakeMemory>,
    audit: AuditLog,
) -> Harness {
    harness_full(config, agents, backend, memory, audit, None)
}

/// The harness with everything chosen: `workspaces` makes runs work in their own workspace.
fn harness_full(
    config: Config,
    agents: &[(&str, Arc<ScriptedAgent>)],
    backend: Arc<MemoryBackend>,
    memory: Arc<FakeMemory>,
    audit: AuditLog,
    workspaces: Option<std::path::PathBuf>,
) -> Harness {
    let redactor = audit.redactor().clone();
    let agents: BTreeMap<String, AgentSource> = agents
        .iter()
        .map(|(n, a)| (n.to_string(), AgentSource::shared(a.clone() as Arc<dyn Agent>)))
        .collect();
    let runtime = Runtime::new(RuntimeParts {
        memory: memory.clone(),
        max_tokens: 512,
        audit,
        redactor,
        workspaces,
        ..RuntimeParts::new(config, agents, backend.clone()).unwrap()
    })
    .unwrap();
    Harness { runtime, memory, backend, project: tempfile::tempdir().unwrap() }
}

fn request(h: &Harness, task: &str, workflow: &str) -> RunRequest {
    RunRequest {
        task: task.into(),
        workflow: Some(workflow.into()),
        project: Some(h.project.path().to_path_buf()),
        ..Default::default()
    }
}

#[actix::test]
async fn approval_ends_the_run_and_everything_is_persisted() {
    let coder = scripted("coder", &[Act::Say("fn reverse() {}")]);
    let reviewer = scripted("reviewer", &[Act::Say(APPROVE)]);
    let h = harness(config(), &[("coder", coder.clone()), ("reviewer", reviewer.clone())]);
    let mut handle = h.runtime.submit(request(&h, "reverse a string", "irr")).await.unwrap();
    let mut events = Vec::new();
    let id = handle.id.clone();
    let collector = async {
        while let Ok(e) = handle.events.recv().await {
            let last = e.is_final();
            events.push(e);
            if last {
                break;
            }
        }
    };
    collector.await;
    let record = handle.wait().await.unwrap();
    assert_eq!(record.state, RunState::Completed);
    assert_eq!(record.output.as_deref(), Some("fn reverse() {}"));
    assert_eq!(record.tokens.total(), 30);

    // Events: started, steps with chunks, a skipped refine, finished.
    assert!(matches!(events.first(), Some(RunEvent::RunStarted { .. })), "{events:?}");
    let chunks: String = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Chunk { pos, text, .. } if pos.step == 0 => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(chunks, "fn reverse() {}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RunEvent::StepFinished { state: StepState::Skipped, .. }))
    );
    assert!(matches!(
        events.last(),
        Some(RunEvent::RunFinished { state: RunState::Completed, .. })
    ));

    // The store has the run and its three steps (implement, review, skipped refine).
    let (stored, steps) = h.runtime.run(&id).unwrap();
    assert_eq!(stored.state, RunState::Completed);
    let states: Vec<_> = steps.iter().map(|s| s.state).collect();
    assert_eq!(states, [StepState::Completed, StepState::Completed, StepState::Skipped]);
    assert!(steps[0].prompt.contains("reverse a string"));
    assert!(steps[1].prompt.contains("fn reverse() {}"), "the review sees the work");
    assert_eq!(steps[1].verdict.as_ref().map(|v| v.findings.len()), Some(0));
    assert_eq!(steps[0].answered_by.as_deref(), Some("coder"));

    // The memory learned the run.
    let outcomes = h.memory.outcomes.lock().unwrap().clone();
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes[0].success);
    assert_eq!(outcomes[0].task, "reverse a string");
}

#[actix::test]
async fn changes_requested_iterates_with_the_findings_in_the_prompt() {
    let coder = scripted("coder", &[Act::Say("v1"), Act::Say("v2"), Act::Say("v3")]);
    let reviewer = scripted("reviewer", &[Act::Say(REJECT), Act::Say(APPROVE)]);
    let h = harness(config(), &[("coder", coder.clone()), ("reviewer", reviewer)]);
    let handle = h.runtime.submit(request(&h, "task", "irr")).await.unwrap();
    let record = handle.wait().await.unwrap();
    assert_eq!(record.state, RunState::Completed);
    assert_eq!(record.iterations, 2);
    assert_eq!(record.output.as_deref(), Some("v3"));
    let prompts = coder.prompts();
    assert_eq!(prompts.len(), 3);
    assert!(prompts[1].contains("handle empty input"), "refine sees the findings: {}", prompts[1]);
    // The mistake the review named is handed to the memory.
    let outcome = h.memory.outcomes.lock().unwrap()[0].clone();
    assert_eq!(outcome.findings.len(), 1);
    assert_eq!(outcome.findings[0].kind.as_deref(), Some("mistake"));
}

#[actix::test]
async fn max_iterations_without_approval_fails_the_run() {
    let coder = scripted("coder", &[Act::Say("v1"), Act::Say("v2")]);
    let reviewer = scripted("reviewer", &[Act::Say(REJECT)]);
    let h = harness(config(), &[("coder", coder), ("reviewer", reviewer)]);
    let mut req = request(&h, "task", "irr");
    req.max_iterations = Some(1);
    let record = h.runtime.submit(req).await.unwrap().wait().await.unwrap();
    assert_eq!(record.state, RunState::Failed);
    assert!(record.error.unwrap().contains("after 1 iteration"));
}

#[actix::test]
async fn a_step_fallback_answers_when_the_agent_fails() {
    let mut c = config();
    c.workflows.get_mut("irr").unwrap().steps[0].fallback = vec!["spare".into()];
    let coder = scripted("coder", &[Act::Fail]);
    let spare = scripted("spare", &[Act::Say("from spare")]);
    let reviewer = scripted("reviewer", &[Act::Say(APPROVE)]);
    let h = harness(c, &[("coder", coder), ("spare", spare), ("reviewer", reviewer)]);
    let handle = h.runtime.submit(request(&h, "task", "irr")).await.unwrap();
    let id = handle.id.clone();
    let record = handle.wait().await.unwrap();
    assert_eq!(record.state, RunState::Completed);
    let (_, steps) = h.runtime.run(&id).unwrap();
    assert_eq!(steps[0].answered_by.as_deref(), Some("spare"));
    assert_eq!(steps[0].fallback_from, ["coder"]);
    let text = h.runtime.metrics().render();
    assert!(text.contains("troupe_fallbacks_total{from=\"coder\",to=\"spare\"} 1"), "{text}");
    assert!(
        text.contains("troupe_agent_calls_total{agent=\"coder\",outcome=\"transient\"} 1"),
        "{text}"
    );
}

#[actix::test]
async fn a_failing_step_fails_the_run_cleanly() {
    let coder = scripted("coder", &[Act::Fail]);
    let h = harness(config(), &[("coder", coder), ("reviewer", scripted("reviewer", &[]))]);
    let record = h.runtime.submit(request(&h, "task", "irr")).await.unwrap().wait().await.unwrap();
    assert_eq!(record.state, RunState::Failed);
    assert!(record.error.unwrap().contains("connection reset"));
}

#[actix::test]
async fn a_panicking_agent_fails_the_step_and_is_restarted() {
    let coder = scripted("coder", &[Act::Panic, Act::Say("v1")]);
    let reviewer = scripted("reviewer", &[Act::Say(APPROVE)]);
    let h = harness(config(), &[("coder", coder), ("reviewer", reviewer)]);
    let record = h.runtime.submit(request(&h, "task", "irr")).await.unwrap().wait().await.unwrap();
    assert_eq!(record.state, RunState::Failed);
    assert!(record.error.unwrap().contains("panicked"));
    // The same agent works again on the next run.
    let record =
        h.runtime.submit(request(&h, "task 2", "irr")).await.unwrap().wait().await.unwrap();
    assert_eq!(record.state, RunState::Completed, "{record:?}");
}

#[actix::test]
async fn cancelling_stops_the_running_step_and_marks_the_run() {
    let coder = scripted("coder", &[Act::Hang]);
    let h = harness(config(), &[("coder", coder), ("reviewer", scripted("reviewer", &[]))]);
    let mut handle = h.runtime.submit(request(&h, "task", "irr")).await.unwrap();
    // Wait until the step started, then cancel.
    loop {
        if let Ok(RunEvent::StepStarted { .. }) = handle.events.recv().await {
            break;
        }
    }
    h.runtime.cancel(&handle.id).await.unwrap();
    let id = handle.id.clone();
    let record =
        tokio::time::timeout(Duration::from_secs(10), handle.wait()).await.unwrap().unwrap();
    assert_eq!(record.state, RunState::Cancelled);
    let (_, steps) = h.runtime.run(&id).unwrap();
    assert_eq!(steps[0].state, StepState::Cancelled);
    assert!(h.memory.outcomes.lock().unwrap().is_empty(), "a cancelled run teaches nothing");
}

/// A run waiting for its slot is cancelled by the same one message as a running one: it
/// never starts, and its slot-holder is unaffected until cancelled in turn.
#[actix::test]
async fn a_run_waiting_for_its_slot_is_cancelled_before_it_starts() {
    let mut c = config();
    c.settings.max_concurrent_runs = 1;
    let coder = scripted("coder", &[Act::Hang, Act::Say("never")]);
    let h = harness(c, &[("coder", coder.clone()), ("reviewer", scripted("reviewer", &[]))]);
    let mut first = h.runtime.submit(request(&h, "first", "irr")).await.unwrap();
    loop {
        if let Ok(RunEvent::StepStarted { .. }) = first.events.recv().await {
            break;
        }
    }
    let second = h.runtime.submit(request(&h, "second", "irr")).await.unwrap();
    assert_eq!(h.runtime.live_runs().len(), 2);
    h.runtime.cancel(&second.id).await.unwrap();
    let record =
        tokio::time::timeout(Duration::from_secs(10), second.wait()).await.unwrap().unwrap();
    assert_eq!(record.state, RunState::Cancelled);
    assert_eq!(record.error.as_deref(), Some("cancelled before it started"));
    assert_eq!(h.runtime.run(&record.id).unwrap().1.len(), 0, "it never ran a step");
    assert_eq!(h.runtime.live_runs(), vec![first.id.clone()]);
    h.runtime.cancel(&first.id).await.unwrap();
    assert_eq!(first.wait().await.unwrap().state, RunState::Cancelled);
    assert!(h.runtime.live_runs().is_empty());
    assert_eq!(coder.prompts().len(), 1, "only the first run called the agent");
}

#[actix::test]
async fn resume_continues_after_the_last_completed_step_without_repeating_it() {
    let backend = Arc::new(MemoryBackend::default());
    let memory = Arc::new(FakeMemory::default());
    // First process: the coder answers, then the reviewer hangs and the run is "killed"
    // (cancelled here; a crash leaves the step `running`, which resume treats the same).
    let coder = scripted("coder", &[Act::Say("v1")]);
    let reviewer = scripted("reviewer", &[Act::Hang]);
    let h = harness_with(
        config(),
        &[("coder", coder.clone()), ("reviewer", reviewer)],
        backend.clone(),
        memory.clone(),
    );
    let mut handle = h.runtime.submit(request(&h, "task", "irr")).await.unwrap();
    loop {
        if let Ok(RunEvent::StepStarted { pos, .. }) = handle.events.recv().await
            && pos.step == 1
        {
            break;
        }
    }
    h.runtime.cancel(&handle.id).await.unwrap();
    let id = handle.id.clone();
    handle.wait().await.unwrap();
    assert_eq!(coder.prompts().len(), 1);

    // Second process over the same store: resume.
    let coder2 = scripted("coder", &[Act::Say("should not run")]);
    let reviewer2 = scripted("reviewer", &[Act::Say(APPROVE)]);
    let h2 = harness_with(
        config(),
        &[("coder", coder2.clone()), ("reviewer", reviewer2.clone())],
        backend,
        memory,
    );
    // Whoever watches launches hears of the resumed run before its first event, with what
    // its first attempt did.
    let launched = Arc::new(Mutex::new(Vec::new()));
    h2.runtime.watch_launches({
        let launched = launched.clone();
        move |l| launched.lock().unwrap().push(l)
    });
    let record = h2.runtime.resume(&id).await.unwrap().wait().await.unwrap();
    assert_eq!(record.state, RunState::Completed);
    assert_eq!(record.output.as_deref(), Some("v1"));
    assert_eq!(record.resumed, 1);
    let mut launched = std::mem::take(&mut *launched.lock().unwrap());
    assert_eq!(launched.len(), 1);
    let mut l = launched.remove(0);
    assert_eq!(l.id, id);
    let earlier: Vec<String> = l.earlier.iter().map(|e| format!("{e:?}")).collect();
    assert!(
        matches!(l.earlier[0], RunEvent::StepStarted { pos, .. } if pos.step == 0),
        "{earlier:?}"
    );
    assert!(
        l.earlier.iter().any(|e| matches!(e, RunEvent::Chunk { text, .. } if text == "v1")),
        "the first attempt's answer: {earlier:?}"
    );
    assert!(
        l.earlier.iter().any(|e| matches!(e, RunEvent::StepStarted { pos, .. } if pos.step == 1)),
        "the interrupted review: {earlier:?}"
    );
    assert!(!l.earlier.iter().any(|e| e.is_final() || matches!(e, RunEvent::RunStarted { .. })));
    let mut seen = Vec::new();
    while let Ok(e) = l.events.try_recv() {
        seen.push(e);
    }
    assert!(matches!(seen.first(), Some(RunEvent::RunStarted { .. })), "{seen:?}");
    assert!(seen.last().is_some_and(RunEvent::is_final), "every event of the attempt: {seen:?}");
    assert!(coder2.prompts().is_empty(), "the completed implement step ran again");
    assert_eq!(reviewer2.prompts().len(), 1);
    assert!(reviewer2.prompts()[0].contains("v1"));
    // A completed run cannot be resumed.
    assert!(h2.runtime.resume(&id).await.is_err());
}

#[actix::test]
async fn interrupted_runs_are_found_on_start_up() {
    let backend = Arc::new(MemoryBackend::default());
    let h = harness_with(config(), &[], backend.clone(), Arc::new(FakeMemory::default()));
    // A run stored as in progress by a process that died.
    let mut record =
        h.runtime.submit(request(&h, "task", "irr")).await.unwrap().wait().await.unwrap();
    record.state = RunState::InProgress;
    h.runtime.store().put_run(&record).await.unwrap();
    let h2 = harness_with(config(), &[], backend, Arc::new(FakeMemory::default()));
    let interrupted = h2.runtime.interrupted().unwrap();
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0].id, record.id);
}

#[actix::test]
async fn a_dynamic_workflow_is_planned_validated_and_run() {
    let plan = r#"{"steps": [{"role": "implement", "agent": "coder", "why": "writes code"}, {"role": "review", "agent": "ghost", "why": "?"}]}"#;
    let planner = scripted("reviewer", &[Act::Say(plan), Act::Say(APPROVE)]);
    let coder = scripted("coder", &[Act::Say("v1")]);
    let mut c = config();
    c.settings.planner_agent = Some("reviewer".into());
    let h = harness(c, &[("coder", coder), ("reviewer", planner.clone())]);
    let mut handle = h.runtime.submit(request(&h, "task", "dynamic")).await.unwrap();
    let mut planned = None;
    while let Ok(e) = handle.events.recv().await {
        if let RunEvent::Planned { steps, notes, .. } = &e {
            planned = Some((steps.clone(), notes.clone()));
        }
        if e.is_final() {
            break;
        }
    }
    let record = handle.wait().await.unwrap();
    assert_eq!(record.state, RunState::Completed, "{record:?}");
    let (steps, notes) = planned.unwrap();
    assert_eq!(steps[0], "coder:implement");
    // `ghost` does not exist: replaced by the best eligible reviewer.
    assert_eq!(steps[1], "reviewer:review");
    assert!(notes.iter().any(|n| n.contains("`ghost` replaced")), "{notes:?}");
    assert!(planner.prompts()[0].contains("- coder: implement"), "{}", planner.prompts()[0]);
    // The planner's call counts in the run's totals: plan, implement, review at 15 each.
    assert_eq!(record.tokens.total(), 45);
}

#[actix::test]
async fn the_planner_is_not_called_past_the_budget() {
    let planner = scripted("reviewer", &[Act::Say("{}")]);
    let mut c = config();
    c.settings.planner_agent = Some("reviewer".into());
    let h = harness(c, &[("reviewer", planner.clone())]);
    let mut req = request(&h, "task", "dynamic");
    req.budget_tokens = Some(5);
    let record = h.runtime.submit(req).await.unwrap().wait().await.unwrap();
    assert!(planner.prompts().is_empty(), "the planner's prompt does not fit 5 tokens");
    assert!(
        record.plan_notes.iter().any(|n| n.contains("was not called") && n.contains("budget")),
        "{:?}",
        record.plan_notes
    );
    assert_eq!(record.state, RunState::BudgetExceeded);
}

#[actix::test]
async fn garbage_plans_fall_back_to_the_default_workflow() {
    let planner =
        scripted("reviewer", &[Act::Say("no idea"), Act::Say("still none"), Act::Say(APPROVE)]);
    let coder = scripted("coder", &[Act::Say("v1")]);
    let mut c = config();
    c.settings.planner_agent = Some("reviewer".into());
    c.settings.default_workflow = "irr".into();
    let h = harness(c, &[("coder", coder), ("reviewer", planner.clone())]);
    let handle = h.runtime.submit(request(&h, "task", "dynamic")).await.unwrap();
    let id = handle.id.clone();
    let record = handle.wait().await.unwrap();
    assert_eq!(record.state, RunState::Completed, "{record:?}");
    let (stored, _) = h.runtime.run(&id).unwrap();
    assert!(stored.plan_notes.iter().any(|n| n.contains("asked again")), "{:?}", stored.plan_notes);
    assert!(
        stored.plan_notes.iter().any(|n| n.contains("using the `irr` workflow")),
        "{:?}",
        stored.plan_notes
    );
    assert_eq!(planner.prompts().len(), 3, "two planning attempts and one review");
}

#[actix::test]
async fn routing_skips_agents_with_a_poor_measured_success_rate() {
    let mut c = config();
    c.settings.planner_agent = Some("reviewer".into());
    let plan = r#"{"steps": [{"role": "implement", "agent": "coder"}]}"#;
    let planner = scripted("reviewer", &[Act::Say(plan)]);
    let spare = scripted("spare", &[Act::Say("from spare")]);
    let h =
        harness(c, &[("coder", scripted("coder", &[])), ("spare", spare), ("reviewer", planner)]);
    // The coder has failed 8 of 10 calls.
    let m = h.runtime.metrics();
    for i in 0..10 {
        m.record_call("coder", if i < 2 { "success" } else { "transient" }, Duration::ZERO);
    }
    let handle = h.runtime.submit(request(&h, "task", "dynamic")).await.unwrap();
    let id = handle.id.clone();
    let record = handle.wait().await.unwrap();
    assert_eq!(record.state, RunState::Completed, "{record:?}");
    let (stored, steps) = h.runtime.run(&id).unwrap();
    assert_eq!(steps[0].answered_by.as_deref(), Some("spare"));
    assert!(
        stored.plan_notes.iter().any(|n| n.contains("success rate 20% over 10 calls")),
        "{:?}",
        stored.plan_notes
    );
}

#[actix::test]
async fn many_runs_at_once_respect_the_concurrency_cap() {
    let mut c = config();
    c.settings.max_concurrent_runs = 3;
    c.workflows.insert(
        "one".into(),
        WorkflowConfig::new(1, vec![StepConfig::new("coder", Role::Implement)]),
    );
    let script: Vec<Act> = (0..40).map(|_| Act::Say("ok")).collect();
    let h = harness(c, &[("coder", scripted("coder", &script))]);
    let mut handles = Vec::new();
    for i in 0..40 {
        handles.push(h.runtime.submit(request(&h, &format!("task {i}"), "one")).await.unwrap());
    }
    for handle in handles {
        assert_eq!(handle.wait().await.unwrap().state, RunState::Completed);
    }
    let stats = h.runtime.stats().unwrap();
    assert_eq!(stats.by_state.get("completed"), Some(&40));
    let _ = &h.backend;
}

#[actix::test]
async fn bad_requests_are_refused_clearly() {
    let h = harness(config(), &[]);
    let mut req = request(&h, "  ", "irr");
    assert!(h.runtime.submit(req.clone()).await.unwrap_err().to_string().contains("task is empty"));
    req.task = "x".into();
    req.project = Some("/no/such/folder".into());
    assert!(
        h.runtime.submit(req.clone()).await.unwrap_err().to_string().contains("cannot be used")
    );
    // Offline with a workflow of cloud agents.
    let mut req = request(&h, "x", "default");
    req.offline = true;
    let e = h.runtime.submit(req).await.unwrap_err().to_string();
    assert!(e.contains("offline mode") && e.contains("offline-default"), "{e}");
    assert!(h.runtime.resume("nope").await.unwrap_err().to_string().contains("no run with id"));
    // A workflow name that does not exist is refused, naming those that do.
    let e = h.runtime.submit(request(&h, "x", "irx")).await.unwrap_err().to_string();
    assert!(
        e.contains("no workflow named `irx`") && e.contains("irr") && e.contains("dynamic"),
        "{e}"
    );
}

#[actix::test]
async fn conversation_turns_reach_follow_up_prompts() {
    let coder = scripted("coder", &[Act::Say("first answer"), Act::Say("second answer")]);
    let h = harness(config_with_one(), &[("coder", coder.clone())]);
    let mut req = request(&h, "first task", "one");
    req.conversation = Some("conv-1".into());
    h.runtime.submit(req.clone()).await.unwrap().wait().await.unwrap();
    req.task = "follow up".into();
    h.runtime.submit(req).await.unwrap().wait().await.unwrap();
    let p = coder.prompts();
    assert!(!p[0].contains("first answer"));
    assert!(p[1].contains("User: first task") && p[1].contains("first answer"), "{}", p[1]);
    // And the memory of the first run reached the second prompt.
    assert!(p[1].contains("earlier task: first task"), "{}", p[1]);
}

/// `config()` plus workflow `one` (a single implement step).
fn config_with_one() -> Config {
    let mut c = config();
    c.workflows.insert(
        "one".into(),
        WorkflowConfig::new(1, vec![StepConfig::new("coder", Role::Implement)]),
    );
    c
}

#[actix::test]
async fn a_prompt_that_cannot_fit_the_budget_is_never_sent() {
    let coder = scripted("coder", &[Act::Say("code")]);
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditLog::new(Some(dir.path().to_path_buf()), Redactor::default());
    let h = harness_audited(
        config(),
        &[("coder", coder.clone())],
        Arc::new(MemoryBackend::default()),
        Arc::new(FakeMemory::default()),
        audit,
    );
    let mut req = request(&h, "reverse a string", "irr");
    req.budget_tokens = Some(5);
    let mut handle = h.runtime.submit(req).await.unwrap();
    let mut last = None;
    while let Ok(e) = handle.events.recv().await {
        last = Some(e);
    }
    let record = handle.wait().await.unwrap();
    assert_eq!(record.state, RunState::BudgetExceeded);
    assert!(record.state.is_final());
    let error = record.error.clone().unwrap();
    assert!(error.contains("budget exceeded") && error.contains("token budget is 5"), "{error}");
    assert!(coder.prompts().is_empty(), "no call may be made");
    match last {
        Some(RunEvent::RunFinished { state, .. }) => assert_eq!(state, RunState::BudgetExceeded),
        other => panic!("the last event is {other:?}"),
    }
    let (stored, _) = h.runtime.run(&record.id).unwrap();
    assert_eq!(stored.state, RunState::BudgetExceeded);
    assert_eq!(stored.budget.tokens, Some(5));
    // The refusal is in the audit trail, and no prompt was recorded as sent.
    let trail = troupe_runtime::audit::read(dir.path(), &record.id).unwrap();
    assert!(
        trail
            .iter()
            .any(|e| matches!(&e.event, AuditEvent::CallRefused { agent, .. } if agent == "coder"))
    );
    assert!(!trail.iter().any(|e| matches!(e.event, AuditEvent::PromptSent { .. })));
    assert!(matches!(
        trail.last().unwrap().event,
        AuditEvent::RunFinished { state: RunState::BudgetExceeded, .. }
    ));
}

#[actix::test]
async fn a_run_stops_before_the_call_that_would_cross_its_budget() {
    // The coder (as a CLI agent might) answers at great length: 4,990 of a 5,000-token
    // budget are gone after the first call, so the review is never sent.
    let coder = scripted("coder", &[Act::Used("code", 4980)]);
    let reviewer = scripted("reviewer", &[Act::Say(APPROVE)]);
    let h = harness(config(), &[("coder", coder.clone()), ("reviewer", reviewer.clone())]);
    let mut req = request(&h, "reverse a string", "irr");
    req.budget_tokens = Some(5000);
    let record = h.runtime.submit(req).await.unwrap().wait().await.unwrap();
    assert_eq!(record.state, RunState::BudgetExceeded, "{:?}", record.error);
    assert_eq!(coder.prompts().len(), 1);
    assert!(reviewer.prompts().is_empty(), "the call crossing the budget is not made");
    assert_eq!(record.tokens.total(), 4990);
    let error = record.error.unwrap();
    assert!(error.contains("the run's token budget is 5000 tokens; 4990 are used"), "{error}");
    // The first call had room for a whole answer, so it was not capped.
    assert_eq!(asked(&coder)[0].0, Some(512));
    let (_, steps) = h.runtime.run(&record.id).unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].state, StepState::Completed);
}

#[actix::test]
async fn an_answer_is_capped_to_what_is_left_of_the_budget() {
    let coder = scripted("coder", &[Act::Say("code")]);
    let h = harness(config_with_one(), &[("coder", coder.clone())]);
    let mut req = request(&h, "reverse a string", "one");
    req.budget_tokens = Some(400);
    let record = h.runtime.submit(req).await.unwrap().wait().await.unwrap();
    assert_eq!(record.state, RunState::Completed, "{:?}", record.error);
    let (max_tokens, estimate) = asked(&coder)[0];
    assert!(estimate < 380, "the prompt must leave room for an answer: {estimate}");
    // 400 minus the prompt is less than the 512 asked for, so the answer is capped.
    assert_eq!(max_tokens, Some(400 - estimate as u32));
}

#[actix::test]
async fn cost_is_recorded_per_call_and_a_cost_budget_caps_the_answer() {
    let mut c = config_with_one();
    c.agents.get_mut("coder").unwrap().price =
        Some(troupe_adapters::config::PriceConfig { prompt_per_1k: 1.0, completion_per_1k: 2.0 });
    let coder = scripted("coder", &[Act::Used("code", 200)]);
    let h = harness(c, &[("coder", coder.clone())]);
    let mut req = request(&h, "reverse a string", "one");
    req.budget_cost = Some(1.0);
    let record = h.runtime.submit(req).await.unwrap().wait().await.unwrap();
    assert_eq!(record.state, RunState::Completed, "{:?}", record.error);
    // 10 prompt tokens at 0.001 + 200 completion tokens at 0.002.
    assert!((record.cost - 0.41).abs() < 1e-9, "{}", record.cost);
    let (_, steps) = h.runtime.run(&record.id).unwrap();
    assert!((steps[0].cost - 0.41).abs() < 1e-9);
    // What is left after the prompt's estimated cost, in completion tokens.
    let (max_tokens, estimate) = asked(&coder)[0];
    let room = (1.0 - estimate as f64 * 0.001) / 0.002;
    assert!(room < 512.0, "the cost budget must be what caps the answer: {room}");
    assert!((f64::from(max_tokens.unwrap()) - room).abs() <= 1.0, "{max_tokens:?} vs {room}");
    assert!((h.runtime.stats().unwrap().cost - 0.41).abs() < 1e-9);
}

#[actix::test]
async fn a_project_budget_spans_runs() {
    let mut c = config_with_one();
    c.settings.project_token_budget = Some(3000);
    let coder = scripted("coder", &[Act::Used("code", 2985), Act::Say("more code")]);
    let h = harness(c, &[("coder", coder.clone())]);
    let first = h.runtime.submit(request(&h, "one", "one")).await.unwrap().wait().await.unwrap();
    assert_eq!(first.state, RunState::Completed);
    let second = h.runtime.submit(request(&h, "two", "one")).await.unwrap().wait().await.unwrap();
    assert_eq!(second.state, RunState::BudgetExceeded);
    assert!(
        second.error.unwrap().contains("the project's token budget is 3000 tokens; 2995 are used")
    );
    assert_eq!(coder.prompts().len(), 1, "the second run's call is not made");
    // Usage adds up per project, agent and run.
    let usage = h.runtime.usage(None, None).unwrap();
    assert_eq!(usage.total.runs, 2);
    assert_eq!(usage.total.calls, 1);
    assert_eq!(usage.total.tokens.total(), 2995);
    assert_eq!(usage.by_agent["coder"].tokens.completion, 2985);
    assert_eq!(usage.runs[0].run_id, second.id, "newest first");
    let later = h.runtime.usage(None, Some(chrono::Utc::now())).unwrap();
    assert_eq!(later.total.runs, 0, "--since excludes older runs");
}

#[actix::test]
async fn secrets_never_reach_agents_records_events_or_the_audit_trail() {
    const SECRET: &str = "sk-live-0123456789abcdef";
    // Streamed a character at a time: the secret is split across many chunks.
    let coder = scripted("coder", &[Act::Trickle("use sk-live-0123456789abcdef as the key")]);
    let reviewer = scripted("reviewer", &[Act::Say(APPROVE)]);
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditLog::new(Some(dir.path().to_path_buf()), Redactor::new([SECRET]));
    let h = harness_audited(
        config(),
        &[("coder", coder.clone()), ("reviewer", reviewer.clone())],
        Arc::new(MemoryBackend::default()),
        Arc::new(FakeMemory::default()),
        audit,
    );
    let task = format!("call the API with key {SECRET}");
    let mut handle = h.runtime.submit(request(&h, &task, "irr")).await.unwrap();
    let mut events = Vec::new();
    let mut streamed = String::new();
    while let Ok(e) = handle.events.recv().await {
        if let RunEvent::Chunk { text, .. } = &e {
            streamed.push_str(text);
        }
        events.push(serde_json::to_string(&e).unwrap());
    }
    assert!(streamed.contains("use [REDACTED] as the key"), "{streamed}");
    assert!(!streamed.contains(SECRET), "the live stream showed the secret: {streamed}");
    let record = handle.wait().await.unwrap();
    assert_eq!(record.state, RunState::Completed, "{:?}", record.error);
    assert!(record.task.contains("[REDACTED]"), "{}", record.task);
    for p in coder.prompts().iter().chain(reviewer.prompts().iter()) {
        assert!(!p.contains(SECRET), "a prompt carried the secret");
    }
    assert!(events.iter().any(|e| e.contains("[REDACTED]")));
    assert!(events.iter().all(|e| !e.contains(SECRET)), "an event carried the secret");
    let (stored, steps) = h.runtime.run(&record.id).unwrap();
    assert!(!serde_json::to_string(&stored).unwrap().contains(SECRET));
    assert!(!serde_json::to_string(&steps).unwrap().contains(SECRET));
    // Both audit files exist, hold the run, and never the secret.
    for ext in ["jsonl", "log"] {
        let text =
            std::fs::read_to_string(dir.path().join(format!("{}.{ext}", record.id))).unwrap();
        assert!(text.contains("[REDACTED]"), "{ext}");
        assert!(!text.contains(SECRET), "the .{ext} trail carried the secret");
    }
    let trail = troupe_runtime::audit::read(dir.path(), &record.id).unwrap();
    assert!(matches!(trail[0].event, AuditEvent::RunStarted { .. }));
    let sent: Vec<&str> = trail
        .iter()
        .filter_map(|e| match &e.event {
            AuditEvent::PromptSent { agent, .. } => Some(agent.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(sent, ["coder", "reviewer"]);
    assert!(trail.iter().any(|e| matches!(&e.event, AuditEvent::ResponseReceived { agent, response, .. } if agent == "coder" && response.contains("[REDACTED]"))));
    assert!(matches!(
        trail.last().unwrap().event,
        AuditEvent::RunFinished { state: RunState::Completed, .. }
    ));
}

#[actix::test]
async fn step_fallbacks_are_in_the_audit_trail() {
    let mut c = config_with_one();
    c.workflows.get_mut("one").unwrap().steps[0].fallback = vec!["spare".into()];
    let coder = scripted("coder", &[Act::Fail]);
    let spare = scripted("spare", &[Act::Say("spare code")]);
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditLog::new(Some(dir.path().to_path_buf()), Redactor::default());
    let h = harness_audited(
        c,
        &[("coder", coder.clone()), ("spare", spare.clone())],
        Arc::new(MemoryBackend::default()),
        Arc::new(FakeMemory::default()),
        audit,
    );
    let record =
        h.runtime.submit(request(&h, "reverse", "one")).await.unwrap().wait().await.unwrap();
    let trail = troupe_runtime::audit::read(dir.path(), &record.id).unwrap();
    assert_eq!(record.state, RunState::Completed, "{:?}", record.error);
    let response = trail
        .iter()
        .find_map(|e| match &e.event {
            AuditEvent::ResponseReceived { agent, fallback_from, response, .. } => {
                Some((agent.clone(), fallback_from.clone(), response.clone()))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(response, ("spare".to_string(), vec!["coder".to_string()], "spare code".into()));
    // The text file says the same for people.
    let text = std::fs::read_to_string(dir.path().join(format!("{}.log", record.id))).unwrap();
    assert!(text.contains("PROMPT → coder (implement"), "{text}");
    assert!(text.contains("RESPONSE ← spare") && text.contains("after coder failed"), "{text}");
    assert!(text.contains("  | spare code"), "{text}");
    assert!(text.contains("RUN FINISHED completed"), "{text}");
}

#[actix::test]
async fn a_project_budget_counts_the_running_run_itself() {
    let mut c = config();
    c.settings.project_token_budget = Some(3000);
    let coder = scripted("coder", &[Act::Used("code", 2985)]);
    let reviewer = scripted("reviewer", &[Act::Say(APPROVE)]);
    let h = harness(c, &[("coder", coder.clone()), ("reviewer", reviewer.clone())]);
    let run = h.runtime.submit(request(&h, "one", "irr")).await.unwrap().wait().await.unwrap();
    assert_eq!(run.state, RunState::BudgetExceeded, "{:?}", run.error);
    assert!(reviewer.prompts().is_empty(), "the review would cross the project's budget");
    // Its totals are stored for the project's other runs.
    let (stored, _) = h.runtime.run(&run.id).unwrap();
    assert_eq!(stored.tokens.total(), 2995);
}

// ---- Runs that change files in their own workspace ----

/// A git repository with a buggy `calc.py` and a unittest test of it that fails.
fn buggy_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("calc.py"), "def add(a, b):\n    return a - b\n").unwrap();
    std::fs::create_dir(p.join("tests")).unwrap();
    std::fs::write(
        p.join("tests/test_calc.py"),
        "import unittest\n\nfrom calc import add\n\n\nclass T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n",
    )
    .unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(p)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "start"]);
    dir
}

const FIX: &str = "calc.py\n```python\ndef add(a, b):\n    return a + b\n```\n";

struct WsHarness {
    h: Harness,
    repo: tempfile::TempDir,
    _data: tempfile::TempDir,
}

fn ws_harness(agents: &[(&str, Arc<ScriptedAgent>)], max_iterations: u32) -> WsHarness {
    ws_harness_with(agents, max_iterations, 0)
}

fn ws_harness_with(
    agents: &[(&str, Arc<ScriptedAgent>)],
    max_iterations: u32,
    candidates: u32,
) -> WsHarness {
    let mut config = config();
    config.edits.candidates = candidates;
    config.workflows.get_mut("irr").unwrap().max_iterations = max_iterations;
    let data = tempfile::tempdir().unwrap();
    let h = harness_full(
        config,
        agents,
        Arc::new(MemoryBackend::default()),
        Arc::new(FakeMemory::default()),
        AuditLog::default(),
        Some(data.path().join("workspaces")),
    );
    WsHarness { h, repo: buggy_repo(), _data: data }
}

async fn run_in_repo(w: &WsHarness, task: &str) -> troupe_runtime::RunRecord {
    let req = RunRequest {
        task: task.into(),
        workflow: Some("irr".into()),
        project: Some(w.repo.path().to_path_buf()),
        ..Default::default()
    };
    w.h.runtime.submit(req).await.unwrap().wait().await.unwrap()
}

#[actix::test]
async fn a_run_fixes_the_bug_in_its_workspace_and_leaves_the_project_alone() {
    let coder = scripted("coder", &[Act::Say(FIX)]);
    let reviewer = scripted("reviewer", &[Act::Say(APPROVE)]);
    let w = ws_harness(&[("coder", coder.clone()), ("reviewer", reviewer.clone())], 2);
    let record = run_in_repo(&w, "add() subtracts; make it add").await;
    assert_eq!(record.state, RunState::Completed, "{:?}", record.error);
    assert_eq!(record.verified, Some(true));
    let ws = record.workspace.clone().expect("a workspace");
    // The change is in the workspace, committed; the project is as it was.
    assert!(std::fs::read_to_string(ws.dir.join("calc.py")).unwrap().contains("a + b"));
    assert!(std::fs::read_to_string(w.repo.path().join("calc.py")).unwrap().contains("a - b"));
    assert_eq!(record.files.len(), 1);
    assert_eq!(record.files[0].path, std::path::PathBuf::from("calc.py"));
    // The coder saw the file and the baseline's failing test before answering.
    let prompt = &coder.prompts()[0];
    assert!(prompt.contains("return a - b"), "{prompt}");
    assert!(prompt.contains("FAIL") && prompt.contains("test_add"), "{prompt}");
    // The reviewer saw the diff and the passing checks.
    let review = &reviewer.prompts()[0];
    assert!(review.contains("+    return a + b") && review.contains("PASS"), "{review}");
    // Checks: the baseline (failing) and the one after the change (passing).
    let checks = w.h.runtime.store().checks(&record.id).unwrap();
    let passed: Vec<bool> = checks.iter().map(|c| c.passed()).collect();
    assert_eq!(passed, [false, true]);
    let (_, steps) = w.h.runtime.run(&record.id).unwrap();
    assert!(steps[0].change.as_ref().unwrap().commit.is_some());
    // The memory learns which files the task changed (its task node links to them).
    let outcomes = w.h.memory.outcomes.lock().unwrap().clone();
    assert_eq!(outcomes[0].files, ["calc.py"]);
}

#[actix::test]
async fn failing_checks_outweigh_an_approving_review() {
    // The coder's "fix" changes nothing that matters; the reviewer approves anyway.
    let wrong = "calc.py\n```python\ndef add(a, b):\n    return b - a\n```\n";
    let coder = scripted("coder", &[Act::Say(wrong), Act::Say(wrong), Act::Say(wrong)]);
    let reviewer = scripted("reviewer", &[Act::Say(APPROVE)]);
    let w = ws_harness(&[("coder", coder.clone()), ("reviewer", reviewer)], 1);
    let record = run_in_repo(&w, "add() subtracts; make it add").await;
    assert_eq!(record.state, RunState::Failed);
    assert_eq!(
        record.finish_reason,
        Some(troupe_workflows::engine::FinishReason::ValidatorsFailed)
    );
    assert_eq!(record.verified, Some(false));
    // The refine step ran (the approval did not count) and saw the failing assertion; its
    // answer changed nothing, so it was asked once more.
    let prompts = coder.prompts();
    assert_eq!(prompts.len(), 3, "implement, refine, and the refine's re-ask");
    assert!(prompts[1].contains("AssertionError"), "{}", prompts[1]);
    assert!(prompts[2].contains("changes nothing"), "{}", prompts[2]);
}

#[actix::test]
async fn an_edit_that_does_not_apply_is_asked_again_once() {
    let bad = "calc.py\n```python\n<<<<<<< SEARCH\ndef plus(a, b):\n=======\ndef add(a, b):\n>>>>>>> REPLACE\n```\n";
    let coder = scripted("coder", &[Act::Say(bad), Act::Say(FIX)]);
    let reviewer = scripted("reviewer", &[Act::Say(APPROVE)]);
    let w = ws_harness(&[("coder", coder.clone()), ("reviewer", reviewer)], 1);
    let record = run_in_repo(&w, "add() subtracts; make it add").await;
    assert_eq!(record.state, RunState::Completed, "{:?}", record.error);
    let prompts = coder.prompts();
    assert_eq!(prompts.len(), 2);
    assert!(prompts[1].contains("not found"), "the re-ask names the problem: {}", prompts[1]);
    let (_, steps) = w.h.runtime.run(&record.id).unwrap();
    let change = steps[0].change.clone().unwrap();
    assert!(change.reasked && change.failed.is_empty() && change.commit.is_some(), "{change:?}");
}

#[actix::test]
async fn a_hostile_edit_is_refused_and_never_written() {
    let hostile = "../escaped.py\n```python\nprint('out')\n```\n\n.git/config\n```\n[core]\n```\n";
    let coder = scripted("coder", &[Act::Say(hostile), Act::Say(hostile)]);
    let reviewer = scripted("reviewer", &[Act::Say(APPROVE)]);
    let w = ws_harness(&[("coder", coder), ("reviewer", reviewer)], 1);
    let record = run_in_repo(&w, "add() subtracts; make it add").await;
    assert_ne!(record.state, RunState::Completed);
    let ws = record.workspace.clone().unwrap();
    assert!(!ws.dir.parent().unwrap().join("escaped.py").exists());
    assert!(!w.repo.path().parent().unwrap().join("escaped.py").exists());
    let (_, steps) = w.h.runtime.run(&record.id).unwrap();
    let change = steps[0].change.clone().unwrap();
    assert_eq!(change.refused.len(), 2, "{change:?}");
    assert!(change.commit.is_none());
}

#[actix::test]
async fn when_the_checks_fail_another_sampled_answer_that_passes_is_kept() {
    let wrong = "calc.py\n```python\ndef add(a, b):\n    return b - a\n```\n";
    let coder = scripted("coder", &[Act::Say(wrong), Act::Say(wrong), Act::Say(FIX)]);
    let reviewer = scripted("reviewer", &[Act::Say(APPROVE)]);
    let w = ws_harness_with(&[("coder", coder.clone()), ("reviewer", reviewer)], 1, 2);
    let record = run_in_repo(&w, "add() subtracts; make it add").await;
    assert_eq!(record.state, RunState::Completed, "{:?}", record.error);
    assert_eq!(coder.prompts().len(), 3, "the first answer and two candidates");
    let (_, steps) = w.h.runtime.run(&record.id).unwrap();
    assert_eq!(steps[0].change.as_ref().unwrap().candidate, 2);
    let ws = record.workspace.unwrap();
    assert!(std::fs::read_to_string(ws.dir.join("calc.py")).unwrap().contains("a + b"));
    // The history holds only the kept candidate's commit on top of the base.
    assert_eq!(record.files.len(), 1);
    assert_eq!(tokens_of(&steps[0]), 45, "three calls of 15 tokens");
}

#[actix::test]
async fn when_no_candidate_passes_the_first_answer_stands() {
    let wrong = "calc.py\n```python\ndef add(a, b):\n    return b - a\n```\n";
    let other = "calc.py\n```python\ndef add(a, b):\n    return a * b\n```\n";
    let coder = scripted("coder", &[Act::Say(wrong), Act::Say(other), Act::Say(other)]);
    let reviewer = scripted("reviewer", &[Act::Say(APPROVE)]);
    let w = ws_harness_with(&[("coder", coder.clone()), ("reviewer", reviewer)], 1, 2);
    let record = run_in_repo(&w, "add() subtracts; make it add").await;
    assert_eq!(record.state, RunState::Failed);
    let ws = record.workspace.unwrap();
    assert!(std::fs::read_to_string(ws.dir.join("calc.py")).unwrap().contains("b - a"));
    let checks = w.h.runtime.store().checks(&record.id).unwrap();
    let last = checks.last().unwrap();
    assert_eq!(last.commit, ws.head, "the stored check is of the change that stands");
}

#[actix::test]
async fn when_no_candidate_passes_the_one_leaving_the_fewest_tests_failing_stands() {
    // Each answer writes calc.py and a test of sub(): the first gets both functions wrong
    // (2 tests fail), the first candidate fixes add() (1 fails), the second is wrong again.
    let answer = |add: &str| {
        format!(
            "calc.py\n```python\ndef add(a, b):\n    return {add}\n\n\ndef sub(a, b):\n    return a + b\n```\n\n\
             tests/test_sub.py\n```python\nimport unittest\n\nfrom calc import sub\n\n\nclass S(unittest.TestCase):\n    def test_sub(self):\n        self.assertEqual(sub(5, 3), 2)\n```\n"
        )
    };
    let (wrong, better): (&'static str, &'static str) =
        (answer("b - a").leak(), answer("a + b").leak());
    let coder = scripted("coder", &[Act::Say(wrong), Act::Say(better), Act::Say(wrong)]);
    let reviewer = scripted("reviewer", &[Act::Say(APPROVE)]);
    let w = ws_harness_with(&[("coder", coder.clone()), ("reviewer", reviewer)], 1, 2);
    let mut handle =
        w.h.runtime
            .submit(RunRequest {
                task: "add() subtracts; make it add, and add sub()".into(),
                workflow: Some("irr".into()),
                project: Some(w.repo.path().to_path_buf()),
                ..Default::default()
            })
            .await
            .unwrap();
    let mut notes = Vec::new();
    loop {
        match handle.events.recv().await {
            Ok(RunEvent::Agent { message, .. }) => notes.push(message),
            Ok(e) if e.is_final() => break,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let record = handle.wait().await.unwrap();
    assert_eq!(record.state, RunState::Failed, "test_sub still fails");
    let (_, steps) = w.h.runtime.run(&record.id).unwrap();
    let change = steps[0].change.clone().unwrap();
    assert_eq!(change.candidate, 1, "{change:?}");
    assert!(
        notes.iter().any(|n| n
            .contains("kept answer 2 of 3, which leaves 1 test failing (the first left 2 tests)")),
        "{notes:?}"
    );
    // The refine step started from the kept answer: it saw add() fixed and only test_sub
    // failing.
    let refine = &coder.prompts()[3];
    assert!(refine.contains("return a + b") && !refine.contains("return b - a"), "{refine}");
    assert!(refine.contains("test_sub") && !refine.contains("FAIL: test_add"), "{refine}");
    // The stored check of the implement step is of the change that stands.
    let checks = w.h.runtime.store().checks(&record.id).unwrap();
    let implement: Vec<_> = checks.iter().filter(|c| c.after == steps[0].pos).collect();
    let last = implement.last().unwrap();
    assert_eq!(Some(last.commit.as_str()), change.commit.as_deref());
    let failing: Vec<String> =
        last.report.iter().flat_map(|r| r.results.iter().flat_map(|c| c.failing.clone())).collect();
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert!(failing[0].contains("test_sub"), "{failing:?}");
}

#[actix::test]
async fn a_task_that_asks_to_add_a_function_is_not_done_until_a_file_has_it() {
    let with_mul = "calc.py\n```python\ndef add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n```\n";
    // The first answer fixes add() and forgets mul(): the project's tests pass.
    let coder = scripted("coder", &[Act::Say(FIX), Act::Say(with_mul)]);
    let reviewer = scripted("reviewer", &[Act::Say(APPROVE), Act::Say(APPROVE)]);
    let w = ws_harness(&[("coder", coder.clone()), ("reviewer", reviewer)], 2);
    let record = run_in_repo(
        &w,
        "add() subtracts; make it add. Also add a function mul(a, b) that multiplies.",
    )
    .await;
    assert_eq!(record.state, RunState::Completed, "{:?}", record.error);
    // add() is in the project already; mul() is what the task asks to add.
    assert_eq!(record.expect, ["mul"]);
    assert_eq!(record.validators.last().map(String::as_str), Some("troupe-expect mul"));
    assert!(
        record.validators_source.as_deref().is_some_and(|s| s.contains("expects `mul`")),
        "{:?}",
        record.validators_source
    );
    let prompts = coder.prompts();
    // The refine after the implement step was told what is missing.
    assert!(prompts[1].starts_with("You are the refiner"), "{}", prompts[1]);
    assert!(prompts[1].contains("no file of the project has it"), "{}", prompts[1]);
    let ws = record.workspace.unwrap();
    assert!(std::fs::read_to_string(ws.dir.join("calc.py")).unwrap().contains("def mul"));
}

#[actix::test]
async fn a_task_that_names_only_existing_code_expects_nothing() {
    let coder = scripted("coder", &[Act::Say(FIX)]);
    let reviewer = scripted("reviewer", &[Act::Say(APPROVE)]);
    let w = ws_harness(&[("coder", coder), ("reviewer", reviewer)], 1);
    let record = run_in_repo(&w, "Add the missing plus sign: add() must return a + b.").await;
    assert_eq!(record.state, RunState::Completed, "{:?}", record.error);
    assert!(record.expect.is_empty(), "{:?}", record.expect);
    assert!(!record.validators.iter().any(|v| v.starts_with("troupe-expect")));
}

fn tokens_of(step: &troupe_runtime::StepRecord) -> u64 {
    step.tokens.total()
}

#[actix::test]
async fn a_step_that_changes_nothing_while_the_checks_fail_gets_candidates_too() {
    let same = "calc.py\n```python\ndef add(a, b):\n    return a - b\n```\n";
    // The first answer changes nothing, and so does its re-ask; the first candidate fixes it.
    let coder = scripted("coder", &[Act::Say(same), Act::Say(same), Act::Say(FIX)]);
    let reviewer = scripted("reviewer", &[Act::Say(APPROVE)]);
    let w = ws_harness_with(&[("coder", coder.clone()), ("reviewer", reviewer)], 1, 2);
    let record = run_in_repo(&w, "add() subtracts; make it add").await;
    assert_eq!(record.state, RunState::Completed, "{:?}", record.error);
    assert_eq!(coder.prompts().len(), 3);
    let (_, steps) = w.h.runtime.run(&record.id).unwrap();
    let change = steps[0].change.clone().unwrap();
    assert_eq!(change.candidate, 1, "{change:?}");
    assert!(change.commit.is_some());
}

#[actix::test]
async fn the_workflow_that_runs_is_named_before_the_run() {
    let h = harness(config(), &[]);
    // Offline, the built-in default (cloud CLI agents) gives way to offline-default.
    let (name, note) = h.runtime.workflow_for(None, true);
    assert_eq!(name, "offline-default");
    assert!(note.unwrap().contains("needs agents off this machine"));
    assert_eq!(h.runtime.workflow_for(None, false), ("default".to_string(), None));
    assert_eq!(h.runtime.workflow_for(Some("irr"), true), ("irr".to_string(), None));
}
