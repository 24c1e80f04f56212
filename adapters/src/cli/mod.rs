//! Coding-agent CLIs run as subprocesses: Claude Code, Codex, Gemini, Copilot, and any other
//! program through an argument template.
//!
//! One process per call, started from an argument vector (never a shell), in the project
//! folder, in a new process group: a timeout or a cancellation ends the whole group
//! (SIGTERM, then SIGKILL after a grace period), so nothing the CLI started lives on.
//! Standard error is kept (its last 64 KiB) and quoted when the call fails; exit codes and
//! what the CLI printed decide the error class.

mod output;
mod process;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tracing::Instrument;

use crate::agent::{Agent, AgentInfo, AgentRequest, AgentResponse, CallContext, Tokens};
use crate::config::{AgentConfig, CliFlavor, PromptInput};
use crate::error::{AdapterError, Result};

pub use process::{ProcessOutput, STDERR_TAIL};

/// The longest prompt passed as one argument; Linux refuses arguments over 128 KiB.
const MAX_ARG_PROMPT: usize = 100 * 1024;

/// An agent that runs a CLI program once per call.
#[derive(Debug, Clone)]
pub struct CliAgent {
    info: AgentInfo,
    command: String,
    flavor: CliFlavor,
    /// The configured argument template; empty means the vendor's default invocation.
    args: Vec<String>,
    prompt_input: PromptInput,
    model: Option<String>,
    env: BTreeMap<String, String>,
    timeout: Duration,
    /// Time between SIGTERM and SIGKILL when the process group is ended.
    grace: Duration,
}

/// The values substituted into an argument template.
#[derive(Debug, Clone, Copy)]
pub struct TemplateVars<'a> {
    /// `{prompt}`.
    pub prompt: &'a str,
    /// `{workdir}`.
    pub workdir: &'a str,
    /// `{model}` (empty when no model is configured).
    pub model: &'a str,
}

