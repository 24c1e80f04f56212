//! The runtime's view of the project memory: what it reads into prompts and what it writes
//! back after a run. Implemented over `troupe-context` by [`crate::context_memory`]; the
//! calls are synchronous and the runtime runs them on blocking threads.

use std::path::Path;

use serde::{Deserialize, Serialize};
use troupe_workflows::verdict::Finding;

use crate::error::Result;

/// Relevant memory for one prompt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContextBlock {
    /// Formatted for the prompt (may be empty).
    pub text: String,
    /// The ids of the nodes used.
    pub nodes: Vec<String>,
    /// Tokens it takes.
    pub tokens: usize,
}

/// What a finished run teaches the memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// The run.
    pub run_id: String,
    /// The project's id.
    pub project_id: String,
    /// The conversation it belongs to.
    pub conversation: Option<String>,
    /// The task.
    pub task: String,
    /// The workflow's name.
    pub workflow: String,
    /// Whether it succeeded.
    pub success: bool,
    /// The final work (or the error).
    pub output: String,
    /// The agents that answered.
    pub agents: Vec<String>,
    /// Every finding of every review.
    pub findings: Vec<Finding>,
    /// Memory nodes that were put into its prompts.
    pub context_nodes: Vec<String>,
    /// The files its change touches, relative to the project: the task is linked to them.
    #[serde(default)]
    pub files: Vec<String>,
}

/// The project memory, as the runtime uses it.
pub trait Memory: Send + Sync + std::fmt::Debug {
    /// The project's id, registering (and scanning) the project the first time.
    fn ensure_project(&self, path: &Path) -> Result<String>;

    /// The memory relevant to `task` in the project, within `token_budget` tokens.
    fn relevant_context(
        &self,
        project_id: &str,
        task: &str,
        token_budget: usize,
    ) -> Result<ContextBlock>;

    /// Store a finished run: its task and outcome, the mistakes and decisions its reviews
    /// named, linked with edges. Returns the id of the task node.
    fn record_run(&self, outcome: &RunOutcome) -> Result<String>;

    /// The project's files changed on disk (a run's change was applied or reverted): bring
    /// the memory's file notes up to date. The default does nothing.
    fn refresh_files(&self, project_path: &Path) -> Result<()> {
        let _ = project_path;
        Ok(())
    }
}

/// A memory that remembers nothing: every folder is the project `project-1`, no context is
/// relevant, and a run's outcome is acknowledged as the task `task-<run id>` and dropped. For
/// embedding the runtime without a project memory, and for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMemory;

impl Memory for NoMemory {
    fn ensure_project(&self, _: &Path) -> Result<String> {
        Ok("project-1".into())
    }

    fn relevant_context(&self, _: &str, _: &str, _: usize) -> Result<ContextBlock> {
        Ok(ContextBlock::default())
    }

    fn record_run(&self, outcome: &RunOutcome) -> Result<String> {
        Ok(format!("task-{}", outcome.run_id))
    }
}
