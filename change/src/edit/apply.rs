//! Applying edits: safety first, then each file's edits in memory, then atomic writes.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Edit, EditFailure, EditOutcome};
use crate::safety::{self, Policy, Refused};
use crate::{Error, Result};

/// Applies `edits` under `root` (the workspace) with `policy`. Every path is checked first
/// ([`safety::check`]); each file's edits apply in the answer's order, in memory; when the
/// files and lines changed are over the policy's limits every edit is refused; otherwise each
/// changed file is written atomically. A file whose edits do not all apply is left untouched
/// and reported in [`EditOutcome::failed`]; the other files still apply.
///
/// # Errors
/// Only I/O failures while writing (a full disk, a read-only folder).
pub fn apply(root: &Path, edits: &[Edit], policy: &Policy) -> Result<EditOutcome> {
    let mut outcome = EditOutcome::default();
    // Group by the cleaned relative path, keeping the answer's order of first appearance.
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<(usize, &Edit)>> = HashMap::new();
    let mut refused_paths: Vec<String> = Vec::new();
    for (n, edit) in edits.iter().enumerate() {
        let rel = match safety::relative(edit.path()) {
            Ok(rel) => rel,
            Err(refused) => {
                if !refused_paths.contains(&refused.path) {
                    refused_paths.push(refused.path.clone());
                    outcome.refused.push(refused);
                }
                continue;
            }
        };
        if !groups.contains_key(&rel) {
            order.push(rel.clone());
        }
        groups.entry(rel).or_default().push((n + 1, edit));
    }

    let mut planned: Vec<Planned> = Vec::new();
    for rel in order {
        let group = groups.remove(&rel).unwrap_or_default();
        let shown = group.first().map_or(rel.as_str(), |(_, e)| e.path());
        let target = match safety::check(root, &rel, policy) {
            Ok(target) => target,
            Err(refused) => {
                outcome.refused.push(Refused { path: shown.to_string(), reason: refused.reason });
                continue;
            }
        };
        match plan_file(&rel, &target, &group)? {
            Ok(Some(p)) => planned.push(p),
            Ok(None) => {}
            Err(failure) => outcome.failed.push(failure),
        }
    }

    let (added, removed) = planned.iter().fold((0u64, 0u64), |(a, r), p| {
        let (pa, pr) = count_lines(p.old.as_deref().unwrap_or(""), &p.new);
        (a + pa, r + pr)
    });
    if let Some(reason) = policy.over_limits(planned.len(), (added + removed) as usize) {
        for p in planned {
            outcome.refused.push(Refused { path: p.rel, reason: reason.clone() });
        }
        return Ok(outcome);
    }
    for p in planned {
        write_atomically(&p.target, &p.new, p.old.is_some())?;
        outcome.changed.push(PathBuf::from(&p.rel));
    }
    outcome.lines_added = added;
    outcome.lines_removed = removed;
    Ok(outcome)
}

/// A file's new content, ready to write.
struct Planned {
    rel: String,
    target: PathBuf,
    old: Option<String>,
    new: String,
}

