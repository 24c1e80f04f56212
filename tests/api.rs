//! `troupe serve` driven over HTTP: a real server process on `127.0.0.1:0` per test, with
//! CLI agents made of small shell scripts and a data folder of its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, World, cli_agent, parse_sse, workflow, write_script};
use serde_json::{Value, json};

fn config_text(dir: &Path) -> String {
    [
        "[settings]\ndefault_workflow = \"scripted\"\nmax_concurrent_runs = 8\n\n".to_string(),
        cli_agent("coder", &dir.join("coder.sh"), "env = { SECRET_TOKEN = \"hunter2\" }\n"),
        cli_agent("reviewer", &dir.join("reviewer.sh"), ""),
        cli_agent("sleeper", &dir.join("sleeper.sh"), ""),
        r#"[agents.remote]
kind = "openai"
base_url = "https://api.example.invalid/v1"
model = "m"
api_key_env = "REMOTE_API_KEY"

"#
        .to_string(),
        workflow("scripted", 1, &[("coder", "implement"), ("reviewer", "review")]),
        workflow("slow", 1, &[("sleeper", "implement")]),
    ]
    .concat()
}

fn world() -> World {
    let w = World::new();
    let dir = &w.dir;
    write_script(&dir.path().join("coder.sh"), "sleep 0.2\necho 'def hello(): return \"hello\"'\n");
    write_script(
        &dir.path().join("reviewer.sh"),
        "echo '{\"verdict\": \"approved\", \"findings\": []}'\n",
    );
    write_script(&dir.path().join("sleeper.sh"), "echo starting\nexec sleep 60\n");
    let config = w.config.clone();
    std::fs::write(&config, config_text(dir.path())).unwrap();
    w
}

/// Start `troupe serve` for `w` on a free loopback port (unless `extra` has `--addr`).
fn serve(w: &World, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut cmd = w.troupe(&["serve", "--grace-secs", "1"]);
    cmd.args(if extra.contains(&"--addr") { &[][..] } else { &["--addr", "127.0.0.1:0"][..] })
        .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Server::spawn(cmd, None)
}

fn kinds(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(e, _)| e.as_str()).collect()
}

async fn wait_for_state(s: &Server, id: &str, pred: impl Fn(&str) -> bool) -> Value {
    s.wait_for(id, |v| pred(v["run"]["state"].as_str().unwrap_or(""))).await
}

