//! Stores written before the token counts had one type still load: a run and its step as
//! an older troupe wrote them into the sled store (`tokens` as `{"prompt", "completion"}`)
//! read back with their counts, and `troupe usage` adds them up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use serde_json::{Value, json};
use troupe_runtime::{RunState, RunStore, Tokens, store_backend};

/// A run record as troupe 0.1 wrote it (`runs/<id>`), before `Tokens` moved.
fn old_run(project: &str) -> Value {
    json!({
        "id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "task": "add a greeting",
        "workflow_name": "quick",
        "workflow": {
            "description": "one step",
            "max_iterations": 1,
            "steps": [{"agent": "coder", "role": "implement"}]
        },
        "project_path": project,
        "project_id": "p1",
        "offline": true,
        "state": "completed",
        "created_at": "2026-11-30T10:00:00Z",
        "started_at": "2026-11-30T10:00:01Z",
        "finished_at": "2026-11-30T10:00:09Z",
        "iterations": 1,
        "output": "done",
        "tokens": {"prompt": 120, "completion": 45},
        "cost": 0.0,
        "resumed": 0
    })
}

/// Its step record (`steps/<id>/<iteration>/<step>`).
fn old_step() -> Value {
    json!({
        "run_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "pos": {"iteration": 1, "step": 0},
        "role": "implement",
        "agent": "coder",
        "answered_by": "coder",
        "state": "completed",
        "prompt": "add a greeting",
        "response": "done",
        "tokens": {"prompt": 120, "completion": 45},
        "cost": 0.0,
        "tokens_estimated": false,
        "retries": 0,
        "started_at": "2026-11-30T10:00:01Z",
        "finished_at": "2026-11-30T10:00:09Z",
        "latency_ms": 8000
    })
}

#[test]
fn a_store_written_before_the_one_token_type_loads_with_its_counts() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let id = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    {
        let backend = store_backend(&dir.path().join("data")).unwrap();
        backend.put(&format!("runs/{id}"), &old_run(&project.display().to_string())).unwrap();
        backend.put(&format!("steps/{id}/000001/0000"), &old_step()).unwrap();
    }
    let backend = store_backend(&dir.path().join("data")).unwrap();
    let store = RunStore::new(Arc::clone(&backend)).unwrap();

    let run = store.run(id).unwrap().expect("the old run loads");
    assert_eq!(run.state, RunState::Completed);
    assert_eq!(run.tokens, Tokens { prompt: 120, completion: 45 });
    let steps = store.steps(id).unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].tokens, Tokens { prompt: 120, completion: 45 });

    let usage = store.usage(None, None).unwrap();
    assert_eq!(usage.total.tokens, Tokens { prompt: 120, completion: 45 });
    assert_eq!(usage.by_agent["coder"].tokens.total(), 165);

    // Written again, the counts keep their stored names (the API's JSON too).
    let again = serde_json::to_value(&run).unwrap();
    assert_eq!(again["tokens"], json!({"prompt": 120, "completion": 45}));
}