/// Applies one file's edits in memory (an edit that leaves the file as it was is a failure:
/// the model meant to change something).
fn plan_file(
    rel: &str,
    target: &Path,
    group: &[(usize, &Edit)],
) -> Result<Result<Option<Planned>, EditFailure>> {
    let first = group.first().map_or(1, |(n, _)| *n);
    let fail = |edit: usize, message: String| EditFailure { path: rel.to_string(), edit, message };
    if target.is_dir() {
        return Ok(Err(fail(
            first,
            format!("{rel} is a folder, not a file; name a file inside it"),
        )));
    }
    // A folder on the way that is a file ("calc.py/x.py") cannot be created.
    if let Some(blocker) = target.ancestors().skip(1).find(|a| a.exists()).filter(|a| !a.is_dir()) {
        let name = blocker.file_name().map(|n| n.to_string_lossy().into_owned());
        return Ok(Err(fail(
            first,
            format!(
                "{rel} cannot be written: {} is a file, not a folder",
                name.unwrap_or_default()
            ),
        )));
    }
    let old = match std::fs::read(target) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(_) => {
                return Ok(Err(fail(
                    first,
                    format!("{rel} is not UTF-8 text; troupe edits text files only"),
                )));
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Ok(Err(fail(first, format!("{rel} cannot be read: {e}")))),
    };
    let crlf = old.as_deref().is_some_and(|t| t.contains("\r\n"));
    let mut text = old.as_deref().unwrap_or("").replace("\r\n", "\n");
    for (n, edit) in group {
        match edit {
            Edit::WholeFile { content, .. } => {
                if old.is_some()
                    && let Some((line, elided)) = elision(content)
                {
                    return Ok(Err(fail(
                        *n,
                        format!(
                            "the whole file of edit {n} for {rel} leaves code out (line {line}: \
                             `{elided}`); write every line of the file, or change only some \
                             lines with SEARCH/REPLACE blocks"
                        ),
                    )));
                }
                let content = content.replace("\r\n", "\n");
                // Small models often answer with only the function they changed; for a
                // Python file that keeps the other definitions instead of deleting them.
                text = match (&old, rel.ends_with(".py")) {
                    (Some(_), true) => merge_python_definitions(&text, &content).unwrap_or(content),
                    _ => content,
                };
            }
            Edit::Replace { search, replace, .. } => {
                match replace_once(&text, search, replace, old.is_some()) {
                    Ok(new) => text = new,
                    Err(why) => return Ok(Err(fail(*n, why.render(*n, rel)))),
                }
            }
        }
    }
    let new = if crlf { text.replace('\n', "\r\n") } else { text };
    if old.as_deref() == Some(new.as_str()) {
        // Measured: the 1.5B model sometimes copies the SEARCH text into REPLACE unchanged.
        let same = match group.first().map(|(_, e)| *e) {
            Some(Edit::Replace { .. }) => {
                "its SEARCH and REPLACE texts are the same; put the \
                                           changed lines after ======="
            }
            _ => "it is the file as it is; write the file with the change the task asks for",
        };
        return Ok(Err(fail(first, format!("edit {first} for {rel} changes nothing: {same}"))));
    }
    Ok(Ok(Some(Planned { rel: rel.to_string(), target: target.to_path_buf(), old, new })))
}

/// A comment standing for code the model left out ("# ... rest of the code ..."), with its
/// 1-based line: applying such a "whole file" would delete that code.
fn elision(content: &str) -> Option<(usize, String)> {
    const WORDS: [&str; 9] = [
        "rest of",
        "existing",
        "unchanged",
        "remain",
        "same as",
        "previous",
        "omitted",
        "other code",
        "as before",
    ];
    for (i, line) in content.lines().enumerate() {
        let t = line.trim();
        let Some(body) =
            ["#", "//", "/*", "<!--", "--", ";"].iter().find_map(|c| t.strip_prefix(c))
        else {
            continue;
        };
        let body = body.trim().trim_end_matches("*/").trim_end_matches("-->").trim();
        let lowered = body.to_lowercase();
        let dotted =
            lowered.starts_with("...") || lowered.ends_with("...") || lowered.contains('…');
        if dotted && WORDS.iter().any(|w| lowered.contains(w)) {
            return Some((i + 1, t.to_string()));
        }
    }
    None
}

/// The window of a file most like a SEARCH text that was not found.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Closest {
    /// Its first line, from 1.
    from: usize,
    /// Its last line.
    to: usize,
    /// Its lines.
    text: String,
    /// Sentences naming the lines that differ from the SEARCH text (at most 3).
    differing: Vec<String>,
}

/// Why a SEARCH text did not apply.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Miss {
    /// Not found; the closest window, if any.
    NotFound(Option<Closest>),
    /// Found more than once, at these 1-based first lines.
    Ambiguous(Vec<usize>),
}

