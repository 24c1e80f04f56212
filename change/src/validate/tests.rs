use std::path::Path;
use std::time::Duration;

use pretty_assertions::assert_eq;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::testing::folder_with;

fn opts() -> Options {
    Options { timeout: Duration::from_secs(60), max_output_chars: 4_000 }
}

async fn run_in(dir: &Path, commands: &[&str], opts: &Options) -> Report {
    let commands: Vec<String> = commands.iter().map(|c| (*c).to_string()).collect();
    run(dir, &commands, opts, &CancellationToken::new()).await
}

/// A project's files: (path, content).
type Files = Vec<(&'static str, &'static str)>;

#[tokio::test]
async fn pass_and_fail_with_exit_codes_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let report =
        run_in(dir.path(), &["true", "sh -c 'echo to out; echo to err >&2; exit 3'"], &opts())
            .await;
    assert_eq!(report.results[0].outcome, Outcome::Passed);
    assert_eq!(report.results[1].outcome, Outcome::Failed { code: Some(3) });
    assert!(report.results[1].output.contains("to out"));
    assert!(report.results[1].output.contains("to err"));
    assert!(!report.passed());
    let summary = report.summary();
    assert!(summary.starts_with("1/2 passed (true "), "{summary}");
    assert!(summary.contains("exit 3' failed"), "{summary}");
    let evidence = report.evidence(2_000);
    assert!(evidence.contains("failed (exit code 3)"), "{evidence}");
    assert!(evidence.contains("`true` passed."), "{evidence}");
}

#[tokio::test]
async fn the_environment_marks_ci_and_runs_in_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let report =
        run_in(dir.path(), &["sh -c 'echo CI=$CI PY=$PYTHONDONTWRITEBYTECODE; pwd'"], &opts())
            .await;
    let out = &report.results[0].output;
    assert!(out.contains("CI=1 PY=1"), "{out}");
    let real = dir.path().canonicalize().unwrap();
    assert!(out.contains(real.to_str().unwrap()), "{out}");
}

#[tokio::test]
async fn a_missing_program_or_bad_quoting_is_not_found_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let report =
        run_in(dir.path(), &["troupe-no-such-program --flag", "sh -c 'unclosed", ""], &opts())
            .await;
    let messages: Vec<String> = report
        .results
        .iter()
        .map(|r| match &r.outcome {
            Outcome::NotFound { message } => message.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(messages[0].contains("`troupe-no-such-program` was not found on PATH"));
    assert!(messages[1].contains("unclosed quote"));
    assert!(messages[2].contains("empty"));
    assert_eq!(report.summary().split(' ').next(), Some("0/3"));
}

fn alive(pid: i32) -> bool {
    // A zombie waiting for its reaper is dead for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        }
        Err(_) => false,
    }
}

async fn grandchild_pid(path: &Path) -> i32 {
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let options = Options { timeout: Duration::from_secs(2), max_output_chars: 1_000 };
    // Bounded so that a run that does not kill at all fails instead of waiting 300 s.
    let report = tokio::time::timeout(
        Duration::from_secs(120),
        run_in(
            dir.path(),
            &["sh -c 'sleep 300 & echo $! > pid.tmp && mv pid.tmp pid; echo started; wait'"],
            &options,
        ),
    )
    .await
    .expect("the timeout did not stop the command");
    assert_eq!(report.results[0].outcome, Outcome::TimedOut);
    assert_eq!(report.results[0].output, "started");
    let pid = grandchild_pid(&pidfile).await;
    // SIGKILL is delivered before killpg returns; give the kernel a moment to tear it down.
    for _ in 0..100 {
        if !alive(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(pid), "the sleeping grandchild {pid} survived the timeout");
    assert!(report.summary().contains("timed out"));
}

#[tokio::test]
async fn cancellation_kills_the_group_and_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let watched = pidfile.clone();
    let canceller = tokio::spawn(async move {
        let pid = grandchild_pid(&watched).await;
        trigger.cancel();
        pid
    });
    let commands = vec![
        "sh -c 'sleep 300 & echo $! > pid.tmp && mv pid.tmp pid; wait'".to_string(),
        "true".to_string(),
    ];
    let report = tokio::time::timeout(
        Duration::from_secs(120),
        run(dir.path(), &commands, &opts(), &cancel),
    )
    .await
    .expect("the cancellation did not stop the command");
    let pid = canceller.await.unwrap();
    assert_eq!(report.results.len(), 1, "the run stops at the cancellation");
    assert_eq!(report.results[0].outcome, Outcome::Cancelled);
    for _ in 0..100 {
        if !alive(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(pid));
}

#[tokio::test]
async fn huge_output_keeps_a_bounded_tail() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options { timeout: Duration::from_secs(120), max_output_chars: 500 };
    // 20 MB of "y" lines, then a last line the tail must keep.
    let report =
        run_in(dir.path(), &["sh -c 'yes | head -c 20000000; echo THE-END; exit 1'"], &options)
            .await;
    let r = &report.results[0];
    assert_eq!(r.outcome, Outcome::Failed { code: Some(1) });
    assert!(r.output.chars().count() <= 500, "{}", r.output.len());
    assert!(r.output.ends_with("THE-END"), "{}", &r.output);
}

