use std::path::{Path, PathBuf};

use pretty_assertions::assert_eq;
use proptest::prelude::*;

use super::apply::{count_lines, replace_once};
use super::*;
use crate::safety::Policy;
use crate::testing::folder_with;

fn read(root: &Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path)).unwrap()
}

const CALC: &str = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n";
const CALC_FIXED: &str = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n";

/// Real-world answer shapes: (name, files before, answer, expected files after).
#[allow(clippy::type_complexity)]
fn table()
-> Vec<(&'static str, Vec<(&'static str, &'static str)>, String, Vec<(&'static str, &'static str)>)>
{
    vec![
        (
            "search/replace in a python fence with prose around",
            vec![("calc.py", CALC)],
            "The bug is in `add`: it subtracts.\n\ncalc.py\n```python\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n```\n\nThis makes the test pass.".into(),
            vec![("calc.py", CALC_FIXED)],
        ),
        (
            "CRLF answer, no fence language, ./ path",
            vec![("calc.py", CALC)],
            "./calc.py\r\n```\r\n<<<<<<< SEARCH\r\n    return a - b\r\n=======\r\n    return a + b\r\n>>>>>>> REPLACE\r\n```\r\n".into(),
            vec![("calc.py", CALC_FIXED)],
        ),
        (
            "whole file where SEARCH/REPLACE was asked (file name line, then a fence)",
            vec![("calc.py", CALC)],
            format!("Here is the corrected file.\n\ncalc.py\n```python\n{CALC_FIXED}```\n"),
            vec![("calc.py", CALC_FIXED)],
        ),
        (
            "path in the fence info string",
            vec![("calc.py", CALC)],
            format!("```python calc.py\n{CALC_FIXED}```"),
            vec![("calc.py", CALC_FIXED)],
        ),
        (
            "path as the fence language",
            vec![("calc.py", CALC)],
            format!("```calc.py\n{CALC_FIXED}```"),
            vec![("calc.py", CALC_FIXED)],
        ),
        (
            "bold path, markers of other lengths, missing indentation",
            vec![("calc.py", CALC)],
            "**calc.py**\n```python\n<<<<< SEARCH\ndef add(a, b):\nreturn a - b\n=====\ndef add(a, b):\nreturn a + b\n>>>>> REPLACE\n```".into(),
            // The SEARCH lost its indentation: the indentation rule can't map "" to two
            // different indents, so this one is not applied (checked below as a failure).
            vec![("calc.py", CALC)],
        ),
        (
            "whole block indented wrongly: re-indented to the file's",
            vec![("m.py", "class A:\n    def f(self):\n        return 1\n")],
            "m.py\n```\n<<<<<<< SEARCH\ndef f(self):\n    return 1\n=======\ndef f(self):\n    if self:\n        return 2\n    return 1\n>>>>>>> REPLACE\n```".into(),
            vec![("m.py", "class A:\n    def f(self):\n        if self:\n            return 2\n        return 1\n")],
        ),
        (
            "tabs in the file, spaces in the answer",
            vec![("main.go", "func f() int {\n\tx := 1\n\treturn x\n}\n")],
            "main.go\n```go\n<<<<<<< SEARCH\n    x := 1\n    return x\n=======\n    x := 1\n    if x > 0 {\n        return 2\n    }\n    return x\n>>>>>>> REPLACE\n```".into(),
            vec![("main.go", "func f() int {\n\tx := 1\n\tif x > 0 {\n\t\treturn 2\n\t}\n\treturn x\n}\n")],
        ),
        (
            "trailing whitespace differences",
            vec![("a.txt", "one  \ntwo\nthree\n")],
            "a.txt\n```\n<<<<<<< SEARCH\none\ntwo   \n=======\nONE\nTWO\n>>>>>>> REPLACE\n```".into(),
            vec![("a.txt", "ONE\nTWO\nthree\n")],
        ),
        (
            "two edits to one file",
            vec![("calc.py", CALC)],
            "calc.py\n```python\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n```\n\nAnd also:\n\n```python\n<<<<<<< SEARCH\n    return a * b\n=======\n    return b * a\n>>>>>>> REPLACE\n```".into(),
            vec![("calc.py", "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return b * a\n")],
        ),
        (
            "a new file through an empty SEARCH, path as a markdown heading",
            vec![("calc.py", CALC)],
            "### tests/test_calc.py\n```python\n<<<<<<< SEARCH\n=======\nfrom calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n>>>>>>> REPLACE\n```".into(),
            vec![("calc.py", CALC), ("tests/test_calc.py", "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")],
        ),
        (
            "a new file as a whole file, with `# File:` label",
            vec![],
            "# File: pkg/util.py\n```python\ndef double(x):\n    return 2 * x\n```".into(),
            vec![("pkg/util.py", "def double(x):\n    return 2 * x\n")],
        ),
        (
            "path as a comment on the fence's first line",
            vec![],
            "```python\n# util.py\ndef double(x):\n    return 2 * x\n```".into(),
            vec![("util.py", "def double(x):\n    return 2 * x\n")],
        ),
        (
            "prose line with a backticked path",
            vec![("calc.py", CALC)],
            format!("Here is the updated `calc.py`:\n\n```python\n{CALC_FIXED}```\nLet me know!"),
            vec![("calc.py", CALC_FIXED)],
        ),
        (
            "a CRLF file keeps CRLF",
            vec![("w.txt", "a\r\nb\r\nc\r\n")],
            "w.txt\n```\n<<<<<<< SEARCH\nb\n=======\nB\n>>>>>>> REPLACE\n```".into(),
            vec![("w.txt", "a\r\nB\r\nc\r\n")],
        ),
        (
            "block without a closing REPLACE marker at the end of the answer",
            vec![("calc.py", CALC)],
            "calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n".into(),
            vec![("calc.py", CALC_FIXED)],
        ),
        (
            "an answer with no edits",
            vec![("calc.py", CALC)],
            "I think the code is correct as it is. Example:\n```python\nadd(1, 2)\n```".into(),
            vec![("calc.py", CALC)],
        ),
    ]
}

#[test]
fn realistic_answers_give_the_expected_files() {
    for (name, before, answer, after) in table() {
        let dir = folder_with(&before);
        let edits = parse(&answer);
        let outcome = apply(dir.path(), &edits, &Policy::default()).unwrap();
        for (path, want) in &after {
            assert_eq!(&read(dir.path(), path), want, "case: {name}; outcome {outcome:?}");
        }
        assert!(outcome.refused.is_empty(), "case: {name}: {outcome:?}");
    }
}

#[test]
fn a_whole_file_cut_off_by_the_output_limit_is_reported_not_applied() {
    // Measured with the 1.5B model: asked for blocks on a 279-line file, it wrote the whole
    // file and hit the token limit in the middle of it.
    let dir = folder_with(&[("calc.py", CALC)]);
    let (edits, outcome) = apply_answer(
        dir.path(),
        "calc.py\n```python\ndef add(a, b):\n    return a + b\n\n\ndef mul(a,",
        &["calc.py".to_string()],
        &Policy::default(),
    )
    .unwrap();
    assert!(edits.is_empty());
    assert_eq!(read(dir.path(), "calc.py"), CALC);
    assert!(outcome.problems().unwrap().contains("the whole file for calc.py was cut off"));
}

#[test]
fn the_no_edit_answer_parses_to_nothing() {
    let answer = "I think the code is correct as it is. Example:\n```python\nadd(1, 2)\n```";
    assert_eq!(parse(answer), vec![]);
    let outcome = apply(Path::new("."), &[], &Policy::default()).unwrap();
    assert!(outcome.is_clean());
    assert_eq!(outcome.problems(), None);
    assert_eq!(outcome.summary(), "changed no files");
}

#[test]
fn a_block_used_for_a_file_does_not_swallow_a_following_example_fence() {
    let answer = "calc.py\n```python\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n```\nNow this works:\n```python\nprint(add(1, 2))\n```\n";
    let edits = parse(answer);
    assert_eq!(edits.len(), 1, "{edits:?}");
}

#[test]
fn blocks_without_a_path_are_reported() {
    let parsed = parse_detailed("<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n");
    assert!(parsed.edits.is_empty());
    assert!(parsed.problems[0].contains("no file path"), "{parsed:?}");
    let parsed = parse_detailed("a.py\n<<<<<<< SEARCH\nx\n>>>>>>> REPLACE\n");
    assert!(parsed.problems[0].contains("no `=======`"), "{parsed:?}");
}

#[test]
fn not_found_names_the_edit_the_file_and_the_closest_lines() {
    let dir = folder_with(&[("calc.py", CALC)]);
    let answer = "calc.py\n```\n<<<<<<< SEARCH\n    return a * b\n=======\n    return b * a\n>>>>>>> REPLACE\n```\ncalc.py\n```\n<<<<<<< SEARCH\ndef add(a, c):\n    return a - c\n=======\ndef add(a, b):\n    return a + b\n>>>>>>> REPLACE\n```";
    let outcome = apply(dir.path(), &parse(answer), &Policy::default()).unwrap();
    assert_eq!(read(dir.path(), "calc.py"), CALC, "a failing file is untouched");
    assert_eq!(outcome.changed, Vec::<PathBuf>::new());
    let failure = &outcome.failed[0];
    assert_eq!(failure.edit, 2);
    assert_eq!(
        failure.message,
        "the SEARCH text of edit 2 was not found in calc.py; the closest lines are (1-2):\n```\ndef add(a, b):\n    return a - b\n```\nDifferences: line 1 of the file is `def add(a, b):` where your SEARCH has `def add(a, c):`; line 2 of the file is `return a - b` where your SEARCH has `return a - c`.\nCopy the SEARCH lines exactly from the file."
    );
    let problems = outcome.problems().unwrap();
    assert!(problems.contains("edit 2 was not found in calc.py"), "{problems}");
    assert!(problems.contains("No edit to calc.py was applied"), "{problems}");
    assert!(outcome.summary().contains("1 edit did not apply"));
}

#[test]
fn ambiguous_search_text_says_how_often_and_where() {
    let dir = folder_with(&[("a.py", "x = 1\ny = 2\nx = 1\nz = 3\nx = 1\n")]);
    let answer = "a.py\n```\n<<<<<<< SEARCH\nx = 1\n=======\nx = 9\n>>>>>>> REPLACE\n```";
    let outcome = apply(dir.path(), &parse(answer), &Policy::default()).unwrap();
    assert_eq!(
        outcome.failed[0].message,
        "the SEARCH text of edit 1 was found 3 times in a.py (at lines 1, 3, 5); add surrounding lines to SEARCH so it matches once"
    );
}

#[test]
fn other_files_still_apply_when_one_fails() {
    let dir = folder_with(&[("a.py", "a = 1\n"), ("b.py", "b = 1\n")]);
    let answer = "a.py\n```\n<<<<<<< SEARCH\nnope\n=======\na = 2\n>>>>>>> REPLACE\n```\nb.py\n```\n<<<<<<< SEARCH\nb = 1\n=======\nb = 2\n>>>>>>> REPLACE\n```";
    let outcome = apply(dir.path(), &parse(answer), &Policy::default()).unwrap();
    assert_eq!(read(dir.path(), "a.py"), "a = 1\n");
    assert_eq!(read(dir.path(), "b.py"), "b = 2\n");
    assert_eq!(outcome.changed, vec![PathBuf::from("b.py")]);
    assert_eq!((outcome.lines_added, outcome.lines_removed), (1, 1));
    let problems = outcome.problems().unwrap();
    assert!(problems.contains("The edits to b.py were applied"), "{problems}");
    // No closest lines worth showing: the file has nothing like "nope".
    assert!(problems.contains("was not found in a.py; copy the SEARCH lines"), "{problems}");
}

#[test]
fn hostile_answers_are_refused_and_never_written() {
    let outside = tempfile::tempdir().unwrap();
    let dir = folder_with(&[("ok.py", "x = 1\n")]);
    #[cfg(unix)]
    std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
    let mut answer = String::new();
    for path in
        ["../../etc/passwd", "/etc/passwd", ".git/config", ".env", "keys/server.pem", "out/evil.sh"]
    {
        answer.push_str(&render(&Edit::WholeFile { path: path.into(), content: "pwned\n".into() }));
    }
    answer.push_str(&render(&Edit::WholeFile { path: "ok.py".into(), content: "x = 2\n".into() }));
    let outcome = apply(dir.path(), &parse(&answer), &Policy::default()).unwrap();
    let refused: Vec<&str> = outcome.refused.iter().map(|r| r.path.as_str()).collect();
    #[cfg(unix)]
    assert_eq!(
        refused,
        [
            "../../etc/passwd",
            "/etc/passwd",
            ".git/config",
            ".env",
            "keys/server.pem",
            "out/evil.sh"
        ]
    );
    assert!(!dir.path().join(".env").exists());
    assert!(!dir.path().join("keys").exists());
    assert!(!outside.path().join("evil.sh").exists());
    assert_eq!(read(dir.path(), "ok.py"), "x = 2\n");
    assert!(outcome.problems().unwrap().contains("/etc/passwd was refused: an absolute path"));
}

#[test]
fn an_oversized_change_refuses_every_edit() {
    let dir = folder_with(&[("a.py", "a\n"), ("b.py", "b\n"), ("c.py", "c\n")]);
    let edits: Vec<Edit> = ["a.py", "b.py", "c.py"]
        .iter()
        .map(|p| Edit::WholeFile { path: (*p).into(), content: "changed\n".into() })
        .collect();
    let policy = Policy { max_files: 2, ..Policy::default() };
    let outcome = apply(dir.path(), &edits, &policy).unwrap();
    assert_eq!(outcome.refused.len(), 3);
    assert!(outcome.refused[0].reason.contains("3 files"));
    assert!(outcome.changed.is_empty());
    assert_eq!(read(dir.path(), "a.py"), "a\n");

    let big: String = (0..50).map(|i| format!("line {i}\n")).collect();
    let policy = Policy { max_lines: 40, ..Policy::default() };
    let outcome =
        apply(dir.path(), &[Edit::WholeFile { path: "a.py".into(), content: big }], &policy)
            .unwrap();
    assert!(outcome.refused[0].reason.contains("51 lines"), "{outcome:?}");
    assert_eq!(read(dir.path(), "a.py"), "a\n");
}

#[test]
fn unicode_and_folders_fail_with_a_sentence() {
    let dir = folder_with(&[("src/x.py", "x\n")]);
    std::fs::write(dir.path().join("bin.dat"), [0xff, 0xfe, 0x00]).unwrap();
    let edits = [
        Edit::WholeFile { path: "src".into(), content: "x\n".into() },
        Edit::Replace { path: "bin.dat".into(), search: "a\n".into(), replace: "b\n".into() },
    ];
    let outcome = apply(dir.path(), &edits, &Policy::default()).unwrap();
    assert!(outcome.failed[0].message.contains("is a folder"));
    assert!(outcome.failed[1].message.contains("not UTF-8"));
    // A path through a file, next to an edit that applies: a failure, not an I/O error.
    let edits = [
        Edit::WholeFile { path: "src/x.py/y.py".into(), content: "y\n".into() },
        Edit::WholeFile { path: "src/z.py".into(), content: "z\n".into() },
    ];
    let outcome = apply(dir.path(), &edits, &Policy::default()).unwrap();
    assert_eq!(
        outcome.failed[0].message,
        "src/x.py/y.py cannot be written: x.py is a file, not a folder"
    );
    assert_eq!(read(dir.path(), "src/z.py"), "z\n");
}

#[test]
fn empty_search_on_an_existing_file_appends_or_replaces_a_whole_copy() {
    assert_eq!(replace_once("a\n", "", "b\n", true), Ok("a\nb\n".into()));
    assert_eq!(replace_once("a", "", "b\n", true), Ok("a\nb\n".into()));
    assert_eq!(replace_once("a\nb\n", "", "a\nc\n", true), Ok("a\nc\n".into()));
    assert_eq!(replace_once("", "\n", "new\n", false), Ok("new\n".into()));
}

#[test]
fn a_file_without_a_final_newline_keeps_it() {
    assert_eq!(replace_once("a\nb", "b\n", "c\n", true), Ok("a\nc".into()));
    assert_eq!(replace_once("a\nb\n", "b\n", "", true), Ok("a\n".into()));
}

#[test]
fn instructions_show_one_concrete_example_and_no_placeholders() {
    let files = vec![("src/small.py".to_string(), 40), ("src/big.py".to_string(), 900)];
    let text = instructions(EditFormat::Auto, &files);
    assert!(
        text.contains("<<<<<<< SEARCH\ndef greet(name):\n    return \"Hello \" + name\n=======\n"),
        "{text}"
    );
    assert!(text.contains("Write whole files for: src/small.py."), "{text}");
    assert!(text.contains("Do not write src/big.py whole (too long)"), "{text}");
    for placeholder in ["name.py", "path/to", "lines copied", "...", "<file"] {
        assert!(!text.contains(placeholder), "placeholder {placeholder:?} in {text}");
    }
    // The worked examples parse to the edits they show.
    let edits = parse(&text);
    assert_eq!(edits.len(), 2, "{edits:?}");
    assert!(matches!(&edits[0], Edit::WholeFile { path, .. } if path == "greet.py"));
    assert!(matches!(&edits[1], Edit::Replace { path, .. } if path == "greet.py"));

    let whole = instructions(EditFormat::Auto, &[("lib.rs".to_string(), 10)]);
    assert!(!whole.contains("SEARCH"), "{whole}");
    assert!(whole.contains("src/greet.rs"), "{whole}");
    // Only large files: only the SEARCH/REPLACE example (a whole-file one invites whole files).
    let large = instructions(EditFormat::Auto, &[("big.py".to_string(), 900)]);
    assert_eq!(parse(&large).len(), 1, "{large}");
    assert!(large.contains("Do not write big.py whole"), "{large}");
    let blocks = instructions(EditFormat::SearchReplace, &[("a.go".to_string(), 10)]);
    assert!(blocks.contains("<<<<<<< SEARCH\nfunc Greet"), "{blocks}");
}

#[test]
fn counting_lines() {
    assert_eq!(count_lines("a\nb\nc\n", "a\nB\nc\nd\n"), (2, 1));
    assert_eq!(count_lines("", "a\n"), (1, 0));
}

/// A random file of distinct-ish lines, and random non-overlapping edits of line ranges.
/// Lines `start..end` replaced by new lines.
type LineEdit = (usize, usize, Vec<String>);

fn file_and_edits() -> impl Strategy<Value = (Vec<String>, Vec<LineEdit>)> {
    prop::collection::vec("[a-z]{1,6}( [a-z0-9]{1,6}){0,3}", 1..40).prop_flat_map(|lines| {
        let n = lines.len();
        let cuts = prop::collection::btree_set(0..n, 0..(n.min(8) + 1));
        let replacements =
            prop::collection::vec(prop::collection::vec("[A-Z]{1,5}( [a-z]{1,4}){0,2}", 0..4), 8);
        (Just(lines), cuts, replacements).prop_map(|(lines, cuts, replacements)| {
            // Pair the sorted cut points into [start, end) ranges that do not overlap.
            let cuts: Vec<usize> = cuts.into_iter().collect();
            let mut edits = Vec::new();
            for (k, pair) in cuts.chunks(2).enumerate() {
                let start = pair[0];
                let end = pair.get(1).copied().unwrap_or(start) + 1;
                edits.push((start, end.min(lines.len()), replacements[k].clone()));
            }
            (lines, edits)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn rendered_blocks_apply_to_the_expected_file((lines, ranges) in file_and_edits()) {
        // Make every line unique so each SEARCH text matches once.
        let lines: Vec<String> = lines.iter().enumerate().map(|(i, l)| format!("{l} {i}")).collect();
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let mut expected: Vec<String> = Vec::new();
        let mut at = 0;
        let mut answer = String::from("Here are the changes.\n\n");
        for (start, end, new) in &ranges {
            expected.extend(lines[at..*start].iter().cloned());
            expected.extend(new.iter().cloned());
            at = *end;
            answer.push_str(&render(&Edit::Replace {
                path: "f.txt".into(),
                search: lines[*start..*end].iter().map(|l| format!("{l}\n")).collect(),
                replace: new.iter().map(|l| format!("{l}\n")).collect(),
            }));
            answer.push('\n');
        }
        expected.extend(lines[at..].iter().cloned());
        let expected: String = expected.iter().map(|l| format!("{l}\n")).collect();

        let dir = folder_with(&[("f.txt", &text)]);
        let edits = parse(&answer);
        prop_assert_eq!(edits.len(), ranges.len());
        let outcome = apply(dir.path(), &edits, &Policy::default()).unwrap();
        prop_assert!(outcome.is_clean(), "{:?}", outcome);
        prop_assert_eq!(read(dir.path(), "f.txt"), expected);
    }

    #[test]
    fn rendered_whole_files_round_trip(content in "([a-z =(){}:]{0,20}\n){0,20}") {
        let edit = Edit::WholeFile { path: "src/m.py".into(), content: content.clone() };
        prop_assert_eq!(parse(&render(&edit)), vec![edit]);
    }
}

#[test]
fn an_edit_that_changes_nothing_is_reported() {
    let dir = folder_with(&[("calc.py", CALC)]);
    let answer = "calc.py\n```python\n<<<<<<< SEARCH\ndef add(a, b):\n=======\ndef add(a, b):\n>>>>>>> REPLACE\n```";
    let outcome = apply(dir.path(), &parse(answer), &Policy::default()).unwrap();
    assert_eq!(
        outcome.failed[0].message,
        "edit 1 for calc.py changes nothing: its SEARCH and REPLACE texts are the same; put the changed lines after ======="
    );
    let outcome =
        apply(dir.path(), &parse(&format!("calc.py\n```\n{CALC}```")), &Policy::default()).unwrap();
    assert!(outcome.failed[0].message.contains("it is the file as it is"), "{outcome:?}");
}

#[test]
fn a_whole_file_that_leaves_code_out_is_not_applied() {
    let dir = folder_with(&[("calc.py", CALC)]);
    let answer = "calc.py\n```python\ndef add(a, b):\n    return a + b\n\n# ... rest of the code remains unchanged ...\n```";
    let outcome = apply(dir.path(), &parse(answer), &Policy::default()).unwrap();
    assert_eq!(read(dir.path(), "calc.py"), CALC);
    assert_eq!(
        outcome.failed[0].message,
        "the whole file of edit 1 for calc.py leaves code out (line 4: `# ... rest of the code remains unchanged ...`); write every line of the file, or change only some lines with SEARCH/REPLACE blocks"
    );
    // An ordinary comment with dots, or a new file, is fine.
    let answer = "calc.py\n```python\n# Adds two numbers...\ndef add(a, b):\n    return a + b\n```\nnew.py\n```python\n# ... rest of the code\n```";
    let outcome = apply(dir.path(), &parse(answer), &Policy::default()).unwrap();
    assert!(outcome.is_clean(), "{outcome:?}");
}

#[test]
fn shortened_paths_resolve_to_the_file_that_was_shown() {
    let shown = vec![
        "src/calc.py".to_string(),
        "src/util/io.py".to_string(),
        "a/x.py".to_string(),
        "b/x.py".to_string(),
    ];
    let dir = folder_with(&[("src/calc.py", CALC)]);
    let answer = format!(
        "calc.py\n```python\n{CALC_FIXED}```\nx.py\n```python\nx = 1\n```\n./src/util/io.py\n```\nio = 1\n```\n"
    );
    let (edits, outcome) = apply_answer(dir.path(), &answer, &shown, &Policy::default()).unwrap();
    let paths: Vec<&str> = edits.iter().map(Edit::path).collect();
    // x.py is ambiguous (a/x.py, b/x.py): kept as written, a new file.
    assert_eq!(paths, ["src/calc.py", "x.py", "./src/util/io.py"]);
    assert_eq!(read(dir.path(), "src/calc.py"), CALC_FIXED);
    assert!(outcome.is_clean());
    assert!(!dir.path().join("calc.py").exists());
}

#[test]
fn unreadable_blocks_reach_the_re_ask() {
    let dir = folder_with(&[("a.py", "a = 1\n")]);
    let answer = "<<<<<<< SEARCH\na = 1\n=======\na = 2\n>>>>>>> REPLACE\n";
    let (edits, outcome) = apply_answer(dir.path(), answer, &[], &Policy::default()).unwrap();
    assert!(edits.is_empty());
    assert!(!outcome.is_clean());
    let problems = outcome.problems().unwrap();
    assert!(problems.contains("has no file path before it"), "{problems}");
    assert!(outcome.summary().contains("1 block could not be read"), "{}", outcome.summary());
}
