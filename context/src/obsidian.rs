//! Export the memory graph as an [Obsidian](https://obsidian.md) vault: one Markdown note per
//! node in a folder per type, YAML frontmatter, the edges as `[[wikilinks]]`, a map of
//! content (`_Index.md`) and a graph view coloured by node type.
//!
//! ```no_run
//! use troupe_context::obsidian::{ExportOptions, export};
//! use troupe_context::{NodeType, Scope, Store, StoreOptions};
//! # fn main() -> troupe_context::Result<()> {
//! let store = Store::open("/home/me/.local/share/troupe".as_ref(), StoreOptions::without_embeddings())?;
//! let options = ExportOptions::new("/home/me/vault", Scope::All)
//!     .types([NodeType::Decision, NodeType::Pattern]);
//! let summary = export(&store, &options)?;
//! println!("{} notes written, {} unchanged", summary.written, summary.unchanged);
//! # Ok(()) }
//! ```
//!
//! Exporting again into the same folder is incremental. A manifest
//! ([`MANIFEST`], paths and content hashes) says which notes troupe wrote: a note is
//! rewritten only when what troupe would write into it changed, notes of nodes that are no
//! longer selected (deleted, or filtered out) are removed, and files troupe did not write
//! are never touched. In each note troupe owns its frontmatter properties (id, title,
//! type, project, created, updated, tags, aliases, metadata) and the text between [`BEGIN`]
//! and [`END`]; the user's own properties and whatever the user writes outside the markers
//! are kept on every rewrite (and a note whose node is gone is kept, without troupe's
//! part, when the user wrote in it). A node keeps its file name across exports as long as
//! its title does not change.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::graph::Scope;
use crate::model::{Direction, Edge, EdgeType, Node, NodeId, NodeType, ProjectId};
use crate::store::Store;

/// The manifest of what troupe wrote, in the vault's root.
pub const MANIFEST: &str = ".troupe-export.json";
/// The map of content, in the vault's root.
pub const INDEX: &str = "_Index.md";
/// The line that starts troupe's part of a note.
pub const BEGIN: &str = "<!-- troupe:begin -->";
/// The line that ends troupe's part of a note.
pub const END: &str = "<!-- troupe:end -->";

/// Longest file stem (bytes) made from a title, before any collision suffix: leaves room
/// for the folder, the suffix and `.md` within every file system's limits.
pub const MAX_STEM_BYTES: usize = 96;

const MANIFEST_FORMAT: u32 = 1;
/// Notes listed under "Most connected" and "Recent activity" in the index.
const INDEX_TOP: usize = 15;

/// What to export, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// The vault folder (created when missing).
    pub dir: PathBuf,
    /// One project, or every project.
    pub scope: Scope,
    /// Only nodes of these types; every type when empty.
    pub types: Vec<NodeType>,
    /// Only nodes updated at or after this time.
    pub since: Option<DateTime<Utc>>,
}

impl ExportOptions {
    /// Every node of `scope` into `dir`.
    pub fn new(dir: impl Into<PathBuf>, scope: impl Into<Scope>) -> ExportOptions {
        ExportOptions { dir: dir.into(), scope: scope.into(), types: Vec::new(), since: None }
    }

    /// Only nodes of these types.
    pub fn types(mut self, types: impl IntoIterator<Item = NodeType>) -> ExportOptions {
        self.types = types.into_iter().collect();
        self
    }

    /// Only nodes updated at or after `since`.
    pub fn since(mut self, since: DateTime<Utc>) -> ExportOptions {
        self.since = Some(since);
        self
    }
}

/// What [`export`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// The vault folder.
    pub dir: PathBuf,
    /// Notes of nodes in the vault now.
    pub notes: usize,
    /// Notes created or rewritten (their node, or a linked node's title, changed).
    pub written: usize,
    /// Notes left as they were.
    pub unchanged: usize,
    /// Notes whose file was renamed (their node's title changed); counted in `written` too.
    pub renamed: usize,
    /// Notes of nodes no longer exported that were deleted.
    pub removed: usize,
    /// Notes of nodes no longer exported that were kept, without troupe's part, because
    /// the user wrote in them.
    pub kept_user_notes: usize,
    /// Edges written as wikilinks (each counted once).
    pub links: usize,
    /// Notes per node type.
    pub by_type: BTreeMap<NodeType, usize>,
    /// Projects with at least one note.
    pub projects: usize,
}

