//! Golden tests of what a person sees: `troupe run`'s output with scripted CLI agents (a
//! reviewer that repeats its verdict, as a small model stuck in a loop does) compared with
//! a file in `tests/golden/`, and no line of any human output holding Rust debug text.
//!
//! Regenerate a golden file after an intended change with `UPDATE_GOLDEN=1 cargo test --test
//! run_output` and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{cli_agent, workflow, write_script};

fn troupe(home: &Path, project: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(args)
        .current_dir(project)
        .env("TROUPE_HOME", home)
        .env("TROUPE_ASSETS", home.join("assets"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("NO_COLOR", "1")
        .env_remove("TROUPE_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// Debug text a person must never see.
const DEBUG_TEXT: [&str; 4] = ["{ agent:", "Some(", ": None", "Err("];

/// Whether `line` holds a debug-printed struct: `Name { field: …`.
fn debug_struct(line: &str) -> bool {
    line.match_indices(" { ").any(|(i, _)| {
        let name = line[..i].rsplit(|c: char| !c.is_ascii_alphanumeric()).next().unwrap_or("");
        let field: String = line[i + 3..].chars().take_while(|c| *c != ' ').collect();
        name.starts_with(|c: char| c.is_ascii_uppercase())
            && field.ends_with(':')
            && field[..field.len() - 1].chars().all(|c| c.is_ascii_lowercase() || c == '_')
    })
}

fn assert_human(what: &str, text: &str) {
    for line in text.lines() {
        for bad in DEBUG_TEXT {
            assert!(!line.contains(bad), "{what}: debug text {bad:?} in line {line:?}\n{text}");
        }
        assert!(!debug_struct(line), "{what}: a debug struct in line {line:?}\n{text}");
    }
}

#[test]
fn the_debug_check_sees_debug_text() {
    assert!(debug_struct("  ↻ ServerStarting { agent: \"local-code\", restart: false }"));
    assert!(!debug_struct("fn main() { let x = 1; }"));
    assert!(!debug_struct("verdict: approved — fine"));
}

/// Replace what changes from run to run (ids, times, folders) with placeholders.
fn normalise(text: &str, dir: &Path) -> String {
    let text = text.replace(&dir.display().to_string(), "<dir>");
    let mut out = String::new();
    for line in text.lines() {
        let words: Vec<String> = line
            .split(' ')
            .map(|w| w.split('/').map(placeholder).collect::<Vec<_>>().join("/"))
            .collect();
        out.push_str(words.join(" ").trim_end());
        out.push('\n');
    }
    out
}

/// One word (or one segment of a path) with an id or a duration replaced by a placeholder.
fn placeholder(w: &str) -> String {
    let core = w.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let is_id = core.len() >= 13
        && core.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        && core.contains('-');
    let is_secs = core.len() >= 2
        && core.ends_with('s')
        && core[..core.len() - 1].chars().all(|c| c.is_ascii_digit() || c == '.')
        && core.contains('.');
    if is_id {
        w.replace(core, "<id>")
    } else if is_secs {
        w.replace(core, "<secs>")
    } else {
        w.to_string()
    }
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("no golden file {}; run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(actual, expected, "the output differs from {}", path.display());
}

#[test]
fn a_run_with_a_looping_reviewer_reads_as_verdict_and_findings() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let project = dir.path().join("project");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("notes.txt"), "notes\n").unwrap();
    let coder = dir.path().join("coder.sh");
    let reviewer = dir.path().join("reviewer.sh");
    write_script(&coder, "echo 'Nothing to change: the notes are fine.'\n");
    // The same object, forty times, as a small model in a loop prints it.
    write_script(
        &reviewer,
        "echo 'Checked the notes.'\nfor i in $(seq 40); do\n  echo '{\"verdict\": \"approved\", \"summary\": \"fine as it is\", \"findings\": [{\"severity\": \"suggestion\", \"message\": \"say what the notes are for\"}]}'\ndone\n",
    );
    let config = dir.path().join("troupe.toml");
    let text = [
        cli_agent("coder", &coder, ""),
        cli_agent("reviewer", &reviewer, ""),
        "[validate]\nenabled = false\n\n".to_string(),
        workflow("scripted", 1, &[("coder", "implement"), ("reviewer", "review")]),
    ];
    std::fs::write(&config, text.concat()).unwrap();
    let cfg = config.to_str().unwrap();
    let o = troupe(&home, &project, &["--config", cfg, "run", "--workflow", "scripted", "read"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert_human("run output", &stdout);
    assert_human("run errors", &stderr);
    assert!(!stdout.contains("\"verdict\""), "the review shows as raw JSON:\n{stdout}");
    assert_eq!(stdout.matches("say what the notes are for").count(), 1, "{stdout}");
    golden("run_review.txt", &normalise(&stdout, dir.path()));

    // A request the runtime refuses is a sentence.
    let o = troupe(&home, &project, &["--config", cfg, "run", "--workflow", "nope", "x"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("no workflow named `nope`"), "{stderr}");
    assert_human("refusal", &stderr);
    // test-agent's output.
    let o = troupe(&home, &project, &["--config", cfg, "test-agent", "reviewer", "review this"]);
    assert_human("test-agent output", &String::from_utf8_lossy(&o.stdout));
    assert_human("test-agent errors", &String::from_utf8_lossy(&o.stderr));
}
