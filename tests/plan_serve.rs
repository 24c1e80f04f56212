//! Plans through real processes: `troupe plan new` with a scripted planner (a CLI agent
//! made of a shell script), `troupe plan run` through a running `troupe serve`, the server
//! killed with SIGKILL while a task runs, a new server that finishes the plan with no task
//! run twice, and `troupe plan apply` landing the combined change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{Server, World, git, parse_sse, signal, wait_exit, write_script};
use serde_json::Value;

const PLAN: &str = r#"{"title": "Three files", "goal": "Write a, b and c", "tasks": [
 {"id": "a", "description": "write a.txt", "acceptance": ["a.txt exists"], "after": []},
 {"id": "b", "description": "write b.txt", "acceptance": ["b.txt exists"], "after": ["a"]},
 {"id": "c", "description": "write c.txt", "acceptance": ["c.txt exists"], "after": ["b"]}]}"#;

fn world() -> World {
    let w = World::new();
    let (d, project) = (w.dir.path(), &w.project);
    std::fs::write(project.join("README.md"), "# demo\n").unwrap();
    git(project, &["init", "-q"]);
    git(project, &["add", "-A"]);
    git(project, &["commit", "-qm", "start"]);
    std::fs::write(d.join("plan.json"), PLAN).unwrap();
    write_script(&d.join("planner.sh"), &format!("cat '{}'\n", d.join("plan.json").display()));
    // The coder writes `<task>.txt` in its workspace and logs each call; task `b` waits for
    // the file `release`. Later tasks first: a prompt may quote earlier tasks (the memory).
    let log = d.join("calls.log");
    let release = d.join("release");
    write_script(
        &d.join("coder.sh"),
        &format!(
            "case \"$1\" in *'(Task `c`'*) t=c;; *'(Task `b`'*) t=b;; *'(Task `a`'*) t=a;; *) t=unknown;; esac\n\
             echo \"$t\" >> '{log}'\n\
             if [ \"$t\" = b ]; then echo 'task b is waiting for its release file'; while [ ! -e '{release}' ]; do sleep 0.1; done; fi\n\
             echo \"$t\" > \"$t.txt\"\necho \"wrote $t.txt\"\n",
            log = log.display(),
            release = release.display()
        ),
    );
    write_script(&d.join("reviewer.sh"), "echo '{\"verdict\": \"approved\", \"findings\": []}'\n");
    let agent = |name: &str, role: &str| {
        format!(
            "[agents.{name}]\nkind = \"cli\"\ncommand = \"{}\"\nargs = [\"{{prompt}}\"]\nflavor = \"generic\"\nrole = \"{role}\"\nretry = {{ max_attempts = 1 }}\n\n",
            d.join(format!("{name}.sh")).display()
        )
    };
    std::fs::write(
        &w.config,
        format!(
            "[settings]\ndefault_workflow = \"scripted\"\nplanner_agent = \"planner\"\nmax_concurrent_runs = 4\n\n{}{}{}\
             [workflows.scripted]\nmax_iterations = 1\nsteps = [\n  {{ agent = \"coder\", role = \"implement\" }},\n  {{ agent = \"reviewer\", role = \"review\" }},\n]\n",
            agent("planner", "plan"),
            agent("coder", "implement"),
            agent("reviewer", "review"),
        ),
    )
    .unwrap();
    w
}

fn troupe(w: &World, args: &[&str]) -> Output {
    w.troupe(args).output().unwrap()
}

fn serve(w: &World) -> Server {
    let mut cmd = w.troupe(&["serve", "--grace-secs", "1", "--addr", "127.0.0.1:0"]);
    cmd.env("TROUPE_STORE_WAIT_SECS", "30");
    Server::spawn(cmd, None)
}

