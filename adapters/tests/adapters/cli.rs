//! The CLI adapters against fixture scripts (tests/fixtures) that behave like the vendor
//! CLIs: JSON output, non-zero exits, hanging, huge stderr. The argument vector each
//! receives is asserted exactly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use troupe_adapters::cli::CliAgent;
use troupe_adapters::config::{AgentConfig, AgentKind, CliFlavor, PromptInput};
use troupe_adapters::{AdapterError, Agent, AgentRequest, CallContext};

use crate::{Captured, bounded};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// A fixture CLI agent recording into a fresh folder, with `mode`.
struct Fixture {
    dir: TempDir,
    workdir: TempDir,
    cfg: AgentConfig,
}

impl Fixture {
    fn new(program: &str, flavor: CliFlavor, mode: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let workdir = tempfile::tempdir().unwrap();
        let mut cfg = AgentConfig::new(AgentKind::Cli);
        cfg.command = Some(fixture(program));
        cfg.flavor = Some(flavor);
        cfg.timeout_secs = 10;
        cfg.env.insert("FIXTURE_DIR".into(), dir.path().to_string_lossy().into_owned());
        cfg.env.insert("FIXTURE_MODE".into(), mode.into());
        Fixture { dir, workdir, cfg }
    }

    fn agent(&self) -> CliAgent {
        CliAgent::new("fx", &self.cfg).unwrap().with_kill_grace(Duration::from_millis(300))
    }

    fn ctx(&self) -> CallContext {
        CallContext::new().with_workdir(self.workdir.path())
    }

    fn workdir(&self) -> String {
        self.workdir.path().to_string_lossy().into_owned()
    }

