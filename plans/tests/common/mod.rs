//! A runtime with scripted agents over a temporary git repository, for plan tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use troupe_adapters::agent::{Agent, AgentInfo, AgentRequest, AgentResponse, CallContext};
use troupe_adapters::config::{AgentConfig, AgentKind, Role};
use troupe_adapters::error::AdapterError;
use troupe_adapters::testing::ScriptedAgent;
use troupe_plans::{PlanStore, Plans};
use troupe_runtime::agents::AgentSource;
use troupe_runtime::{Backend, MemoryBackend, Runtime, RuntimeParts};
use troupe_workflows::config::StepConfig;
use troupe_workflows::{Config, WorkflowConfig};

pub const APPROVE: &str = r#"{"verdict": "approved", "summary": "good", "findings": []}"#;

/// What the scripted coder does for a task (found by its id in the prompt).
#[derive(Debug, Clone)]
pub enum Act {
    /// Write these files (path, content) as its answer.
    Write(Vec<(&'static str, &'static str)>),
    /// Fail the call.
    Fail,
}

/// A coder that answers by task id, counts calls in flight (the peak is kept), and can be
/// held at a gate.
#[derive(Debug)]
pub struct Coder {
    info: AgentInfo,
    pub acts: Mutex<BTreeMap<String, Act>>,
    in_flight: AtomicUsize,
    pub peak: AtomicUsize,
    /// Calls wait until this many are in flight (or a second passed), so calls that may
    /// overlap do.
    pub overlap: usize,
    /// Task ids called, in order; and the files each saw in its workspace.
    pub seen: Mutex<Vec<(String, Vec<String>)>>,
    pub gate: tokio::sync::Semaphore,
}

impl Coder {
    pub fn new(acts: &[(&str, Act)], overlap: usize) -> Arc<Coder> {
        Arc::new(Coder {
            info: info("coder"),
            acts: Mutex::new(acts.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            overlap,
            seen: Mutex::new(Vec::new()),
            gate: tokio::sync::Semaphore::new(1000),
        })
    }

    pub fn calls(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|(t, _)| t.clone()).collect()
    }

    pub fn saw(&self, task: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .find(|(t, _)| t == task)
            .map(|(_, f)| f.clone())
            .unwrap_or_default()
    }
}

fn info(name: &str) -> AgentInfo {
    AgentInfo {
        name: name.into(),
        kind: "test".into(),
        model: Some("scripted".into()),
        endpoint: "memory".into(),
        local: true,
    }
}

fn task_of(prompt: &str) -> String {
    let start = prompt.find("(Task `").map(|i| i + 7).unwrap_or(0);
    prompt[start..].split('`').next().unwrap_or("").to_string()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    out.retain(|n| !n.starts_with('.'));
    out.sort();
    out
}

#[async_trait]
impl Agent for Coder {
    fn info(&self) -> &AgentInfo {
        &self.info
    }

    async fn call(
        &self,
        request: &AgentRequest,
        ctx: &CallContext,
    ) -> Result<AgentResponse, AdapterError> {
        let prompt = request.render_prompt();
        let task = task_of(&prompt);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let seen = ctx.workdir.as_deref().map(files_in).unwrap_or_default();
        self.seen.lock().unwrap().push((task.clone(), seen));
        for _ in 0..100 {
            if self.in_flight.load(Ordering::SeqCst) >= self.overlap {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let permit = self.gate.acquire().await;
        drop(permit);
        let act = self.acts.lock().unwrap().get(&task).cloned();
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        match act {
            Some(Act::Write(files)) => {
                let text: String =
                    files.iter().map(|(p, c)| format!("{p}\n```\n{c}\n```\n")).collect();
                Ok(AgentResponse::new("coder", text))
            }
            Some(Act::Fail) => Err(AdapterError::bad_response("coder", "scripted failure")),
            None => {
                Err(AdapterError::bad_response("coder", format!("no script for task `{task}`")))
            }
        }
    }
}

fn agent_config(role: Role) -> AgentConfig {
    let mut a = AgentConfig::new(AgentKind::Llamacpp);
    a.base_url = Some("http://127.0.0.1:1/v1".into());
    a.role = Some(role);
    a
}

/// Agents `coder`, `reviewer`, `planner`; the default workflow `ir` (implement → review,
/// one iteration); up to 8 runs at once.
pub fn config() -> Config {
    let mut c = Config::builtin();
    c.agents.insert("coder".into(), agent_config(Role::Implement));
    c.agents.insert("reviewer".into(), agent_config(Role::Review));
    c.agents.insert("planner".into(), agent_config(Role::Plan));
    c.workflows.insert(
        "ir".into(),
        WorkflowConfig::new(
            1,
            vec![
                StepConfig::new("coder", Role::Implement),
                StepConfig::new("reviewer", Role::Review),
            ],
        ),
    );
    c.settings.default_workflow = "ir".into();
    c.settings.planner_agent = Some("planner".into());
    c.settings.max_concurrent_runs = 8;
    c
}

pub struct World {
    pub plans: Plans,
    pub repo: tempfile::TempDir,
    pub data: tempfile::TempDir,
    pub backend: Arc<MemoryBackend>,
}

/// Run git in `dir` (troupe's own runner: a fixed identity, no user hooks); its standard
/// output (a failure fails the test, naming the command and git's error).
pub fn git(dir: &Path, args: &[&str]) -> String {
    troupe_change::git::Git::new(dir).run(args).unwrap_or_else(|e| panic!("{e}"))
}

/// A git repository with `README.md` and `shared.txt`, committed.
pub fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "# demo\n").unwrap();
    std::fs::write(dir.path().join("shared.txt"), "one\ntwo\nthree\n").unwrap();
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "start"]);
    dir
}

pub fn world(agents: &[(&str, Arc<dyn Agent>)]) -> World {
    world_with(config(), agents)
}

pub fn world_with(mut config: Config, agents: &[(&str, Arc<dyn Agent>)]) -> World {
    let data = tempfile::tempdir().unwrap();
    config.settings.data_dir = Some(data.path().to_path_buf());
    let backend = Arc::new(MemoryBackend::default());
    let mut all: BTreeMap<String, Arc<dyn Agent>> =
        agents.iter().map(|(n, a)| (n.to_string(), a.clone())).collect();
    all.entry("reviewer".into())
        .or_insert_with(|| Arc::new(ScriptedAgent::new("reviewer").then_answer(APPROVE)));
    let agents = all.into_iter().map(|(n, a)| (n, AgentSource::shared(a))).collect();
    let runtime = Runtime::new(RuntimeParts {
        max_tokens: 512,
        workspaces: Some(data.path().join("workspaces")),
        ..RuntimeParts::new(config, agents, backend.clone()).unwrap()
    })
    .unwrap();
    let plans = Plans::new(runtime, PlanStore::new(backend.clone() as Arc<dyn Backend>));
    World { plans, repo: repo(), data, backend }
}

impl World {
    pub fn project(&self) -> PathBuf {
        self.repo.path().to_path_buf()
    }
}