#[tokio::test]
async fn status_routes_answer_json() {
    let w = world();
    let s = serve(&w, &[], &[]);

    let (status, v) = s.get("/health").await;
    assert_eq!((status, v), (200, json!({ "status": "ok" })));

    let (status, v) = s.get("/ready").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ready"], true);
    assert!(v["usable_agents"].as_array().unwrap().contains(&json!("coder")));

    let (status, v) = s.get("/api/agents").await;
    assert_eq!(status, 200);
    let coder = v.as_array().unwrap().iter().find(|a| a["name"] == "coder").unwrap();
    assert_eq!(coder["kind"], "cli");
    assert_eq!(coder["usable"], true);
    assert_eq!(coder["breaker"]["state"], "closed");
    assert!(coder["success_rate"].is_null(), "no calls yet: {coder}");

    let (status, v) = s.get("/api/workflows").await;
    assert_eq!(status, 200);
    let scripted = v.as_array().unwrap().iter().find(|w| w["name"] == "scripted").unwrap();
    assert_eq!(scripted["default"], true);
    assert_eq!(scripted["steps"][1]["agent"], "reviewer");

    let (status, v) = s.get("/api/status").await;
    assert_eq!(status, 200);
    assert_eq!(v["offline"], false);
    assert!(v["uptime_secs"].is_u64());
    assert_eq!(v["live_runs"], json!([]));

    let (status, v) = s.get("/api/models/status").await;
    assert_eq!(status, 200, "{v}");
    assert!(v.is_array());

    let (status, v) = s.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert!(v["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/api/agents",
        "/api/workflows",
        "/api/execute",
        "/api/runs",
        "/api/runs/stats",
        "/api/runs/{id}",
        "/api/runs/{id}/events",
        "/api/runs/{id}/cancel",
        "/api/runs/{id}/resume",
        "/api/runs/{id}/diff",
        "/api/runs/{id}/apply",
        "/api/runs/{id}/revert",
        "/api/runs/{id}/discard",
        "/api/status",
        "/api/config",
        "/api/models/status",
        "/api/context/search",
        "/api/openapi.json",
        "/api/plans",
        "/api/plans/{id}",
        "/api/plans/{id}/run",
        "/api/plans/{id}/events",
    ] {
        assert!(v["paths"].get(path).is_some(), "{path} is not described");
    }

    let r = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));

    let (status, v) = s.get("/api/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], "not_found");
    let r = s.client.delete(s.url("/api/runs")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn a_run_streams_from_start_to_finish_and_is_stored() {
    let w = world();
    let s = serve(&w, &[], &[]);
    let id = s.execute(json!({ "task": "write hello" })).await;

    let events = s.events(&id).await;
    // An answer may come in several chunks (the secret masker holds back a few characters).
    let mut shape = kinds(&events);
    shape.dedup();
    assert_eq!(
        shape,
        [
            "run_started",
            "step_started",
            "chunk",
            // The implement step's change (this coder only answers: no files changed).
            "changed",
            "step_finished",
            "step_started",
            "chunk",
            "step_finished",
            "run_finished"
        ]
    );
    assert!(events.iter().all(|(_, d)| d["run_id"] == id.as_str()));
    assert_eq!(events[0].1["workflow"], "scripted");
    let first_answer: String = events
        .iter()
        .skip(2)
        .take_while(|(e, _)| e == "chunk")
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect();
    assert!(first_answer.contains("def hello"), "{first_answer}");
    assert_eq!(events.last().unwrap().1["state"], "completed");

    // Connecting after the end still gives the stream from the start.
    assert_eq!(kinds(&s.events(&id).await), kinds(&events));
    // A reconnecting client continues after the last event it got.
    let r = s
        .client
        .get(s.url(&format!("/api/runs/{id}/events")))
        .header("Last-Event-ID", (events.len() - 3).to_string())
        .send()
        .await
        .unwrap();
    let rest = parse_sse(&r.text().await.unwrap());
    assert_eq!(kinds(&rest), ["step_finished", "run_finished"]);

    let (status, v) = s.get("/api/runs").await;
    assert_eq!(status, 200);
    assert_eq!(v[0]["id"], id.as_str());
    let (status, v) = s.get(&format!("/api/runs/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(v["run"]["state"], "completed");
    assert_eq!(v["steps"].as_array().unwrap().len(), 2);
    assert!(v["steps"][0].get("prompt").is_none());
    let (_, v) = s.get(&format!("/api/runs/{id}?prompts=true")).await;
    assert!(v["steps"][0]["prompt"].as_str().unwrap().contains("write hello"));
    // A unique prefix works too.
    let (status, _) = s.get(&format!("/api/runs/{}", &id[..20])).await;
    assert_eq!(status, 200);

    // The outcome is in the project memory.
    let (status, v) = s.get("/api/context/search?q=hello").await;
    assert_eq!(status, 200, "{v}");
    assert!(!v["hits"].as_array().unwrap().is_empty(), "{v}");

    // The agents' success rate counts the calls.
    let (_, v) = s.get("/api/agents").await;
    let coder = v.as_array().unwrap().iter().find(|a| a["name"] == "coder").unwrap();
    assert_eq!(coder["success_rate"], 1.0);

    let metrics = s.client.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("agent=\"coder\""), "{metrics}");

    // Graceful stop; a new server rebuilds the stream of the stored run.
    assert_eq!(s.stop(), Some(0));
    // Once the server is gone, `troupe runs` (which opens the store itself) lists the run.
    let out = Command::new(env!("CARGO_BIN_EXE_troupe"))
        .arg("--config")
        .arg(&w.config)
        .args(["runs", "--json"])
        .current_dir(&w.project)
        .env("TROUPE_HOME", &w.home)
        .env("TROUPE_ASSETS", w.home.join("assets"))
        .output()
        .unwrap();
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0]["id"], id.as_str());
    assert_eq!(runs[0]["state"], "completed");
    let s = serve(&w, &[], &[]);
    let replayed = s.events(&id).await;
    // Rebuilt from the store: each answer is one chunk.
    assert_eq!(kinds(&replayed), shape);
    let r = s
        .client
        .get(s.url(&format!("/api/runs/{id}/events")))
        .header("Last-Event-ID", (replayed.len() - 2).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(kinds(&parse_sse(&r.text().await.unwrap())), ["run_finished"]);
    assert_eq!(replayed.last().unwrap().1["state"], "completed");
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let w = world();
    let s = serve(&w, &[], &[]);
    for (body, code) in [
        ("{not json", "bad_json"),
        ("{\"task\": 3}", "bad_json"),
        ("{}", "bad_json"),
        ("{\"task\": \"x\", \"colour\": \"red\"}", "bad_json"),
        ("{\"task\": \"   \"}", "invalid_request"),
        ("{\"task\": \"x\", \"workflow\": \"nope\"}", "unknown_workflow"),
        ("{\"task\": \"x\", \"max_iterations\": 0}", "invalid_request"),
        ("{\"task\": \"x\", \"project\": \"/does/not/exist\"}", "invalid_request"),
    ] {
        let (status, v) = s.post_raw("/api/execute", body).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    let big = format!("{{\"task\": \"{}\"}}", "x".repeat(300 * 1024));
    let (status, v) = s.post_raw("/api/execute", big).await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"]["code"], "too_large");

    let (status, v) = s.get("/api/runs/no-such-run").await;
    assert_eq!((status, v["error"]["code"].as_str()), (404, Some("no_such_run")));
    let (status, v) = s.get("/api/runs/no-such-run/events").await;
    assert_eq!((status, v["error"]["code"].as_str()), (404, Some("no_such_run")));
    let (status, v) = s.post("/api/runs/no-such-run/cancel", &json!({})).await;
    assert_eq!((status, v["error"]["code"].as_str()), (404, Some("no_such_run")));
    let (status, v) = s.get("/api/runs?limit=many").await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("bad_query")));
    let (status, v) = s.get("/api/context/search").await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("invalid_request")));
    let (status, v) = s.get("/api/context/search?q=x&mode=psychic").await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("invalid_request")));

    // Cancelling a finished run is a conflict.
    let id = s.execute(json!({ "task": "write hello" })).await;
    wait_for_state(&s, &id, |st| st == "completed").await;
    while s.get(&format!("/api/runs/{id}")).await.1["live"] == true {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, v) = s.post(&format!("/api/runs/{id}/cancel"), &json!({})).await;
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("wrong_state")), "{v}");
}

