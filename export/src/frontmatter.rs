//! The YAML frontmatter writer: troupe's properties of a note, as YAML that every parser
//! reads back as written (double-quoted scalars, sorted keys, block style).

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use troupe_context::Node;

use crate::names::obsidian_tag;

/// The frontmatter keys troupe writes; every other property is the user's.
pub(crate) const OUR_KEYS: &[&str] =
    &["id", "title", "type", "project", "created", "updated", "tags", "aliases", "metadata"];

/// Troupe's frontmatter for `node`, whose note's file stem is `stem`.
pub(crate) fn frontmatter(node: &Node, stem: &str) -> String {
    let n = node;
    let mut out = String::from("---\n");
    let _ = writeln!(out, "id: {}", yaml_string(n.id.as_str()));
    let _ = writeln!(out, "title: {}", yaml_string(&n.title));
    let _ = writeln!(out, "type: {}", n.node_type.as_str());
    let _ = writeln!(out, "project: {}", yaml_string(n.project.as_str()));
    let _ = writeln!(out, "created: {}", timestamp(&n.created_at));
    let _ = writeln!(out, "updated: {}", timestamp(&n.updated_at));
    let mut tags = vec![format!("troupe/{}", n.node_type.as_str())];
    for t in n.tags.iter().filter_map(|t| obsidian_tag(t)) {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    yaml_list(&mut out, "tags", &tags);
    let title_one_line = n.title.split_whitespace().collect::<Vec<_>>().join(" ");
    let aliases: Vec<String> = if title_one_line != stem && !title_one_line.is_empty() {
        vec![title_one_line]
    } else {
        Vec::new()
    };
    yaml_list(&mut out, "aliases", &aliases);
    yaml_entry(&mut out, 0, "metadata", &n.metadata);
    out.push_str("---\n");
    out
}

/// `s` as a YAML double-quoted scalar: valid whatever `s` holds (quotes, colons, newlines,
/// control characters, characters YAML does not allow raw). `[[` is written `[\[`: Obsidian
/// reads wikilinks in frontmatter values, and a title is not a link.
pub fn yaml_string(s: &str) -> String {
    let s = s.replace("[[", "[\\[");
    let s = s.as_str();
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if yaml_printable(c) => out.push(c),
            c if (c as u32) <= 0xFFFF => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08X}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Characters YAML allows unescaped in a double-quoted scalar, less those that some
/// parsers read as line breaks or byte-order marks.
fn yaml_printable(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{7E}' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
        && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}')
}

fn yaml_scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => Some("null".into()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(yaml_string(s)),
        serde_json::Value::Array(a) if a.is_empty() => Some("[]".into()),
        serde_json::Value::Object(o) if o.is_empty() => Some("{}".into()),
        _ => None,
    }
}

/// `v` in YAML flow style (for collections nested in sequences).
fn yaml_flow(v: &serde_json::Value) -> String {
    if let Some(s) = yaml_scalar(v) {
        return s;
    }
    match v {
        serde_json::Value::Array(a) => {
            let items: Vec<String> = a.iter().map(yaml_flow).collect();
            format!("[{}]", items.join(", "))
        }
        serde_json::Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}: {}", yaml_string(k), yaml_flow(&o[k.as_str()])))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        _ => String::new(),
    }
}

/// Append `key: value` at `indent` (block style; keys sorted).
fn yaml_entry(out: &mut String, indent: usize, key: &str, v: &serde_json::Value) {
    let pad = " ".repeat(indent);
    let key = if is_plain_key(key) { key.to_string() } else { yaml_string(key) };
    if let Some(s) = yaml_scalar(v) {
        let _ = writeln!(out, "{pad}{key}: {s}");
        return;
    }
    let _ = writeln!(out, "{pad}{key}:");
    match v {
        serde_json::Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            for k in keys {
                yaml_entry(out, indent + 2, k, &o[k.as_str()]);
            }
        }
        serde_json::Value::Array(a) => {
            for item in a {
                let _ = writeln!(out, "{pad}  - {}", yaml_flow(item));
            }
        }
        _ => {}
    }
}

/// Keys written without quotes: ours, and metadata keys made only of safe characters.
fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && !matches!(
            key.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        )
}

fn yaml_list(out: &mut String, key: &str, items: &[String]) {
    if items.is_empty() {
        let _ = writeln!(out, "{key}: []");
        return;
    }
    let _ = writeln!(out, "{key}:");
    for item in items {
        let _ = writeln!(out, "  - {}", yaml_string(item));
    }
}

fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_strings_escape_what_yaml_cannot_hold() {
        assert_eq!(yaml_string("a: \"b\"\n"), "\"a: \\\"b\\\"\\n\"");
        assert_eq!(yaml_string("\u{7F}\u{85}\u{2028}"), "\"\\u007F\\u0085\\u2028\"");
        assert_eq!(yaml_string("\u{1F680}"), "\"\u{1F680}\"");
    }
}