const PYTEST: &str = "\
F.                                                                       [100%]
=================================== FAILURES ===================================
___________________________________ test_add ___________________________________

    def test_add():
>       assert add(1, 2) == 3
E       assert -1 == 3
E        +  where -1 = add(1, 2)

tests/test_calc.py:5: AssertionError
=========================== short test summary info ============================
FAILED tests/test_calc.py::test_add - assert -1 == 3
ERROR tests/test_other.py - ModuleNotFoundError: No module named 'nope'
1 failed, 1 passed, 1 error in 0.02s
";

const CARGO: &str = "\
running 2 tests
test tests::adds ... FAILED
test tests::ok ... ok

failures:

---- tests::adds stdout ----

thread 'tests::adds' panicked at src/lib.rs:10:9:
assertion `left == right` failed
  left: 4
 right: 3
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace


failures:
    tests::adds

test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
";

const GO: &str = "\
--- FAIL: TestAdd (0.00s)
    calc_test.go:8: Add(1, 2) = -1; want 3
    --- FAIL: TestAdd/negative (0.00s)
FAIL
FAIL\texample.com/calc\t0.002s
";

#[test]
fn failing_tests_of_each_runner() {
    assert_eq!(failing_tests(PYTEST), ["tests/test_calc.py::test_add", "tests/test_other.py"]);
    assert_eq!(failing_tests(CARGO), ["tests::adds"]);
    assert_eq!(failing_tests(GO), ["TestAdd", "TestAdd/negative"]);
    assert_eq!(
        failing_tests("FAIL: test_add (test_calc.T.test_add)\nERROR: test_x (pkg.test_m.U)\n"),
        ["test_calc.T.test_add", "pkg.test_m.U.test_x"]
    );
    assert_eq!(failing_tests("all good\ntest a ... ok\n"), Vec::<String>::new());
}

#[test]
fn assertion_lines_of_each_runner() {
    assert_eq!(
        assertion_lines(PYTEST),
        [
            "E       assert -1 == 3",
            "E        +  where -1 = add(1, 2)",
            "ERROR tests/test_other.py - ModuleNotFoundError: No module named 'nope'",
        ]
    );
    assert_eq!(
        assertion_lines(CARGO),
        [
            "thread 'tests::adds' panicked at src/lib.rs:10:9:",
            "assertion `left == right` failed",
            "  left: 4",
            " right: 3",
        ]
    );
    assert_eq!(assertion_lines(GO), ["    calc_test.go:8: Add(1, 2) = -1; want 3"]);
}

#[test]
fn evidence_puts_the_assertions_first_and_stays_within_budget() {
    let noise: String = (0..400).map(|i| format!("noise line {i}\n")).collect();
    let report = Report {
        results: vec![CommandResult {
            command: "cargo test".into(),
            outcome: Outcome::Failed { code: Some(101) },
            duration_ms: 3_100,
            output: format!("{noise}{CARGO}"),
            failing: failing_tests(CARGO),
        }],
    };
    let evidence = report.evidence(1_500);
    assert!(evidence.chars().count() <= 1_501, "{}", evidence.len());
    let assertion = evidence.find("  left: 4").unwrap();
    let output = evidence.find("Output (end):").unwrap();
    assert!(assertion < output, "{evidence}");
    assert!(evidence.contains("Failing tests: tests::adds."), "{evidence}");
    assert!(evidence.contains("`cargo test` failed (exit code 101)"), "{evidence}");
    assert!(evidence.contains("test result: FAILED"), "the end of the output: {evidence}");
    assert_eq!(report.summary(), "0/1 passed (cargo test failed 3.1 s)");
    assert!(Report::default().passed());
    assert_eq!(
        Report::default().evidence(100),
        "No validators ran: the project has no tests troupe could find."
    );
}