impl Miss {
    fn render(&self, edit: usize, rel: &str) -> String {
        match self {
            Self::NotFound(Some(c)) => {
                let mut out = format!(
                    "the SEARCH text of edit {edit} was not found in {rel}; the closest lines are \
                     ({}-{}):\n```\n{}```\n",
                    c.from, c.to, c.text
                );
                if !c.differing.is_empty() {
                    out.push_str(&format!("Differences: {}.\n", c.differing.join("; ")));
                }
                out.push_str("Copy the SEARCH lines exactly from the file.");
                out
            }
            Self::NotFound(None) => format!(
                "the SEARCH text of edit {edit} was not found in {rel}; copy the SEARCH lines \
                 exactly from the file"
            ),
            Self::Ambiguous(starts) => {
                let at: Vec<String> = starts.iter().map(ToString::to_string).collect();
                format!(
                    "the SEARCH text of edit {edit} was found {} times in {rel} (at lines {}); \
                     add surrounding lines to SEARCH so it matches once",
                    starts.len(),
                    at.join(", ")
                )
            }
        }
    }
}

/// Replaces the one occurrence of `search` in `text` (both with `\n` line ends). Matching
/// tries the exact lines, then lines ignoring trailing whitespace, then lines ignoring a
/// consistent difference of indentation (re-indenting the replacement the same way); the
/// first rule that finds anything decides. An empty `search` creates the file or, when it
/// exists, appends — unless the replacement starts like the file, then it is the whole file.
pub(super) fn replace_once(
    text: &str,
    search: &str,
    replace: &str,
    exists: bool,
) -> std::result::Result<String, Miss> {
    let search = search.replace("\r\n", "\n");
    let replace = replace.replace("\r\n", "\n");
    if search.trim().is_empty() {
        if !exists || text.trim().is_empty() {
            return Ok(replace);
        }
        let first = |t: &str| {
            t.lines().find(|l| !l.trim().is_empty()).map(str::trim_end).map(str::to_string)
        };
        if first(text) == first(&replace) {
            return Ok(replace);
        }
        let mut out = text.to_string();
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&replace);
        return Ok(out);
    }
    let file: Vec<&str> = split_lines(text);
    let mut wanted: Vec<&str> = split_lines(&search);
    // Blank lines the model added around the SEARCH text are not part of what it meant.
    while wanted.first().is_some_and(|l| l.trim().is_empty()) && wanted.len() > 1 {
        wanted.remove(0);
    }
    while wanted.last().is_some_and(|l| l.trim().is_empty()) && wanted.len() > 1 {
        wanted.pop();
    }
    let new_lines: Vec<&str> = split_lines(&replace);

    let exact = find_all(&file, &wanted, |a, b| a == b);
    let trailing = || find_all(&file, &wanted, |a, b| a.trim_end() == b.trim_end());
    let (starts, reindent) = if !exact.is_empty() {
        (exact, false)
    } else if let t @ [_, ..] = trailing().as_slice() {
        (t.to_vec(), false)
    } else {
        let indented: Vec<usize> = (0..=file.len().saturating_sub(wanted.len()))
            .filter(|&s| s + wanted.len() <= file.len())
            .filter(|&s| indent_map(&file[s..s + wanted.len()], &wanted).is_some())
            .collect();
        (indented, true)
    };
    match starts.as_slice() {
        [] => Err(Miss::NotFound(closest(&file, &wanted))),
        [start] => {
            let start = *start;
            let window = &file[start..start + wanted.len()];
            let replacement: Vec<String> = if reindent {
                let map = indent_map(window, &wanted).unwrap_or_default();
                new_lines.iter().map(|l| reindent_line(l, &map)).collect()
            } else {
                new_lines.iter().map(|l| (*l).to_string()).collect()
            };
            let mut out: Vec<String> = file[..start].iter().map(|l| (*l).to_string()).collect();
            out.extend(replacement);
            out.extend(file[start + wanted.len()..].iter().map(|l| (*l).to_string()));
            // A file without a final newline keeps it that way.
            let mut joined = out.join("\n");
            if text.ends_with('\n') && !out.is_empty() {
                joined.push('\n');
            }
            Ok(joined)
        }
        many => Err(Miss::Ambiguous(many.iter().map(|s| s + 1).collect())),
    }
}