/// The vault folder of a node type.
pub fn folder(node_type: NodeType) -> &'static str {
    match node_type {
        NodeType::Conversation => "Conversations",
        NodeType::Task => "Tasks",
        NodeType::Mistake => "Mistakes",
        NodeType::Pattern => "Patterns",
        NodeType::Decision => "Decisions",
        NodeType::CodeSnippet => "Code Snippets",
        NodeType::Preference => "Preferences",
        NodeType::File => "Files",
        NodeType::Concept => "Concepts",
        NodeType::Project => "Projects",
        NodeType::Plan => "Plans",
    }
}

/// The colour (`0xRRGGBB`) of a node type in the graph view.
pub fn colour(node_type: NodeType) -> u32 {
    match node_type {
        NodeType::Task => 0x4CAF50,         // green
        NodeType::Decision => 0x9C27B0,     // purple
        NodeType::Pattern => 0xFF9800,      // orange
        NodeType::Mistake => 0xF44336,      // red
        NodeType::Conversation => 0x4FC3F7, // light blue
        NodeType::CodeSnippet => 0x9E9E9E,  // grey
        NodeType::Concept => 0xCDDC39,      // lime
        NodeType::Project => 0xFFC107,      // amber
        NodeType::Plan => 0x3F51B5,         // indigo
        NodeType::File => 0x607D8B,         // blue grey
        NodeType::Preference => 0x009688,   // teal
    }
}

/// The heading of a group of links in a note's "Links" section: edges of `edge_type`
/// leaving the note (`Outgoing`) or arriving at it (`Incoming`).
pub fn link_heading(edge_type: EdgeType, direction: Direction) -> &'static str {
    let (out, inc) = match edge_type {
        EdgeType::RelatedTo => ("Related to", "Related from"),
        EdgeType::CausedBy => ("Caused by", "Causes"),
        EdgeType::FixedBy => ("Fixed by", "Fixes"),
        EdgeType::SimilarTo => ("Similar to", "Similar from"),
        EdgeType::DependsOn => ("Depends on", "Needed by"),
        EdgeType::PartOf => ("Part of", "Parts"),
        EdgeType::DerivedFrom => ("Derived from", "Source of"),
        EdgeType::Supersedes => ("Supersedes", "Superseded by"),
        EdgeType::References => ("References", "Referenced by"),
        EdgeType::Implements => ("Implements", "Implemented by"),
        EdgeType::Mentions => ("Mentions", "Mentioned by"),
        EdgeType::Follows => ("Follows", "Followed by"),
    };
    match direction {
        Direction::Incoming => inc,
        Direction::Outgoing | Direction::Both => out,
    }
}

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
    truncate_at_char(&mut s, MAX_STEM_BYTES);
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

fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
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

// ---------------------------------------------------------------------------------------
// YAML

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

