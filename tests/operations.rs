//! Operations from the command line, as a user runs them: secrets masked in logs, output
//! and the audit trail; `troupe runs audit` and `runs show --prompts`; `troupe usage`; run
//! budgets that stop a run before the call that would cross them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{World, cli_agent, workflow, write_script};
use serde_json::Value;

/// Secrets of three kinds: a variable whose name says it is a secret, a variable the
/// configuration names in `secret_env`, and a value written in the configuration itself.
const BY_NAME: &str = "tok-abcdef123456";
const NAMED: &str = "pass-xyz-987654";
const INLINE: &str = "key-inline-555555";
const SECRETS: [&str; 3] = [BY_NAME, NAMED, INLINE];

/// A CLI agent that, like a careless tool, prints the secrets in its environment back,
/// together with the prompt it was given.
fn world() -> World {
    let w = World::new();
    let (dir, project) = (&w.dir, w.project.clone());
    // A project file holding a secret: scanned into the memory, masked.
    std::fs::write(project.join("deploy.toml"), format!("api_key = \"{INLINE}\"\n")).unwrap();
    let calls = dir.path().join("calls.log");
    let leaky = dir.path().join("leaky.sh");
    write_script(
        &leaky,
        &format!(
            "printf '%s\\n' \"$1\" >> '{calls}'\necho \"deploying with $SERVICE_API_KEY, $DEPLOY_PASSPHRASE and $MY_SERVICE_TOKEN\"\necho 'def deploy(): pass'\n",
            calls = calls.display()
        ),
    );
    // One that fails, quoting its secret in the error (as tools do with auth errors).
    write_script(
        &dir.path().join("failing.sh"),
        "echo \"429 rate limit exceeded for key $SERVICE_API_KEY (token $MY_SERVICE_TOKEN)\" >&2\nexit 3\n",
    );
    let config = w.config.clone();
    let env = format!("env = {{ SERVICE_API_KEY = \"{INLINE}\" }}\n");
    let retry = "retry = { max_attempts = 2, initial_backoff_ms = 10, max_backoff_ms = 10 }\n";
    let text = [
        "[settings]\nsecret_env = [\"DEPLOY_PASSPHRASE\"]\n\n".to_string(),
        cli_agent("leaky", &leaky, &env),
        cli_agent("failing", &dir.path().join("failing.sh"), &(env.clone() + retry)),
        workflow("leak", 1, &[("leaky", "implement")]),
        workflow("fail", 1, &[("failing", "implement")]),
    ];
    std::fs::write(&config, text.concat()).unwrap();
    w
}

fn troupe(w: &World, args: &[&str]) -> Output {
    w.troupe(args)
        .env("MY_SERVICE_TOKEN", BY_NAME)
        .env("DEPLOY_PASSPHRASE", NAMED)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn assert_no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows the secret {s}:\n{text}");
    }
}

fn task() -> String {
    format!("deploy the service with {BY_NAME}, {NAMED} and {INLINE}")
}

