//! The lenient parser: whatever a model wrote, find the whole files and SEARCH/REPLACE blocks.
//!
//! Hand-written, line by line: the input is not a grammar a parser crate could take (prose,
//! fences with or without language tags, a path written half a dozen ways, markers of varying
//! length). The rules:
//! - A line that is only a path (optionally decorated: `` `a.py` ``, `**a.py**`, `# File: a.py`,
//!   `File: a.py`, `a.py:`, `./a.py`) names the file for what follows; so does a fence's info
//!   string (```` ```python a.py ```` or ```` ```a.py ````), or a prose line holding exactly
//!   one backticked path (`` Here is the updated `a.py`: ``).
//! - `<<<<<<< SEARCH` … `=======` … `>>>>>>> REPLACE` (5 to 9 marker characters, any spacing)
//!   is a block for the current file, inside a fence or not; several blocks may follow one path.
//! - A fenced block without markers, after a path that no block used, is the file's whole
//!   content — unless the answer ends inside it (cut off at the output limit: applying it
//!   would delete the rest of the file; it is reported instead).

use super::Edit;

/// What [`parse_detailed`] found: the edits, and what it could not read (for the re-ask).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The edits, in the answer's order.
    pub edits: Vec<Edit>,
    /// Sentences about blocks that could not be read (a block without a path, a SEARCH
    /// without its `=======`).
    pub problems: Vec<String>,
}

/// The edits in a model's answer (see the module's rules); an answer with none gives none.
pub fn parse(answer: &str) -> Vec<Edit> {
    parse_detailed(answer).edits
}

/// Like [`parse`], and also says what could not be read.
pub fn parse_detailed(answer: &str) -> Parsed {
    let text = answer.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.split('\n').collect();
    let mut parsed = Parsed::default();
    // The current file, and whether a block used it (then a plain fence is not its content).
    let mut current: Option<String> = None;
    let mut used_by_block = false;
    // Inside a fence that holds blocks (its closing fence is not an opening one).
    let mut inside = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if is_search(line) {
            let block = read_block(&lines, i);
            i = block.next;
            let Some(path) = current.clone() else {
                parsed.problems.push(
                    "a SEARCH/REPLACE block has no file path before it; write the path on the \
                     line before the block"
                        .to_string(),
                );
                continue;
            };
            match block.body {
                Some((search, replace)) => {
                    parsed.edits.push(Edit::Replace { path, search, replace });
                    used_by_block = true;
                }
                None => parsed.problems.push(format!(
                    "a SEARCH block for {path} has no `=======` line; write SEARCH, the old \
                     lines, =======, the new lines, then >>>>>>> REPLACE"
                )),
            }
            continue;
        }
        if let Some(info) = fence_open(line) {
            if inside && info.is_empty() {
                inside = false;
                i += 1;
                continue;
            }
            let close = find_fence_close(&lines, i + 1);
            let body = &lines[i + 1..close.min(lines.len())];
            let info_path = info
                .split_whitespace()
                .find_map(|token| path_token(token.trim_start_matches("file=")));
            if let Some(p) = &info_path {
                current = Some(p.clone());
                used_by_block = false;
            }
            if body.iter().any(|l| is_search(l)) {
                // Step inside: the blocks (and maybe a path line) are read by the main loop.
                inside = true;
                i += 1;
                continue;
            }
            let mut content_lines = body;
            let mut path = current.clone().filter(|_| !used_by_block);
            if path.is_none() {
                // A path written as the fence's first line (`# File: a.py`, `// a.rs`).
                if let Some(first) = body.first()
                    && let Some(p) = path_in_comment(first)
                {
                    path = Some(p);
                    content_lines = &body[1..];
                }
            }
            if let Some(path) = &path
                && close >= lines.len()
            {
                // The answer ended inside the file: it was cut off (the output token limit).
                // Writing it would delete the rest of the file.
                parsed.problems.push(format!(
                    "the whole file for {path} was cut off (the answer ended before its closing \
                     ```), so it was not applied; for a large file, change only some lines with \
                     SEARCH/REPLACE blocks"
                ));
                current = None;
                i = close;
                continue;
            }
            if let Some(path) = path {
                let mut content = content_lines.join("\n");
                if !content_lines.is_empty() {
                    content.push('\n');
                }
                parsed.edits.push(Edit::WholeFile { path: path.clone(), content });
                current = None;
                used_by_block = false;
            }
            i = close + 1;
            continue;
        }
        if is_fence(line) || is_divider(line) || is_replace(line) {
            i += 1;
            continue;
        }
        if let Some(path) = path_line(line) {
            current = Some(path);
            used_by_block = false;
        }
        i += 1;
    }
    parsed
}

