//! What a scan writes about a project and its files: a file's summary (what it is, its
//! leading comment, the names it defines, its first lines) and the project's layout.

use std::collections::{BTreeMap, BTreeSet};

use super::walk::Walked;

/// A file's body: what it is, its leading comment or heading, the names it defines, and
/// its first lines.
pub(crate) fn summarise(rel: &str, language: &str, text: &str, lines: u64) -> String {
    let mut s = format!("{rel} ({language}, {lines} lines)\n");
    let header = leading_comment(text, language);
    if !header.is_empty() {
        let mut h = header;
        crate::text::truncate_at_char(&mut h, 600);
        s.push_str(&h);
        s.push('\n');
    }
    let symbols = symbols(text);
    if !symbols.is_empty() {
        s.push_str("Defines: ");
        s.push_str(&symbols.join(", "));
        s.push('\n');
    }
    let mut head = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()).take(12) {
        head.push_str(line.trim_end());
        head.push('\n');
    }
    crate::text::truncate_at_char(&mut head, 500);
    s.push_str(&head);
    s
}

/// The comment block (or Markdown heading and first paragraph) a file starts with.
fn leading_comment(text: &str, language: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    if language == "Markdown" {
        for line in text.lines().take(30) {
            let t = line.trim();
            if t.is_empty() && out.len() > 1 {
                break;
            }
            if !t.is_empty() {
                out.push(t.trim_start_matches('#').trim().to_string());
            }
        }
        return out.join(" ");
    }
    let mut in_block = false;
    for line in text.lines().take(40) {
        let t = line.trim();
        if t.is_empty() {
            if out.is_empty() {
                continue;
            }
            break;
        }
        let stripped = if in_block {
            if let Some(before) = t.strip_suffix("*/").or_else(|| t.strip_suffix("\"\"\"")) {
                in_block = false;
                before
            } else {
                t
            }
        } else if let Some(rest) =
            ["//!", "///", "//", "#!", "--", ";;"].iter().find_map(|p| t.strip_prefix(p))
        {
            if t.starts_with("#!") && out.is_empty() && t.contains('/') {
                continue; // a shebang line
            }
            rest
        } else if let Some(rest) = t.strip_prefix('#') {
            if matches!(
                language,
                "Python" | "Shell" | "Ruby" | "Perl" | "R" | "TOML" | "YAML" | "Makefile" | "Nix"
            ) {
                rest
            } else {
                break;
            }
        } else if let Some(rest) = t.strip_prefix("/*").or_else(|| t.strip_prefix("\"\"\"")) {
            let (rest, closed) =
                match rest.strip_suffix("*/").or_else(|| rest.strip_suffix("\"\"\"")) {
                    Some(r) => (r, true),
                    None => (rest, false),
                };
            in_block = !closed;
            rest
        } else {
            break;
        };
        let cleaned = stripped.trim_start_matches('*').trim();
        if !cleaned.is_empty() {
            out.push(cleaned.to_string());
        }
    }
    out.join(" ")
}

/// Names a file defines: functions, types, classes (a line-based look, no parser).
fn symbols(text: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "fn",
        "struct",
        "enum",
        "trait",
        "impl",
        "mod",
        "type",
        "class",
        "def",
        "func",
        "function",
        "interface",
        "macro_rules!",
    ];
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let mut t = line.trim_start();
        for prefix in
            ["pub(crate) ", "pub ", "export default ", "export ", "async ", "unsafe ", "const fn "]
        {
            t = t.strip_prefix(prefix).unwrap_or(t);
        }
        t = t.strip_prefix("async ").unwrap_or(t);
        let mut words = t.split_whitespace();
        let Some(kw) = words.next() else { continue };
        if !KEYWORDS.contains(&kw) {
            continue;
        }
        let Some(rest) = words.next() else { continue };
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if name.is_empty() || name.len() < 2 {
            continue;
        }
        let entry = if kw == "impl" { format!("impl {name}") } else { name };
        if !out.contains(&entry) {
            out.push(entry);
        }
        if out.len() >= 40 {
            break;
        }
    }
    out
}

/// A few lines on the layout: top-level folders with their file counts and main
/// language, notable top-level files, entry points and test folders.
pub(crate) fn structure(files: &[Walked]) -> Vec<String> {
    let mut dirs: BTreeMap<&str, (u64, BTreeMap<&str, u64>)> = BTreeMap::new();
    let mut top_files: Vec<&str> = Vec::new();
    let mut entry_points: Vec<&str> = Vec::new();
    let mut test_dirs: BTreeSet<String> = BTreeSet::new();
    for f in files {
        match f.rel.split_once('/') {
            Some((dir, _)) => {
                let e = dirs.entry(dir).or_default();
                e.0 += 1;
                *e.1.entry(f.lang.name).or_insert(0) += f.size;
            }
            None => top_files.push(&f.rel),
        }
        let file = f.rel.rsplit('/').next().unwrap_or("");
        if matches!(
            file,
            "main.rs"
                | "lib.rs"
                | "main.py"
                | "__main__.py"
                | "app.py"
                | "manage.py"
                | "main.go"
                | "index.js"
                | "index.ts"
                | "main.ts"
                | "main.js"
                | "server.js"
                | "Main.java"
        ) && f.rel.matches('/').count() <= 2
        {
            entry_points.push(&f.rel);
        }
        let parts: Vec<&str> = f.rel.split('/').collect();
        if let Some(pos) =
            parts.iter().position(|p| matches!(*p, "tests" | "test" | "__tests__" | "spec"))
        {
            test_dirs.insert(format!("{}/", parts[..=pos].join("/")));
        }
    }
    let mut out = Vec::new();
    if !dirs.is_empty() {
        let list: Vec<String> = dirs
            .iter()
            .map(|(d, (n, langs))| {
                let main = langs.iter().max_by_key(|(_, b)| **b).map(|(l, _)| *l).unwrap_or("");
                format!("{d}/ ({n} files, {main})")
            })
            .collect();
        out.push(format!("Folders: {}", list.join(", ")));
    }
    if !top_files.is_empty() {
        out.push(format!("Top-level files: {}", top_files.join(", ")));
    }
    if !entry_points.is_empty() {
        out.push(format!("Entry points: {}", entry_points.join(", ")));
    }
    if !test_dirs.is_empty() {
        let list: Vec<String> = test_dirs.into_iter().take(12).collect();
        out.push(format!("Tests: {}", list.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_carry_the_header_and_symbols() {
        let text = "//! Rate limiting for agents.\n//! Token buckets.\n\nuse x;\n\npub struct RateLimiter {}\npub(crate) async fn acquire() {}\nimpl RateLimiter {}\n";
        let s = summarise("src/limit.rs", "Rust", text, 8);
        assert!(
            s.starts_with(
                "src/limit.rs (Rust, 8 lines)\nRate limiting for agents. Token buckets.\n"
            ),
            "{s}"
        );
        assert!(s.contains("Defines: RateLimiter, acquire, impl RateLimiter"), "{s}");
        let py = "#!/usr/bin/env python3\n\"\"\"Fetch things.\"\"\"\n\ndef main():\n    pass\n";
        let s = summarise("run.py", "Python", py, 5);
        assert!(s.contains("Fetch things."), "{s}");
        assert!(s.contains("Defines: main"), "{s}");
        let md = "# Troupe\n\nRuns agents.\nTogether.\n\n## More\n";
        assert!(
            summarise("README.md", "Markdown", md, 6).contains("Troupe Runs agents. Together.")
        );
    }
}
