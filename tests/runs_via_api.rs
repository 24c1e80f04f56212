//! `troupe runs` and `troupe run` while `troupe serve` holds the store: they find the server
//! through its `serve.json` and go through its API, with the same output and exit codes as
//! when they open the store themselves. Real processes: a server on `127.0.0.1:0` in a data
//! folder of its own, CLI agents made of shell scripts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Server, World, signal, wait_exit, write_script};
use serde_json::{Value, json};

fn world() -> World {
    let w = World::new();
    let dir = &w.dir;
    let d = dir.path();
    write_script(&d.join("coder.sh"), "echo 'def hello(): return \"hello\"'\n");
    write_script(&d.join("reviewer.sh"), "echo '{\"verdict\": \"approved\", \"findings\": []}'\n");
    write_script(&d.join("failer.sh"), "echo broken >&2\nexit 3\n");
    write_script(&d.join("sleeper.sh"), "echo starting\nexec sleep 60\n");
    // Hangs the first time (so a test can cancel it mid-step), answers after that.
    let marker = d.join("hung-once");
    write_script(
        &d.join("once.sh"),
        &format!(
            "if [ ! -e '{m}' ]; then touch '{m}'; echo waiting; exec sleep 60; fi\necho 'done at last'\n",
            m = marker.display()
        ),
    );
    let agent = |name: &str| {
        format!(
            "[agents.{name}]\nkind = \"cli\"\ncommand = \"{}\"\nargs = [\"{{prompt}}\"]\nflavor = \"generic\"\nretry = {{ max_attempts = 1 }}\n\n",
            d.join(format!("{name}.sh")).display()
        )
    };
    let config = w.config.clone();
    std::fs::write(
        &config,
        format!(
            r#"[settings]
default_workflow = "scripted"
max_concurrent_runs = 8

{}{}{}{}{}[workflows.scripted]
max_iterations = 1
steps = [
  {{ agent = "coder", role = "implement" }},
  {{ agent = "reviewer", role = "review" }},
]

[workflows.broken]
max_iterations = 1
steps = [{{ agent = "failer", role = "implement" }}]

[workflows.slow]
max_iterations = 1
steps = [{{ agent = "sleeper", role = "implement" }}]

[workflows.once]
max_iterations = 1
steps = [{{ agent = "once", role = "implement" }}]
"#,
            agent("coder"),
            agent("reviewer"),
            agent("failer"),
            agent("sleeper"),
            agent("once"),
        ),
    )
    .unwrap();
    w
}

