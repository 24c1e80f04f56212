//! The built-in check `troupe-expect NAME…`: it passes when every NAME is in some file of
//! the workspace (the files git would see: ignore files respected, `.git` skipped, files over
//! 1 MiB and binary ones not read), and fails naming the missing ones. `NAME@PATH` expects
//! the name *used* in that file — on a line that is not an import, so a test file that only
//! imports `longest_word` does not count as a test of it (`tests/test_words.py`). A plan's task expects
//! the code names its description gives (`longest_word`), so a run that never wrote the
//! function it was asked for is not green because the tests that exist still pass.

use std::path::Path;

use super::Outcome;

/// The command word that selects this check.
pub const COMMAND: &str = "troupe-expect";

/// Files larger than this are not read.
const MAX_FILE: u64 = 1 << 20;

/// The command that expects `names` (`None` for no names).
pub fn command(names: &[String]) -> Option<String> {
    let names: Vec<String> = names
        .iter()
        .filter(|n| !n.is_empty())
        .map(|n| shlex::try_quote(n).map_or_else(|_| n.clone(), |q| q.into_owned()))
        .collect();
    (!names.is_empty()).then(|| format!("{COMMAND} {}", names.join(" ")))
}

/// Run the check in `dir` for `names`: the outcome and what people and models read.
pub(super) fn check(dir: &Path, names: &[String]) -> (Outcome, String) {
    if names.is_empty() {
        return (
            Outcome::NotFound { message: format!("`{COMMAND}` needs at least one name") },
            String::new(),
        );
    }
    let Found { missing, absent } = find(dir, names);
    if missing.is_empty() && absent.is_empty() {
        let list = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        return (Outcome::Passed, format!("Found in the project's files: {list}."));
    }
    let mut out = Vec::new();
    if !missing.is_empty() {
        let list = missing.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        let it = if missing.len() == 1 { "it" } else { "them" };
        out.push(format!(
            "The task names {list}, but no file of the project has {it}: write {it} as the task asks."
        ));
    }
    if !absent.is_empty() {
        let said: Vec<&str> = absent.iter().map(|(_, s)| s.as_str()).collect();
        out.push(format!("The task asks for {}: write that as the task asks.", said.join(", ")));
    }
    (Outcome::Failed { code: Some(1) }, out.join("\n"))
}

/// What a check of `names` in `dir` did not find.
struct Found {
    /// Plain names no file has.
    missing: Vec<String>,
    /// `NAME@PATH` names not met, each with what the check says of it: "`NAME` is not in
    /// PATH", "`NAME` used in PATH (it is only imported there)".
    absent: Vec<(String, String)>,
}

/// The names of `names` that `dir`'s files do not have as asked (`NAME@PATH`: as
/// `NAME@PATH`): what `troupe-expect` would fail on.
pub fn unmet(dir: &Path, names: &[String]) -> Vec<String> {
    let Found { missing, absent } = find(dir, names);
    names
        .iter()
        .filter(|n| missing.contains(n) || absent.iter().any(|(a, _)| a == *n))
        .cloned()
        .collect()
}

fn find(dir: &Path, names: &[String]) -> Found {
    // `NAME@PATH`: in that file.
    let (in_file, anywhere): (Vec<&String>, Vec<&String>) = names
        .iter()
        .partition(|n| n.split_once('@').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty()));
    let mut absent = Vec::new();
    for n in in_file {
        let Some((name, file)) = n.split_once('@') else { continue };
        let text = std::fs::read(dir.join(file))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if !has_word(&text, name) {
            absent.push((n.clone(), format!("`{name}` is not in {file}")));
        } else if !used(&text, name) {
            absent
                .push((n.clone(), format!("`{name}` used in {file} (it is only imported there)")));
        }
    }
    let mut missing: Vec<&String> = anywhere;
    for entry in ignore::WalkBuilder::new(dir).hidden(false).require_git(false).build().flatten() {
        if missing.is_empty() {
            break;
        }
        let path = entry.path();
        if path.components().any(|c| c.as_os_str() == ".git")
            || !entry.file_type().is_some_and(|t| t.is_file())
            || entry.metadata().map_or(true, |m| m.len() > MAX_FILE)
        {
            continue;
        }
        let Ok(bytes) = std::fs::read(path) else { continue };
        if bytes.contains(&0) {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        missing.retain(|name| !has_word(&text, name));
    }
    Found { missing: missing.into_iter().cloned().collect(), absent }
}

