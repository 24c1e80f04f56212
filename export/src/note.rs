//! A note on disk is troupe's part and the user's: troupe owns its frontmatter properties
//! and the text between [`BEGIN`] and [`END`]; everything else is kept on every rewrite.

use std::path::Path;

use crate::error::Result;
use crate::files::{read_optional, write_atomic};
use crate::frontmatter::OUR_KEYS;

/// The line that starts troupe's part of a note.
pub const BEGIN: &str = "<!-- troupe:begin -->";
/// The line that ends troupe's part of a note.
pub const END: &str = "<!-- troupe:end -->";

/// A note split into troupe's parts and the user's.
#[derive(Debug, Default)]
pub(crate) struct NoteParts {
    /// The frontmatter, delimiters included (empty when there is none).
    pub(crate) front: String,
    /// User text between the frontmatter and [`BEGIN`].
    pub(crate) before: String,
    /// [`BEGIN`] … [`END`] and the line break after it (empty when there are no markers).
    pub(crate) managed: String,
    /// User text after [`END`] (everything after the frontmatter when there are no markers).
    pub(crate) after: String,
}

impl NoteParts {
    pub(crate) fn parse(text: &str) -> NoteParts {
        let mut rest = text;
        let mut front = String::new();
        if let Some(after_open) =
            rest.strip_prefix("---\n").or_else(|| rest.strip_prefix("---\r\n"))
        {
            let mut pos = 0;
            for line in after_open.split_inclusive('\n') {
                pos += line.len();
                if line.trim_end() == "---" {
                    let end = text.len() - after_open.len() + pos;
                    front = text[..end].to_string();
                    rest = &text[end..];
                    break;
                }
            }
        }
        let Some(begin) = find_line(rest, BEGIN, 0) else {
            return NoteParts { front, after: rest.to_string(), ..NoteParts::default() };
        };
        let Some(end) = find_line(rest, END, begin) else {
            return NoteParts { front, after: rest.to_string(), ..NoteParts::default() };
        };
        let mut end_of_end = end + END.len();
        if rest[end_of_end..].starts_with("\r\n") {
            end_of_end += 2;
        } else if rest[end_of_end..].starts_with('\n') {
            end_of_end += 1;
        }
        NoteParts {
            front,
            before: rest[..begin].to_string(),
            managed: rest[begin..end_of_end].to_string(),
            after: rest[end_of_end..].to_string(),
        }
    }

    /// Whether the user wrote anything outside troupe's parts (text, or properties of
    /// their own in the frontmatter).
    pub(crate) fn has_user_text(&self) -> bool {
        !self.before.trim().is_empty()
            || !self.after.trim().is_empty()
            || !user_properties(&self.front).is_empty()
    }
}

/// The user's own properties in a frontmatter (`---` … `---`): every top-level entry whose
/// key is not one of troupe's, with its nested lines, verbatim.
pub(crate) fn user_properties(front: &str) -> String {
    let mut out = String::new();
    let mut lines: Vec<&str> = front.lines().collect();
    if lines.len() < 2 {
        return out;
    }
    lines.remove(0);
    lines.pop();
    let mut keep = false;
    for line in lines {
        let nested = line.starts_with([' ', '\t']) || line == "-" || line.starts_with("- ");
        if !nested {
            if line.trim().is_empty() {
                keep = false;
                continue;
            }
            let key = line.split(':').next().unwrap_or("").trim().trim_matches(['"', '\'']);
            keep = !OUR_KEYS.contains(&key);
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Troupe's frontmatter with the user's own properties (from `old`) kept at its end.
fn merge_frontmatter(ours: &str, old: &str) -> String {
    let theirs = user_properties(old);
    match ours.strip_suffix("---\n") {
        Some(head) if !theirs.is_empty() => format!("{head}{theirs}---\n"),
        _ => ours.to_string(),
    }
}

/// The byte offset of the first line at or after `from` that is exactly `marker`.
fn find_line(text: &str, marker: &str, from: usize) -> Option<usize> {
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if pos >= from && line.trim_end() == marker {
            return Some(pos);
        }
        pos += line.len();
    }
    None
}

/// What a managed file should hold: write it (keeping the user's text) unless it holds
/// that already. Returns whether it was written.
pub(crate) fn write_note(path: &Path, front: &str, managed: &str) -> Result<bool> {
    let existing = read_optional(path)?;
    let parts = existing.as_deref().map(NoteParts::parse).unwrap_or_default();
    let front = merge_frontmatter(front, &parts.front);
    if existing.is_some() && parts.front == front && parts.managed == managed {
        return Ok(false);
    }
    let mut text = String::with_capacity(front.len() + managed.len() + parts.after.len() + 2);
    text.push_str(&front);
    text.push_str(&parts.before);
    text.push_str(managed);
    text.push_str(&parts.after);
    write_atomic(path, &text)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_parts_split_and_keep_user_text() {
        let text = format!("---\nid: \"x\"\n---\nmine before\n{BEGIN}\nours\n{END}\nmine after\n");
        let p = NoteParts::parse(&text);
        assert_eq!(p.front, "---\nid: \"x\"\n---\n");
        assert_eq!(p.before, "mine before\n");
        assert_eq!(p.managed, format!("{BEGIN}\nours\n{END}\n"));
        assert_eq!(p.after, "mine after\n");
        assert!(p.has_user_text());
        let bare = NoteParts::parse("just mine");
        assert_eq!(bare.after, "just mine");
        assert!(bare.managed.is_empty());
    }

    #[test]
    fn the_users_properties_survive_a_rewrite() {
        let old = "---\nid: \"x\"\nstatus: draft\ntags:\n  - \"a\"\nrating: 3\nreviewers:\n  - me\n- you\n# a comment\n---\n";
        assert_eq!(
            user_properties(old),
            "status: draft\nrating: 3\nreviewers:\n  - me\n- you\n# a comment\n"
        );
        let ours = "---\nid: \"y\"\n---\n";
        assert_eq!(
            merge_frontmatter(ours, old),
            "---\nid: \"y\"\nstatus: draft\nrating: 3\nreviewers:\n  - me\n- you\n# a comment\n---\n"
        );
        assert_eq!(merge_frontmatter(ours, ""), ours);
        assert_eq!(user_properties("---\ntitle: \"t\"\nmetadata:\n  a: 1\n---\n"), "");
    }
}