#[tokio::test]
async fn real_unittest_failures_are_named_with_their_assertion() {
    let dir = folder_with(&[
        ("calc.py", "def add(a, b):\n    return a - b\n"),
        (
            "tests/test_calc.py",
            "import unittest\nfrom calc import add\n\n\nclass TestCalc(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(1, 2), 3)\n\n    def test_zero(self):\n        self.assertEqual(add(0, 0), 0)\n",
        ),
    ]);
    let detected = detect(dir.path()).unwrap();
    if detected.commands[0].contains("pytest") {
        // pytest is installed here: the unittest command is still the one to check.
        assert!(detected.reason.contains("pytest installed"));
    } else {
        assert_eq!(detected.commands, ["python3 -m unittest discover -s tests"]);
    }
    let report = run_in(dir.path(), &["python3 -m unittest discover -s tests"], &opts()).await;
    let r = &report.results[0];
    assert_eq!(r.outcome, Outcome::Failed { code: Some(1) }, "{}", r.output);
    assert_eq!(r.failing, ["test_calc.TestCalc.test_add"]);
    let evidence = report.evidence(3_000);
    assert!(evidence.contains("AssertionError: -1 != 3"), "{evidence}");
    assert!(!dir.path().join("tests/__pycache__").exists(), "no bytecode written");

    // Fixed, it passes.
    std::fs::write(dir.path().join("calc.py"), "def add(a, b):\n    return a + b\n").unwrap();
    let report = run_in(dir.path(), &["python3 -m unittest discover -s tests"], &opts()).await;
    assert!(report.passed(), "{:?}", report);
}

#[test]
fn detection_for_each_project_kind() {
    let cases: Vec<(Files, Option<&str>, &str)> = vec![
        (vec![("Cargo.toml", "[package]\n")], Some("cargo test"), "Cargo.toml found"),
        (vec![("go.mod", "module x\n")], Some("go test ./..."), "go.mod found"),
        (
            vec![("package.json", r#"{"scripts": {"test": "jest"}}"#)],
            Some("npm test"),
            "package.json with a test script found",
        ),
        (
            vec![(
                "package.json",
                r#"{"scripts": {"test": "echo \"Error: no test specified\" && exit 1"}}"#,
            )],
            None,
            "",
        ),
        (
            vec![("Makefile", "all:\n\tcc x.c\n\ntest: all\n\t./run\n")],
            Some("make test"),
            "Makefile with a test target found",
        ),
        (vec![("Makefile", "test := 1\nall:\n\ttrue\n")], None, ""),
        (vec![("README.md", "hi\n")], None, ""),
    ];
    for (files, command, reason) in cases {
        let dir = folder_with(&files);
        let got = detect(dir.path());
        match command {
            Some(command) => {
                let got = got.unwrap_or_else(|| panic!("{files:?}: nothing detected"));
                assert_eq!(got.commands, [command], "{files:?}");
                assert_eq!(got.reason, reason);
            }
            None => assert_eq!(got, None, "{files:?}"),
        }
    }
}

#[test]
fn python_detection_picks_a_discovery_that_finds_the_tests() {
    let pytest = std::process::Command::new("python3")
        .args(["-c", "import pytest"])
        .status()
        .is_ok_and(|s| s.success());
    let cases: Vec<(Files, &str, &str)> = vec![
        (vec![("pyproject.toml", "")], "python3 -m unittest discover", "pyproject.toml found"),
        (
            vec![("calc.py", ""), ("tests/test_calc.py", "")],
            "python3 -m unittest discover -s tests",
            "1 Python test file found",
        ),
        (
            vec![("tests/__init__.py", ""), ("tests/test_calc.py", "")],
            "python3 -m unittest discover",
            "1 Python test file found",
        ),
        (
            vec![("calc_test.py", ""), ("util_test.py", "")],
            "python3 -m unittest discover -p '*_test.py'",
            "2 Python test files found",
        ),
    ];
    for (files, unittest, reason) in cases {
        let got = detect(folder_with(&files).path()).unwrap();
        if pytest {
            assert_eq!(got.commands, ["python3 -m pytest -q"]);
        } else {
            assert_eq!(got.commands, [unittest], "{files:?}");
            assert!(got.reason.starts_with(reason), "{}", got.reason);
        }
    }
    // Not a Python project: a .py file that is not a test.
    assert_eq!(detect(folder_with(&[("tool.py", "")]).path()), None);
}
