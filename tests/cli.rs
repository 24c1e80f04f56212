//! The `troupe` binary driven as a user would: a fresh folder, no user configuration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

/// Run troupe in `dir` with a clean environment (no user config, data in `dir`).
fn troupe(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .output()
        .expect("troupe runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn agents_and_workflows_list_builtins_without_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = troupe(dir.path(), &["agents"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for name in ["claude", "codex", "gemini", "copilot", "local-code", "local-instruct"] {
        assert!(out.lines().any(|l| l.starts_with(name)), "{name} missing:\n{out}");
    }
    // No CLI is on this PATH.
    assert!(out.lines().any(|l| l.starts_with("claude") && l.contains("not installed")), "{out}");

    let o = troupe(dir.path(), &["workflows"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for name in
        ["default", "quick", "thorough", "review-only", "document", "offline-default", "hybrid"]
    {
        assert!(out.lines().any(|l| l.starts_with(name)), "{name} missing:\n{out}");
    }
    assert!(out.contains("codex:implement → gemini:review → claude:refine"), "{out}");
}

#[test]
fn listings_take_json() {
    let dir = tempfile::tempdir().unwrap();
    let o = troupe(dir.path(), &["--offline", "agents", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let agents: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let agents = agents.as_array().unwrap();
    assert_eq!(agents.len(), 6);
    let claude = agents.iter().find(|a| a["name"] == "claude").unwrap();
    assert_eq!(claude["availability"], "refused (offline)");
    let local = agents.iter().find(|a| a["name"] == "local-code").unwrap();
    assert_eq!(local["local"], true);

    let o = troupe(dir.path(), &["workflows", "--json"]);
    let workflows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let default = workflows.as_array().unwrap().iter().find(|w| w["name"] == "default").unwrap();
    assert_eq!(default["default"], true);
    assert_eq!(default["steps"].as_array().unwrap().len(), 3);

    let o = troupe(dir.path(), &["validate", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["source"]["from"], "builtin");
}

#[test]
fn validate_prints_every_mistake_with_its_position_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("troupe.toml"),
        r#"[agents.broken]
base_url = "http://127.0.0.1:9/v1"

[agents.slow]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"
timeout_secs = "soon"

[workflows.mine]
steps = [{ agent = "codx", role = "implement" }]
"#,
    )
    .unwrap();
    let o = troupe(dir.path(), &["validate"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    let errors: Vec<&str> = out.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(errors.len(), 3, "{out}");
    assert!(
        errors[0].contains("troupe.toml:1:1") && errors[0].contains("missing field `kind`"),
        "{out}"
    );
    assert!(
        errors.iter().any(|e| e.contains("troupe.toml:8:16") && e.contains("timeout_secs")),
        "{out}"
    );
    assert!(
        errors.iter().any(|e| e.contains("troupe.toml:11:20") && e.contains("`codx`")),
        "{out}"
    );
    assert!(out.contains("3 error(s)"), "{out}");

    // Commands that need a valid configuration refuse with exit 2 and the same problems.
    let o = troupe(dir.path(), &["agents"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).lines().filter(|l| l.contains(": error: ")).count(), 3, "{}", stderr(&o));
}

#[test]
fn init_writes_a_valid_file_and_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let o = troupe(dir.path(), &["init"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let path = dir.path().join("troupe.toml");
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.starts_with("# troupe.toml"));

    let o = troupe(dir.path(), &["validate"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("troupe.toml (current directory)"));

    std::fs::write(&path, "# mine\n").unwrap();
    let o = troupe(dir.path(), &["init"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");

    let o = troupe(dir.path(), &["init", "--force"]);
    assert!(o.status.success());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
}

#[test]
fn a_missing_config_file_is_a_clear_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = troupe(dir.path(), &["--config", "nope.toml", "agents"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nope.toml (from --config) does not exist"), "{}", stderr(&o));
}

#[test]
fn user_config_dir_is_used_when_nothing_else_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("config/troupe");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("troupe.toml"), "[settings]\ndefault_workflow = \"quick\"\n").unwrap();
    let o = troupe(dir.path(), &["workflows"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).lines().any(|l| l.starts_with("quick *")), "{}", stdout(&o));
}

#[test]
fn completions_are_generated() {
    let dir = tempfile::tempdir().unwrap();
    let o = troupe(dir.path(), &["completions", "bash"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("validate"));
}

#[test]
fn json_logs_and_bad_rust_log_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(["agents"])
        .current_dir(dir.path())
        .env("RUST_LOG", "=[bad")
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("RUST_LOG is not a valid log filter"), "{}", stderr(&o));
}