#[tokio::test]
async fn a_running_run_is_cancelled_and_its_stream_ends() {
    let w = world();
    let s = serve(&w, &[], &[]);
    let id = s.execute(json!({ "task": "take your time", "workflow": "slow" })).await;
    let v = wait_for_state(&s, &id, |st| st == "in_progress").await;
    assert_eq!(v["live"], true);
    let (_, status) = s.get("/api/status").await;
    assert_eq!(status["live_runs"], json!([id.clone()]));
    let (code, v) = s.post(&format!("/api/runs/{id}/cancel"), &json!({})).await;
    assert_eq!(code, 202, "{v}");
    let events = s.events(&id).await;
    assert_eq!(events.first().unwrap().0, "run_started");
    assert_eq!(events.last().unwrap().0, "run_finished");
    assert_eq!(events.last().unwrap().1["state"], "cancelled");
    wait_for_state(&s, &id, |st| st == "cancelled").await;
}

#[tokio::test]
async fn stats_count_the_runs_and_a_cancelled_run_resumes() {
    let w = world();
    let s = serve(&w, &[], &[]);
    let (status, v) = s.get("/api/runs/stats").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["by_state"], json!({}));

    let done = s.execute(json!({ "task": "write hello" })).await;
    wait_for_state(&s, &done, |st| st == "completed").await;
    let slow = s.execute(json!({ "task": "take your time", "workflow": "slow" })).await;
    wait_for_state(&s, &slow, |st| st == "in_progress").await;
    let (code, v) = s.post(&format!("/api/runs/{slow}/cancel"), &json!({})).await;
    assert_eq!(code, 202, "{v}");
    wait_for_state(&s, &slow, |st| st == "cancelled").await;
    while s.get(&format!("/api/runs/{slow}")).await.1["live"] == true {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // What `troupe runs stats` prints; the same counts as /api/status.
    let (status, v) = s.get("/api/runs/stats").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["by_state"], json!({ "completed": 1, "cancelled": 1 }));
    assert!(v["average_duration_secs"].as_f64().unwrap() > 0.0, "{v}");
    let (_, st) = s.get("/api/status").await;
    assert_eq!((&v["by_state"], &v["tokens"]), (&st["runs_by_state"], &st["tokens"]));

    // Resume: 202, and the run's stream starts again with `resumed`.
    let (code, v) = s.post(&format!("/api/runs/{}/resume", &slow[..20]), &json!({})).await;
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["run_id"], slow.as_str());
    assert_eq!(v["events"], format!("/api/runs/{slow}/events"));
    let running = wait_for_state(&s, &slow, |st| st == "in_progress").await;
    assert_eq!(running["live"], true);
    // Running here: not resumable twice.
    let (code, v) = s.post(&format!("/api/runs/{slow}/resume"), &json!({})).await;
    assert_eq!((code, v["error"]["code"].as_str()), (409, Some("wrong_state")), "{v}");
    let (code, _) = s.post(&format!("/api/runs/{slow}/cancel"), &json!({})).await;
    assert_eq!(code, 202);
    let events = s.events(&slow).await;
    assert_eq!(events[0].0, "run_started");
    assert_eq!(events[0].1["resumed"], true);
    assert_eq!(events.last().unwrap().1["state"], "cancelled");

    // A completed run is not resumed; an unknown one is not found.
    let (code, v) = s.post(&format!("/api/runs/{done}/resume"), &json!({})).await;
    assert_eq!((code, v["error"]["code"].as_str()), (409, Some("wrong_state")), "{v}");
    let (code, v) = s.post("/api/runs/nope/resume", &json!({})).await;
    assert_eq!((code, v["error"]["code"].as_str()), (404, Some("no_such_run")), "{v}");
    let r = s.client.get(s.url(&format!("/api/runs/{slow}/resume"))).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
}