/// The lines of `text` without their `\n` (a final newline does not make an empty line).
fn split_lines(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    text.strip_suffix('\n').unwrap_or(text).split('\n').collect()
}

fn find_all(file: &[&str], wanted: &[&str], eq: impl Fn(&str, &str) -> bool) -> Vec<usize> {
    if wanted.is_empty() || wanted.len() > file.len() {
        return Vec::new();
    }
    (0..=file.len() - wanted.len())
        .filter(|&s| wanted.iter().enumerate().all(|(k, w)| eq(file[s + k], w)))
        .collect()
}

fn leading(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

/// If `window` equals `wanted` up to a consistent change of indentation, the map from each
/// of `wanted`'s indentations to the file's.
fn indent_map<'a>(window: &[&'a str], wanted: &[&'a str]) -> Option<Vec<(&'a str, &'a str)>> {
    let mut map: Vec<(&str, &str)> = Vec::new();
    for (have, want) in window.iter().zip(wanted) {
        if have.trim() != want.trim() {
            return None;
        }
        if have.trim().is_empty() {
            continue;
        }
        let (from, to) = (leading(want), leading(have));
        match map.iter().find(|(f, _)| *f == from) {
            Some((_, t)) if *t != to => return None,
            Some(_) => {}
            None => {
                // Order must be kept: deeper in the answer is deeper in the file.
                if map.iter().any(|(f, t)| (f.len() < from.len()) != (t.len() < to.len())) {
                    return None;
                }
                map.push((from, to));
            }
        }
    }
    Some(map)
}

/// Re-indents one replacement line with the map found for its SEARCH text.
fn reindent_line(line: &str, map: &[(&str, &str)]) -> String {
    if line.trim().is_empty() {
        return line.trim_end().to_string();
    }
    let indent = leading(line);
    let body = line.trim_start();
    if let Some((_, to)) = map.iter().find(|(from, _)| *from == indent) {
        return format!("{to}{body}");
    }
    // The longest mapped indentation this one extends: map it, keep the extra.
    let best =
        map.iter().filter(|(from, _)| indent.starts_with(from)).max_by_key(|(from, _)| from.len());
    match best {
        Some((from, to)) => {
            let extra = &indent[from.len()..];
            // Tabs in the file where the answer used spaces: convert the extra the same way.
            let extra = spaces_to_tabs(extra, map).unwrap_or_else(|| extra.to_string());
            format!("{to}{extra}{body}")
        }
        None => line.to_string(),
    }
}

/// When the file indents with tabs where the answer used spaces, the extra spaces as tabs.
fn spaces_to_tabs(extra: &str, map: &[(&str, &str)]) -> Option<String> {
    if extra.is_empty() || !extra.chars().all(|c| c == ' ') {
        return None;
    }
    let (from, to) = map.iter().find(|(f, t)| {
        !f.is_empty()
            && f.chars().all(|c| c == ' ')
            && !t.is_empty()
            && t.chars().all(|c| c == '\t')
    })?;
    let per_tab = (from.len() / to.len()).max(1);
    Some("\t".repeat(extra.len().div_ceil(per_tab)))
}

/// The window of the file most like `wanted` (for the error message only; never applied).
fn closest(file: &[&str], wanted: &[&str]) -> Option<Closest> {
    if file.is_empty() {
        return None;
    }
    let len = wanted.len().min(file.len()).max(1);
    let cheap = file.len().saturating_mul(len) > 400_000;
    let sim = |a: &str, b: &str| -> f64 {
        let (a, b) = (a.trim(), b.trim());
        if a == b {
            1.0
        } else if cheap || a.len() > 300 || b.len() > 300 {
            0.0
        } else {
            strsim::normalized_levenshtein(a, b)
        }
    };
    let mut best: Option<(f64, usize)> = None;
    for start in 0..=file.len() - len {
        let score: f64 = (0..len).map(|k| sim(file[start + k], wanted[k])).sum();
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, start));
        }
    }
    let (score, start) = best?;
    if score / (len as f64) < 0.3 {
        return None;
    }
    let mut text = String::new();
    for line in &file[start..start + len] {
        text.push_str(line);
        text.push('\n');
    }
    // Name the lines that differ: a small model copies the whole window back otherwise.
    let differing: Vec<String> = (0..len)
        .filter(|&k| file[start + k].trim() != wanted.get(k).map_or("", |w| w.trim()))
        .take(3)
        .map(|k| {
            format!(
                "line {} of the file is `{}` where your SEARCH has `{}`",
                start + k + 1,
                file[start + k].trim(),
                wanted.get(k).map_or("", |w| w.trim())
            )
        })
        .collect();
    Some(Closest { from: start + 1, to: start + len, text, differing })
}

