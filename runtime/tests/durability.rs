//! What a run's writes promise: a step's end is on disk before the next step's call, the
//! last step's end goes to disk with the run's end (one write), a step whose start or end
//! never reached the disk runs again on resume, and a write the records' journal
//! acknowledged survives a crash before the database's flush (the real sled store).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};
use troupe_adapters::agent::{Agent, AgentInfo, AgentRequest, AgentResponse, CallContext};
use troupe_adapters::config::{AgentConfig, AgentKind, Role};
use troupe_adapters::error::AdapterError;
use troupe_runtime::backend::Write;
use troupe_runtime::{
    Backend, JOURNAL_FILE, Journaled, MemoryBackend, RunRequest, RunState, Runtime, RuntimeParts,
    StepState,
};
use troupe_workflows::config::{Config, StepConfig, WorkflowConfig};

/// A memory backend that keeps every batch written (keys with the `state` they store),
/// each write taking a while (as a disk's would: a step that did not wait for its write
/// would go on before it lands).
#[derive(Debug, Default)]
struct Recorded {
    inner: MemoryBackend,
    batches: Mutex<Vec<Batch>>,
    /// Every write fails while set (a full or broken disk).
    broken: AtomicBool,
}

/// A batch as written: each key with the `state` it stores.
type Batch = Vec<(String, Option<String>)>;

const WRITE_TIME: std::time::Duration = std::time::Duration::from_millis(20);

impl Backend for Recorded {
    fn put(&self, key: &str, value: &Value) -> troupe_runtime::Result<()> {
        self.write(&[(key.to_string(), Some(value.clone()))])
    }
    fn write(&self, writes: &[Write]) -> troupe_runtime::Result<()> {
        let batch = writes
            .iter()
            .map(|(k, v)| {
                let state = v.as_ref().and_then(|v| v.get("state")).and_then(Value::as_str);
                (k.clone(), state.map(str::to_string))
            })
            .collect();
        std::thread::sleep(WRITE_TIME);
        if self.broken.load(Ordering::SeqCst) {
            return Err(troupe_runtime::Error::Invalid("the disk is full".into()));
        }
        self.batches.lock().unwrap().push(batch);
        self.inner.write(writes)
    }
    fn get(&self, key: &str) -> troupe_runtime::Result<Option<Value>> {
        self.inner.get(key)
    }
    fn scan(&self, prefix: &str) -> troupe_runtime::Result<Vec<(String, Value)>> {
        self.inner.scan(prefix)
    }
    fn remove(&self, key: &str) -> troupe_runtime::Result<()> {
        self.write(&[(key.to_string(), None)])
    }
}

/// An agent that notes, at each call, how many steps the store holds as completed.
#[derive(Debug)]
struct Witness {
    info: AgentInfo,
    store: Arc<Recorded>,
    seen: Mutex<Vec<usize>>,
}

#[async_trait]
impl Agent for Witness {
    fn info(&self) -> &AgentInfo {
        &self.info
    }

    async fn call(&self, _: &AgentRequest, _: &CallContext) -> Result<AgentResponse, AdapterError> {
        let completed = self
            .store
            .scan("steps/")
            .unwrap()
            .iter()
            .filter(|(_, s)| s["state"] == json!(StepState::Completed))
            .count();
        self.seen.lock().unwrap().push(completed);
        Ok(AgentResponse::new(&self.info.name, "done"))
    }
}

fn config(steps: usize) -> Config {
    let mut c = Config::builtin();
    let mut a = AgentConfig::new(AgentKind::Llamacpp);
    a.base_url = Some("http://127.0.0.1:1/v1".into());
    c.agents.insert("coder".into(), a);
    c.workflows.insert(
        "steps".into(),
        WorkflowConfig {
            description: None,
            max_iterations: 1,
            validate: None,
            steps: (0..steps).map(|_| StepConfig::new("coder", Role::Implement)).collect(),
        },
    );
    c
}

fn runtime(steps: usize, agent: Arc<dyn Agent>, backend: Arc<dyn Backend>) -> Runtime {
    let agents =
        BTreeMap::from([("coder".to_string(), troupe_runtime::agents::AgentSource::shared(agent))]);
    Runtime::new(RuntimeParts::new(config(steps), agents, backend).unwrap()).unwrap()
}

fn witness(store: &Arc<Recorded>) -> Arc<Witness> {
    Arc::new(Witness {
        info: AgentInfo {
            name: "coder".into(),
            kind: "test".into(),
            model: None,
            endpoint: "memory".into(),
            local: true,
        },
        store: store.clone(),
        seen: Mutex::new(Vec::new()),
    })
}

fn request(project: &Path) -> RunRequest {
    RunRequest {
        task: "t".into(),
        workflow: Some("steps".into()),
        project: Some(project.into()),
        ..Default::default()
    }
}

fn step_key(id: &str, step: usize) -> String {
    format!("steps/{id}/000001/{step:04}")
}

#[actix::test]
async fn each_step_end_is_stored_before_the_next_call_and_the_last_with_the_run() {
    let project = tempfile::tempdir().unwrap();
    let store = Arc::new(Recorded::default());
    let agent = witness(&store);
    let rt = runtime(3, agent.clone(), store.clone());
    let record = rt.submit(request(project.path())).await.unwrap().wait().await.unwrap();
    assert_eq!(record.state, RunState::Completed, "{:?}", record.error);
    assert_eq!(*agent.seen.lock().unwrap(), vec![0, 1, 2], "completed steps seen at each call");

    let batches = store.batches.lock().unwrap().clone();
    let run_key = format!("runs/{}", record.id);
    let done = Some("completed".to_string());
    let last = batches
        .iter()
        .position(|b| b.contains(&(run_key.clone(), done.clone())))
        .expect("the run's end was written");
    assert!(
        batches[last].contains(&(step_key(&record.id, 2), done.clone())),
        "the last step's end is written with the run's end: {:?}",
        batches[last]
    );
    let earlier = batches[..last].iter().flatten();
    assert!(!earlier.clone().any(|w| *w == (step_key(&record.id, 2), done.clone())));
    // The other steps' ends were written before, each on its own.
    for step in 0..2 {
        assert!(earlier.clone().any(|w| *w == (step_key(&record.id, step), done.clone())));
    }
}

