//! Markdown escaping: a node's text made safe to put into a note (no links Obsidian would
//! follow, no HTML that could swallow the note, no marker lines, every fence closed).

use troupe_context::{Node, NodeType};

use crate::note::{BEGIN, END};

/// Body text made safe to put between the markers: no wikilinks or Markdown links that
/// Obsidian would follow to notes that do not exist, no HTML blocks or comments that could
/// swallow the rest of the note, no marker lines, and every code fence closed.
fn markdown_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    // The open fence: its character and length.
    let mut fence: Option<(char, usize)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let run = |ch: char| trimmed.chars().take_while(|c| *c == ch).count();
        let marker = line.trim() == BEGIN || line.trim() == END;
        match fence {
            Some((ch, len)) => {
                if indent <= 3 && run(ch) >= len && trimmed.trim_start_matches(ch).trim().is_empty()
                {
                    fence = None;
                }
                if marker {
                    out.push_str(&line.replacen("<!--", "&lt;!--", 1));
                } else {
                    out.push_str(line);
                }
            }
            None => {
                for ch in ['`', '~'] {
                    if indent <= 3 && run(ch) >= 3 {
                        fence = Some((ch, run(ch)));
                    }
                }
                if fence.is_some() {
                    out.push_str(line);
                } else {
                    out.push_str(&escape_inline(line));
                }
            }
        }
        out.push('\n');
    }
    if let Some((ch, len)) = fence {
        out.extend(std::iter::repeat_n(ch, len));
        out.push('\n');
    }
    out
}

/// One line of text outside code: links and HTML neutralised.
pub(crate) fn escape_inline(line: &str) -> String {
    let mut s = line.replace("<!--", "&lt;!--").replace("[[", "\\[\\[").replace("](", "]\\(");
    let trimmed = s.trim_start();
    let indent = s.len() - trimmed.len();
    if indent <= 3
        && trimmed.starts_with('<')
        && trimmed[1..]
            .starts_with(|c: char| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?'))
    {
        s.replace_range(indent..indent + 1, "&lt;");
    }
    s
}

/// The title as one line of Markdown.
pub(crate) fn title_line(title: &str) -> String {
    let one: Vec<&str> = title.split_whitespace().collect();
    let one = one.join(" ");
    if one.is_empty() { "Untitled".into() } else { escape_inline(&one).trim().to_string() }
}

/// A code snippet's language, from its metadata (`language` or `lang`), as a fence info
/// string.
fn snippet_language(node: &Node) -> String {
    let lang = ["language", "lang"]
        .iter()
        .find_map(|k| node.metadata.get(*k).and_then(|v| v.as_str()))
        .unwrap_or("");
    lang.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '#' | '.' | '_' | '-'))
        .take(32)
        .collect::<String>()
        .to_ascii_lowercase()
}

pub(crate) fn render_body(node: &Node) -> String {
    let body = node.body.trim_end();
    if node.node_type == NodeType::CodeSnippet && !body.trim_start().starts_with("```") {
        let mut run = 0;
        let mut max_run = 0;
        for c in body.chars() {
            if c == '`' {
                run += 1;
                max_run = max_run.max(run);
            } else {
                run = 0;
            }
        }
        let fence = "`".repeat((max_run + 1).max(3));
        // Inside the fence only marker lines need care.
        let mut inner = String::new();
        for line in body.lines() {
            if line.trim() == BEGIN || line.trim() == END {
                inner.push_str(&line.replacen("<!--", "&lt;!--", 1));
            } else {
                inner.push_str(line);
            }
            inner.push('\n');
        }
        return format!("{fence}{}\n{inner}{fence}\n", snippet_language(node));
    }
    markdown_safe(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_neutralised_and_fences_closed() {
        let s =
            markdown_safe("see [[Other]] and [x](y)\n<script>\n<!-- hi\n```rust\nlet a = [[1]];\n");
        assert!(s.contains("\\[\\[Other]]"), "{s}");
        assert!(s.contains("]\\(y)"), "{s}");
        assert!(s.contains("&lt;script>"), "{s}");
        assert!(s.contains("&lt;!-- hi"), "{s}");
        assert!(s.contains("let a = [[1]];"), "{s}");
        assert!(s.ends_with("```\n"), "{s}");
        let m = markdown_safe(&format!("x\n{END}\n"));
        assert!(!m.lines().any(|l| l == END), "{m}");
    }
}