/// Whether `name` is in `text` outside its imports: on a line that is not part of an
/// `import`/`from … import`/`use`/`#include`/`using`/`require(` statement (one spread over
/// lines in brackets counts to its closing bracket).
fn used(text: &str, name: &str) -> bool {
    let mut open = 0i64; // brackets an import statement left open
    for line in text.lines() {
        let t = line.trim_start();
        let import = open > 0
            || ["import ", "from ", "use ", "pub use ", "#include", "using "]
                .iter()
                .any(|p| t.starts_with(p))
            || t.contains("require(");
        if import {
            let opened = t.matches(['(', '{', '[']).count() as i64;
            let closed = t.matches([')', '}', ']']).count() as i64;
            open = (open + opened - closed).max(0);
            continue;
        }
        if has_word(line, name) {
            return true;
        }
    }
    false
}

/// Whether `name` is in `text` as a whole word (not inside a longer identifier).
fn has_word(text: &str, name: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_a_named_file_an_import_is_not_a_use() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tests")).unwrap();
        let test = dir.path().join("tests/test_words.py");
        let expect = ["longest_word@tests/test_words.py".to_string()];
        for only_imported in [
            "from words import longest_word, word_count\n\ndef test_count():\n    assert word_count('a b') == 2\n",
            "from words import (\n    word_count,\n    longest_word,\n)\n\ndef test_count():\n    assert word_count('') == 0\n",
            "import { longestWord,\n  longest_word } from '../words.js';\ntest('x', () => {});\n",
            "use words::{\n    longest_word,\n    word_count,\n};\n#[test]\nfn count() { assert_eq!(word_count(\"a\"), 1); }\n",
        ] {
            std::fs::write(&test, only_imported).unwrap();
            let (outcome, text) = check(dir.path(), &expect);
            assert_eq!(outcome, Outcome::Failed { code: Some(1) }, "{only_imported}");
            assert!(
                text.contains(
                    "`longest_word` used in tests/test_words.py (it is only imported there)"
                ),
                "{text}"
            );
        }
        for tested in [
            "from words import longest_word\n\ndef test_longest():\n    assert longest_word('a bb') == 'bb'\n",
            "from words import (\n    longest_word,\n)\n\ndef test_longest():\n    assert longest_word('') == ''\n",
            "import words\n\ndef test_longest():\n    assert words.longest_word('a') == 'a'\n",
        ] {
            std::fs::write(&test, tested).unwrap();
            let (outcome, text) = check(dir.path(), &expect);
            assert_eq!(outcome, Outcome::Passed, "{tested}: {text}");
        }
    }

    #[test]
    fn names_are_found_as_whole_words_in_the_files_git_would_see() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pkg")).unwrap();
        std::fs::write(dir.path().join("pkg/words.py"), "def longest_word(text):\n    pass\n")
            .unwrap();
        std::fs::write(dir.path().join(".gitignore"), "build/\n").unwrap();
        std::fs::create_dir_all(dir.path().join("build")).unwrap();
        std::fs::write(dir.path().join("build/out.py"), "def word_count(): pass\n").unwrap();
        let (outcome, text) = check(dir.path(), &["longest_word".into()]);
        assert_eq!(outcome, Outcome::Passed, "{text}");
        // Ignored folders do not count; a longer identifier is not the name.
        let (outcome, text) =
            check(dir.path(), &["word_count".into(), "longest".into(), "longest_word".into()]);
        assert_eq!(outcome, Outcome::Failed { code: Some(1) });
        assert!(
            text.contains("`word_count`, `longest`") && !text.contains("`longest_word`"),
            "{text}"
        );
        assert!(matches!(check(dir.path(), &[]).0, Outcome::NotFound { .. }));
        // In a given file.
        let (outcome, _) = check(dir.path(), &["longest_word@pkg/words.py".into()]);
        assert_eq!(outcome, Outcome::Passed);
        let (outcome, text) = check(dir.path(), &["longest_word@tests/test_words.py".into()]);
        assert_eq!(outcome, Outcome::Failed { code: Some(1) });
        assert!(text.contains("`longest_word` is not in tests/test_words.py"), "{text}");
    }

    #[test]
    fn the_command_quotes_its_names() {
        assert_eq!(command(&[]), None);
        assert_eq!(
            command(&["a_b".into(), "it's".into()]).as_deref(),
            Some("troupe-expect a_b \"it's\"")
        );
        assert_eq!(shlex::split(&command(&["it's".into()]).unwrap()).unwrap()[1], "it's");
    }
}