/// Lines added and removed from `old` to `new` (a line diff).
pub(super) fn count_lines(old: &str, new: &str) -> (u64, u64) {
    let diff = similar::TextDiff::configure()
        .timeout(std::time::Duration::from_secs(2))
        .diff_lines(old, new);
    let mut added = 0;
    let mut removed = 0;
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Delete => removed += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    (added, removed)
}

/// Writes `content` to `target` through a temporary file in the same folder and a rename, so
/// a reader sees the old file or the new one, never half of one. Keeps an existing file's
/// permissions; creates missing folders.
fn write_atomically(target: &Path, content: &str, existed: bool) -> Result<()> {
    let io = |what: String| move |source| Error::Io { what, source };
    let dir = target.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.troupe-{}.tmp", std::process::id()));
    let result = (|| {
        let mut file =
            std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        file.write_all(content.as_bytes()).map_err(io(format!("writing {}", tmp.display())))?;
        file.sync_all().map_err(io(format!("syncing {}", tmp.display())))?;
        if existed && let Ok(meta) = std::fs::metadata(target) {
            std::fs::set_permissions(&tmp, meta.permissions())
                .map_err(io(format!("setting permissions of {}", tmp.display())))?;
        }
        std::fs::rename(&tmp, target).map_err(io(format!("replacing {}", target.display())))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The top-level blocks of a Python file: `(name, first line, end line exclusive)` for each
/// `def`/`async def`/`class` at column 0 (decorators included), and whether anything else
/// but imports, a docstring, comments and blank lines stands at the top level.
fn python_blocks(text: &str) -> (Vec<(String, usize, usize)>, bool) {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks: Vec<(String, usize, usize)> = Vec::new();
    let mut other = false;
    let mut i = 0;
    let mut in_doc = false;
    while i < lines.len() {
        let line = lines[i];
        let top = !line.starts_with([' ', '\t']) && !line.trim().is_empty();
        if in_doc {
            if line.contains("\"\"\"") || line.contains("\'\'\'") {
                in_doc = false;
            }
            i += 1;
            continue;
        }
        if !top || line.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let mut head = i;
        while lines[head].starts_with('@') && head + 1 < lines.len() {
            head += 1;
        }
        let def = lines[head]
            .strip_prefix("async def ")
            .or_else(|| lines[head].strip_prefix("def "))
            .or_else(|| lines[head].strip_prefix("class "));
        if let Some(rest) = def {
            let name: String =
                rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let mut end = head + 1;
            while end < lines.len() {
                let l = lines[end];
                if !l.trim().is_empty() && !l.starts_with([' ', '\t']) && !l.starts_with('#') {
                    break;
                }
                end += 1;
            }
            // Trailing blank lines belong to the gap, not the block.
            while end > head + 1 && lines[end - 1].trim().is_empty() {
                end -= 1;
            }
            blocks.push((name, start, end));
            i = end;
            continue;
        }
        let t = line.trim_start();
        if t.starts_with("import ") || t.starts_with("from ") {
        } else if t.starts_with("\"\"\"") || t.starts_with("\'\'\'") {
            let quote = &t[..3];
            in_doc = !t[3..].contains(quote);
        } else {
            other = true;
        }
        i += 1;
    }
    (blocks, other)
}

/// When `new` (a "whole file" answer) holds only some of the top-level definitions of the
/// Python file `old` and nothing else but imports, put each of them in place of the old one
/// and keep the rest. `None` when `new` is a real whole file (it defines everything `old`
/// does, or has other top-level code) or holds nothing of `old`.
fn merge_python_definitions(old: &str, new: &str) -> Option<String> {
    let (old_blocks, _) = python_blocks(old);
    let (new_blocks, new_other) = python_blocks(new);
    if new_other || new_blocks.is_empty() {
        return None;
    }
    let old_names: Vec<&str> = old_blocks.iter().map(|(n, _, _)| n.as_str()).collect();
    let kept_all = old_names.iter().all(|n| new_blocks.iter().any(|(m, _, _)| m == n));
    let known = new_blocks.iter().any(|(m, _, _)| old_names.contains(&m.as_str()));
    if kept_all || !known {
        return None;
    }
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let block_text = |(_, a, b): &(String, usize, usize)| new_lines[*a..*b].join("\n");
    let mut out: Vec<String> = Vec::new();
    let mut at = 0;
    for (name, a, b) in &old_blocks {
        out.extend(old_lines[at..*a].iter().map(|l| l.to_string()));
        match new_blocks.iter().find(|(m, _, _)| m == name) {
            Some(nb) => out.push(block_text(nb)),
            None => out.extend(old_lines[*a..*b].iter().map(|l| l.to_string())),
        }
        at = *b;
    }
    out.extend(old_lines[at..].iter().map(|l| l.to_string()));
    // New definitions the old file did not have go at its end; new imports at its top.
    for nb in new_blocks.iter().filter(|(m, _, _)| !old_names.contains(&m.as_str())) {
        out.push(String::new());
        out.push(String::new());
        out.push(block_text(nb));
    }
    let imports: Vec<&str> = new_lines
        .iter()
        .copied()
        .filter(|l| (l.starts_with("import ") || l.starts_with("from ")) && !old_lines.contains(l))
        .collect();
    let mut merged = out.join("\n");
    if !imports.is_empty() {
        merged = format!("{}\n{merged}", imports.join("\n"));
    }
    if old.ends_with('\n') {
        merged.push('\n');
    }
    Some(merged)
}

#[cfg(test)]
mod merge_tests {
    #![allow(clippy::unwrap_used)]

    use super::merge_python_definitions;

    const OLD: &str = "\"\"\"Words.\"\"\"\n\n\ndef word_count(text):\n    return len(text.split(\" \"))\n\n\ndef truncate(text, limit):\n    if len(text) <= limit:\n        return text\n    return text[: limit - 3] + \"...\"\n";

    #[test]
    fn an_answer_with_only_the_changed_function_keeps_the_others() {
        let new = "def word_count(text):\n    return len(text.split())\n";
        let merged = merge_python_definitions(OLD, new).unwrap();
        assert_eq!(merged, OLD.replace("text.split(\" \")", "text.split()"));
    }

    #[test]
    fn a_real_whole_file_is_not_merged() {
        let whole = OLD.replace("text.split(\" \")", "text.split()");
        assert_eq!(merge_python_definitions(OLD, &whole), None);
        // Other top-level code: a real file, taken as it is.
        assert_eq!(
            merge_python_definitions(OLD, "x = 1\ndef word_count(t):\n    return 0\n"),
            None
        );
        // Nothing of the old file: a new file's content, taken as it is.
        assert_eq!(merge_python_definitions(OLD, "def other():\n    return 0\n"), None);
    }

    #[test]
    fn new_imports_and_new_functions_are_added() {
        let new =
            "import re\n\ndef word_count(text):\n    return len(re.findall(r\"\\S+\", text))\n";
        let merged = merge_python_definitions(OLD, new).unwrap();
        assert!(merged.starts_with("import re\n"), "{merged}");
        assert!(merged.contains("def truncate(text, limit):"), "{merged}");
        assert!(merged.contains("re.findall"), "{merged}");
    }
}
