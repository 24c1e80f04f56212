//! `troupe export obsidian` driven as a user would, on a real store in a temporary
//! `TROUPE_HOME`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::troupe_in as troupe;
use serde_json::Value;
use troupe_context::{EdgeType, NewNode, NodeType, Store, StoreOptions, project_id_for};

fn json_of(o: &Output) -> Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

struct World {
    _dir: tempfile::TempDir,
    home: PathBuf,
    project: PathBuf,
    other: PathBuf,
    vault: PathBuf,
}

/// A store with a few nodes in the project folder's project and one in another project.
fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let project = dir.path().join("project");
    let other = dir.path().join("other");
    for d in [&home, &project, &other] {
        std::fs::create_dir_all(d).unwrap();
    }
    let store = Store::open(&home, StoreOptions::without_embeddings()).unwrap();
    let p = project_id_for(&project).unwrap().0;
    let q = project_id_for(&other).unwrap().0;
    let up = |n: NewNode| store.upsert_node(n).unwrap().id;
    let task =
        up(NewNode::new(&p, NodeType::Task, "Add pagination", "Task: add it\nOutcome: done")
            .with_tags(["success"]));
    let decision =
        up(NewNode::new(&p, NodeType::Decision, "Cursor pagination", "Decision: cursors"));
    let mistake =
        up(NewNode::new(&p, NodeType::Mistake, "Off by one", "What happened: lost a row"));
    let pattern = up(NewNode::new(&p, NodeType::Pattern, "../../etc/passwd", "hostile title"));
    up(NewNode::new(&q, NodeType::Concept, "Elsewhere", "another project"));
    let null = serde_json::Value::Null;
    store.link(&decision, &task, EdgeType::PartOf, 1.0, null.clone()).unwrap();
    store.link(&mistake, &task, EdgeType::CausedBy, 1.0, null.clone()).unwrap();
    store.link(&pattern, &decision, EdgeType::DerivedFrom, 1.0, null).unwrap();
    drop(store);
    let vault = dir.path().join("vault");
    World { _dir: dir, home, project, other, vault }
}

#[test]
fn export_obsidian_writes_a_vault_and_a_second_export_rewrites_nothing() {
    let w = world();
    let vault = w.vault.to_str().unwrap();
    let s = json_of(&troupe(&w.home, &w.project, &["export", "obsidian", vault, "--json"]));
    assert_eq!(s["notes"], 4);
    assert_eq!(s["written"], 4);
    assert_eq!(s["links"], 3);
    assert_eq!(s["projects"], 1);
    assert_eq!(s["by_type"]["decision"], 1);
    for f in [
        "Tasks/Add pagination.md",
        "Decisions/Cursor pagination.md",
        "Mistakes/Off by one.md",
        "Patterns/etc-passwd.md",
        "_Index.md",
        ".obsidian/graph.json",
        ".obsidian/app.json",
        ".troupe-export.json",
    ] {
        assert!(w.vault.join(f).is_file(), "{f} missing");
    }
    let task = std::fs::read_to_string(w.vault.join("Tasks/Add pagination.md")).unwrap();
    assert!(task.starts_with("---\nid: "), "{task}");
    assert!(
        task.contains("### Parts\n\n- [[Decisions/Cursor pagination|Cursor pagination]]"),
        "{task}"
    );
    assert!(task.contains("### Causes\n\n- [[Mistakes/Off by one|Off by one]]"), "{task}");
    assert!(!w.home.join("etc").exists() && !w.vault.join("../etc").exists());

    let s = json_of(&troupe(&w.home, &w.project, &["export", "obsidian", vault, "--json"]));
    assert_eq!((s["written"].as_u64(), s["unchanged"].as_u64()), (Some(0), Some(4)));

    // The human summary.
    let o = troupe(&w.home, &w.project, &["export", "obsidian", vault]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("4 notes in") && out.contains("0 written, 4 unchanged, 0 removed; 3 links"),
        "{out}"
    );
}

#[test]
fn export_obsidian_filters_by_project_type_and_date() {
    let w = world();
    let vault = w.vault.to_str().unwrap();
    let s = json_of(&troupe(
        &w.home,
        &w.project,
        &["export", "obsidian", vault, "--types", "decisions,task", "--json"],
    ));
    assert_eq!((s["notes"].as_u64(), s["links"].as_u64()), (Some(2), Some(1)));
    assert!(!w.vault.join("Mistakes").exists());

    // Another folder's vault: every project; the notes of the earlier selection that are
    // outside the new one are not there.
    let all = w.vault.with_file_name("all");
    let s = json_of(&troupe(
        &w.home,
        &w.project,
        &["export", "obsidian", all.to_str().unwrap(), "--all-projects", "--since", "1d", "--json"],
    ));
    assert_eq!((s["notes"].as_u64(), s["projects"].as_u64()), (Some(5), Some(2)));
    let s = json_of(&troupe(
        &w.home,
        &w.project,
        &[
            "export",
            "obsidian",
            all.to_str().unwrap(),
            "--project",
            w.other.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!((s["notes"].as_u64(), s["removed"].as_u64()), (Some(1), Some(4)));
    let s = json_of(&troupe(
        &w.home,
        &w.project,
        &[
            "export",
            "obsidian",
            all.to_str().unwrap(),
            "--all-projects",
            "--since",
            "2999-01-01",
            "--json",
        ],
    ));
    assert_eq!(s["notes"], 0);

    // Usage errors.
    let o = troupe(
        &w.home,
        &w.project,
        &["export", "obsidian", vault, "--all-projects", "--project", "x"],
    );
    assert_eq!(o.status.code(), Some(2));
    let o = troupe(&w.home, &w.project, &["export", "obsidian", vault, "--types", "bugs"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown node type"));
}