fn troupe(w: &World, args: &[&str]) -> Output {
    w.troupe(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Start `troupe serve` for `w` on a free loopback port (unless `extra` has `--addr`).
fn serve(w: &World, extra: &[&str]) -> Server {
    let mut cmd = w.troupe(&["serve", "--grace-secs", "1"]);
    if !extra.contains(&"--addr") {
        cmd.args(["--addr", "127.0.0.1:0"]);
    }
    cmd.args(extra);
    let token = extra.iter().position(|a| *a == "--token").map(|i| extra[i + 1].to_string());
    Server::spawn(cmd, token)
}

fn state(v: &Value) -> &str {
    v["run"]["state"].as_str().unwrap_or("")
}

fn ended(v: &Value) -> bool {
    matches!(state(v), "completed" | "failed" | "cancelled")
}

/// A step is under way (its agent process has started).
fn step_running(v: &Value) -> bool {
    v["steps"].as_array().is_some_and(|s| s.iter().any(|s| s["state"] == "running"))
}

#[tokio::test]
async fn runs_commands_go_through_the_server_and_print_what_they_print_locally() {
    let w = world();
    let s = serve(&w, &[]);
    let serve_json: Value =
        serde_json::from_str(&std::fs::read_to_string(w.home.join("serve.json")).unwrap()).unwrap();
    assert_eq!(serve_json["pid"], json!(s.pid()));
    assert_eq!(
        format!(
            "{}://{}",
            serve_json["scheme"].as_str().unwrap(),
            serve_json["addr"].as_str().unwrap()
        ),
        s.base
    );
    assert_eq!(serve_json["token_required"], json!(false));

    let ok = s.execute(json!({ "task": "write hello" })).await;
    let failed = s.execute(json!({ "task": "break it", "workflow": "broken" })).await;
    s.wait_for(&ok, ended).await;
    s.wait_for(&failed, ended).await;

    // The list: the same JSON the API answers.
    let out = troupe(&w, &["runs", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(listed, s.get("/api/runs").await.1);
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // One run, by a prefix of its id.
    let out = troupe(&w, &["runs", "show", &ok[..13], "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let api = s.get(&format!("/api/runs/{ok}")).await.1;
    assert_eq!(shown["run"], api["run"]);
    assert_eq!(shown["steps"], api["steps"]);
    assert_eq!(shown["run"]["state"], "completed");

    // Statistics.
    let out = troupe(&w, &["runs", "stats", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stats: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let (status, api_stats) = s.get("/api/runs/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats, api_stats);
    assert_eq!(stats["by_state"], json!({ "completed": 1, "failed": 1 }));

    // What cannot go through the API says what to do.
    let out = troupe(&w, &["runs", "cleanup", "--older-than", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("stop the server") && err.contains(&s.pid().to_string()), "{err}");
    // An unknown run: the server's message, the local exit code.
    let out = troupe(&w, &["runs", "show", "no-such-run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no-such-run"), "{}", stderr(&out));

    // Every rendering, through the server and then locally once it stopped: identical.
    let views: [&[&str]; 9] = [
        &["runs"],
        &["runs", "--json"],
        &["runs", "show", &ok, "--prompts"],
        &["runs", "show", &failed, "--json", "--prompts"],
        &["runs", "show", &ok],
        &["runs", "stats"],
        &["runs", "audit", &ok],
        &["usage"],
        &["usage", "--json", "--since", "2000-01-01"],
    ];
    let remote: Vec<Output> = views.iter().map(|args| troupe(&w, args)).collect();
    assert_eq!(s.stop(), Some(0));
    assert!(!w.home.join("serve.json").exists(), "serve.json outlived the server");
    for (args, remote) in views.iter().zip(remote) {
        let local = troupe(&w, args);
        assert!(local.status.success(), "{args:?}: {}", stderr(&local));
        assert_eq!(remote.status.code(), local.status.code(), "{args:?}");
        assert_eq!(stdout(&remote), stdout(&local), "{args:?} differs through the server");
    }
}

#[tokio::test]
async fn run_goes_through_the_server_with_the_exit_code_it_has_locally() {
    let w = world();
    let s = serve(&w, &[]);

    let out = troupe(&w, &["run", "write hello"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("started: scripted"), "{text}");
    assert!(text.contains("def hello()"), "{text}");
    assert!(text.contains("✔ completed: run "), "{text}");
    // The server ran it.
    let (_, runs) = s.get("/api/runs").await;
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["task"], "write hello");
    assert_eq!(runs[0]["project_path"], json!(w.project.canonicalize().unwrap()));

    // JSON lines: every event, then the final record.
    let out = troupe(&w, &["run", "--json", "write hello again"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["type"], "run_started");
    assert_eq!(lines[lines.len() - 2]["type"], "run_finished");
    let record = &lines[lines.len() - 1];
    assert_eq!(record["state"], "completed");
    assert_eq!(
        s.get(&format!("/api/runs/{}", record["id"].as_str().unwrap())).await.1["run"],
        *record
    );

    // A failing run fails the command, as it does locally.
    let remote = troupe(&w, &["run", "--workflow", "broken", "break it"]);
    assert_eq!(remote.status.code(), Some(1), "{}", stderr(&remote));
    assert!(stdout(&remote).contains("✘ failed: run "), "{}", stdout(&remote));
    // A request that cannot run is a usage error, as it is locally.
    let refused = troupe(&w, &["run", "  "]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("empty"), "{}", stderr(&refused));
    // An unknown workflow is refused, naming those there are.
    let unknown = troupe(&w, &["run", "--workflow", "nope", "anything"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("no workflow named `nope`"), "{}", stderr(&unknown));

    assert_eq!(s.stop(), Some(0));
    let local = troupe(&w, &["run", "--workflow", "broken", "break it"]);
    assert_eq!(local.status.code(), remote.status.code(), "{}", stderr(&local));
    let local_refused = troupe(&w, &["run", "  "]);
    assert_eq!(local_refused.status.code(), refused.status.code());
    let local_unknown = troupe(&w, &["run", "--workflow", "nope", "anything"]);
    assert_eq!(local_unknown.status.code(), unknown.status.code(), "{}", stderr(&local_unknown));
    assert!(stderr(&local_unknown).contains("no workflow named `nope`; there are:"));
}

#[tokio::test]
async fn cancel_resume_and_ctrl_c_go_through_the_server() {
    let w = world();
    let s = serve(&w, &[]);

    // `runs cancel`, then `runs resume` continues it (the agent answers the second time).
    let id = s.execute(json!({ "task": "take your time", "workflow": "once" })).await;
    s.wait_for(&id, step_running).await;
    let out = troupe(&w, &["runs", "cancel", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("run {id} cancelled\n"));
    s.wait_for(&id, |v| state(v) == "cancelled").await;
    let out = troupe(&w, &["runs", "resume", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("resumed: once") && text.contains("done at last"), "{text}");
    assert_eq!(state(&s.get(&format!("/api/runs/{id}")).await.1), "completed");
    // A completed run cannot be resumed: the server's 409, the local exit code.
    let out = troupe(&w, &["runs", "resume", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&id[..8]), "{}", stderr(&out));

    // Ctrl-C while following a run through the server cancels it there.
    let mut follower = follow_a_slow_run(&w);
    let id = running_step_run(&s).await;
    signal(follower.id(), "INT");
    let code = wait_exit(&mut follower, Duration::from_secs(30));
    let out = follower.wait_with_output().unwrap();
    assert_eq!(code, Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cancelling run"), "{}", stderr(&out));
    assert!(stdout(&out).contains("■ cancelled"), "{}", stdout(&out));
    assert_eq!(state(&s.get(&format!("/api/runs/{id}")).await.1), "cancelled");
}

/// Start `troupe run` of the `slow` workflow, followed through the server.
fn follow_a_slow_run(w: &World) -> std::process::Child {
    w.troupe(&["run", "--workflow", "slow", "sleep on it"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The id of the run in progress, once its step's agent is running.
async fn running_step_run(s: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, runs) = s.get("/api/runs?state=in_progress").await;
        if let Some(id) = runs[0]["id"].as_str() {
            let v = s.get(&format!("/api/runs/{id}")).await.1;
            if step_running(&v) {
                return id.to_string();
            }
        }
        assert!(Instant::now() < deadline, "the followed run never started its step");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_server_killed_mid_follow_is_a_clear_failure() {
    let w = world();
    let mut s = serve(&w, &[]);
    let follower = follow_a_slow_run(&w);
    let id = running_step_run(&s).await;
    signal(s.pid(), "KILL");
    let _ = s.child.wait();
    let started = Instant::now();
    let out = follower.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("lost the server while following run"), "{err}");
    assert!(
        err.contains(&format!("`troupe serve` (pid {}) at {} does not answer", s.pid(), s.base)),
        "{err}"
    );
    assert!(err.contains(&format!("troupe runs resume {id}")), "{err}");

    // Its serve.json is left behind, naming a dead process: ignored, the store is opened.
    assert!(w.home.join("serve.json").exists());
    let out = troupe(&w, &["runs", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let runs: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(runs[0]["id"], json!(id));
    assert_eq!(runs[0]["state"], "in_progress", "interrupted, waiting for resume");
}

#[test]
fn a_stale_serve_json_is_ignored() {
    let w = world();
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    for pid in [gone.id(), std::process::id()] {
        // A dead process, then a live one that does not hold the store.
        std::fs::write(
            w.home.join("serve.json"),
            json!({
                "pid": pid, "scheme": "http", "addr": "127.0.0.1:9", "bound": ["127.0.0.1:9"],
                "token_required": false, "since": "2025-01-01T00:00:00Z", "version": "0.1.0"
            })
            .to_string(),
        )
        .unwrap();
        let out = troupe(&w, &["runs"]);
        assert!(out.status.success(), "pid {pid}: {}", stderr(&out));
        assert!(stdout(&out).contains("No runs yet"), "{}", stdout(&out));
    }
}

#[tokio::test]
async fn off_loopback_the_client_sends_the_configured_token() {
    let w = world();
    let s = serve(&w, &["--addr", "0.0.0.0:0", "--token", "s3cret"]);
    let text = std::fs::read_to_string(w.home.join("serve.json")).unwrap();
    assert!(!text.contains("s3cret"), "the token is in serve.json: {text}");
    assert!(text.contains("\"addr\": \"127.0.0.1:"), "{text}");

    let out = troupe(&w, &["runs"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("TROUPE_API_TOKEN"), "{}", stderr(&out));

    let out =
        w.troupe(&["runs", "stats", "--json"]).env("TROUPE_API_TOKEN", "wrong").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("bearer token is wrong") && err.contains("TROUPE_API_TOKEN"), "{err}");

    let out = w.troupe(&["run", "write hello"]).env("TROUPE_API_TOKEN", "s3cret").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = w.troupe(&["runs", "--json"]).env("TROUPE_API_TOKEN", "s3cret").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let runs: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs, s.get("/api/runs").await.1);
}

#[test]
fn a_store_held_by_the_shell_points_to_its_runs_command() {
    let w = world();
    let mut shell = w
        .troupe(&["shell"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The shell holds the store once it has recorded itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !w.home.join("store").join("owner.json").exists() {
        assert!(Instant::now() < deadline, "the shell never opened the store");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = troupe(&w, &["runs"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("is an interactive `troupe shell`: use its /runs there"), "{err}");
    drop(shell.stdin.take());
    assert_eq!(wait_exit(&mut shell, Duration::from_secs(30)), Some(0));
}

#[tokio::test]
async fn budgets_go_through_the_server() {
    let w = world();
    let s = serve(&w, &[]);
    let out = troupe(&w, &["run", "--budget-tokens", "20", "write hello"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("⊘ budget exceeded"), "{}", stdout(&out));
    let (_, runs) = s.get("/api/runs").await;
    let id = runs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["state"], "budget_exceeded");
    assert_eq!(runs[0]["budget"]["tokens"], 20);
    // Resumed through the server with a larger budget, it completes.
    let out = troupe(&w, &["runs", "resume", &id, "--budget-tokens", "100000"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let (_, run) = s.get(&format!("/api/runs/{id}")).await;
    assert_eq!(run["run"]["state"], "completed");
    assert_eq!(run["run"]["budget"]["tokens"], 100000);
    // A bad resume body is refused.
    let (status, v) =
        s.post(&format!("/api/runs/{id}/resume"), &json!({ "budget_tokens": 0 })).await;
    assert_eq!(status, 400, "{v}");
}