struct Block {
    /// (search, replace), or `None` when there was no divider.
    body: Option<(String, String)>,
    /// The line after the block.
    next: usize,
}

/// Reads the block whose SEARCH marker is at `start`. A missing REPLACE marker ends the block
/// at the next SEARCH marker or fence, or at the end of the answer.
fn read_block(lines: &[&str], start: usize) -> Block {
    let mut search = String::new();
    let mut replace = String::new();
    let mut i = start + 1;
    let mut divided = false;
    while i < lines.len() {
        let line = lines[i];
        if !divided && is_divider(line) {
            divided = true;
            i += 1;
            continue;
        }
        if divided && is_replace(line) {
            return Block { body: Some((search, replace)), next: i + 1 };
        }
        if is_search(line) || (divided && is_fence(line) && !replace_follows(lines, i)) {
            break;
        }
        let target = if divided { &mut replace } else { &mut search };
        target.push_str(line);
        target.push('\n');
        i += 1;
    }
    if !divided {
        return Block { body: None, next: i };
    }
    // The answer ended (or a fence closed) without `>>>>>>> REPLACE`: take what was written,
    // without the trailing empty line of the answer's end.
    if i >= lines.len() && replace.ends_with("\n\n") {
        replace.pop();
    }
    Block { body: Some((search, replace)), next: i }
}

/// Whether a REPLACE marker comes before the next SEARCH marker (then a fence line at `at`
/// is content, e.g. markdown inside the block).
fn replace_follows(lines: &[&str], at: usize) -> bool {
    for line in &lines[at + 1..] {
        if is_replace(line) {
            return true;
        }
        if is_search(line) {
            return false;
        }
    }
    false
}

/// A marker line: `count` to 9 repetitions of `ch`, then (after optional spaces) `word`.
fn marker(line: &str, ch: char, word: &str) -> bool {
    let t = line.trim();
    let n = t.chars().take_while(|c| *c == ch).count();
    if !(5..=9).contains(&n) {
        return false;
    }
    let rest = t[n..].trim();
    if word.is_empty() {
        return rest.is_empty();
    }
    rest.get(..word.len()).is_some_and(|w| w.eq_ignore_ascii_case(word))
}

fn is_search(line: &str) -> bool {
    marker(line, '<', "SEARCH")
}

fn is_divider(line: &str) -> bool {
    marker(line, '=', "")
}

fn is_replace(line: &str) -> bool {
    marker(line, '>', "REPLACE")
}

