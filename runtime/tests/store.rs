//! The run store under the runtime: writes happen on the writer thread (never on an async
//! executor), the index keys serve project usage, conversations and the seeded call
//! counters (also for a store written before the index existed), and the cap on concurrent
//! runs, measured by the peak number of calls running at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use troupe_adapters::config::{AgentConfig, AgentKind, Role};
use troupe_adapters::testing::ScriptedAgent;
use troupe_runtime::agents::AgentSource;
use troupe_runtime::writer::WRITER_THREAD;
use troupe_runtime::{Backend, MemoryBackend, RunRequest, RunState, Runtime, RuntimeParts};
use troupe_workflows::config::{Config, StepConfig, WorkflowConfig};

/// The agent `coder`: it answers "done" (10 prompt and 5 completion tokens) after `delay`,
/// counting how many of its calls run at once.
fn coder(delay: Duration) -> Arc<ScriptedAgent> {
    Arc::new(ScriptedAgent::new("coder").with_delay(delay).then_answer_using("done", 10, 5))
}

/// A record backend that notes, for every write, whether it ran on a thread inside a
/// tokio runtime (an async executor) and on which thread.
#[derive(Debug, Default)]
struct Watched {
    inner: MemoryBackend,
    writes: AtomicUsize,
    threads: Mutex<Vec<(Option<String>, bool)>>,
}

impl Watched {
    fn note(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let name = std::thread::current().name().map(str::to_string);
        let on_executor = tokio::runtime::Handle::try_current().is_ok();
        self.threads.lock().unwrap().push((name, on_executor));
    }
}

impl Backend for Watched {
    fn put(&self, key: &str, value: &Value) -> troupe_runtime::Result<()> {
        self.note();
        self.inner.put(key, value)
    }
    fn get(&self, key: &str) -> troupe_runtime::Result<Option<Value>> {
        self.inner.get(key)
    }
    fn scan(&self, prefix: &str) -> troupe_runtime::Result<Vec<(String, Value)>> {
        self.inner.scan(prefix)
    }
    fn remove(&self, key: &str) -> troupe_runtime::Result<()> {
        self.note();
        self.inner.remove(key)
    }
}

/// A configuration with agent `coder` and workflow `one` (a single implement step).
fn config(max_concurrent: usize) -> Config {
    let mut c = Config::builtin();
    let mut a = AgentConfig::new(AgentKind::Llamacpp);
    a.base_url = Some("http://127.0.0.1:1/v1".into());
    c.agents.insert("coder".into(), a);
    c.settings.max_concurrent_runs = max_concurrent;
    c.workflows.insert(
        "one".into(),
        WorkflowConfig::new(1, vec![StepConfig::new("coder", Role::Implement)]),
    );
    c
}

fn runtime(config: Config, agent: Arc<ScriptedAgent>, backend: Arc<dyn Backend>) -> Runtime {
    let agents = BTreeMap::from([("coder".to_string(), AgentSource::shared(agent))]);
    let parts = RuntimeParts::new(config, agents, backend).unwrap();
    Runtime::new(RuntimeParts { max_tokens: 64, ..parts }).unwrap()
}

fn request(project: &Path, task: &str, conversation: Option<&str>) -> RunRequest {
    RunRequest {
        task: task.into(),
        workflow: Some("one".into()),
        project: Some(project.into()),
        conversation: conversation.map(str::to_string),
        ..Default::default()
    }
}

async fn run(rt: &Runtime, project: &Path, task: &str, conversation: Option<&str>) -> String {
    let h = rt.submit(request(project, task, conversation)).await.unwrap();
    let record = h.wait().await.unwrap();
    assert_eq!(record.state, RunState::Completed, "{:?}", record.error);
    record.id
}