/// Expand `{prompt}`, `{workdir}` and `{model}` in one argument, in a single pass (a prompt
/// that contains `{model}` stays as written).
pub fn expand_arg(template: &str, vars: TemplateVars<'_>) -> String {
    let mut out = String::with_capacity(template.len() + vars.prompt.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (value, len) = if tail.starts_with("{prompt}") {
            (vars.prompt, "{prompt}".len())
        } else if tail.starts_with("{workdir}") {
            (vars.workdir, "{workdir}".len())
        } else if tail.starts_with("{model}") {
            (vars.model, "{model}".len())
        } else {
            ("{", 1)
        };
        out.push_str(value);
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

/// How a vendor's CLI installs, for the "not installed" message.
fn install_hint(flavor: CliFlavor, command: &str) -> String {
    match flavor {
        CliFlavor::Claude => "install Claude Code (npm install -g @anthropic-ai/claude-code) and log in once by running `claude`".into(),
        CliFlavor::Codex => "install the Codex CLI (npm install -g @openai/codex) and log in once with `codex login`".into(),
        CliFlavor::Gemini => "install the Gemini CLI (npm install -g @google/gemini-cli) and log in once by running `gemini`".into(),
        CliFlavor::Copilot => "install the GitHub Copilot CLI (npm install -g @github/copilot) and log in once with `copilot login`".into(),
        CliFlavor::Generic => format!("install '{command}', put it on PATH or set the agent's `command` to its full path"),
    }
}

impl CliAgent {
    /// The agent `name` configured by `cfg` (`kind = "cli"`).
    pub fn new(name: &str, cfg: &AgentConfig) -> Result<CliAgent> {
        let command = cfg.command.clone().filter(|c| !c.trim().is_empty()).ok_or_else(|| {
            AdapterError::Config {
                agent: name.to_string(),
                message: format!("no command; set [agents.{name}] command = \"…\""),
            }
        })?;
        Ok(CliAgent {
            info: AgentInfo {
                name: name.to_string(),
                kind: "cli".to_string(),
                model: cfg.model.clone(),
                endpoint: cfg.endpoint(),
                local: false,
            },
            flavor: cfg.cli_flavor(),
            command,
            args: cfg.args.clone(),
            prompt_input: cfg.prompt_input,
            model: cfg.model.clone().filter(|m| !m.trim().is_empty()),
            env: cfg.env.clone(),
            timeout: Duration::from_secs(cfg.timeout_secs.max(1)),
            grace: Duration::from_secs(2),
        })
    }

    /// The same agent with another SIGTERM-to-SIGKILL grace period.
    pub fn with_kill_grace(mut self, grace: Duration) -> CliAgent {
        self.grace = grace;
        self
    }

    /// The vendor's documented non-interactive invocation, as a template.
    fn default_args(&self, stdin: bool) -> Vec<String> {
        let model = self.model.is_some();
        let mut a: Vec<&str> = match self.flavor {
            CliFlavor::Claude => {
                let mut a = vec!["-p"];
                if !stdin {
                    a.push("{prompt}");
                }
                // Non-interactive edits in its working folder (the run's workspace).
                a.extend(["--output-format", "json", "--permission-mode", "acceptEdits"]);
                if model {
                    a.extend(["--model", "{model}"]);
                }
                a
            }
            CliFlavor::Codex => {
                let mut a = vec![
                    "exec",
                    "--json",
                    "--skip-git-repo-check",
                    "--sandbox",
                    "workspace-write",
                    "-C",
                    "{workdir}",
                ];
                if model {
                    a.extend(["-m", "{model}"]);
                }
                a.push(if stdin { "-" } else { "{prompt}" });
                a
            }
            CliFlavor::Gemini => {
                let mut a = Vec::new();
                if !stdin {
                    a.extend(["-p", "{prompt}"]);
                }
                // Edits are approved without asking; shell commands are not.
                a.extend(["--output-format", "json", "--approval-mode", "auto_edit"]);
                if model {
                    a.extend(["-m", "{model}"]);
                }
                a
            }
            CliFlavor::Copilot => {
                let mut a = vec!["-p", "{prompt}", "-s", "--allow-all-tools"];
                if model {
                    a.extend(["--model", "{model}"]);
                }
                a
            }
            CliFlavor::Generic => {
                if stdin {
                    vec![]
                } else {
                    vec!["{prompt}"]
                }
            }
        };
        a.shrink_to_fit();
        a.into_iter().map(str::to_string).collect()
    }

    /// Whether the vendor CLI reads the prompt from standard input.
    fn can_read_stdin(&self) -> bool {
        !matches!(self.flavor, CliFlavor::Copilot)
    }

    /// The argument vector for `prompt` and whether the prompt goes to standard input.
    pub fn argv(&self, prompt: &str, workdir: &str) -> Result<(Vec<String>, bool)> {
        let mut stdin = self.prompt_input == PromptInput::Stdin;
        let mut template =
            if self.args.is_empty() { self.default_args(stdin) } else { self.args.clone() };
        if !stdin && prompt.len() > MAX_ARG_PROMPT {
            if self.args.is_empty() && self.can_read_stdin() {
                stdin = true;
                template = self.default_args(true);
            } else {
                return Err(AdapterError::InvalidRequest {
                    agent: self.info.name.clone(),
                    message: format!(
                        "the prompt ({} KiB) is too long for a command-line argument; set \
                         [agents.{}] prompt_input = \"stdin\" if the program reads its prompt \
                         from standard input",
                        prompt.len() / 1024,
                        self.info.name
                    ),
                });
            }
        }
        let vars = TemplateVars {
            prompt: if stdin { "" } else { prompt },
            workdir,
            model: self.model.as_deref().unwrap_or(""),
        };
        Ok((template.iter().map(|t| expand_arg(t, vars)).collect(), stdin))
    }

    /// Whether stdout is the answer as plain text (and so can be streamed as it comes).
    fn plain_text(&self) -> bool {
        matches!(self.flavor, CliFlavor::Copilot | CliFlavor::Generic)
    }

    async fn run(
        &self,
        req: &AgentRequest,
        ctx: &CallContext,
        started: Instant,
    ) -> Result<AgentResponse> {
        let agent = &self.info.name;
        let program = crate::which::find_program(&self.command).ok_or_else(|| {
            AdapterError::NotInstalled {
                agent: agent.clone(),
                command: self.command.clone(),
                hint: install_hint(self.flavor, &self.command),
            }
        })?;
        let workdir = match &ctx.workdir {
            Some(d) => d.clone(),
            None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        };
        let prompt = req.render_prompt();
        let (argv, use_stdin) = self.argv(&prompt, &workdir.to_string_lossy())?;
        let spec = process::Spec {
            agent,
            program: &program,
            argv: &argv,
            workdir: &workdir,
            env: &self.env,
            stdin: use_stdin.then_some(prompt.as_str()),
            stream_stdout: self.plain_text(),
            deadline: started + self.timeout,
            timeout: self.timeout,
            grace: self.grace,
        };
        let out = process::run(spec, ctx).await?;
        let parsed = output::parse(agent, self.flavor, &out)?;
        if parsed.text.trim().is_empty() {
            return Err(AdapterError::empty_answer(agent));
        }
        if !self.plain_text() {
            ctx.chunk(&parsed.text);
        }
        let (usage, estimated) = match parsed.usage {
            Some(u) => (u, false),
            None => (
                Tokens {
                    prompt: req.estimated_tokens(),
                    completion: (parsed.text.len() as u64).div_ceil(4),
                },
                true,
            ),
        };
        Ok(AgentResponse {
            text: parsed.text,
            usage,
            usage_estimated: estimated,
            latency: started.elapsed(),
            agent: agent.clone(),
            model: parsed.model.or_else(|| self.model.clone()),
            finish_reason: None,
            attempts: 1,
            failed: Vec::new(),
        })
    }
}

#[async_trait]
impl Agent for CliAgent {
    fn info(&self) -> &AgentInfo {
        &self.info
    }

    async fn call(&self, req: &AgentRequest, ctx: &CallContext) -> Result<AgentResponse> {
        let span =
            tracing::debug_span!("cli_call", agent = %self.info.name, command = %self.command);
        self.run(req, ctx, Instant::now()).instrument(span).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentKind;

    fn agent(command: &str, model: Option<&str>) -> CliAgent {
        let mut cfg = AgentConfig::new(AgentKind::Cli);
        cfg.command = Some(command.into());
        cfg.model = model.map(str::to_string);
        CliAgent::new("a", &cfg).unwrap()
    }

    #[test]
    fn templates_expand_in_one_pass() {
        let v = TemplateVars { prompt: "say {model}", workdir: "/w", model: "m1" };
        assert_eq!(expand_arg("--p={prompt}", v), "--p=say {model}");
        assert_eq!(expand_arg("{workdir}/{model}{", v), "/w/m1{");
        assert_eq!(expand_arg("{unknown}", v), "{unknown}");
    }

    #[test]
    fn vendor_invocations() {
        let (a, s) = agent("claude", None).argv("hi", "/w").unwrap();
        assert_eq!(a, ["-p", "hi", "--output-format", "json", "--permission-mode", "acceptEdits"]);
        assert!(!s);
        let (a, _) = agent("codex", Some("o3")).argv("hi", "/w").unwrap();
        assert_eq!(
            a,
            [
                "exec",
                "--json",
                "--skip-git-repo-check",
                "--sandbox",
                "workspace-write",
                "-C",
                "/w",
                "-m",
                "o3",
                "hi"
            ]
        );
        let (a, _) = agent("gemini", None).argv("hi", "/w").unwrap();
        assert_eq!(a, ["-p", "hi", "--output-format", "json", "--approval-mode", "auto_edit"]);
        let (a, _) = agent("copilot", None).argv("hi", "/w").unwrap();
        assert_eq!(a, ["-p", "hi", "-s", "--allow-all-tools"]);
        let (a, _) = agent("/opt/tool", None).argv("hi", "/w").unwrap();
        assert_eq!(a, ["hi"]);
    }

    #[test]
    fn huge_prompts_go_to_stdin_or_fail_clearly() {
        let big = "x".repeat(MAX_ARG_PROMPT + 1);
        let (a, stdin) = agent("codex", None).argv(&big, "/w").unwrap();
        assert!(stdin && a.last().map(String::as_str) == Some("-"));
        let err = agent("copilot", None).argv(&big, "/w").unwrap_err();
        assert!(matches!(err, AdapterError::InvalidRequest { .. }), "{err}");
    }
}
