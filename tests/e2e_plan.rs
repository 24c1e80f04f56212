//! End to end with the real local model (Qwen2.5-Coder-1.5B, installed by `scripts/setup.sh`):
//! a spec for a small feature on the sample project becomes a plan of tasks (the local model
//! plans), approved, and run offline by `troupe serve`'s queue task by task on the
//! integration branch; the server is killed with SIGKILL in the middle of the plan, a new
//! server goes on with it and `troupe plan run` (through that server) follows it to its
//! green end — no task run twice — and `plan apply` lands the combined change, after which
//! the project's tests pass.
//!
//! It takes many minutes on two cores, so it runs on demand:
//! `cargo test --test e2e_plan -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Sample, Server, signal, unittest, wait_exit};
use serde_json::Value;

/// The spec: the README's sample task (a bug its tests show), then a new function with a test.
const SPEC: &str = "First, word_count in textkit/words.py must count words separated by any \
                    whitespace (spaces, tabs, newlines), but it returns 1 for an empty string and \
                    counts repeated spaces as words; fix it so the tests pass. Then add a function \
                    longest_word(text) to textkit/words.py that returns the longest word of text \
                    (the first one on a tie, \"\" for text without words), using the same notion \
                    of words, with a unittest for it in tests/test_words.py.";

/// The longest a plan may take here (a loaded 2-core machine, a 1.5B model on the CPU).
const PLAN_LIMIT: Duration = Duration::from_secs(40 * 60);

/// `troupe serve` for the sample, offline, on a free port.
fn serve(w: &Sample) -> Server {
    let mut cmd = w.cmd(&["--offline", "serve", "--grace-secs", "2", "--addr", "127.0.0.1:0"]);
    cmd.env("TROUPE_STORE_WAIT_SECS", "60");
    Server::spawn(cmd, None)
}

async fn plan(server: &Server, id: &str) -> Value {
    let (status, v) = server.get(&format!("/api/plans/{id}")).await;
    assert_eq!(status, 200, "{v}");
    v
}

fn states(v: &Value) -> Vec<(String, String)> {
    v["tasks"]
        .as_object()
        .map(|m| {
            m.iter().map(|(k, s)| (k.clone(), s["state"].as_str().unwrap_or("").into())).collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the 1.5B local model and many minutes; run with --ignored"]
async fn a_spec_becomes_a_plan_that_survives_a_killed_server_runs_green_offline_and_applies() {
    let tmp = tempfile::tempdir().unwrap();
    // `TROUPE_E2E_KEEP=1` keeps the folder (the audit trails, the plan's store) to read after.
    let (_tmp, root) = match std::env::var_os("TROUPE_E2E_KEEP") {
        Some(_) => {
            let kept = tmp.keep();
            eprintln!("keeping {}", kept.display());
            (None, kept)
        }
        None => {
            let root = tmp.path().to_path_buf();
            (Some(tmp), root)
        }
    };
    let w = Sample::new(&root);

    // The local model plans; approved at once.
    let out = w.troupe(&["plan", "new", "--offline", "--approve", "--json", SPEC]);
    assert!(out.status.success(), "the local model gave no valid plan");
    let plan_json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = plan_json["id"].as_str().unwrap().to_string();
    let tasks = plan_json["spec"]["tasks"].as_array().unwrap().len();
    assert!(tasks >= 1);

    // The server's queue starts the approved plan by itself; it is killed in the middle: while
    // a task's run is between steps — after one of its steps finished, with a task already
    // green when the plan has more than one.
    let started = Instant::now();
    let mut server = serve(&w);
    let killed_at = loop {
        assert!(started.elapsed() < PLAN_LIMIT, "the plan never got to its middle");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let v = plan(&server, &id).await;
        assert!(v["state"] == "running", "the plan stopped before the kill: {v}");
        let s = states(&v);
        let green = s.iter().filter(|(_, st)| st == "green").count();
        let Some((task, _)) = s.iter().find(|(_, st)| st == "running") else { continue };
        let Some(run) = v["tasks"][task]["run_id"].as_str() else { continue };
        let (_, r) = server.get(&format!("/api/runs/{run}")).await;
        let finished = r["steps"]
            .as_array()
            .map_or(0, |steps| steps.iter().filter(|st| st["state"] == "completed").count());
        if finished >= 1 && (green >= 1 || tasks == 1) {
            break task.clone();
        }
    };
    eprintln!("killing the server while task `{killed_at}` runs");
    signal(server.pid(), "KILL");
    wait_exit(&mut server.child, Duration::from_secs(10));
    drop(server);

    // A new server goes on with the plan; `troupe plan run` follows it to its end through it.
    let server = serve(&w);
    let out = w.troupe(&["plan", "run", &id]);
    let status = w.troupe(&["plan", "status", &id]);
    assert!(
        out.status.success(),
        "the plan did not finish green:\n{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let done = plan(&server, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    for (task, s) in done["tasks"].as_object().unwrap() {
        assert_eq!(s["state"], "green", "{done}");
        assert_eq!(s["runs"].as_array().unwrap().len(), 1, "task {task} ran twice: {done}");
    }
    server.stop();
    assert!(!unittest(&w.project), "nothing is in the project before apply");

    let out = w.troupe(&["plan", "apply", &id]);
    assert!(out.status.success());
    assert!(unittest(&w.project), "the project's tests pass after the plan's change is applied");
    let words = std::fs::read_to_string(w.project.join("textkit/words.py")).unwrap();
    eprintln!("textkit/words.py after apply:\n{words}");
    assert!(words.contains("def longest_word"), "{words}");
    let tests = std::fs::read_to_string(w.project.join("tests/test_words.py")).unwrap();
    eprintln!("tests/test_words.py after apply:\n{tests}");
    assert!(tests.contains("longest_word"), "the spec asked for a unittest of longest_word");
}
