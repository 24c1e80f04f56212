//! Which validators a project has, when none are configured.

use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

/// The validators found in a project, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detected {
    /// The commands to run, in order.
    pub commands: Vec<String>,
    /// Why, for people: "Cargo.toml found".
    pub reason: String,
}

impl std::fmt::Display for Detected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.commands.join(", "), self.reason)
    }
}

fn found(commands: &[&str], reason: impl Into<String>) -> Option<Detected> {
    Some(Detected {
        commands: commands.iter().map(|c| (*c).to_string()).collect(),
        reason: reason.into(),
    })
}

/// Detects the project's tests, first match wins: `Cargo.toml` → `cargo test`; `go.mod` →
/// `go test ./...`; `package.json` with a real `scripts.test` → `npm test`; Python
/// (`pyproject.toml`, `setup.cfg`, `pytest.ini`, `tox.ini`, or `test_*.py`/`*_test.py` files)
/// → `python3 -m pytest -q` when pytest imports, else `python3 -m unittest discover` (with
/// `-s tests` when `tests/` is not a package: plain discovery would not look inside it and
/// pass with 0 tests); a Makefile with a `test` target → `make test`. Blocking: it may run
/// `python3 -c "import pytest"`.
pub fn detect(project: &Path) -> Option<Detected> {
    if project.join("Cargo.toml").is_file() {
        return found(&["cargo test"], "Cargo.toml found");
    }
    if project.join("go.mod").is_file() {
        return found(&["go test ./..."], "go.mod found");
    }
    if let Some(d) = detect_npm(project) {
        return Some(d);
    }
    if let Some(d) = detect_python(project) {
        return Some(d);
    }
    if let Some(name) = ["Makefile", "makefile", "GNUmakefile"]
        .iter()
        .find(|name| has_make_test(&project.join(name)))
    {
        return found(&["make test"], format!("{name} with a test target found"));
    }
    None
}

fn detect_npm(project: &Path) -> Option<Detected> {
    let text = std::fs::read_to_string(project.join("package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let script = json.get("scripts")?.get("test")?.as_str()?;
    // npm init's placeholder fails on purpose; it is not a test suite.
    if script.trim().is_empty() || script.contains("no test specified") {
        return None;
    }
    found(&["npm test"], "package.json with a test script found")
}

fn detect_python(project: &Path) -> Option<Detected> {
    let marker = ["pyproject.toml", "setup.cfg", "pytest.ini", "tox.ini"]
        .into_iter()
        .find(|m| project.join(m).is_file());
    let (prefixed, suffixed) = python_test_files(project);
    let reason = match marker {
        Some(m) => format!("{m} found"),
        None if prefixed + suffixed > 0 => {
            let n = prefixed + suffixed;
            format!("{n} Python test file{} found", if n == 1 { "" } else { "s" })
        }
        None => return None,
    };
    if pytest_available(project) {
        return found(&["python3 -m pytest -q"], format!("{reason}; pytest installed"));
    }
    let tests = project.join("tests");
    let mut command = String::from("python3 -m unittest discover");
    if tests.is_dir() && !tests.join("__init__.py").is_file() {
        command.push_str(" -s tests");
    }
    if suffixed > 0 && prefixed == 0 {
        command.push_str(" -p '*_test.py'");
    }
    found(&[command.as_str()], format!("{reason}; pytest is not installed, so unittest"))
}

/// How many `test_*.py` and `*_test.py` files the project has (gitignore-aware, 4 levels).
fn python_test_files(project: &Path) -> (usize, usize) {
    let mut prefixed = 0;
    let mut suffixed = 0;
    let walk = ignore::WalkBuilder::new(project).max_depth(Some(4)).require_git(false).build();
    for entry in walk.flatten().take(5_000) {
        let name = entry.file_name().to_string_lossy();
        if !name.ends_with(".py") || !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        if name.starts_with("test_") {
            prefixed += 1;
        } else if name.ends_with("_test.py") {
            suffixed += 1;
        }
    }
    (prefixed, suffixed)
}

fn pytest_available(project: &Path) -> bool {
    Command::new("python3")
        .args(["-c", "import pytest"])
        .current_dir(project)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn has_make_test(makefile: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(makefile) else {
        return false;
    };
    text.lines().any(|line| {
        if line.starts_with('\t') || line.starts_with(' ') || line.starts_with('#') {
            return false;
        }
        let Some((targets, rest)) = line.split_once(':') else {
            return false;
        };
        // `test := x` and `test ::= x` are variables, not targets.
        !rest.starts_with('=')
            && !rest.starts_with(":=")
            && targets.split_whitespace().any(|t| t == "test")
    })
}