    fn argv(&self) -> Vec<String> {
        let raw = std::fs::read(self.dir.path().join("argv")).unwrap();
        let mut v: Vec<String> =
            raw.split(|b| *b == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect();
        v.pop(); // after the last NUL
        v
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default().trim().to_string()
    }

    async fn call(&self, prompt: &str) -> Result<troupe_adapters::AgentResponse, AdapterError> {
        bounded(20, self.agent().call(&AgentRequest::prompt(prompt), &self.ctx())).await
    }
}

/// Whether any process of process group `pgid` is alive (zombies count as dead).
fn group_alive(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else { return false };
    dir.flatten().any(|e| {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else { return false };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
    })
}

async fn wait_group_dead(pgid: i32) -> bool {
    for _ in 0..50 {
        if !group_alive(pgid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn claude_print_mode_json() {
    let f = Fixture::new("claude", CliFlavor::Claude, "ok");
    let r = f.call("Say hi").await.unwrap();
    assert_eq!(
        f.argv(),
        ["-p", "Say hi", "--output-format", "json", "--permission-mode", "acceptEdits"]
    );
    assert_eq!(r.text, "Hello from claude");
    assert_eq!((r.usage.prompt, r.usage.completion), (16, 5));
    assert!(!r.usage_estimated);
    assert_eq!(r.model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(f.file("cwd"), std::fs::canonicalize(f.workdir.path()).unwrap().to_string_lossy());
}

#[tokio::test]
async fn claude_with_a_model_and_system_prompt() {
    let mut f = Fixture::new("claude", CliFlavor::Claude, "ok");
    f.cfg.model = Some("opus".into());
    let req = AgentRequest::prompt("Fix it").with_system("You are careful");
    bounded(20, f.agent().call(&req, &f.ctx())).await.unwrap();
    assert_eq!(
        f.argv(),
        [
            "-p",
            "# Instructions\n\nYou are careful\n\n# Task\n\nFix it",
            "--output-format",
            "json",
            "--permission-mode",
            "acceptEdits",
            "--model",
            "opus"
        ]
    );
}

#[tokio::test]
async fn claude_reported_errors_are_classified() {
    let f = Fixture::new("claude", CliFlavor::Claude, "error-json");
    let e = f.call("x").await.unwrap_err();
    assert!(matches!(e, AdapterError::ContextTooLong { .. }), "{e}");
}

#[tokio::test]
async fn codex_exec_json_events() {
    let f = Fixture::new("codex", CliFlavor::Codex, "ok");
    let cap = Captured::default();
    let ctx = cap.context().with_workdir(f.workdir.path());
    let r = bounded(20, f.agent().call(&AgentRequest::prompt("Add tests"), &ctx)).await.unwrap();
    assert_eq!(
        f.argv(),
        [
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--sandbox",
            "workspace-write",
            "-C",
            &f.workdir(),
            "Add tests"
        ]
    );
    assert_eq!(r.text, "Hello from codex");
    assert_eq!((r.usage.prompt, r.usage.completion), (20, 6));
    assert_eq!(cap.chunks(), ["Hello from codex"], "JSON CLIs deliver the answer as one chunk");
}

#[tokio::test]
async fn codex_turn_failures_are_classified() {
    let f = Fixture::new("codex", CliFlavor::Codex, "error-json");
    let e = f.call("x").await.unwrap_err();
    assert!(matches!(e, AdapterError::RateLimited { .. }), "{e}");
}

#[tokio::test]
async fn gemini_prompt_mode_json() {
    let mut f = Fixture::new("gemini", CliFlavor::Gemini, "ok");
    f.cfg.model = Some("gemini-2.5-flash".into());
    let r = f.call("Review").await.unwrap();
    assert_eq!(
        f.argv(),
        [
            "-p",
            "Review",
            "--output-format",
            "json",
            "--approval-mode",
            "auto_edit",
            "-m",
            "gemini-2.5-flash"
        ]
    );
    assert_eq!(r.text, "Hello from gemini");
    assert_eq!((r.usage.prompt, r.usage.completion), (9, 4));
    let f = Fixture::new("gemini", CliFlavor::Gemini, "error-json");
    let e = f.call("Review").await.unwrap_err();
    assert!(matches!(e, AdapterError::Auth { .. }), "{e}");
}

#[tokio::test]
async fn copilot_streams_plain_text() {
    let f = Fixture::new("copilot", CliFlavor::Copilot, "ok");
    let cap = Captured::default();
    let ctx = cap.context().with_workdir(f.workdir.path());
    let r = bounded(20, f.agent().call(&AgentRequest::prompt("Review"), &ctx)).await.unwrap();
    assert_eq!(f.argv(), ["-p", "Review", "-s", "--allow-all-tools"]);
    assert_eq!(r.text, "Hello from copilot");
    assert!(r.usage_estimated, "copilot reports no usage");
    assert_eq!(cap.chunks().concat(), "Hello from copilot\n");
    assert!(cap.chunks().len() >= 2, "stdout is streamed as it comes: {:?}", cap.chunks());
}

#[tokio::test]
async fn generic_template_expands_prompt_workdir_and_model() {
    let mut f = Fixture::new("generic-agent", CliFlavor::Generic, "ok");
    f.cfg.model = Some("m7".into());
    f.cfg.args = vec![
        "--ask".into(),
        "{prompt}".into(),
        "--in={workdir}".into(),
        "--model".into(),
        "{model}".into(),
    ];
    let r = f.call("what is {model}?").await.unwrap();
    let wd = f.workdir();
    assert_eq!(f.argv(), ["--ask", "what is {model}?", &format!("--in={wd}"), "--model", "m7"]);
    assert_eq!(r.text, format!("got: --ask what is {{model}}? --in={wd} --model m7"));
}

#[tokio::test]
async fn generic_prompt_on_stdin() {
    let mut f = Fixture::new("generic-agent", CliFlavor::Generic, "ok");
    f.cfg.prompt_input = PromptInput::Stdin;
    f.cfg.args = vec!["--quiet".into()];
    f.cfg.env.insert("FIXTURE_READ_STDIN".into(), "1".into());
    let prompt = "line one\nline two with 'quotes' and $(not a shell)";
    let r = f.call(prompt).await.unwrap();
    assert_eq!(f.argv(), ["--quiet"]);
    assert_eq!(f.file("stdin"), prompt);
    assert_eq!(r.text, format!("got: {prompt}"));
}

#[tokio::test]
async fn failures_show_stderr_and_map_exit_codes() {
    let e = Fixture::new("generic-agent", CliFlavor::Generic, "fail").call("x").await.unwrap_err();
    assert!(
        matches!(&e, AdapterError::Failed { message, .. }
        if message.contains("exited with code 1") && message.contains("something broke in the agent")),
        "{e}"
    );
    assert!(!e.is_transient());
    let e = Fixture::new("claude", CliFlavor::Claude, "ratelimit").call("x").await.unwrap_err();
    assert!(matches!(e, AdapterError::RateLimited { .. }), "{e}");
    let e = Fixture::new("copilot", CliFlavor::Copilot, "auth").call("x").await.unwrap_err();
    assert!(matches!(e, AdapterError::Auth { .. }), "{e}");
    let e = Fixture::new("claude", CliFlavor::Claude, "garbage").call("x").await.unwrap_err();
    assert!(matches!(e, AdapterError::BadResponse { .. }), "{e}");
}

#[tokio::test]
async fn an_empty_answer_is_a_bad_response_like_http_agents() {
    let e =
        Fixture::new("generic-agent", CliFlavor::Generic, "silent").call("x").await.unwrap_err();
    assert!(matches!(e, AdapterError::BadResponse { .. }), "{e}");
    assert!(e.to_string().contains("empty"), "{e}");
    assert!(e.falls_back());
}

#[tokio::test]
async fn huge_stderr_is_bounded_and_its_end_shown() {
    let e = Fixture::new("generic-agent", CliFlavor::Generic, "huge-stderr")
        .call("x")
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("exited with code 3"), "{msg}");
    assert!(msg.contains("END-OF-STDERR"), "the end of stderr is shown");
    assert!(!msg.contains("noise line 0 "), "the beginning is dropped");
    assert!(msg.len() < 8 * 1024, "the message is bounded: {} bytes", msg.len());
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let mut f = Fixture::new("generic-agent", CliFlavor::Generic, "hang");
    f.cfg.timeout_secs = 1;
    let e = f.call("x").await.unwrap_err();
    assert!(matches!(e, AdapterError::Timeout { .. }), "{e}");
    let pgid: i32 = f.file("pid").parse().unwrap();
    assert!(!f.file("child").is_empty(), "the fixture started a child");
    assert!(wait_group_dead(pgid).await, "processes of group {pgid} survived the timeout");
}

#[tokio::test]
async fn cancellation_kills_the_whole_process_group() {
    let f = Fixture::new("generic-agent", CliFlavor::Generic, "hang");
    let token = CancellationToken::new();
    let ctx = f.ctx().with_cancel(token.clone());
    let agent = f.agent();
    let call = tokio::spawn(async move { agent.call(&AgentRequest::prompt("x"), &ctx).await });
    // Wait until the fixture is running, then cancel.
    let pid_file = f.dir.path().join("child");
    bounded(10, async {
        while !pid_file.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    token.cancel();
    let e = bounded(10, call).await.unwrap().unwrap_err();
    assert!(matches!(e, AdapterError::Cancelled { .. }), "{e}");
    let pgid: i32 = f.file("pid").parse().unwrap();
    assert!(wait_group_dead(pgid).await, "processes of group {pgid} survived cancellation");
}

#[tokio::test]
async fn a_missing_binary_is_not_installed() {
    let mut cfg = AgentConfig::new(AgentKind::Cli);
    cfg.command = Some("/nonexistent/bin/claude".into());
    let agent = CliAgent::new("claude", &cfg).unwrap();
    let e =
        bounded(5, agent.call(&AgentRequest::prompt("x"), &CallContext::new())).await.unwrap_err();
    assert!(matches!(e, AdapterError::NotInstalled { .. }), "{e}");
    assert!(e.to_string().contains("npm install -g @anthropic-ai/claude-code"), "{e}");
    assert!(e.falls_back(), "a fallback agent should take over");

    cfg.command = Some("troupe-no-such-program-anywhere".into());
    let agent = CliAgent::new("mine", &cfg).unwrap();
    let e =
        bounded(5, agent.call(&AgentRequest::prompt("x"), &CallContext::new())).await.unwrap_err();
    assert!(e.to_string().contains("not installed or not on PATH"), "{e}");
}

#[tokio::test]
async fn a_missing_workdir_is_reported() {
    let f = Fixture::new("generic-agent", CliFlavor::Generic, "ok");
    let ctx = CallContext::new().with_workdir(PathBuf::from("/nonexistent/project"));
    let e = bounded(5, f.agent().call(&AgentRequest::prompt("x"), &ctx)).await.unwrap_err();
    assert!(e.to_string().contains("/nonexistent/project"), "{e}");
}
