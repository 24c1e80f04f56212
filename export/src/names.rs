//! File names: a safe stem from a title, the names a node's note may get, and tags as
//! Obsidian accepts them.

use troupe_context::Node;

use crate::files::sha256_hex;
use crate::kinds::folder;

/// Longest file stem (bytes) made from a title, before any collision suffix: leaves room
/// for the folder, the suffix and `.md` within every file system's limits.
pub const MAX_STEM_BYTES: usize = 96;

/// A file stem made from a title that every file system and Obsidian accept: no path
/// separators, no `* " < > : | ? # ^ [ ]`, no control or invisible characters, no leading
/// dot or dash, no trailing dot or space, not a Windows device name (`CON`, `NUL`, `COM1`, …), at
/// most [`MAX_STEM_BYTES`] bytes, never empty (`Untitled`).
pub fn safe_file_stem(title: &str) -> String {
    let mut s = String::with_capacity(title.len().min(MAX_STEM_BYTES + 4));
    let mut chars = title.chars().peekable();
    while let Some(c) = chars.next() {
        let mapped = match c {
            // "Fix: the bug" reads best as "Fix - the bug".
            ':' if chars.peek().is_some_and(|n| n.is_whitespace()) && !s.ends_with(' ') => {
                s.push(' ');
                '-'
            }
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' | '#' | '^' | '[' | ']' => '-',
            c if c.is_whitespace() => ' ',
            c if c.is_control() || is_invisible(c) => continue,
            c => c,
        };
        // Collapse runs of spaces and dashes made by the mapping.
        if (mapped == ' ' && s.ends_with(' ')) || (mapped == '-' && s.ends_with('-')) {
            continue;
        }
        s.push(mapped);
        if s.len() > MAX_STEM_BYTES * 2 {
            break;
        }
    }
    let mut s = s.trim_start_matches(['.', ' ', '-']).to_string();
    s.truncate(s.floor_char_boundary(MAX_STEM_BYTES));
    let mut s = s.trim_end_matches(['.', ' ']).to_string();
    if s.is_empty() {
        s = "Untitled".into();
    }
    let device = s.split('.').next().unwrap_or("").trim_end().to_ascii_uppercase();
    let reserved = matches!(device.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((device.starts_with("COM") || device.starts_with("LPT"))
            && device.len() == 4
            && device[3..].chars().all(|c| c.is_ascii_digit()));
    if reserved {
        s.insert(0, '_');
    }
    s
}

/// Zero-width and direction-changing characters: invisible in a file name, and a way to
/// make two names look alike.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// A tag as Obsidian accepts it (letters, digits, `_`, `-`, `/`; not only digits), or
/// `None` when nothing is left of it.
pub fn obsidian_tag(tag: &str) -> Option<String> {
    let mut s = String::new();
    for c in tag.trim().trim_start_matches('#').chars() {
        let c = if c.is_alphanumeric() || matches!(c, '_' | '-' | '/') { c } else { '-' };
        if c == '-' && s.ends_with('-') {
            continue;
        }
        s.push(c);
    }
    let s = s.trim_matches(['-', '/']).to_string();
    if s.is_empty() {
        return None;
    }
    if s.chars().all(|c| c.is_ascii_digit()) { Some(format!("_{s}")) } else { Some(s) }
}

/// The file names a node may get, in order of preference: its title's stem, then the stem
/// with a longer and longer suffix from the hash of its id.
pub(crate) fn candidates(node: &Node) -> Vec<String> {
    let stem = safe_file_stem(&node.title);
    let hash = sha256_hex(node.id.as_str());
    let dir = folder(node.node_type);
    let mut out = vec![format!("{dir}/{stem}.md")];
    for len in [8, 12, 16, 64] {
        out.push(format!("{dir}/{stem} ({}).md", &hash[..len]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_safe() {
        assert_eq!(safe_file_stem("../../etc/passwd"), "etc-passwd");
        assert_eq!(safe_file_stem("CON"), "_CON");
        assert_eq!(safe_file_stem("com1.txt"), "_com1.txt");
        assert_eq!(safe_file_stem("a/b"), "a-b");
        assert_eq!(safe_file_stem("#^[]|"), "Untitled");
        assert_eq!(safe_file_stem(""), "Untitled");
        assert_eq!(safe_file_stem(" .. "), "Untitled");
        assert_eq!(safe_file_stem("line\nbreak"), "line break");
        assert_eq!(safe_file_stem("Fix: the bug"), "Fix - the bug");
        assert_eq!(safe_file_stem("a:b"), "a-b");
        assert!(safe_file_stem(&"é".repeat(300)).len() <= MAX_STEM_BYTES);
        assert_eq!(safe_file_stem("ship it 🚀"), "ship it 🚀");
        assert_eq!(safe_file_stem("a\u{202E}b"), "ab");
    }

    #[test]
    fn tags_follow_obsidian_rules() {
        assert_eq!(obsidian_tag("success").as_deref(), Some("success"));
        assert_eq!(obsidian_tag("two words").as_deref(), Some("two-words"));
        assert_eq!(obsidian_tag("2024").as_deref(), Some("_2024"));
        assert_eq!(obsidian_tag("#rust/async").as_deref(), Some("rust/async"));
        assert_eq!(obsidian_tag(": \""), None);
    }
}
