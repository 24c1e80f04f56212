//! The code names a text gives: the identifiers, calls and file paths in a task or a spec,
//! and which of them a change doing the task is expected to leave in the files — what
//! `troupe-expect` checks. A plan's task run expects the names its description gives; a
//! plain run expects the new names its task asks to add.

/// A text's sentences (and clauses), trimmed: one ends at a line break, at `;`, at a comma
/// before `then`, or at `.`, `!` or `?` followed by white space and something other than a
/// lower-case letter (so `e.g. this` and `textkit/words.py` stay whole).
pub fn sentences(spec: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = spec.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        let end = match c {
            '\n' | ';' => Some(i + c.len_utf8()),
            ',' if spec[i + 1..].starts_with(" then ") => Some(i + 1),
            '.' | '!' | '?' => {
                let next = chars.get(k + 1).map(|&(_, c)| c);
                let after = chars[k + 1..].iter().map(|&(_, c)| c).find(|c| !c.is_whitespace());
                (next.is_none_or(char::is_whitespace) && !after.is_some_and(char::is_lowercase))
                    .then_some(i + c.len_utf8())
            }
            _ => None,
        };
        if let Some(end) = end {
            let s = spec[start..end].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = end;
        }
    }
    let s = spec[start..].trim();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

/// Whether `word` is a file path (`a/b`, `words.py`).
pub fn is_path(word: &str) -> bool {
    word.contains('/')
        || word.rsplit_once('.').is_some_and(|(stem, ext)| {
            stem.len() >= 2
                && (1..=4).contains(&ext.len())
                && ext.chars().all(|c| c.is_ascii_alphabetic())
        })
}

/// The identifiers (with an underscore), calls and file paths in `spec`, in order.
pub fn named_things(spec: &str) -> Vec<String> {
    let is_name_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '-');
    let mut out = Vec::new();
    let mut rest = spec;
    while let Some(start) = rest.find(is_name_char) {
        let tail = &rest[start..];
        let end = tail.find(|c: char| !is_name_char(c)).unwrap_or(tail.len());
        let word = tail[..end].trim_end_matches(['.', '-', '/']);
        let call = tail[end..].starts_with('(');
        let ident = word.contains('_') && word.chars().any(char::is_alphabetic);
        if word.chars().any(char::is_alphabetic)
            && (is_path(word) || ident || (call && word.len() > 2))
        {
            out.push(word.to_string());
        }
        rest = &tail[end.max(1)..];
    }
    out
}

/// Whether `path` is a test file (`tests/…`, `test_x.py`, `x_test.go`, `x.test.ts`).
pub fn is_test_file(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    is_path(path)
        && file.contains('.')
        && (path.starts_with("tests/")
            || path.contains("/tests/")
            || file.starts_with("test_")
            || file.contains("_test.")
            || file.contains(".test."))
}

/// The code names `text` (a task) gives — identifiers with an underscore and calls, not file
/// paths — that a change doing it leaves in the project's files; `NAME@PATH` when the same
/// sentence names a test file. Sentences that remove, delete, rename, drop or replace
/// something name nothing to expect.
pub fn expected_in(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for sentence in sentences(text) {
        let lower = sentence.to_lowercase();
        if ["remove", "delete", "rename", "drop", "replace"].iter().any(|w| lower.contains(w)) {
            continue;
        }
        let named = named_things(sentence);
        let tests: Vec<&String> = named.iter().filter(|n| is_test_file(n)).collect();
        for name in named.iter().filter(|n| !is_path(n)) {
            // A test file in the same sentence ("with a unittest for it in tests/test_x.py")
            // is expected to have the name too.
            let wanted =
                std::iter::once(name.clone()).chain(tests.iter().map(|t| format!("{name}@{t}")));
            for w in wanted {
                if !out.contains(&w) {
                    out.push(w);
                }
            }
        }
    }
    out
}

/// The names `task` asks to add — in its sentences that say to add, create, write,
/// implement, define or introduce something — as [`expected_in`] gives them. A run expects
/// those of them that are not in the project yet: "Add a function `median(values)`" expects
/// `median` until a file has it.
pub fn asked_to_add(task: &str) -> Vec<String> {
    const VERBS: [&str; 7] = ["add", "create", "write", "implement", "define", "introduce", "new"];
    let mut out: Vec<String> = Vec::new();
    for sentence in sentences(task) {
        let lower = sentence.to_lowercase();
        let asks = lower
            .split(|c: char| !c.is_alphanumeric())
            .any(|w| VERBS.contains(&w) || w.starts_with("implement"));
        if !asks {
            continue;
        }
        for name in expected_in(sentence) {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_asks_to_add_the_names_of_its_adding_sentences_only() {
        let task = "Add a function `median(values)` to `numkit/stats.py` that returns the median. \
                    It must raise ValueError like `mean` does. Fix `word_count` too.";
        assert_eq!(asked_to_add(task), ["median"]);
        assert_eq!(
            asked_to_add("Implement parse_header() with a test for it in tests/test_parse.py"),
            ["parse_header", "parse_header@tests/test_parse.py"]
        );
        // Fixing, removing and plain prose ask to add nothing.
        assert!(
            asked_to_add("`countdown(n)` in `timer/count.py` stops one too early. Fix it.")
                .is_empty()
        );
        assert!(asked_to_add("Remove the new old_helper() and add nothing else").is_empty());
        assert!(asked_to_add("Add tests, please.").is_empty());
        // "address" is not "add".
        assert!(asked_to_add("Address the crash in load_config()").is_empty());
    }
}