fn calls(w: &World) -> Vec<String> {
    std::fs::read_to_string(w.dir.path().join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The events of run `id` as a client connecting now reads them, up to the first chunk
/// containing `text` (within 20 s).
async fn first_events_until(s: &Server, id: &str, text: &str) -> Vec<(String, Value)> {
    let mut r = s.client.get(s.url(&format!("/api/runs/{id}/events"))).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut body = String::new();
    loop {
        let events = parse_sse(&body[..body.rfind("\n\n").map_or(0, |i| i + 2)]);
        let said: String = events
            .iter()
            .filter(|(e, _)| e == "chunk")
            .filter_map(|(_, d)| d["text"].as_str())
            .collect();
        if said.contains(text) {
            return events;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, r.chunk()).await {
            Ok(Ok(Some(bytes))) => body.push_str(&String::from_utf8_lossy(&bytes)),
            other => panic!("no chunk with {text:?} in the stream of {id} ({other:?}): {body}"),
        }
    }
}

async fn wait_plan(s: &Server, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, v) = s.get(&format!("/api/plans/{id}")).await;
        if status == 200 && pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "the plan never got to {what}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_survives_a_killed_server_and_no_task_runs_twice() {
    let w = world();
    // A plan from the scripted planner, approved at once (no server: in this process).
    let out = troupe(&w, &["plan", "new", "write three files", "--approve", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = plan["id"].as_str().unwrap().to_string();
    assert_eq!(plan["state"], "approved");
    assert_eq!(plan["spec"]["tasks"].as_array().unwrap().len(), 3);

    // Run it through the server; kill the server while `b` runs.
    let server = serve(&w);
    let out = troupe(&w, &["plan", "run", &id[..8], "--detach"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v =
        wait_plan(&server, &id, "task b running", |v| v["tasks"]["b"]["state"] == "running").await;
    assert_eq!(v["tasks"]["a"]["state"], "green");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !calls(&w).contains(&"b".to_string()) {
        assert!(Instant::now() < deadline, "the coder was never called for b");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b_run = v["tasks"]["b"]["run_id"].as_str().unwrap().to_string();
    // The task's run was started by the plan's queue, not through the API: its events are
    // still kept from the first, so a client connecting now gets what the step under way
    // has already said.
    let said = first_events_until(&server, &b_run, "task b is waiting").await;
    assert_eq!(said.first().map(|(e, _)| e.as_str()), Some("run_started"), "{said:?}");
    let mut server = server;
    signal(server.pid(), "KILL");
    wait_exit(&mut server.child, Duration::from_secs(10));
    drop(server);

    // A new server goes on with the plan by itself.
    std::fs::write(w.dir.path().join("release"), "").unwrap();
    let server = serve(&w);
    let done = wait_plan(&server, &id, "its end", |v| v["state"] != "running").await;
    assert_eq!(done["state"], "done", "{done}");
    for t in ["a", "b", "c"] {
        assert_eq!(done["tasks"][t]["state"], "green", "{done}");
        assert_eq!(
            done["tasks"][t]["runs"].as_array().unwrap().len(),
            1,
            "task {t} ran twice: {done}"
        );
    }
    assert_eq!(done["tasks"]["b"]["run_id"], b_run.as_str(), "b's run was resumed, not replaced");
    let (_, run) = server.get(&format!("/api/runs/{b_run}")).await;
    assert_eq!(run["run"]["resumed"], 1, "{run}");
    // The resumed run's stream: this attempt's start, what the killed attempt did (its
    // implement step started), then this attempt to the end.
    let events = server.events(&b_run).await;
    let kinds: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(kinds[0], "run_started", "{kinds:?}");
    assert_eq!(events[0].1["resumed"], true);
    assert_eq!(kinds.iter().filter(|k| **k == "run_started").count(), 1, "{kinds:?}");
    let implement_starts =
        events.iter().filter(|(e, d)| e == "step_started" && d["pos"]["step"] == 0).count();
    assert_eq!(implement_starts, 2, "the killed attempt's step and this one's: {kinds:?}");
    assert_eq!(kinds.last(), Some(&"run_finished"), "{kinds:?}");
    let calls = calls(&w);
    assert_eq!(calls.iter().filter(|c| *c == "a").count(), 1, "{calls:?}");
    assert_eq!(calls.iter().filter(|c| *c == "c").count(), 1, "{calls:?}");
    let (_, runs) = server.get("/api/runs").await;
    assert_eq!(runs.as_array().unwrap().len(), 3, "one run per task: {runs}");

    // Status and apply go through the server; the combined change lands in the project.
    let out = troupe(&w, &["plan", "status", &id[..8]]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("✓ green     b  ← a"), "{text}");
    let out = troupe(&w, &["plan", "apply", &id[..8]]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in ["a.txt", "b.txt", "c.txt"] {
        assert!(w.project.join(f).exists(), "{f} was not applied");
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_run_through_a_server_follows_its_event_stream_to_the_end() {
    let w = world();
    std::fs::write(w.dir.path().join("release"), "").unwrap();
    let out = troupe(&w, &["plan", "new", "write three files", "--approve", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = plan["id"].as_str().unwrap().to_string();
    let server = serve(&w);
    // Not detached: the command follows the server's plan events and ends with the plan.
    let out = troupe(&w, &["plan", "run", &id[..8]]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for t in ["a", "b", "c"] {
        let green = text.lines().filter(|l| l.starts_with(&format!("✓ {t} green"))).count();
        assert_eq!(green, 1, "task {t} green once in:\n{text}");
        assert!(text.lines().any(|l| l.contains(&format!(" {t} running"))), "{text}");
    }
    let (_, v) = server.get(&format!("/api/plans/{id}")).await;
    assert_eq!(v["state"], "done", "{v}");
    server.stop();
}
