//! The audit trail's cost per entry: a run's prompt, response and agent messages appended
//! through the masker, as `troupe run` writes them.
//!
//! ```text
//! cargo bench -p troupe-runtime --bench audit
//! ```
//! Prints a Markdown row for docs/BENCHMARKS.md: entries appended by several runs in turn,
//! and the time per entry (median of rounds).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use troupe_adapters::config::Role;
use troupe_observability::redact::Redactor;
use troupe_runtime::Tokens;
use troupe_runtime::audit::{AuditEvent, AuditLog};
use troupe_workflows::engine::StepPos;

fn events(i: usize) -> Vec<AuditEvent> {
    let pos = StepPos { iteration: 1, step: i % 3 };
    let prompt = "Implement the function as asked; keep the style of the file.\n".repeat(30);
    let response = "def reverse(s):\n    return s[::-1]\n".repeat(30);
    vec![
        AuditEvent::PromptSent {
            pos,
            role: Role::Implement,
            agent: "coder".into(),
            context_nodes: vec!["file:src/lib.rs".into(), "task:1".into()],
            max_tokens: 512,
            prompt,
        },
        AuditEvent::Agent {
            pos,
            message: "coder: attempt 1 failed (HTTP 503); retrying in 500 ms".into(),
        },
        AuditEvent::ResponseReceived {
            pos,
            agent: "coder".into(),
            model: Some("m".into()),
            tokens: Tokens { prompt: 500, completion: 200 },
            tokens_estimated: false,
            cost: 0.0,
            latency_ms: 900,
            retries: 1,
            fallback_from: Vec::new(),
            response,
        },
    ]
}

/// The file part alone, per entry: the `.jsonl` line and the `.log` text appended to a run's
/// two files, either opening them for every entry (as the trail did before it kept them
/// open) or through handles kept open per run.
fn files_only(reopen: bool, runs: usize, steps: usize) -> Duration {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let line = vec![b'x'; 2000];
    let open = |p: &std::path::Path| {
        std::fs::OpenOptions::new().create(true).append(true).open(p).unwrap()
    };
    let paths: Vec<_> = (0..runs)
        .map(|r| (dir.path().join(format!("{r}.jsonl")), dir.path().join(format!("{r}.log"))))
        .collect();
    let mut kept: Vec<_> = paths.iter().map(|(j, l)| (open(j), open(l))).collect();
    let mut entries = 0u32;
    let started = Instant::now();
    for _ in 0..steps * 3 {
        for (r, (j, l)) in paths.iter().enumerate() {
            if reopen {
                std::fs::create_dir_all(dir.path()).unwrap();
                open(j).write_all(&line).unwrap();
                open(l).write_all(&line).unwrap();
            } else {
                kept[r].0.write_all(&line).unwrap();
                kept[r].1.write_all(&line).unwrap();
            }
            entries += 1;
        }
    }
    started.elapsed() / entries
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // Under `cargo test --all-targets` a quick smoke run.
    let scale = if std::env::args().any(|a| a == "--bench") { 1 } else { 20 };
    let runs = 20;
    let steps = 100 / scale;
    let rounds = 5;
    let mut per_entry = Vec::new();
    for _ in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(
            Some(dir.path().to_path_buf()),
            Redactor::new(["sk-secret-one-123456", "tok-secret-two-abcdef", "pass-three-987654"]),
        );
        let mut entries = 0u32;
        let started = Instant::now();
        for step in 0..steps {
            for run in 0..runs {
                for e in events(step) {
                    log.append(&format!("run-{run:03}"), e);
                    entries += 1;
                }
            }
        }
        per_entry.push(started.elapsed() / entries);
    }
    per_entry.sort();
    let median: Duration = per_entry[rounds / 2];
    println!(
        "| audit trail, per entry ({runs} runs interleaved, {} entries each, masked, two files) | {:.1} µs |",
        steps * 3,
        median.as_secs_f64() * 1e6
    );
    for (reopen, what) in [(true, "opened per entry"), (false, "kept open per run")] {
        let mut t: Vec<Duration> = (0..rounds).map(|_| files_only(reopen, runs, steps)).collect();
        t.sort();
        println!(
            "| the two appends alone, files {what} (2 KB each) | {:.1} µs |",
            t[rounds / 2].as_secs_f64() * 1e6
        );
    }
}