fn is_fence(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

/// The info string of an opening fence (empty for a bare fence), or `None`.
fn fence_open(line: &str) -> Option<&str> {
    let t = line.trim();
    let rest = t.strip_prefix("```").or_else(|| t.strip_prefix("~~~"))?;
    Some(rest.trim_start_matches(['`', '~']).trim())
}

/// The index of the fence closing the block whose body starts at `from` (a bare fence line),
/// or `lines.len()` when the answer ended inside it.
fn find_fence_close(lines: &[&str], from: usize) -> usize {
    lines[from..]
        .iter()
        .position(|l| {
            let t = l.trim();
            (t.starts_with("```") && t.trim_start_matches('`').trim().is_empty())
                || (t.starts_with("~~~") && t.trim_start_matches('~').trim().is_empty())
        })
        .map_or(lines.len(), |p| from + p)
}

/// A line that is only a path, possibly decorated.
fn path_line(line: &str) -> Option<String> {
    let mut t = line.trim();
    if t.is_empty() || t.len() > 300 {
        return None;
    }
    // Markdown headings and list bullets.
    t = t.trim_start_matches('#').trim_start();
    t = t.strip_prefix("- ").unwrap_or(t).trim_start();
    let t = t.trim_matches('*').trim();
    let lowered = t.to_ascii_lowercase();
    let mut labelled = false;
    let mut rest = t;
    for label in ["file:", "filename:", "file name:", "path:", "file path:"] {
        if lowered.starts_with(label) {
            rest = t[label.len()..].trim();
            labelled = true;
            break;
        }
    }
    let rest = rest.trim_matches('*').trim();
    let rest = rest.strip_suffix(':').unwrap_or(rest).trim();
    let rest = rest.trim_matches(|c| c == '`' || c == '*' || c == '"' || c == '\'');
    let rest = rest.strip_suffix(':').unwrap_or(rest);
    if !rest.contains(char::is_whitespace)
        && let Some(p) = path_token(rest)
    {
        return Some(p);
    }
    if labelled && !rest.is_empty() && !rest.contains(char::is_whitespace) {
        return Some(rest.to_string());
    }
    // Prose with exactly one backticked path: "Here is the updated `src/a.py`:".
    let ticked: Vec<String> = line.split('`').skip(1).step_by(2).filter_map(path_token).collect();
    if ticked.len() == 1 && line.trim_end().ends_with(':') {
        return ticked.into_iter().next();
    }
    None
}

/// A path written as a comment on a fence's first line: `# File: a.py`, `// src/a.rs`.
fn path_in_comment(line: &str) -> Option<String> {
    let t = line.trim();
    let rest = t
        .strip_prefix("//")
        .or_else(|| t.strip_prefix('#'))
        .or_else(|| t.strip_prefix("--"))?
        .trim();
    let lowered = rest.to_ascii_lowercase();
    let rest = ["file:", "filename:", "path:"]
        .iter()
        .find(|l| lowered.starts_with(**l))
        .map_or(rest, |l| rest[l.len()..].trim());
    if rest.contains(char::is_whitespace) {
        return None;
    }
    // Only a path with a folder or an extension counts; `# main` is a comment.
    path_token(rest).filter(|p| p.contains('/') || p.contains('.'))
}

/// A single token that looks like a file path: path characters only, and a folder or a file
/// name with an extension starting with a letter (`a.py`, `src/x`, `Makefile` does not count
/// unless labelled).
fn path_token(token: &str) -> Option<String> {
    let t = token.trim_matches(|c| c == '`' || c == '"' || c == '\'' || c == '*');
    let t = t.strip_suffix(':').unwrap_or(t);
    if t.is_empty() || t.len() > 250 {
        return None;
    }
    if !t
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '\\' | '+' | '@'))
    {
        return None;
    }
    let name = t.rsplit('/').next().unwrap_or(t);
    let has_ext = name.rsplit_once('.').is_some_and(|(stem, ext)| {
        (!stem.is_empty() || name.starts_with('.'))
            && ext.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
    });
    let has_dir = t.contains('/') && !name.is_empty() && t.chars().any(char::is_alphanumeric);
    if has_ext || has_dir { Some(t.to_string()) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_lines_in_their_usual_disguises() {
        for (line, want) in [
            ("src/a.py", Some("src/a.py")),
            ("./src/a.py", Some("./src/a.py")),
            ("`src/a.py`", Some("src/a.py")),
            ("**src/a.py**", Some("src/a.py")),
            ("# File: src/a.py", Some("src/a.py")),
            ("File: src/a.py", Some("src/a.py")),
            ("### `a.py`", Some("a.py")),
            ("src/a.py:", Some("src/a.py")),
            ("Filename: Makefile", Some("Makefile")),
            ("Here is the updated `calc.py`:", Some("calc.py")),
            ("This fixes the bug.", None),
            ("e.g.", None),
            ("Python 3.11", None),
            ("Done.", None),
            ("", None),
        ] {
            assert_eq!(path_line(line).as_deref(), want, "{line:?}");
        }
    }

    #[test]
    fn markers_of_several_lengths() {
        assert!(is_search("<<<<<<< SEARCH"));
        assert!(is_search("  <<<<<SEARCH"));
        assert!(is_search("<<<<<<<<< search"));
        assert!(!is_search("<<< SEARCH"));
        assert!(is_divider("======="));
        assert!(is_divider("=====  "));
        assert!(!is_divider("== x"));
        assert!(is_replace(">>>>>>> REPLACE"));
        assert!(is_replace(">>>>>>>REPLACE"));
        assert!(!is_replace(">>>>>>> SEARCH"));
    }
}