// ---------------------------------------------------------------------------------------
// Markdown

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
fn escape_inline(line: &str) -> String {
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
fn title_line(title: &str) -> String {
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

fn render_body(node: &Node) -> String {
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

// ---------------------------------------------------------------------------------------
// Notes on disk

/// A note split into troupe's parts and the user's.
#[derive(Debug, Default)]
struct NoteParts {
    /// The frontmatter, delimiters included (empty when there is none).
    front: String,
    /// User text between the frontmatter and [`BEGIN`].
    before: String,
    /// [`BEGIN`] … [`END`] and the line break after it (empty when there are no markers).
    managed: String,
    /// User text after [`END`] (everything after the frontmatter when there are no markers).
    after: String,
}

impl NoteParts {
    fn parse(text: &str) -> NoteParts {
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
    fn has_user_text(&self) -> bool {
        !self.before.trim().is_empty()
            || !self.after.trim().is_empty()
            || !user_properties(&self.front).is_empty()
    }
}

/// The frontmatter keys troupe writes; every other property is the user's.
const OUR_KEYS: &[&str] =
    &["id", "title", "type", "project", "created", "updated", "tags", "aliases", "metadata"];

/// The user's own properties in a frontmatter (`---` … `---`): every top-level entry whose
/// key is not one of troupe's, with its nested lines, verbatim.
fn user_properties(front: &str) -> String {
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

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Write `text` to `path` through a temporary file, so that a crash leaves the old file or
/// the new one, never half of one.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.troupe-tmp"));
    std::fs::write(&tmp, text).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// What a managed file should hold: write it (keeping the user's text) unless it holds
/// that already. Returns whether it was written.
fn write_note(path: &Path, front: &str, managed: &str) -> Result<bool> {
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

/// What troupe wrote into the vault: which note belongs to which node, and its hash.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
struct Manifest {
    format: u32,
    /// Vault-relative path (`/`-separated) → the note.
    notes: BTreeMap<String, ManifestNote>,
    /// Other files troupe manages (`_Index.md`) → hash of troupe's part.
    #[serde(default)]
    files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct ManifestNote {
    /// The node's id.
    node: String,
    /// SHA-256 of the frontmatter and managed section troupe wrote.
    hash: String,
}

impl Manifest {
    fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let Some(text) = read_optional(&path)? else { return Ok(Manifest::default()) };
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
            Error::corrupt(
                format!("{} (delete it to export afresh; notes troupe wrote before are then kept as the user's)", path.display()),
                e,
            )
        })?;
        if manifest.format > MANIFEST_FORMAT {
            return Err(Error::InvalidInput(format!(
                "{} was written by a newer troupe (format {})",
                path.display(),
                manifest.format
            )));
        }
        // Paths come from disk: keep only those that stay inside the vault.
        let notes = manifest.notes.into_iter().filter(|(p, _)| is_vault_note_path(p)).collect();
        Ok(Manifest { format: MANIFEST_FORMAT, notes, files: manifest.files })
    }
}

/// `Folder/name.md` with a known folder and nothing that leaves the vault.
fn is_vault_note_path(rel: &str) -> bool {
    let path = Path::new(rel);
    let mut components = path.components();
    let (Some(Component::Normal(dir)), Some(Component::Normal(file)), None) =
        (components.next(), components.next(), components.next())
    else {
        return false;
    };
    NodeType::ALL.iter().any(|t| dir.to_str() == Some(folder(*t)))
        && file.to_str().is_some_and(|f| f.ends_with(".md") && !f.starts_with('.'))
        && !rel.contains('\\')
}

// ---------------------------------------------------------------------------------------
// The export

/// A note's links: (0 outgoing / 1 incoming, edge type) → (index of the other note in the
/// placed notes, edge weight).
type LinkGroups = BTreeMap<(u8, EdgeType), Vec<(usize, f32)>>;

/// One node's place in the vault.
struct Placed {
    node: Node,
    /// Vault-relative path, `/`-separated.
    path: String,
    /// The wikilink target: the path without `.md`.
    target: String,
    /// The file stem (what a link shows when the title has nothing showable).
    stem: String,
}

impl Placed {
    /// A wikilink to the note, showing the node's title (on one line, without the
    /// characters that would end the link, at most 80 characters).
    fn link(&self) -> String {
        let mut shown: String = self
            .node
            .title
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .map(|c| match c {
                '|' => '/',
                '[' => '(',
                ']' => ')',
                c => c,
            })
            .collect();
        if shown.chars().count() > 80 {
            shown = shown.chars().take(79).collect::<String>() + "…";
        }
        let shown = shown.replace("<!--", "&lt;!--");
        if shown.trim().is_empty() {
            format!("[[{}|{}]]", self.target, self.stem)
        } else {
            format!("[[{}|{}]]", self.target, shown)
        }
    }
}

/// The file names a node may get, in order of preference: its title's stem, then the stem
/// with a longer and longer suffix from the hash of its id.
fn candidates(node: &Node) -> Vec<String> {
    let stem = safe_file_stem(&node.title);
    let hash = sha256_hex(node.id.as_str());
    let dir = folder(node.node_type);
    let mut out = vec![format!("{dir}/{stem}.md")];
    for len in [8, 12, 16, 64] {
        out.push(format!("{dir}/{stem} ({}).md", &hash[..len]));
    }
    out
}

/// Export `options.scope`'s nodes (filtered by type and date) into the vault at
/// `options.dir`, incrementally (see the module's documentation).
pub fn export(store: &Store, options: &ExportOptions) -> Result<ExportSummary> {
    let dir = options.dir.as_path();
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;

    // The selection, oldest first (the order decides who gets a contested name).
    let mut nodes: Vec<Node> = store
        .list_nodes(&options.scope, None, usize::MAX)?
        .into_iter()
        .filter(|n| options.types.is_empty() || options.types.contains(&n.node_type))
        .filter(|n| options.since.is_none_or(|s| n.updated_at >= s))
        .collect();
    nodes.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    let selected: HashSet<NodeId> = nodes.iter().map(|n| n.id.clone()).collect();

    let mut edges: Vec<Edge> = Vec::new();
    for n in &nodes {
        for e in store.edges(&n.id, Direction::Outgoing, None)? {
            if selected.contains(&e.to) {
                edges.push(e);
            }
        }
    }
    edges.sort_by(|a, b| (&a.from, a.edge_type, &a.to).cmp(&(&b.from, b.edge_type, &b.to)));

    let old = Manifest::load(dir)?;
    let placed = place(dir, &old, nodes)?;
    let by_id: HashMap<&NodeId, usize> =
        placed.iter().enumerate().map(|(i, p)| (&p.node.id, i)).collect();
    let old_path_of: HashMap<&str, &str> =
        old.notes.iter().map(|(p, n)| (n.node.as_str(), p.as_str())).collect();

    let mut summary = ExportSummary {
        dir: dir.to_path_buf(),
        notes: placed.len(),
        written: 0,
        unchanged: 0,
        renamed: 0,
        removed: 0,
        kept_user_notes: 0,
        links: edges.len(),
        by_type: BTreeMap::new(),
        projects: 0,
    };

    // Renames first: a node whose title changed takes its note (and the user's text in it)
    // to its new name.
    for p in &placed {
        if let Some(old_path) = old_path_of.get(p.node.id.as_str())
            && *old_path != p.path
        {
            let from = dir.join(old_path);
            if from.exists() {
                let to = dir.join(&p.path);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
                }
                std::fs::rename(&from, &to).map_err(io_err(&from))?;
                summary.renamed += 1;
            }
        }
    }

    // Notes of nodes no longer selected.
    let placed_paths: HashSet<&str> = placed.iter().map(|p| p.path.as_str()).collect();
    for (path, note) in &old.notes {
        let still = by_id.contains_key(&NodeId::from_trusted(note.node.clone()));
        if still || placed_paths.contains(path.as_str()) {
            continue;
        }
        let file = dir.join(path);
        let Some(text) = read_optional(&file)? else { continue };
        let parts = NoteParts::parse(&text);
        if parts.has_user_text() {
            let props = user_properties(&parts.front);
            let front = if props.is_empty() { String::new() } else { format!("---\n{props}---\n") };
            let kept =
                format!("{front}{}", format!("{}{}", parts.before, parts.after).trim_start());
            write_atomic(&file, &kept)?;
            summary.kept_user_notes += 1;
        } else {
            std::fs::remove_file(&file).map_err(io_err(&file))?;
            summary.removed += 1;
            if let Some(parent) = file.parent() {
                // Only succeeds when the folder is empty.
                let _ = std::fs::remove_dir(parent);
            }
        }
    }

    // Links per node: (edge type, direction) → the other notes.
    let mut links: HashMap<&NodeId, LinkGroups> = HashMap::new();
    for e in &edges {
        let (Some(&from), Some(&to)) = (by_id.get(&e.from), by_id.get(&e.to)) else { continue };
        links.entry(&e.from).or_default().entry((0, e.edge_type)).or_default().push((to, e.weight));
        links.entry(&e.to).or_default().entry((1, e.edge_type)).or_default().push((from, e.weight));
    }

    let mut manifest = Manifest { format: MANIFEST_FORMAT, ..Manifest::default() };
    let mut projects: HashSet<&ProjectId> = HashSet::new();
    for p in &placed {
        projects.insert(&p.node.project);
        *summary.by_type.entry(p.node.node_type).or_default() += 1;
        let front = frontmatter(p);
        let managed = managed_section(p, links.get(&p.node.id), &placed);
        if write_note(&dir.join(&p.path), &front, &managed)? {
            summary.written += 1;
        } else {
            summary.unchanged += 1;
        }
        manifest.notes.insert(
            p.path.clone(),
            ManifestNote { node: p.node.id.to_string(), hash: sha256_hex(&(front + &managed)) },
        );
    }
    summary.projects = projects.len();

    let (front, managed) = index_note(store, &placed, &edges, &summary);
    write_note(&dir.join(INDEX), &front, &managed)?;
    manifest.files.insert(INDEX.into(), sha256_hex(&(front + &managed)));
    vault_settings(dir)?;

    let manifest_json = serde_json::to_string_pretty(&manifest)? + "\n";
    if read_optional(&dir.join(MANIFEST))?.as_deref() != Some(manifest_json.as_str()) {
        write_atomic(&dir.join(MANIFEST), &manifest_json)?;
    }
    tracing::info!(
        dir = %dir.display(),
        notes = summary.notes,
        written = summary.written,
        removed = summary.removed,
        "obsidian export"
    );
    Ok(summary)
}

/// Give every node a path: the one it had when that is still one of its candidates, else
/// the first candidate nobody has (not another node, not a note troupe wrote before for
/// another node, not a file of the user's). Comparisons ignore case, for the file systems
/// that do.
fn place(dir: &Path, old: &Manifest, nodes: Vec<Node>) -> Result<Vec<Placed>> {
    let old_path_of: HashMap<&str, &str> =
        old.notes.iter().map(|(p, n)| (n.node.as_str(), p.as_str())).collect();
    let mut taken: HashSet<String> = old.notes.keys().map(|p| p.to_lowercase()).collect();
    let mut chosen: Vec<Option<String>> = vec![None; nodes.len()];
    let all_candidates: Vec<Vec<String>> = nodes.iter().map(candidates).collect();
    // Keep the names nodes have.
    for (i, n) in nodes.iter().enumerate() {
        if let Some(old_path) = old_path_of.get(n.id.as_str())
            && all_candidates[i].iter().any(|c| c == old_path)
        {
            chosen[i] = Some((*old_path).to_string());
        }
    }
    // Every old path is taken (by the node that keeps it, or reserved this time so that a
    // note being moved or removed is never mistaken for another node's), except to its own
    // node (a change of case only). New picks are added as they are made.
    for (i, n) in nodes.iter().enumerate() {
        if chosen[i].is_some() {
            continue;
        }
        let own_old = old_path_of.get(n.id.as_str()).map(|p| p.to_lowercase());
        let mut pick = None;
        for c in &all_candidates[i] {
            let lower = c.to_lowercase();
            let free = own_old.as_deref() == Some(lower.as_str())
                || (!taken.contains(&lower) && std::fs::symlink_metadata(dir.join(c)).is_err());
            if free {
                pick = Some(c.clone());
                break;
            }
        }
        let pick = match pick {
            Some(p) => p,
            None => {
                // Only when every hash suffix is taken: count up.
                let base = all_candidates[i].last().cloned().unwrap_or_default();
                let base = base.trim_end_matches(".md").to_string();
                let mut k = 2;
                loop {
                    let c = format!("{base} {k}.md");
                    if !taken.contains(&c.to_lowercase())
                        && std::fs::symlink_metadata(dir.join(&c)).is_err()
                    {
                        break c;
                    }
                    k += 1;
                }
            }
        };
        taken.insert(pick.to_lowercase());
        chosen[i] = Some(pick);
    }
    Ok(nodes
        .into_iter()
        .zip(chosen)
        .map(|(node, path)| {
            let path = path.unwrap_or_default();
            let target = path.trim_end_matches(".md").to_string();
            let stem = target.rsplit('/').next().unwrap_or("").to_string();
            Placed { node, path, target, stem }
        })
        .collect())
}

fn frontmatter(p: &Placed) -> String {
    let n = &p.node;
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
    let aliases: Vec<String> = if title_one_line != p.stem && !title_one_line.is_empty() {
        vec![title_one_line]
    } else {
        Vec::new()
    };
    yaml_list(&mut out, "aliases", &aliases);
    yaml_entry(&mut out, 0, "metadata", &n.metadata);
    out.push_str("---\n");
    out
}

fn managed_section(p: &Placed, links: Option<&LinkGroups>, placed: &[Placed]) -> String {
    let mut out = String::new();
    out.push_str(BEGIN);
    out.push('\n');
    let _ = writeln!(out, "# {}\n", title_line(&p.node.title));
    let body = render_body(&p.node);
    if !body.trim().is_empty() {
        out.push_str(&body);
        out.push('\n');
    }
    out.push_str("## Links\n");
    match links {
        Some(groups) if !groups.is_empty() => {
            for ((dir, edge_type), others) in groups {
                let direction = if *dir == 0 { Direction::Outgoing } else { Direction::Incoming };
                let _ = writeln!(out, "\n### {}\n", link_heading(*edge_type, direction));
                for (other, weight) in others {
                    let Some(o) = placed.get(*other) else { continue };
                    if (*weight - 1.0).abs() > f32::EPSILON {
                        let _ = writeln!(out, "- {} (weight {weight})", o.link());
                    } else {
                        let _ = writeln!(out, "- {}", o.link());
                    }
                }
            }
        }
        _ => out.push_str("\nNone.\n"),
    }
    out.push_str(END);
    out.push('\n');
    out
}

fn index_note(
    store: &Store,
    placed: &[Placed],
    edges: &[Edge],
    summary: &ExportSummary,
) -> (String, String) {
    let front = "---\ntags:\n  - \"troupe/index\"\n---\n".to_string();
    let mut out = String::new();
    out.push_str(BEGIN);
    out.push('\n');
    out.push_str("# troupe memory\n\n");
    let _ = writeln!(
        out,
        "{} notes, {} links, {} project{}. Each note's own text goes outside the `troupe` markers; \
         troupe rewrites what is between them on every export.\n",
        placed.len(),
        summary.links,
        summary.projects,
        if summary.projects == 1 { "" } else { "s" }
    );

    out.push_str("## Notes by type\n\n| Type | Folder | Notes |\n|---|---|---:|\n");
    for t in NodeType::ALL {
        let count = summary.by_type.get(t).copied().unwrap_or(0);
        if count > 0 {
            let _ = writeln!(out, "| {} | `{}/` | {count} |", t.as_str(), folder(*t));
        }
    }

    // Per project.
    let mut by_project: BTreeMap<&ProjectId, Vec<&Placed>> = BTreeMap::new();
    for p in placed {
        by_project.entry(&p.node.project).or_default().push(p);
    }
    out.push_str("\n## Projects\n");
    for (project, notes) in &by_project {
        let name = store
            .project(project)
            .ok()
            .flatten()
            .map(|i| i.name)
            .unwrap_or_else(|| project.to_string());
        let _ = writeln!(out, "\n### {} (`{}`)\n", title_line(&name), project);
        if let Some(pn) = notes.iter().find(|p| {
            p.node.node_type == NodeType::Project && p.node.id.as_str() == project.as_str()
        }) {
            let _ = writeln!(out, "- Project note: {}", pn.link());
        }
        let mut counts: BTreeMap<NodeType, usize> = BTreeMap::new();
        for p in notes {
            *counts.entry(p.node.node_type).or_default() += 1;
        }
        let counts: Vec<String> =
            counts.iter().map(|(t, c)| format!("{} {c}", folder(*t).to_lowercase())).collect();
        let _ = writeln!(out, "- Notes: {}", counts.join(", "));
        let mut recent: Vec<&&Placed> = notes.iter().collect();
        recent.sort_by(|a, b| {
            b.node.updated_at.cmp(&a.node.updated_at).then_with(|| a.node.id.cmp(&b.node.id))
        });
        for p in recent.iter().filter(|p| p.node.node_type != NodeType::File).take(5) {
            let _ = writeln!(
                out,
                "- {} · {} · {}",
                p.node.updated_at.format("%Y-%m-%d"),
                p.node.node_type.as_str(),
                p.link()
            );
        }
    }

    // Most connected.
    let mut degree: HashMap<&NodeId, usize> = HashMap::new();
    for e in edges {
        *degree.entry(&e.from).or_default() += 1;
        *degree.entry(&e.to).or_default() += 1;
    }
    let mut connected: Vec<(&Placed, usize)> =
        placed.iter().filter_map(|p| degree.get(&p.node.id).map(|d| (p, *d))).collect();
    connected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.node.id.cmp(&b.0.node.id)));
    out.push_str("\n## Most connected\n\n");
    if connected.is_empty() {
        out.push_str("No links yet.\n");
    }
    for (p, d) in connected.iter().take(INDEX_TOP) {
        let _ = writeln!(out, "- {} · {d} link{}", p.link(), if *d == 1 { "" } else { "s" });
    }

    // Recent activity.
    let mut recent: Vec<&Placed> = placed.iter().collect();
    recent.sort_by(|a, b| {
        b.node.updated_at.cmp(&a.node.updated_at).then_with(|| a.node.id.cmp(&b.node.id))
    });
    out.push_str("\n## Recent activity\n\n");
    if recent.is_empty() {
        out.push_str("Nothing exported.\n");
    }
    for p in recent.iter().take(INDEX_TOP) {
        let _ = writeln!(
            out,
            "- {} · {} · {}",
            p.node.updated_at.format("%Y-%m-%d %H:%M"),
            p.node.node_type.as_str(),
            p.link()
        );
    }
    out.push_str(END);
    out.push('\n');
    (front, out)
}

/// `.obsidian/`: enough for the folder to open as a vault, and the graph view's colour
/// groups (merged into the user's `graph.json`, whose other settings are kept).
fn vault_settings(dir: &Path) -> Result<()> {
    let obsidian = dir.join(".obsidian");
    std::fs::create_dir_all(&obsidian).map_err(io_err(&obsidian))?;
    let app = obsidian.join("app.json");
    if read_optional(&app)?.is_none() {
        write_atomic(&app, "{}\n")?;
    }
    let graph_path = obsidian.join("graph.json");
    let existing = read_optional(&graph_path)?;
    let mut graph = match existing.as_deref().map(serde_json::from_str::<serde_json::Value>) {
        None => serde_json::json!({}),
        Some(Ok(v)) if v.is_object() => v,
        // Not ours to repair.
        Some(_) => {
            tracing::warn!("{} is not a JSON object; left as it is", graph_path.display());
            return Ok(());
        }
    };
    let ours: Vec<serde_json::Value> = NodeType::ALL
        .iter()
        .map(|t| {
            serde_json::json!({
                "query": format!("path:\"{}/\"", folder(*t)),
                "color": { "a": 1, "rgb": colour(*t) },
            })
        })
        .collect();
    let our_queries: HashSet<String> =
        ours.iter().filter_map(|g| g["query"].as_str().map(String::from)).collect();
    let mut groups: Vec<serde_json::Value> = graph
        .get("colorGroups")
        .and_then(|g| g.as_array())
        .map(|a| {
            a.iter()
                .filter(|g| g["query"].as_str().is_none_or(|q| !our_queries.contains(q)))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    groups.extend(ours);
    if let Some(obj) = graph.as_object_mut() {
        obj.insert("colorGroups".into(), serde_json::Value::Array(groups));
    }
    let text = serde_json::to_string_pretty(&graph)? + "\n";
    if existing.as_deref() != Some(text.as_str()) {
        write_atomic(&graph_path, &text)?;
    }
    Ok(())
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

    #[test]
    fn yaml_strings_escape_what_yaml_cannot_hold() {
        assert_eq!(yaml_string("a: \"b\"\n"), "\"a: \\\"b\\\"\\n\"");
        assert_eq!(yaml_string("\u{7F}\u{85}\u{2028}"), "\"\\u007F\\u0085\\u2028\"");
        assert_eq!(yaml_string("\u{1F680}"), "\"\u{1F680}\"");
    }

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

    #[test]
    fn manifest_paths_must_stay_in_the_vault() {
        assert!(is_vault_note_path("Tasks/a.md"));
        assert!(!is_vault_note_path("../a.md"));
        assert!(!is_vault_note_path("Tasks/../../a.md"));
        assert!(!is_vault_note_path("/etc/a.md"));
        assert!(!is_vault_note_path("Elsewhere/a.md"));
        assert!(!is_vault_note_path("Tasks/a.txt"));
        assert!(!is_vault_note_path("Tasks/sub/a.md"));
    }
}
