//! `troupe shell`: an interactive session over the runtime.
//!
//! Each task runs through the current workflow and streams its steps (the same display as
//! `troupe run`); every task of a session shares one conversation, so follow-ups see the
//! earlier turns. Slash commands change the workflow, offline mode and conversation, and
//! look at agents, workflows, runs and the project memory.
//!
//! With a terminal the line editor is reedline (history file, completion, hints, multi-line
//! input) running on a thread of its own; with input piped in, tasks are read line by line
//! and the exit code says whether every task succeeded.

mod commands;
mod editor;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use tokio::io::AsyncBufReadExt;
use troupe_runtime::{RunRecord, RunRequest, RunState, Runtime};
use troupe_workflows::Config;
use troupe_workflows::config::ConfigSource;

use crate::cli::ShellArgs;
use crate::commands::exit;

/// A session's state.
#[derive(Debug)]
pub struct Session {
    /// The runtime.
    pub runtime: Runtime,
    /// The workflow chosen with `/workflow`; the configured default when none.
    pub workflow: Option<String>,
    /// The project folder, if not the configured one.
    pub project: Option<PathBuf>,
    /// The conversation every task of this session continues (`/clear` starts a new one).
    pub conversation: String,
    /// Runs of this session, oldest first.
    pub history: Vec<RunRecord>,
    /// Whether any task failed.
    pub failed: bool,
    /// Whether any input was bad usage (unknown command, unknown workflow…).
    pub misused: bool,
    /// Whether output goes to a person (colour, hints).
    pub interactive: bool,
}

impl Session {
    /// The workflow tasks run through now.
    pub fn workflow_name(&self) -> String {
        self.runtime.workflow_for(self.workflow.as_deref(), self.offline()).0
    }

    /// Whether agents off this machine are refused.
    pub fn offline(&self) -> bool {
        self.runtime.config().settings.offline
            || self
                .runtime
                .registry()
                .is_some_and(|r| r.offline().reason().is_some_and(|r| r.starts_with(SHELL_OFFLINE)))
    }

    /// The project's name for the prompt.
    pub fn project_name(&self) -> String {
        let path = self.project.clone().unwrap_or_else(|| self.runtime.config().project_path());
        let path = path.canonicalize().unwrap_or(path);
        path.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| path.display().to_string())
    }

    /// The prompt's text: project, workflow, offline state.
    pub fn prompt_text(&self) -> String {
        let offline = if self.offline() { " · offline" } else { "" };
        format!("{} · {}{offline}", self.project_name(), self.workflow_name())
    }

    /// Run one task through the current workflow, streaming its steps.
    pub async fn run_task(&mut self, task: &str) -> Result<()> {
        if !self.interactive {
            println!("» {}", task.replace('\n', "\n  "));
        }
        let req = RunRequest {
            task: task.to_string(),
            workflow: self.workflow.clone(),
            max_iterations: None,
            offline: self.offline(),
            project: self.project.clone(),
            conversation: Some(self.conversation.clone()),
            ..RunRequest::default()
        };
        let handle = match self.runtime.submit(req).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("troupe: {e}");
                self.failed = true;
                return Ok(());
            }
        };
        let record = crate::commands::run::follow(&self.runtime, handle, false).await?;
        if record.state != RunState::Completed {
            self.failed = true;
        }
        self.history.push(record);
        Ok(())
    }

    /// The exit code of the session.
    pub fn exit_code(&self) -> u8 {
        if self.misused {
            exit::USAGE
        } else if self.failed {
            exit::FAILED
        } else {
            exit::OK
        }
    }
}

/// The reason `/offline on` gives the offline switch.
pub const SHELL_OFFLINE: &str = "/offline on";

/// What to do after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next line.
    Continue,
    /// End the session.
    Quit,
}

/// Handle one complete input (a task or a slash command).
pub async fn handle(session: &mut Session, input: &str) -> Result<Flow> {
    let input = input.trim();
    if input.is_empty() {
        return Ok(Flow::Continue);
    }
    if input.starts_with('/') {
        return commands::dispatch(session, input).await;
    }
    session.run_task(input).await?;
    Ok(Flow::Continue)
}

/// Join continued lines: a line ending in `\` continues on the next one.
pub fn join_continued(text: &str) -> String {
    text.replace("\\\r\n", "\n").replace("\\\n", "\n")
}

/// `troupe shell`.
pub fn shell(config: Config, source: ConfigSource, args: ShellArgs) -> Result<u8> {
    if let Some(w) = &args.workflow
        && let Err(e) = config.check_workflow(w)
    {
        eprintln!("troupe: {e}");
        return Ok(exit::USAGE);
    }
    let offline = config.settings.offline;
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    actix_rt::System::new().block_on(async move {
        let Some(runtime) = crate::open::open_runtime(config, &source, offline) else {
            return Ok(exit::FAILED);
        };
        let mut session = Session {
            runtime: runtime.clone(),
            workflow: args.workflow,
            project: args.project,
            conversation: new_conversation(),
            history: Vec::new(),
            failed: false,
            misused: false,
            interactive,
        };
        let result = if interactive {
            editor::interactive(&mut session).await
        } else {
            piped(&mut session).await
        };
        runtime.shutdown().await;
        result?;
        Ok(session.exit_code())
    })
}

/// A fresh conversation id.
pub fn new_conversation() -> String {
    format!("shell-{}", uuid::Uuid::now_v7())
}

/// Input piped in: one task or command per line (a trailing `\` continues it), plain output.
async fn piped(session: &mut Session) -> Result<()> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut pending = String::new();
    loop {
        let line = tokio::select! {
            l = lines.next_line() => l?,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("troupe: interrupted");
                session.failed = true;
                return Ok(());
            }
        };
        let Some(line) = line else { break };
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push('\n');
            continue;
        }
        pending.push_str(&line);
        let input = std::mem::take(&mut pending);
        if handle(session, &input).await? == Flow::Quit {
            return Ok(());
        }
    }
    if !pending.trim().is_empty() {
        handle(session, &pending).await?;
    }
    Ok(())
}
