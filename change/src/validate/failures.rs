//! Reading test runners' output: the failing tests' names and the assertion lines.

/// The names of the failing tests in a test runner's output, in order, without repeats:
/// pytest (`FAILED tests/test_x.py::test_y - …`, `ERROR tests/test_x.py`), unittest
/// (`FAIL: test_y (tests.test_x.T.test_y)`), cargo test (`test foo ... FAILED`) and go test
/// (`--- FAIL: TestX (0.00s)`).
pub fn failing_tests(output: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: String| {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    };
    for raw in output.lines() {
        let line = raw.trim_end();
        // pytest's short summary.
        if let Some(rest) = line.strip_prefix("FAILED ").or_else(|| line.strip_prefix("ERROR ")) {
            let name = rest.split(" - ").next().unwrap_or(rest).trim();
            if !name.contains(' ') && (name.contains("::") || name.ends_with(".py")) {
                add(name.to_string());
                continue;
            }
        }
        // unittest: "FAIL: test_y (module.Class.test_y)" or "(module.Class)" before 3.11.
        if let Some(rest) = line.strip_prefix("FAIL: ").or_else(|| line.strip_prefix("ERROR: "))
            && let Some((test, rest)) = rest.split_once(" (")
            && let Some(owner) = rest.strip_suffix(')')
        {
            let dotted = format!(".{test}");
            if owner.ends_with(&dotted) {
                add(owner.to_string());
            } else {
                add(format!("{owner}.{test}"));
            }
            continue;
        }
        // cargo test.
        if let Some(rest) = line.strip_prefix("test ")
            && let Some(name) = rest.strip_suffix(" ... FAILED")
        {
            add(name.trim().to_string());
            continue;
        }
        // go test (also nested subtests, indented).
        if let Some(rest) = line.trim_start().strip_prefix("--- FAIL: ") {
            add(rest.split(" (").next().unwrap_or(rest).trim().to_string());
        }
    }
    names
}

/// The lines of a test runner's output that say what was expected and what came instead,
/// in order, without repeats (at most 40): pytest's `E   assert 3 == 4`, Python's
/// `AssertionError: …` and other `…Error:` lines, cargo's `assertion … failed`, `left:`,
/// `right:` and panic messages, go's `x_test.go:12: …`, jest's `Expected:`/`Received:`.
pub fn assertion_lines(output: &str) -> Vec<String> {
    let lines: Vec<&str> = output.lines().collect();
    let mut found: Vec<String> = Vec::new();
    let mut add = |line: &str| {
        let line = line.trim_end();
        if !line.trim().is_empty() && found.len() < 40 && !found.iter().any(|f| f == line) {
            found.push(line.to_string());
        }
    };
    for (i, raw) in lines.iter().enumerate() {
        let line = raw.trim();
        let pytest_e = raw.starts_with("E ") || *raw == "E";
        let python_error = line.split_whitespace().any(|word| {
            (word.ends_with("Error:") || word.ends_with("Exception:"))
                && word.chars().next().is_some_and(char::is_alphabetic)
        });
        let rust = line.starts_with("assertion")
            || line.starts_with("left:")
            || line.starts_with("right:")
            || (line.starts_with("thread '") && line.contains("panicked at"));
        let go = line
            .split_once(".go:")
            .is_some_and(|(file, rest)| file.ends_with("_test") && rest.contains(": "));
        let jest = line.starts_with("Expected:") || line.starts_with("Received:");
        if pytest_e || python_error || rust || go || jest {
            add(raw);
            // A Rust panic's message is on the next line.
            if line.starts_with("thread '")
                && let Some(next) = lines.get(i + 1)
            {
                add(next);
            }
        }
    }
    found
}