/// The run's record is written while the run already starts: when that write fails, the
/// submission fails and the run does not go on past its first step.
#[actix::test]
async fn a_run_whose_record_cannot_be_written_is_refused_and_stopped() {
    let project = tempfile::tempdir().unwrap();
    let store = Arc::new(Recorded::default());
    let agent = witness(&store);
    let rt = runtime(3, agent.clone(), store.clone());
    store.broken.store(true, Ordering::SeqCst);
    let refused = rt.submit(request(project.path())).await;
    assert!(refused.is_err(), "a run that is not on disk was accepted");
    while !rt.live_runs().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(agent.seen.lock().unwrap().len() <= 1, "the run went on: {:?}", agent.seen);
    assert!(store.scan("runs/").unwrap().is_empty());
}

/// A crash can lose a step's start (it is not waited for) or, for the last step, its end
/// (written with the run's end): resume runs that step again, and only that one.
#[actix::test]
async fn a_step_whose_start_or_end_never_reached_the_disk_runs_again_on_resume() {
    for lost in ["start", "end"] {
        let project = tempfile::tempdir().unwrap();
        let store = Arc::new(Recorded::default());
        let rt = runtime(3, witness(&store), store.clone());
        let mut record = rt.submit(request(project.path())).await.unwrap().wait().await.unwrap();
        drop(rt);
        // What the crash left: the run in progress, step 2 running (its end lost) or
        // absent (its start lost too).
        record.state = RunState::InProgress;
        record.finished_at = None;
        let key = step_key(&record.id, 2);
        if lost == "start" {
            store.inner.remove(&key).unwrap();
        } else {
            let mut step = store.inner.get(&key).unwrap().unwrap();
            step["state"] = json!(StepState::Running);
            step["response"] = Value::Null;
            store.inner.put(&key, &step).unwrap();
        }
        store
            .inner
            .put(&format!("runs/{}", record.id), &serde_json::to_value(&record).unwrap())
            .unwrap();

        let agent = witness(&store);
        let rt = runtime(3, agent.clone(), store.clone());
        assert_eq!(rt.interrupted().unwrap().len(), 1, "lost {lost}");
        let resumed = rt.resume(&record.id).await.unwrap().wait().await.unwrap();
        assert_eq!(resumed.state, RunState::Completed, "lost {lost}: {:?}", resumed.error);
        assert_eq!(*agent.seen.lock().unwrap(), vec![2], "lost {lost}: only step 2 ran again");
        assert_eq!(rt.store().steps(&record.id).unwrap().len(), 3);
    }
}

/// A backend that drops every write that is not a flushed one: what sled holds when the
/// process dies before it flushed.
#[derive(Debug)]
struct Unflushed;

impl Backend for Unflushed {
    fn put(&self, _: &str, _: &Value) -> troupe_runtime::Result<()> {
        Ok(())
    }
    fn apply(&self, _: &[Write]) -> troupe_runtime::Result<()> {
        Ok(())
    }
    fn get(&self, _: &str) -> troupe_runtime::Result<Option<Value>> {
        Ok(None)
    }
    fn scan(&self, _: &str) -> troupe_runtime::Result<Vec<(String, Value)>> {
        Ok(Vec::new())
    }
    fn remove(&self, _: &str) -> troupe_runtime::Result<()> {
        Ok(())
    }
}

#[test]
fn the_sled_store_applies_journal_entries_a_crash_left() {
    let dir = tempfile::tempdir().unwrap();
    // A process wrote and was acknowledged, then died before the database saw the writes.
    let journal = Journaled::open(Arc::new(Unflushed), &dir.path().join(JOURNAL_FILE)).unwrap();
    journal.put("runs/r1", &json!({"state": "pending"})).unwrap();
    journal
        .write(&[
            ("runs/r1".to_string(), Some(json!({"state": "in_progress"}))),
            ("steps/r1/000001/0000".to_string(), Some(json!({"state": "completed"}))),
        ])
        .unwrap();
    std::mem::forget(journal);

    let store = troupe_runtime::store_backend(dir.path()).unwrap();
    assert_eq!(store.get("runs/r1").unwrap(), Some(json!({"state": "in_progress"})));
    assert_eq!(store.scan("steps/r1/").unwrap().len(), 1);
    drop(store);
    // Applied for good: a second open finds the same (and replays nothing).
    let store = troupe_runtime::store_backend(dir.path()).unwrap();
    assert_eq!(store.get("runs/r1").unwrap(), Some(json!({"state": "in_progress"})));
}

#[test]
fn writes_through_the_sled_store_are_there_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = troupe_runtime::store_backend(dir.path()).unwrap();
    store.put("runs/a", &json!(1)).unwrap();
    store.write(&[("runs/b".to_string(), Some(json!(2))), ("runs/a".to_string(), None)]).unwrap();
    drop(store);
    let store = troupe_runtime::store_backend(dir.path()).unwrap();
    assert_eq!(store.get("runs/a").unwrap(), None);
    assert_eq!(store.get("runs/b").unwrap(), Some(json!(2)));
}