#[test]
fn secrets_never_appear_in_logs_output_or_the_audit_trail() {
    let w = world();
    let out = troupe(&w, &["-vvv", "run", "--workflow", "leak", &task()]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    // The logs were on (trace level), so there was something to leak into.
    assert!(String::from_utf8_lossy(&out.stderr).lines().count() > 10, "{all}");
    assert!(all.contains("[REDACTED]"), "the agent's answer is masked, not dropped:\n{all}");
    assert_no_secret("`troupe -vvv run`", &all);
    // Not even the agent got them: the prompt it was given was masked.
    let given = std::fs::read_to_string(w.path("calls.log")).unwrap();
    assert!(given.contains("[REDACTED]"), "{given}");
    assert_no_secret("the prompt given to the agent", &given);

    // An agent failing with the secret in its error: logged, stored, shown — masked.
    let out = troupe(&w, &["-vvv", "run", "--workflow", "fail", "deploy it"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    // Retried (a rate limit is transient): the retry is logged with the error, masked.
    assert!(all.contains("retrying"), "{all}");
    assert!(all.contains("rate limit exceeded for key [REDACTED]"), "{all}");
    assert_no_secret("a failing run's output and logs", &all);

    // Every file troupe wrote: the store, the audit trail, the memory.
    let mut stack = vec![w.home.clone()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files += 1;
                let bytes = std::fs::read(&path).unwrap();
                // A run's workspace holds a copy of the project: the user's own files, as
                // they are in the project, are not troupe's to mask.
                let workspaces = w.home.join("workspaces");
                let in_project = path
                    .strip_prefix(&workspaces)
                    .ok()
                    .map(|rel| rel.components().skip(2).collect::<PathBuf>())
                    .map(|rel| w.project.join(rel));
                if in_project.and_then(|p| std::fs::read(p).ok()).is_some_and(|b| b == bytes) {
                    continue;
                }
                for s in SECRETS {
                    assert!(
                        !bytes.windows(s.len()).any(|win| win == s.as_bytes()),
                        "{} holds the secret {s}",
                        path.display()
                    );
                }
            }
        }
    }
    assert!(files > 3, "the data folder was written");

    let runs: Value = serde_json::from_slice(&troupe(&w, &["runs", "--json"]).stdout).unwrap();
    let id = runs[0]["id"].as_str().unwrap().to_string();
    for args in [
        vec!["runs", "show", &id, "--prompts"],
        vec!["runs", "show", &id, "--prompts", "--json"],
        vec!["runs", "audit", &id[..13]],
        vec!["runs", "audit", &id, "--json"],
    ] {
        let out = troupe(&w, &args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        assert_no_secret(&format!("{args:?}"), &text(&out));
    }
}

#[test]
fn the_audit_trail_shows_what_was_sent_and_received() {
    let w = world();
    let out = troupe(&w, &["run", "--workflow", "leak", "write a deploy function"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let runs: Value = serde_json::from_slice(&troupe(&w, &["runs", "--json"]).stdout).unwrap();
    let id = runs[0]["id"].as_str().unwrap().to_string();

    let shown = troupe(&w, &["runs", "show", &id, "--prompts"]);
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(shown.contains("── audit trail ──"), "{shown}");
    assert!(shown.contains("PROMPT → leaky (implement"), "{shown}");
    assert!(shown.contains("write a deploy function"), "the prompt is shown: {shown}");
    assert!(
        shown.contains("RESPONSE ← leaky") && shown.contains("  | def deploy(): pass"),
        "{shown}"
    );
    assert!(shown.contains("RUN FINISHED completed"), "{shown}");

    let out = troupe(&w, &["runs", "audit", &id, "--json"]);
    let entries: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> =
        entries.as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["run_started", "prompt_sent", "response_received", "run_finished"]);
    assert_eq!(entries[1]["agent"], "leaky");
    assert!(entries[1]["prompt"].as_str().unwrap().contains("write a deploy function"));
    assert!(entries[2]["response"].as_str().unwrap().contains("def deploy(): pass"));

    // The text trail is a plain file beside it, for `less` and `tail -f`.
    let log = std::fs::read_to_string(w.home.join("audit").join(format!("{id}.log"))).unwrap();
    assert!(log.contains("PROMPT → leaky"), "{log}");

    // Unknown ids say so.
    let out = troupe(&w, &["runs", "audit", "ffffffff"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no audit trail for a run ffffffff"), "{}", text(&out));
}

#[test]
fn usage_shows_the_tokens_of_the_runs_just_made() {
    let w = world();
    let out = troupe(&w, &["usage"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("No runs yet"), "{}", text(&out));
    for task in ["first task", "second task"] {
        assert_eq!(troupe(&w, &["run", "--workflow", "leak", task]).status.code(), Some(0));
    }
    let out = troupe(&w, &["usage", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["total"]["runs"], 2);
    assert_eq!(report["total"]["calls"], 2);
    let total = &report["total"]["tokens"];
    let tokens = total["prompt"].as_u64().unwrap() + total["completion"].as_u64().unwrap();
    assert!(tokens > 0, "{report}");
    assert_eq!(report["by_agent"]["leaky"]["calls"], 2);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs[0]["task"], "second task", "newest first");

    let out = troupe(&w, &["usage"]);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(shown.contains("AGENT") && shown.contains("leaky"), "{shown}");
    assert!(shown.contains(&format!("total: 2 run(s), 2 call(s), {tokens} tokens")), "{shown}");

    // Filters: this project, and a date after the runs.
    let project = w.project.canonicalize().unwrap();
    let out = troupe(&w, &["usage", "--json", "--project", project.to_str().unwrap()]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["total"]["runs"], 2);
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
    let out = troupe(&w, &["usage", "--since", &tomorrow]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("No runs match"), "{}", text(&out));
    let out = troupe(&w, &["usage", "--since", "someday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("is not a date"), "{}", text(&out));
    let out = troupe(&w, &["usage", "--project", "/no/such/folder"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("cannot be used"), "{}", text(&out));
}

#[test]
fn a_run_over_budget_makes_no_call_and_says_so() {
    let w = world();
    let out = troupe(&w, &["run", "--workflow", "leak", "--budget-tokens", "50", "write it"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("⊘ budget exceeded"), "{all}");
    assert!(all.contains("the run's token budget is 50"), "{all}");
    assert!(all.contains("--budget-tokens"), "says what to do: {all}");
    assert!(!w.path("calls.log").exists(), "the agent must not have been called");
    let runs: Value = serde_json::from_slice(&troupe(&w, &["runs", "--json"]).stdout).unwrap();
    assert_eq!(runs[0]["state"], "budget_exceeded");
    assert_eq!(runs[0]["budget"]["tokens"], 50);
    let id = runs[0]["id"].as_str().unwrap().to_string();
    // The refusal is in its audit trail.
    let trail = text(&troupe(&w, &["runs", "audit", &id]));
    assert!(trail.contains("CALL NOT MADE leaky"), "{trail}");
    // Resumed with a larger budget, it goes on and completes.
    let out = troupe(&w, &["runs", "resume", &id, "--budget-tokens", "100000"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(w.path("calls.log").exists());
    let runs: Value = serde_json::from_slice(&troupe(&w, &["runs", "--json"]).stdout).unwrap();
    assert_eq!(runs[0]["state"], "completed");
    assert_eq!(runs[0]["budget"]["tokens"], 100000);
    std::fs::remove_file(w.path("calls.log")).unwrap();

    // A budget in the configuration applies to every run.
    let config = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        config.replace("[settings]\n", "[settings]\nrun_token_budget = 40\n"),
    )
    .unwrap();
    let out = troupe(&w, &["run", "--workflow", "leak", "write it"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("the run's token budget is 40"), "{}", text(&out));
    assert!(!w.path("calls.log").exists());

    // A flag overrides it; a large enough budget lets the run through.
    let out = troupe(&w, &["run", "--workflow", "leak", "--budget-tokens", "100000", "write it"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(w.path("calls.log").exists());
}
