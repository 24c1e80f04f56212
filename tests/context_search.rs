//! `troupe context scan` and `troupe context search --explain / --json / --fusion` driven as
//! a user would, on a real store in a temporary `TROUPE_HOME` (with the installed
//! embedding model linked in where the test is about vectors).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::troupe_in as troupe;
use serde_json::Value;

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The installed assets (`$TROUPE_ASSETS`, default `~/.local/share/troupe/assets`).
fn real_assets() -> PathBuf {
    let assets = std::env::var_os("TROUPE_ASSETS")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/troupe/assets"))
        })
        .expect("no HOME");
    assert!(
        assets.join("embedding").join("model.onnx").is_file(),
        "the embedding model is not installed under {}: run `scripts/setup.sh --assets-only`",
        assets.display()
    );
    assets
}

/// A project folder: the subject of `limiter.md` is only in its last paragraph, after a
/// page of other text.
fn project(root: &Path) -> PathBuf {
    let p = root.join("project");
    std::fs::create_dir_all(&p).unwrap();
    let mut limiter = String::from("# Operations notes\n\n");
    for i in 0..40 {
        limiter.push_str(&format!(
            "Paragraph {i}: the garden shed holds the lawn mower, the rake and spare flower pots.\n\n"
        ));
    }
    limiter.push_str(
        "Calls to the model provider go through a token bucket rate limiter per agent.\n",
    );
    std::fs::write(p.join("limiter.md"), limiter).unwrap();
    std::fs::write(p.join("colours.md"), "# Palette\n\nTeal and orange for the dashboard.\n")
        .unwrap();
    std::fs::write(p.join("retry.md"), "# Retries\n\nExponential backoff with jitter.\n").unwrap();
    p
}

#[test]
fn explain_shows_each_hits_ranks_fused_score_and_matching_passage() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::symlink(real_assets(), home.join("assets")).unwrap();
    let proj = project(dir.path());
    let p = proj.to_str().unwrap();
    stdout(&troupe(&home, &proj, &["context", "scan", p]));

    let q = "token bucket rate limiter";
    let out = stdout(&troupe(&home, &proj, &["context", "search", q, "--project", p, "--explain"]));
    let first = out.lines().find(|l| l.trim_start().starts_with("1.")).unwrap_or_default();
    assert!(first.contains("limiter.md"), "{out}");
    assert!(out.contains("fused by convex"), "{out}");
    assert!(out.contains("bm25 rank 1 (score"), "{out}");
    assert!(out.contains("vector rank 1 (cosine"), "{out}");
    assert!(out.contains("fused score"), "{out}");
    // The passage shown is the one that matched, from the end of the file.
    let first_hit: String = out
        .split("\n 2. ")
        .next()
        .unwrap()
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("passage (bytes"))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(first_hit.contains("token bucket rate limiter per agent"), "{out}");
    assert!(!first_hit.contains("Paragraph 0:"), "not the head of the file: {out}");

    let json: Value = serde_json::from_str(&stdout(&troupe(
        &home,
        &proj,
        &["context", "search", q, "--project", p, "--json", "--fusion", "rrf:20"],
    )))
    .unwrap();
    assert_eq!(json["fusion"], "rrf(k 20, bm25 0.50)");
    let hit = &json["hits"][0];
    assert_eq!(hit["title"], "limiter.md");
    assert_eq!(hit["bm25_rank"], 1);
    assert_eq!(hit["vector_rank"], 1);
    assert!(hit["found_by"]["cosine"].as_f64().unwrap() > 0.3, "{hit}");
    assert!(hit["passage"]["start"].as_u64().unwrap() > 0, "{hit}");
    assert!(hit["snippet"].as_str().unwrap().contains("token bucket rate limiter"), "{hit}");

    // A reindex of an up-to-date store re-embeds nothing.
    let r: Value =
        serde_json::from_str(&stdout(&troupe(&home, &proj, &["context", "reindex", "--json"])))
            .unwrap();
    assert_eq!(r["embedded"], 0, "{r}");
}

#[test]
fn without_a_model_explain_says_there_are_no_vectors_and_bad_fusions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let proj = project(dir.path());
    let p = proj.to_str().unwrap();
    stdout(&troupe(&home, &proj, &["context", "scan", p]));
    let o = troupe(
        &home,
        &proj,
        &["context", "search", "retries backoff", "--project", p, "--explain"],
    );
    let out = stdout(&o);
    assert!(out.starts_with("bm25 search"), "{out}");
    assert!(out.contains("retry.md") && out.contains("vector rank – (no vectors)"), "{out}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("BM25 only"));

    let o =
        troupe(&home, &proj, &["context", "search", "x", "--project", p, "--fusion", "convex:2"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("0..=1"), "{err}");
    let o = troupe(&home, &proj, &["context", "search", "x", "--project", p, "--fusion", "blend"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected convex"));
}