#[actix::test]
async fn every_record_write_runs_on_the_writer_thread_not_an_executor() {
    let project = tempfile::tempdir().unwrap();
    let backend = Arc::new(Watched::default());
    let rt = runtime(config(4), coder(Duration::ZERO), backend.clone());
    let mut handles = Vec::new();
    for i in 0..4 {
        handles.push(rt.submit(request(project.path(), &format!("task {i}"), None)).await.unwrap());
    }
    let first = handles[0].id.clone();
    for h in handles {
        assert_eq!(h.wait().await.unwrap().state, RunState::Completed);
    }
    rt.cancel(&first).await.unwrap_err(); // a completed run cannot be cancelled: no write
    assert!(backend.writes.load(Ordering::SeqCst) > 0, "the runs wrote nothing");
    let threads = backend.threads.lock().unwrap().clone();
    for (name, on_executor) in &threads {
        assert!(!on_executor, "a record write ran on an async executor (thread {name:?})");
        assert_eq!(name.as_deref(), Some(WRITER_THREAD), "a record write ran elsewhere");
    }
    // What was written is there: the runs and their steps.
    assert_eq!(rt.store().runs().unwrap().len(), 4);
    assert_eq!(rt.store().steps(&first).unwrap().len(), 1);
}

#[actix::test]
async fn project_usage_and_conversations_read_the_index() {
    let project = tempfile::tempdir().unwrap();
    let rt = runtime(config(2), coder(Duration::ZERO), Arc::new(MemoryBackend::default()));
    let a = run(&rt, project.path(), "first", Some("chat-1")).await;
    let b = run(&rt, project.path(), "second", Some("chat/2")).await;
    let c = run(&rt, project.path(), "third", Some("chat-1")).await;
    let turns: Vec<String> =
        rt.store().conversation("chat-1").unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(turns, [a.clone(), c.clone()], "the conversation's runs, oldest first");
    assert_eq!(rt.store().conversation("chat/2").unwrap().len(), 1);
    assert!(rt.store().conversation("chat").unwrap().is_empty(), "no prefix match");

    let (current, _) = rt.run(&c).unwrap();
    let (tokens, _) = rt.store().project_usage(&current, None).unwrap();
    assert_eq!(tokens.total(), 45, "three runs of 15 tokens each");
    let later = Some(current.created_at);
    let (tokens, _) = rt.store().project_usage(&current, later).unwrap();
    assert_eq!(tokens.total(), 15, "only the current run was created since");

    // Cleaned-up runs leave no index keys behind.
    let removed = rt.store().cleanup(chrono::Utc::now() + chrono::Duration::hours(1)).await;
    assert_eq!(removed.unwrap(), 3);
    assert!(rt.store().conversation("chat-1").unwrap().is_empty());
    let (tokens, _) = rt.store().project_usage(&current, None).unwrap();
    assert_eq!(tokens.total(), 15, "only the current run, as it is in memory");
    assert!(rt.store().calls().unwrap().is_empty());
    let _ = b;
}

#[actix::test]
async fn a_store_written_before_the_index_is_indexed_when_opened() {
    let project = tempfile::tempdir().unwrap();
    let backend = Arc::new(MemoryBackend::default());
    {
        let rt = runtime(config(2), coder(Duration::ZERO), backend.clone());
        run(&rt, project.path(), "first", Some("chat")).await;
        run(&rt, project.path(), "second", Some("chat")).await;
    }
    // Take the index away, as a store from before it would be.
    for (key, _) in backend.scan("idx/").unwrap().into_iter().chain(backend.scan("meta/").unwrap())
    {
        backend.remove(&key).unwrap();
    }
    let rt = runtime(config(2), coder(Duration::ZERO), backend.clone());
    assert_eq!(rt.store().conversation("chat").unwrap().len(), 2);
    assert_eq!(rt.store().calls().unwrap().len(), 2);
    assert_eq!(rt.metrics().agent_stats("coder"), (2, 2), "the calls are seeded from the index");
}

/// The cap holds runs back: with 9 runs submitted at once and a cap of 3, no more than 3
/// calls ever run at once — and 3 do (so the measurement can see a broken cap).
#[actix::test]
async fn the_concurrency_cap_bounds_the_peak_of_running_calls() {
    let project = tempfile::tempdir().unwrap();
    let agent = coder(Duration::from_millis(150));
    let rt = runtime(config(3), agent.clone(), Arc::new(MemoryBackend::default()));
    let mut handles = Vec::new();
    for i in 0..9 {
        handles.push(rt.submit(request(project.path(), &format!("task {i}"), None)).await.unwrap());
    }
    for h in handles {
        assert_eq!(h.wait().await.unwrap().state, RunState::Completed);
    }
    assert_eq!(agent.peak_calls(), 3, "peak calls at once, with a cap of 3");
}
