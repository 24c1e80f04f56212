//! `troupe run` and `troupe runs` driven as a user would, with real processes: a run killed
//! with SIGKILL mid-way and resumed, and a run against the real local llama.cpp server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Lines};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{World, cli_agent, workflow, write_script};
use serde_json::Value;

fn troupe_cmd(home: &Path, project: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_troupe"));
    c.args(args)
        .current_dir(project)
        .env("TROUPE_HOME", home)
        .env("TROUPE_ASSETS", home.join("assets"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("TROUPE_CONFIG")
        .env_remove("RUST_LOG");
    c
}

/// Start `troupe run --workflow scripted --json TASK` in its own process group; the process
/// and its standard output's lines (troupe exits when they are dropped).
fn start_scripted_run(w: &World, task: &str) -> (Child, Lines<BufReader<ChildStdout>>) {
    let cfg = w.config.to_str().unwrap();
    let mut child = troupe_cmd(
        &w.home,
        &w.project,
        &["--config", cfg, "run", "--workflow", "scripted", "--json", task],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .process_group(0)
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    (child, BufReader::new(stdout).lines())
}

fn troupe(home: &Path, project: &Path, args: &[&str]) -> Output {
    troupe_cmd(home, project, args).output().unwrap()
}

fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn world() -> World {
    let w = World::new();
    let (dir, project) = (&w.dir, w.project.clone());
    std::fs::write(project.join("main.py"), "print('hello')\n").unwrap();
    let log = dir.path().join("calls.log");
    let marker = dir.path().join("reviewer-hung-once");
    let coder = dir.path().join("coder.sh");
    let reviewer = dir.path().join("reviewer.sh");
    write_script(
        &coder,
        &format!("echo coder >> '{}'\necho 'def reverse(s): return s[::-1]'\n", log.display()),
    );
    // The reviewer hangs the first time (so the test can kill troupe mid-step), then approves.
    write_script(
        &reviewer,
        &format!(
            "echo reviewer >> '{log}'\nif [ ! -e '{marker}' ]; then touch '{marker}'; sleep 60; fi\necho '{{\"verdict\": \"approved\", \"findings\": []}}'\n",
            log = log.display(),
            marker = marker.display()
        ),
    );
    let config = w.config.clone();
    let text = [
        cli_agent("coder", &coder, "timeout_secs = 120\n"),
        cli_agent("reviewer", &reviewer, "timeout_secs = 120\n"),
        workflow(
            "scripted",
            2,
            &[("coder", "implement"), ("reviewer", "review"), ("coder", "refine")],
        ),
    ];
    std::fs::write(&config, text.concat()).unwrap();
    w
}

/// SIGKILL a process group (`kill -s KILL -- -PGID`).
fn kill_group(pgid: i32) {
    let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{pgid}")]).status();
}

/// SIGKILL troupe (its group) and the process groups of the agents it started: a crash
/// of the whole machine's worth of work, as far as the store can tell.
fn crash(pid: i32) {
    let children = Command::new("pgrep").args(["-P", &pid.to_string()]).output().unwrap();
    kill_group(pid);
    for child in String::from_utf8_lossy(&children.stdout).split_whitespace() {
        if let Ok(c) = child.parse::<i32>() {
            kill_group(c);
        }
    }
}

fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log).unwrap_or_default().lines().map(String::from).collect()
}

#[test]
fn a_run_killed_mid_step_resumes_without_repeating_completed_steps() {
    let w = world();
    let cfg = w.config.to_str().unwrap();
    let (mut child, mut lines) = start_scripted_run(&w, "reverse a string");
    let pid = child.id() as i32;
    // Read events until the review step (the hanging one) has started.
    let mut run_id = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in lines.by_ref() {
        let line = line.unwrap();
        let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
        if v["type"] == "run_started" {
            run_id = v["run_id"].as_str().map(String::from);
        }
        if v["type"] == "step_started" && v["pos"]["step"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the review step never started");
    }
    let run_id = run_id.expect("a run_started event");
    // SIGKILL troupe and the hanging reviewer script.
    crash(pid);
    let _ = child.wait();
    assert_eq!(calls(&w.path("calls.log")), ["coder", "reviewer"]);

    // The store kept the run as unfinished, with the implement step completed.
    let o = troupe(&w.home, &w.project, &["--config", cfg, "runs", "show", &run_id, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown["run"]["state"], "in_progress");
    assert_eq!(shown["steps"][0]["state"], "completed");
    assert_eq!(shown["steps"][1]["state"], "running");

    // Resume: the review runs again (it never finished), the implement step does not.
    let o = troupe(&w.home, &w.project, &["--config", cfg, "runs", "resume", &run_id, "--json"]);
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let lines = json_lines(&o.stdout);
    let record = lines.last().unwrap();
    assert_eq!(record["state"], "completed", "{record}");
    assert_eq!(record["resumed"], 1);
    assert_eq!(
        calls(&w.path("calls.log")),
        ["coder", "reviewer", "reviewer"],
        "no completed step ran twice"
    );

    let o = troupe(&w.home, &w.project, &["--config", cfg, "runs", "show", &run_id, "--json"]);
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    let states: Vec<&str> =
        shown["steps"].as_array().unwrap().iter().map(|s| s["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["completed", "completed", "skipped"]);
    assert_eq!(shown["run"]["output"], "def reverse(s): return s[::-1]");

    // The metrics page counts the calls of the runs just made (from the stored history).
    let o = troupe(&w.home, &w.project, &["--config", cfg, "metrics"]);
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(
        page.contains("troupe_agent_calls_total{agent=\"coder\",outcome=\"success\"} 1"),
        "{page}"
    );
    assert!(
        page.contains("troupe_agent_calls_total{agent=\"reviewer\",outcome=\"success\"} 1"),
        "{page}"
    );

    // Statistics count it; cleanup of ended runs removes it and its steps.
    let o = troupe(&w.home, &w.project, &["--config", cfg, "runs", "stats", "--json"]);
    let stats: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(stats["by_state"]["completed"], 1, "{stats}");
    assert!(stats["average_duration_secs"].as_f64().unwrap() > 0.0);
    let o = troupe(&w.home, &w.project, &["--config", cfg, "runs", "cleanup", "--older-than", "1"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("removed 0 run(s)"));
    let o = troupe(&w.home, &w.project, &["--config", cfg, "runs", "cleanup", "--older-than", "0"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("removed 1 run(s)"));
    let o = troupe(&w.home, &w.project, &["--config", cfg, "runs", "show", &run_id]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn runs_list_show_and_cancel_report_clearly() {
    let w = world();
    let cfg = w.config.to_str().unwrap();
    let o = troupe(&w.home, &w.project, &["--config", cfg, "runs"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("No runs yet"));
    let o = troupe(&w.home, &w.project, &["--config", cfg, "runs", "show", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no run with id `nope`"));
    // An unknown workflow with --offline and cloud agents is bad usage (exit 2).
    let o = troupe(
        &w.home,
        &w.project,
        &["--config", cfg, "--offline", "run", "--workflow", "default", "x"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("offline mode is on"));
}

#[test]
fn a_second_process_gets_a_clear_message_while_the_store_is_held() {
    let w = world();
    let cfg = w.config.to_str().unwrap();
    std::fs::remove_file(w.path("calls.log").parent().unwrap().join("reviewer-hung-once")).ok();
    // Keep the pipe open while the second process runs: troupe exits when its stdout closes.
    let (mut child, mut lines) = start_scripted_run(&w, "t");
    let pid = child.id() as i32;
    for line in lines.by_ref() {
        if line.unwrap().contains("\"step_started\"") {
            break;
        }
    }
    // A short wait: the holder is stuck in a step for a minute, so the wait ends first.
    let o = troupe_cmd(&w.home, &w.project, &["--config", cfg, "runs"])
        .env("TROUPE_STORE_WAIT_SECS", "1")
        .output()
        .unwrap();
    crash(pid);
    let _ = child.wait();
    drop(lines);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&pid.to_string()), "names the holding process: {err}");
}

/// The real local llama.cpp server (installed by `scripts/setup.sh --assets-only`), started
/// on demand by troupe: the offline workflow runs, its steps are persisted, and a second
/// run on the same project gets the first one's memory in its prompt.
#[test]
fn offline_runs_against_the_real_local_model_and_remember() {
    let assets = common::local_model_assets();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let project = dir.path().join("project");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&project).unwrap();
    std::os::unix::fs::symlink(&assets, home.join("assets")).unwrap();
    std::fs::write(project.join("strings.py"), "def upper(s):\n    return s.upper()\n").unwrap();
    let config = dir.path().join("troupe.toml");
    let text = format!("[settings]\nmax_output_tokens = 48\n{}", common::smol_local_agents());
    std::fs::write(&config, text).unwrap();
    let cfg = config.to_str().unwrap();

    let task = "Write a function that reverses a string";
    let o = troupe(
        &home,
        &project,
        &["--config", cfg, "run", "--offline", "--max-iterations", "1", "--json", task],
    );
    let lines = json_lines(&o.stdout);
    let first = lines.last().unwrap().clone();
    assert!(
        matches!(first["state"].as_str(), Some("completed" | "failed"))
            && first["finish_reason"].is_string(),
        "the run did not end normally: {first}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(first["workflow_name"], "offline-default");
    assert!(lines.iter().any(|e| e["type"] == "chunk"), "nothing was streamed");
    let id = first["id"].as_str().unwrap();
    let o = troupe(&home, &project, &["--config", cfg, "runs", "show", id, "--prompts", "--json"]);
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    let steps = shown["steps"].as_array().unwrap();
    assert!(steps.len() >= 2, "{shown}");
    assert!(steps.iter().all(|s| s["state"] != "running"));
    assert!(
        steps[0]["answered_by"] == "local-code"
            && steps[0]["tokens"]["completion"].as_u64().unwrap() > 0
    );

    // The second run's prompt carries the first run's task from the project memory.
    let o = troupe(
        &home,
        &project,
        &[
            "--config",
            cfg,
            "run",
            "--offline",
            "--max-iterations",
            "1",
            "--json",
            "Write a function that reverses a list",
        ],
    );
    let second = json_lines(&o.stdout).last().unwrap().clone();
    let id2 = second["id"].as_str().unwrap();
    let o = troupe(&home, &project, &["--config", cfg, "runs", "show", id2, "--prompts", "--json"]);
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    let prompt = shown["steps"][0]["prompt"].as_str().unwrap();
    let memory = prompt
        .split("## What the project's memory says")
        .nth(1)
        .expect("a memory section")
        .split("## Task")
        .next()
        .unwrap();
    assert!(memory.contains(task), "the first run is not in the memory section:\n{prompt}");
    assert!(!shown["steps"][0]["context_nodes"].as_array().unwrap().is_empty());

    // Each `troupe run` stopped the local server it started: none is left running.
    let ours = home.join("assets/llama/llama-server");
    let left = Command::new("pgrep").args(["-f", ours.to_str().unwrap()]).output().unwrap();
    assert!(
        left.stdout.is_empty(),
        "a llama-server outlived troupe: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
