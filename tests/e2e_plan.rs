//! End to end with the real local model (Qwen2.5-Coder-1.5B, installed by `scripts/setup.sh`):
//! a spec for a small feature on the sample project becomes a plan of tasks (the local model
//! plans), approved, run offline task by task on the integration branch, and `plan apply`
//! lands the combined change, after which the project's tests pass.
//!
//! It takes many minutes on two cores, so it runs on demand:
//! `cargo test --test e2e_plan -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::unittest;

const SPEC: &str = "In the Python package textkit (textkit/words.py): first, word_count must count \
                    words separated by any whitespace (spaces, tabs, newlines) and return 0 for an \
                    empty string, so tests/test_words.py passes. Then add a function \
                    longest_word(text) to textkit/words.py that returns the longest word of text \
                    (the first one on a tie, \"\" for text without words), using the same notion \
                    of words, with a unittest for it in tests/test_words.py.";

#[test]
#[ignore = "needs the 1.5B local model and many minutes; run with --ignored"]
fn a_spec_becomes_a_plan_that_runs_green_offline_and_applies() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = common::Sample::new(tmp.path());
    let project = sample.project.clone();
    let troupe = |args: &[&str]| sample.troupe(args);

    let out = troupe(&["plan", "new", "--offline", "--approve", "--json", SPEC]);
    assert!(out.status.success(), "the local model gave no valid plan");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = plan["id"].as_str().unwrap().to_string();
    let tasks = plan["spec"]["tasks"].as_array().unwrap();
    assert!(!tasks.is_empty());

    let out = troupe(&["plan", "run", "--offline", &id]);
    let status = troupe(&["plan", "status", &id]);
    assert!(
        out.status.success(),
        "the plan did not finish green:\n{}",
        String::from_utf8_lossy(&status.stdout)
    );
    assert!(!unittest(&project) || tasks.is_empty(), "nothing is in the project before apply");

    let out = troupe(&["plan", "apply", &id]);
    assert!(out.status.success());
    assert!(unittest(&project), "the project's tests pass after the plan's change is applied");
    let words = std::fs::read_to_string(project.join("textkit/words.py")).unwrap();
    eprintln!("textkit/words.py after apply:\n{words}");
}