#[tokio::test]
async fn concurrent_executes_all_finish() {
    let w = world();
    let s = serve(&w, &[], &[]);
    let submits = (0..6).map(|i| s.execute(json!({ "task": format!("task number {i}") })));
    let ids = futures::future::join_all(submits).await;
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 6);
    let streams = futures::future::join_all(ids.iter().map(|id| s.events(id))).await;
    for (id, events) in ids.iter().zip(&streams) {
        assert_eq!(events.last().unwrap().1["state"], "completed", "{id}");
        assert!(events.iter().all(|(_, d)| d["run_id"] == id.as_str()));
    }
    let (_, runs) = s.get("/api/runs?state=completed").await;
    assert_eq!(runs.as_array().unwrap().len(), 6);
    let (_, runs) = s.get("/api/runs?limit=2").await;
    assert_eq!(runs.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn config_is_redacted_and_replaced_only_when_valid() {
    let w = world();
    let s = serve(&w, &[], &[]);
    let r = s.client.get(s.url("/api/config")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    assert!(!text.contains("hunter2"), "an env value leaked: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["config"]["agents"]["coder"]["env"]["SECRET_TOKEN"], "<redacted>");
    assert_eq!(v["config"]["agents"]["remote"]["api_key_env"], "REMOTE_API_KEY");
    assert_eq!(v["source"]["path"], w.config.display().to_string());

    let before = std::fs::read_to_string(&w.config).unwrap();
    let invalid = "[settings]\nmax_concurrent_runs = \"lots\"\n\n[agents.x]\nkind = \"cli\"\nfallback = [\"nobody\"]\n\n[workflows.w]\nsteps = [{ agent = \"ghost\", role = \"implement\" }]\n";
    let r = s.client.put(s.url("/api/config")).body(invalid).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_config");
    let problems = v["error"]["problems"].as_array().unwrap();
    assert!(problems.len() >= 4, "{v}");
    for (needle, line) in [("[settings]", 2), ("no `command`", 5), ("nobody", 6), ("ghost", 9)] {
        let p = problems
            .iter()
            .find(|p| p["message"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no problem about {needle}: {v}"));
        assert_eq!(p["location"]["line"], line, "{p}");
        assert_eq!(p["location"]["path"], w.config.display().to_string());
    }
    assert_eq!(std::fs::read_to_string(&w.config).unwrap(), before, "the file changed");
    let r = s.client.put(s.url("/api/config")).body("not = [toml").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(std::fs::read_to_string(&w.config).unwrap(), before);

    // A valid TOML body replaces the file.
    let replaced = before.replace("max_concurrent_runs = 8", "max_concurrent_runs = 3");
    let r = s.client.put(s.url("/api/config")).body(replaced.clone()).send().await.unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert!(v["applies"].as_str().unwrap().contains("restart"));
    assert_eq!(std::fs::read_to_string(&w.config).unwrap(), replaced);
    let (_, v) = s.get("/api/config").await;
    assert_eq!(v["replaced_since_start"], true);

    // So does a JSON one.
    let body = json!({
        "settings": { "default_workflow": "scripted" },
        "agents": { "coder": { "kind": "cli", "command": w.dir.path().join("coder.sh"), "args": ["{prompt}"], "flavor": "generic" } },
        "workflows": { "scripted": { "steps": [{ "agent": "coder", "role": "implement" }] } }
    });
    let r = s.client.put(s.url("/api/config")).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    assert_eq!(status, 200, "{:?}", r.text().await);
    let saved = std::fs::read_to_string(&w.config).unwrap();
    assert!(
        saved.contains("[workflows.scripted]") || saved.contains("[[workflows.scripted.steps]]"),
        "{saved}"
    );
    assert!(!saved.contains("sleeper"));
    let (status, v) = s.get("/health").await;
    assert_eq!((status, v["status"].as_str()), (200, Some("ok")));
}

#[tokio::test]
async fn off_loopback_the_api_needs_the_token() {
    let w = world();
    // Without a token, binding to every interface is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_troupe"))
        .arg("--config")
        .arg(&w.config)
        .args(["serve", "--addr", "0.0.0.0:0"])
        .current_dir(&w.project)
        .env("TROUPE_HOME", &w.home)
        .env("TROUPE_ASSETS", w.home.join("assets"))
        .env_remove("TROUPE_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"));

    let s = serve(&w, &["--addr", "0.0.0.0:0", "--token", "s3cret"], &[]);
    let (status, _) = s.get("/health").await;
    assert_eq!(status, 200);
    for path in ["/api/status", "/api/agents", "/api/runs", "/api/config", "/metrics"] {
        let r = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unauthorized", "{path}");
        let r = s.client.get(s.url(path)).bearer_auth("wrong").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let r = s.client.get(s.url(path)).bearer_auth("s3cret").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    let r =
        s.client.post(s.url("/api/execute")).json(&json!({ "task": "x" })).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    drop(s);

    // The token can come from the environment; then loopback checks it too.
    let s = serve(&w, &[], &[("TROUPE_API_TOKEN", "from-env")]);
    let r = s.client.get(s.url("/api/status")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = s.client.get(s.url("/api/status")).bearer_auth("from-env").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    drop(s);

    // Or from the variable the configuration names (never from the file itself).
    let text = std::fs::read_to_string(&w.config).unwrap();
    let text = text.replacen("[settings]\n", "[settings]\napi_token_env = \"MY_SERVE_TOKEN\"\n", 1);
    std::fs::write(&w.config, text).unwrap();
    let s = serve(&w, &["--addr", "0.0.0.0:0"], &[("MY_SERVE_TOKEN", "named")]);
    let r = s.client.get(s.url("/api/runs")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = s.client.get(s.url("/api/runs")).bearer_auth("named").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, v) = s
        .client
        .get(s.url("/api/config"))
        .bearer_auth("named")
        .send()
        .await
        .map(|r| ((), r))
        .unwrap();
    let v: Value = v.json().await.unwrap();
    assert_eq!(v["config"]["settings"]["api_token_env"], "MY_SERVE_TOKEN");
    assert!(!v.to_string().contains("\"named\""));
}

#[tokio::test]
async fn sigterm_cancels_running_runs_after_the_grace_period() {
    let w = world();
    let s = serve(&w, &[], &[]);
    let id = s.execute(json!({ "task": "never ends", "workflow": "slow" })).await;
    wait_for_state(&s, &id, |st| st == "in_progress").await;
    let started = Instant::now();
    assert_eq!(s.stop(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(20));
    let s = serve(&w, &[], &[]);
    let (_, v) = s.get(&format!("/api/runs/{id}")).await;
    assert_eq!(v["run"]["state"], "cancelled", "{v}");
    assert_eq!(v["live"], false);
}

/// The served document passes a standard OpenAPI validator (`openapi-spec-validator` from
/// PyPI, installed by `scripts/setup.sh --assets-only`), and gives every answer a type.
#[tokio::test]
async fn the_openapi_document_passes_a_standard_validator() {
    let validator = common::installed_assets().join("pypi/openapi-spec-validator");
    assert!(
        validator.join("openapi_spec_validator").is_dir(),
        "the OpenAPI validator is not installed in {}; run `scripts/setup.sh --assets-only`",
        validator.display()
    );
    let w = world();
    let s = serve(&w, &[], &[]);
    let (status, doc) = s.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    // The run record is typed: its change options (stored flat beside its fields), and an
    // object of its own fields.
    let record = &doc["components"]["schemas"]["RunRecord"]["allOf"];
    assert_eq!(record[0]["$ref"], "#/components/schemas/ChangeOptions", "{doc}");
    assert_eq!(record[1]["type"], "object", "{doc}");
    assert_eq!(record[1]["properties"]["state"]["$ref"], "#/components/schemas/RunState", "{doc}");
    let file = w.dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let run = |file: &Path| {
        Command::new("python3")
            .args(["-m", "openapi_spec_validator"])
            .arg(file)
            .env("PYTHONPATH", &validator)
            .output()
            .expect("python3 runs")
    };
    let out = run(&file);
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the document is not valid OpenAPI:\n{text}");
    // The validator does fail a broken document (a path without its parameter declared).
    let mut broken = doc.clone();
    broken["paths"]["/api/runs/{id}"]["get"]["parameters"] = serde_json::json!([]);
    std::fs::write(&file, broken.to_string()).unwrap();
    assert!(!run(&file).status.success(), "the validator accepted a broken document");
}

/// The real local llama.cpp server behind the API: execute, follow the stream live, and
/// find the run in the list.
#[tokio::test]
async fn a_run_against_the_real_local_model() {
    let w = world();
    w.use_local_model("");
    let s = serve(&w, &[], &[]);
    let id = s
        .execute(json!({ "task": "Write a function that reverses a string", "workflow": "local", "offline": true }))
        .await;
    let events = s.events(&id).await;
    assert!(events.iter().any(|(e, _)| e == "chunk"), "nothing was streamed: {events:?}");
    let (_, last) = events.last().unwrap();
    assert_eq!(last["type"], "run_finished");
    assert_eq!(last["state"], "completed", "{events:?}");
    let (_, runs) = s.get("/api/runs").await;
    assert_eq!(runs[0]["id"], id.as_str());
    let (_, models) = s.get("/api/models/status").await;
    assert_eq!(models[0]["reachable"], true, "{models}");

    // A graceful stop also stops the local model server troupe started.
    assert_eq!(s.stop(), Some(0));
    let ours = w.home.join("assets/llama/llama-server");
    let left = Command::new("pgrep").args(["-f", ours.to_str().unwrap()]).output().unwrap();
    assert!(
        left.stdout.is_empty(),
        "a llama-server outlived troupe serve: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

#[tokio::test]
async fn runs_of_one_conversation_see_the_earlier_turns() {
    let w = world();
    let s = serve(&w, &[], &[]);
    let first = s.execute(json!({ "task": "write the tokenizer", "conversation": "chat-1" })).await;
    s.events(&first).await;
    let second = s.execute(json!({ "task": "now the parser", "conversation": "chat-1" })).await;
    s.events(&second).await;
    let other = s.execute(json!({ "task": "unrelated work", "conversation": "chat-2" })).await;
    s.events(&other).await;
    let prompt = |v: &Value| v["steps"][0]["prompt"].as_str().unwrap().to_string();
    let (_, v) = s.get(&format!("/api/runs/{second}?prompts=true")).await;
    assert!(prompt(&v).contains("User: write the tokenizer"), "{}", prompt(&v));
    assert_eq!(v["run"]["conversation"], "chat-1");
    let (_, v) = s.get(&format!("/api/runs/{other}?prompts=true")).await;
    assert!(!prompt(&v).contains("User: write the tokenizer"), "{}", prompt(&v));
}

#[tokio::test]
async fn secrets_never_leave_through_the_api() {
    const BY_NAME: &str = "tok-abcdef123456";
    const NAMED: &str = "pass-xyz-987654";
    let w = world();
    // A CLI agent that prints its environment's secrets back, like a careless tool.
    write_script(
        &w.dir.path().join("leaky.sh"),
        "echo \"with $SECRET_TOKEN, $DEPLOY_PASSPHRASE and $MY_SERVICE_TOKEN\"\n",
    );
    let config = config_text(w.dir.path())
        .replace("[settings]\n", "[settings]\nsecret_env = [\"DEPLOY_PASSPHRASE\"]\n")
        + &cli_agent(
            "leaky",
            &w.dir.path().join("leaky.sh"),
            "env = { SECRET_TOKEN = \"hunter2\" }\n",
        )
        + &workflow("leak", 1, &[("leaky", "implement")]);
    std::fs::write(&w.config, config).unwrap();
    let s = serve(&w, &[], &[("MY_SERVICE_TOKEN", BY_NAME), ("DEPLOY_PASSPHRASE", NAMED)]);
    let task = format!("deploy with {BY_NAME}, {NAMED} and hunter2");
    let id = s.execute(json!({ "task": task, "workflow": "leak" })).await;
    let events = s.events(&id).await;
    assert_eq!(events.last().unwrap().0, "run_finished");
    let mut bodies =
        vec![serde_json::to_string(&events.iter().map(|(_, d)| d).collect::<Vec<_>>()).unwrap()];
    for path in [
        format!("/api/runs/{id}?prompts=true"),
        format!("/api/runs/{id}/audit"),
        "/api/runs".to_string(),
        "/api/config".to_string(),
        "/api/status".to_string(),
        "/api/usage".to_string(),
        "/api/context/search?q=deploy".to_string(),
    ] {
        let (status, v) = s.get(&path).await;
        assert_eq!(status, 200, "{path}: {v}");
        bodies.push(v.to_string());
    }
    let all = bodies.join("\n");
    assert!(all.contains("[REDACTED]"), "masked, not dropped: {all}");
    for secret in [BY_NAME, NAMED, "hunter2"] {
        assert!(!all.contains(secret), "the API shows {secret}: {all}");
    }
    // The audit trail has the masked prompt and the masked answer.
    let (_, trail) = s.get(&format!("/api/runs/{id}/audit")).await;
    let kinds: Vec<&str> =
        trail.as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["run_started", "prompt_sent", "response_received", "run_finished"]);
    assert!(trail[2]["response"].as_str().unwrap().contains("with [REDACTED]"), "{trail}");
    let (status, v) = s.get("/api/runs/nope/audit").await;
    assert_eq!((status, v["error"]["code"].as_str()), (404, Some("no_such_run")));
}

#[tokio::test]
async fn budgets_and_usage_over_the_api() {
    let w = world();
    let s = serve(&w, &[], &[]);
    // A budget too small for any prompt: the run ends budget_exceeded without a call.
    let id = s.execute(json!({ "task": "write hello", "budget_tokens": 20 })).await;
    let events = s.events(&id).await;
    assert!(!kinds(&events).contains(&"step_started"), "{events:?}");
    let (_, finished) = events.last().unwrap();
    assert_eq!(finished["state"], "budget_exceeded", "{finished}");
    let v = wait_for_state(&s, &id, |st| st == "budget_exceeded").await;
    assert!(v["run"]["error"].as_str().unwrap().contains("token budget is 20"), "{v}");
    let (_, runs) = s.get("/api/runs?state=budget_exceeded").await;
    assert_eq!(runs.as_array().unwrap().len(), 1);

    for body in
        [json!({ "task": "x", "budget_tokens": 0 }), json!({ "task": "x", "budget_cost": -1.0 })]
    {
        let (status, v) = s.post("/api/execute", &body).await;
        assert_eq!((status, v["error"]["code"].as_str()), (400, Some("invalid_request")), "{v}");
    }

    // A run that completes shows in the usage, per agent.
    let id = s.execute(json!({ "task": "write hello" })).await;
    wait_for_state(&s, &id, |st| st == "completed").await;
    let (status, usage) = s.get("/api/usage").await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["total"]["runs"], 2);
    assert_eq!(usage["total"]["calls"], 2, "implement and review: {usage}");
    assert!(usage["by_agent"]["coder"]["tokens"]["completion"].as_u64().unwrap() > 0, "{usage}");
    let (_, later) = s.get("/api/usage?since=2999-01-01").await;
    assert_eq!(later["total"]["runs"], 0);
    let (status, v) = s.get("/api/usage?since=someday").await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("invalid_request")), "{v}");
}

/// `troupe test-agent` spends tokens like a run: its calls are counted in `troupe usage`
/// and the metrics, marked as test-agent calls — also one made while `troupe serve` holds
/// the store.
#[tokio::test]
async fn test_agent_calls_are_counted_in_usage_and_metrics() {
    let w = world();
    let test_agent = |agent: &str| {
        Command::new(env!("CARGO_BIN_EXE_troupe"))
            .arg("--config")
            .arg(&w.config)
            .args(["test-agent", agent, "hello"])
            .current_dir(&w.project)
            .env("TROUPE_HOME", &w.home)
            .env("TROUPE_ASSETS", w.home.join("assets"))
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let o = test_agent("coder");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A failed call is counted in the metrics, not in usage (it used nothing).
    let o = test_agent("remote");
    assert!(!o.status.success());

    let s = serve(&w, &[], &[]);
    let metrics = s.client.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(
            "troupe_calls_outside_runs_total{agent=\"coder\",outcome=\"success\",source=\"test-agent\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("troupe_agent_calls_total{agent=\"coder\",outcome=\"success\"} 1"));
    assert!(metrics.contains("source=\"test-agent\"} 1") && metrics.contains("agent=\"remote\""));

    // While serve holds the store, a test call is still counted.
    let o = test_agent("coder");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (status, usage) = s.get("/api/usage").await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["by_source"]["test-agent"]["calls"], 2, "{usage}");
    assert_eq!(usage["by_agent"]["coder"]["calls"], 2, "{usage}");
    assert_eq!(usage["total"]["runs"], 0, "{usage}");
    assert!(usage["total"]["tokens"]["prompt"].as_u64().unwrap() > 0, "{usage}");
}
