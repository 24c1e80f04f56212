//! Several troupe commands on one data folder at once, as scripts, editors and two
//! terminals do: short commands take turns on the context store instead of failing, and a
//! command waiting on a long holder (`troupe serve`) says whom it waits for and gives up
//! after its bound, naming the holder and what to do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::Server;

fn troupe(home: &Path, project: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_troupe"));
    c.current_dir(project)
        .env("TROUPE_HOME", home)
        // BM25 only: the test is about the store's lock, not the embedding model.
        .env("TROUPE_ASSETS", home.join("no-assets"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("TROUPE_CONFIG")
        .env_remove("TROUPE_STORE_WAIT_SECS")
        .env_remove("RUST_LOG");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let project = dir.path().join("project");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&project).unwrap();
    for i in 0..20 {
        std::fs::write(
            project.join(format!("mod{i}.py")),
            format!("def greet_{i}(name):\n    return 'hello ' + name\n"),
        )
        .unwrap();
    }
    let o = troupe(&home, &project).args(["context", "scan"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    (dir, home, project)
}

#[test]
fn four_searches_at_once_on_one_data_folder_all_succeed() {
    let (_dir, home, project) = setup();
    let children: Vec<_> = (0..4)
        .map(|_| {
            troupe(&home, &project)
                .args(["context", "search", "greet hello", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for (i, o) in outs.iter().enumerate() {
        assert!(o.status.success(), "search {i} failed: {}", text(&o.stderr));
        assert!(!text(&o.stderr).contains("in use by another"), "{}", text(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(!v["hits"].as_array().unwrap().is_empty(), "search {i} found nothing: {v}");
    }
}

#[test]
fn a_command_waiting_on_serve_names_it_and_gives_up_after_its_bound() {
    let (_dir, home, project) = setup();
    let mut cmd = troupe(&home, &project);
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--grace-secs", "1"]);
    let server = Server::spawn(cmd, None);
    let o = troupe(&home, &project)
        .args(["context", "search", "greet"])
        .env("TROUPE_STORE_WAIT_SECS", "2")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert!(!o.status.success(), "{err}");
    let pid = server.pid();
    assert!(err.contains(&format!("waiting for pid {pid} (troupe serve")), "{err}");
    assert_eq!(err.matches("waiting for pid").count(), 1, "one line, once: {err}");
    assert!(err.contains("still after waiting 2 s"), "{err}");
    assert!(err.contains(&format!("pid {pid} is `troupe serve`: use its HTTP API")), "{err}");
    // Not waiting at all fails at once, without the waiting line.
    let o = troupe(&home, &project)
        .args(["context", "search", "greet"])
        .env("TROUPE_STORE_WAIT_SECS", "0")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(!text(&o.stderr).contains("waiting for pid"), "{}", text(&o.stderr));
    drop(server);
}
