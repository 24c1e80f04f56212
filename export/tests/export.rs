//! The Obsidian export: round trip (every note parsed back — frontmatter with a real YAML
//! parser, links — matches the graph), hostile titles and metadata, incremental exports.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::json;
use tempfile::TempDir;
use troupe_context::{
    Direction, EdgeType, NewNode, Node, NodeId, NodeType, ProjectId, Scope, Store, StoreOptions,
};
use troupe_export::{
    BEGIN, END, ExportOptions, INDEX, MANIFEST, MAX_STEM_BYTES, export, folder, link_heading,
    obsidian_tag,
};
use yaml_rust2::{Yaml, YamlLoader};

fn store(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::without_embeddings()).unwrap()
}

fn project(name: &str) -> ProjectId {
    ProjectId::new(name).unwrap()
}

fn add(store: &Store, node: NewNode) -> NodeId {
    store.upsert_node(node).unwrap().id
}

fn link(store: &Store, from: &NodeId, to: &NodeId, t: EdgeType) {
    store.link(from, to, t, 1.0, serde_json::Value::Null).unwrap();
}

/// A parsed note.
#[derive(Debug)]
struct Note {
    /// Vault-relative path, `/`-separated.
    path: String,
    front: Yaml,
    /// (heading, link target) in the "Links" section.
    links: BTreeSet<(String, String)>,
    text: String,
}

/// Every `[[target|shown]]` in `text` that is not escaped.
fn wikilinks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("[[") {
        let escaped = i > 0 && rest.as_bytes()[i - 1] == b'\\';
        let after = &rest[i + 2..];
        let Some(end) = after.find("]]") else { break };
        if !escaped {
            let inner = &after[..end];
            out.push(inner.split('|').next().unwrap().to_string());
        }
        rest = &after[end + 2..];
    }
    out
}

fn rel(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/")
}

fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.file_name().unwrap().to_string_lossy().starts_with('.') {
                out.extend(markdown_files(&path));
            }
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Parse every node note of the vault (not the index).
fn parse_vault(dir: &Path) -> Vec<Note> {
    let mut notes = Vec::new();
    for path in markdown_files(dir) {
        let rel = rel(dir, &path);
        if rel == INDEX {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // The user's own files have no frontmatter of troupe's; the count of notes tells
        // whether one of troupe's lost its frontmatter.
        let Some(body) = text.strip_prefix("---\n") else { continue };
        let end = body.find("\n---\n").unwrap_or_else(|| panic!("{rel}: frontmatter not closed"));
        let docs = YamlLoader::load_from_str(&body[..end + 1])
            .unwrap_or_else(|e| panic!("{rel}: invalid YAML: {e}\n{}", &body[..end]));
        assert_eq!(docs.len(), 1, "{rel}");
        let links_part = text.split("\n## Links\n").nth(1).unwrap_or("");
        let mut heading = String::new();
        let mut links = BTreeSet::new();
        for line in links_part.lines() {
            if let Some(h) = line.strip_prefix("### ") {
                heading = h.to_string();
            } else if line.starts_with("- ") {
                for target in wikilinks(line) {
                    links.insert((heading.clone(), target));
                }
            }
        }
        notes.push(Note { path: rel, front: docs[0].clone(), links, text });
    }
    notes
}

fn yaml_to_json(y: &Yaml) -> serde_json::Value {
    match y {
        Yaml::Null => serde_json::Value::Null,
        Yaml::Boolean(b) => json!(b),
        Yaml::Integer(i) => json!(i),
        Yaml::Real(r) => json!(r.parse::<f64>().unwrap()),
        Yaml::String(s) => json!(s),
        Yaml::Array(a) => serde_json::Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => serde_json::Value::Object(
            h.iter()
                .map(|(k, v)| (k.as_str().expect("string key").to_string(), yaml_to_json(v)))
                .collect(),
        ),
        other => panic!("unexpected YAML {other:?}"),
    }
}

/// Text as the frontmatter holds it: `[[` written `[\[`, so that Obsidian does not read
/// a wikilink into a title or a metadata value.
fn unlinked(s: &str) -> String {
    s.replace("[[", "[\\[")
}

fn unlinked_json(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) => json!(unlinked(s)),
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.iter().map(unlinked_json).collect())
        }
        serde_json::Value::Object(o) => serde_json::Value::Object(
            o.iter().map(|(k, v)| (unlinked(k), unlinked_json(v))).collect(),
        ),
        other => other.clone(),
    }
}

fn str_of<'a>(y: &'a Yaml, key: &str) -> &'a str {
    y[key].as_str().unwrap_or_else(|| panic!("{key} missing in {y:?}"))
}

fn list_of(y: &Yaml, key: &str) -> Vec<String> {
    y[key].as_vec().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

/// Check that the vault at `dir` holds exactly `nodes` and their edges among them.
fn assert_vault_matches(store: &Store, dir: &Path, nodes: &[Node]) {
    let notes = parse_vault(dir);
    assert_eq!(notes.len(), nodes.len(), "one note per node");
    let by_id: HashMap<&str, &Node> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut path_of: HashMap<String, String> = HashMap::new(); // node id → link target
    let mut node_at: HashMap<String, String> = HashMap::new(); // link target → node id
    for note in &notes {
        let id = str_of(&note.front, "id");
        let node = by_id.get(id).unwrap_or_else(|| panic!("{}: unknown id {id}", note.path));
        let target = note.path.trim_end_matches(".md").to_string();
        assert!(path_of.insert(id.to_string(), target.clone()).is_none(), "{id} twice");
        node_at.insert(target, id.to_string());
        assert!(note.path.starts_with(&format!("{}/", folder(node.node_type))), "{}", note.path);
        assert_eq!(str_of(&note.front, "title"), unlinked(&node.title));
        assert_eq!(str_of(&note.front, "type"), node.node_type.as_str());
        assert_eq!(str_of(&note.front, "project"), node.project.as_str());
        let ts = |t: &chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        assert_eq!(str_of(&note.front, "created"), ts(&node.created_at));
        assert_eq!(str_of(&note.front, "updated"), ts(&node.updated_at));
        let mut tags = vec![format!("troupe/{}", node.node_type.as_str())];
        for t in node.tags.iter().filter_map(|t| obsidian_tag(t)) {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        assert_eq!(list_of(&note.front, "tags"), tags, "{}", note.path);
        assert_eq!(
            yaml_to_json(&note.front["metadata"]),
            unlinked_json(&node.metadata),
            "{}",
            note.path
        );
        let aliases = list_of(&note.front, "aliases");
        assert!(aliases.len() <= 1);
        assert!(note.text.contains(BEGIN) && note.text.contains(END));
    }
    // Links: exactly the edges among exported nodes, both ways.
    let mut edges = 0;
    for note in &notes {
        let id = str_of(&note.front, "id");
        let mut expected = BTreeSet::new();
        for e in store.edges(&NodeId::new(id).unwrap(), Direction::Both, None).unwrap() {
            let (other, dir) = if e.from.as_str() == id {
                (&e.to, Direction::Outgoing)
            } else {
                (&e.from, Direction::Incoming)
            };
            let Some(target) = path_of.get(other.as_str()) else { continue };
            if dir == Direction::Outgoing {
                edges += 1;
            }
            expected.insert((link_heading(e.edge_type, dir).to_string(), target.clone()));
        }
        assert_eq!(note.links, expected, "links of {}", note.path);
    }
    // Every wikilink anywhere resolves to exactly one note.
    for path in markdown_files(dir) {
        let text = std::fs::read_to_string(&path).unwrap();
        for target in wikilinks(&text) {
            assert!(
                dir.join(format!("{target}.md")).is_file(),
                "{}: [[{target}]] is dangling",
                rel(dir, &path)
            );
        }
    }
    let _ = edges;
}

fn all_nodes(store: &Store, scope: &Scope) -> Vec<Node> {
    store.list_nodes(scope, None, usize::MAX).unwrap()
}

/// A small graph like a few runs leave: tasks, decisions, a mistake, a pattern, a
/// conversation, a code snippet, files and the project.
fn sample(store: &Store, p: &ProjectId) -> Vec<NodeId> {
    let proj = add(
        store,
        NewNode::new(p, NodeType::Project, "troupe", "Project troupe")
            .with_id(NodeId::new(p.as_str()).unwrap()),
    );
    let file =
        add(store, NewNode::new(p, NodeType::File, "src/main.rs", "src/main.rs (Rust, 10 lines)"));
    let task = add(
        store,
        NewNode::new(
            p,
            NodeType::Task,
            "Add rate limiting",
            "Task: add it\nOutcome (succeeded): token bucket",
        )
        .with_tags(["success", "rate limit"])
        .with_metadata(
            json!({"success": true, "agent": "claude", "files": ["src/main.rs"], "run_id": null}),
        ),
    );
    let decision = add(
        store,
        NewNode::new(
            p,
            NodeType::Decision,
            "Use a token bucket",
            "Decision: token bucket\nRationale: bursts",
        )
        .with_metadata(json!({"alternatives": ["leaky bucket", "fixed window"]})),
    );
    let mistake = add(
        store,
        NewNode::new(p, NodeType::Mistake, "Forgot the jitter", "What happened: thundering herd"),
    );
    let pattern = add(
        store,
        NewNode::new(
            p,
            NodeType::Pattern,
            "Wrap agents",
            "Wrap, don't modify.\nExample:\n```rust\nlet a = RateLimited::new(agent);\n```",
        ),
    );
    let snippet = add(
        store,
        NewNode::new(
            p,
            NodeType::CodeSnippet,
            "Token bucket",
            "fn take(&mut self) -> bool {\n    self.tokens > 0\n}",
        )
        .with_metadata(json!({"language": "rust"})),
    );
    let turn = add(
        store,
        NewNode::new(
            p,
            NodeType::Conversation,
            "user: add rate limiting",
            "add rate limiting please",
        ),
    );
    let concept =
        add(store, NewNode::new(p, NodeType::Concept, "Backpressure", "Slow the producer."));
    let pref = add(
        store,
        NewNode::new(p, NodeType::Preference, "Small commits", "One change per commit."),
    );
    let plan = add(
        store,
        NewNode::new(p, NodeType::Plan, "Rate limits", "Plan: rate limits for every agent"),
    );
    link(store, &task, &file, EdgeType::References);
    link(store, &task, &plan, EdgeType::PartOf);
    link(store, &decision, &task, EdgeType::PartOf);
    link(store, &mistake, &task, EdgeType::CausedBy);
    link(store, &pattern, &task, EdgeType::DerivedFrom);
    link(store, &snippet, &pattern, EdgeType::Implements);
    link(store, &turn, &task, EdgeType::PartOf);
    link(store, &concept, &decision, EdgeType::RelatedTo);
    link(store, &decision, &concept, EdgeType::RelatedTo);
    link(store, &file, &proj, EdgeType::PartOf);
    store.link(&pattern, &concept, EdgeType::Mentions, 0.5, json!({"why": "x"})).unwrap();
    vec![proj, file, task, decision, mistake, pattern, snippet, turn, concept, pref, plan]
}

#[test]
fn round_trip_matches_the_graph() {
    let data = TempDir::new().unwrap();
    let vault = TempDir::new().unwrap();
    let store = store(data.path());
    let p = project("p1");
    sample(&store, &p);
    let summary = export(&store, &ExportOptions::new(vault.path(), &p)).unwrap();
    assert_eq!(summary.notes, 11);
    assert_eq!(summary.written, 11);
    assert_eq!(summary.unchanged, 0);
    assert_eq!(summary.links, 11);
    assert_eq!(summary.projects, 1);
    assert_eq!(summary.by_type.len(), 11);
    assert_vault_matches(&store, vault.path(), &all_nodes(&store, &Scope::All));

    // Folders per type, the index, the vault settings.
    for t in NodeType::ALL {
        assert!(vault.path().join(folder(*t)).is_dir(), "{}", folder(*t));
    }
    let index = std::fs::read_to_string(vault.path().join(INDEX)).unwrap();
    for section in ["## Notes by type", "## Projects", "## Most connected", "## Recent activity"] {
        assert!(index.contains(section), "{index}");
    }
    assert!(index.contains("[[Tasks/Add rate limiting|Add rate limiting]] · 6 links"), "{index}");
    assert!(vault.path().join(".obsidian/app.json").is_file());
    let graph: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(vault.path().join(".obsidian/graph.json")).unwrap(),
    )
    .unwrap();
    let groups = graph["colorGroups"].as_array().unwrap();
    let colour_of = |dir: &str| {
        groups
            .iter()
            .find(|g| g["query"] == json!(format!("path:\"{dir}/\"")))
            .map(|g| g["color"]["rgb"].as_u64().unwrap())
    };
    assert_eq!(colour_of("Tasks"), Some(0x4CAF50));
    assert_eq!(colour_of("Decisions"), Some(0x9C27B0));
    assert_eq!(colour_of("Patterns"), Some(0xFF9800));
    assert_eq!(colour_of("Mistakes"), Some(0xF44336));
    assert_eq!(colour_of("Conversations"), Some(0x4FC3F7));
    assert_eq!(colour_of("Code Snippets"), Some(0x9E9E9E));
    assert_eq!(colour_of("Concepts"), Some(0xCDDC39));
    assert_eq!(colour_of("Projects"), Some(0xFFC107));
    assert!(vault.path().join(MANIFEST).is_file());

    // Bodies: code snippets fenced with their language; weights shown.
    let snippet =
        std::fs::read_to_string(vault.path().join("Code Snippets/Token bucket.md")).unwrap();
    assert!(snippet.contains("```rust\nfn take(&mut self) -> bool {"), "{snippet}");
    let pattern = std::fs::read_to_string(vault.path().join("Patterns/Wrap agents.md")).unwrap();
    assert!(
        pattern.contains("### Mentions\n\n- [[Concepts/Backpressure|Backpressure]] (weight 0.5)"),
        "{pattern}"
    );
    assert!(pattern.contains("```rust\nlet a = RateLimited::new(agent);\n```"), "{pattern}");
}

#[test]
fn scope_types_and_since_filter_and_links_stay_inside() {
    let data = TempDir::new().unwrap();
    let store = store(data.path());
    let (a, b) = (project("pa"), project("pb"));
    let old = Utc::now() - Duration::days(30);
    let a1 = add(&store, NewNode::new(&a, NodeType::Decision, "Old decision", "x").at(old));
    let a2 = add(&store, NewNode::new(&a, NodeType::Task, "New task", "y"));
    let a3 = add(&store, NewNode::new(&a, NodeType::Pattern, "New pattern", "z"));
    let b1 = add(&store, NewNode::new(&b, NodeType::Decision, "Other project", "w"));
    link(&store, &a1, &a2, EdgeType::PartOf);
    link(&store, &a3, &a1, EdgeType::DerivedFrom);
    link(&store, &a2, &b1, EdgeType::RelatedTo); // across projects

    let v1 = TempDir::new().unwrap();
    let s = export(&store, &ExportOptions::new(v1.path(), &a)).unwrap();
    assert_eq!(s.notes, 3);
    assert_eq!(s.links, 2, "the link to the other project is left out");
    assert_vault_matches(&store, v1.path(), &all_nodes(&store, &Scope::Project(a.clone())));

    let v2 = TempDir::new().unwrap();
    let s = export(&store, &ExportOptions::new(v2.path(), Scope::All).types([NodeType::Decision]))
        .unwrap();
    assert_eq!((s.notes, s.links, s.projects), (2, 0, 2));
    let decisions: Vec<Node> = all_nodes(&store, &Scope::All)
        .into_iter()
        .filter(|n| n.node_type == NodeType::Decision)
        .collect();
    assert_vault_matches(&store, v2.path(), &decisions);
    let index = std::fs::read_to_string(v2.path().join(INDEX)).unwrap();
    assert!(index.contains("(`pa`)") && index.contains("(`pb`)"), "{index}");

    let v3 = TempDir::new().unwrap();
    let since = Utc::now() - Duration::days(1);
    let s = export(&store, &ExportOptions::new(v3.path(), Scope::All).since(since)).unwrap();
    assert_eq!(s.notes, 3);
    let recent: Vec<Node> =
        all_nodes(&store, &Scope::All).into_iter().filter(|n| n.updated_at >= since).collect();
    assert_vault_matches(&store, v3.path(), &recent);
    assert!(!v3.path().join("Decisions/Old decision.md").exists());
}

const HOSTILE: &[&str] = &[
    "../../etc/passwd",
    "..",
    "CON",
    "nul.txt",
    "a/b",
    "a\\b",
    "#^[]|",
    "ship it 🚀",
    "line one\nline two",
    "key: value: \"quoted\"",
    "- item",
    "[[Not a link]]",
    "<!-- troupe:end -->",
    "dup",
    "dup",
    "DUP",
    "a/b",
    "a:b",
];

fn hostile_graph(store: &Store, p: &ProjectId) -> Vec<NodeId> {
    let mut titles: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    titles.push("x".repeat(300));
    titles.push(format!("{}y", "x".repeat(300)));
    titles.push("é".repeat(200));
    let mut ids = Vec::new();
    for (i, title) in titles.iter().enumerate() {
        let node = NewNode::new(
            p,
            NodeType::Decision,
            title.clone(),
            format!("{BEGIN}\n{END}\n[[x]] body {i}"),
        )
        .with_tags(["has space", "quote\"tag", "colon:tag", "2024", "#hash", "ünï/cödé"])
        .with_metadata(json!({
            "key: with colon": "value\n---\nmore: \"quoted\"",
            "[[link]]": "[[Decisions/dup]]",
            "quote\"": ["a", {"b": [1, 2.5, null, true]}, [], {}],
            "nested": {"deep": {"x": "#not a comment", "y": "&anchor *alias !tag %dir @at `tick`"}},
            "yes": "no",
            "": "empty key",
            "ctrl": "\u{7f}\u{85}\u{2028}\u{feff}\t\r\0",
            "emoji": "🚀",
            "number": -12.5e3,
            "big": i64::MAX,
            "title": title,
        }));
        ids.push(add(store, node));
    }
    for pair in ids.windows(2) {
        link(store, &pair[0], &pair[1], EdgeType::Follows);
    }
    ids
}

#[test]
fn hostile_titles_and_metadata_give_safe_unique_stable_names_and_valid_yaml() {
    let data = TempDir::new().unwrap();
    let store = store(data.path());
    let p = project("p");
    hostile_graph(&store, &p);
    let nodes = all_nodes(&store, &Scope::All);

    let vault = TempDir::new().unwrap();
    let s = export(&store, &ExportOptions::new(vault.path(), &p)).unwrap();
    assert_eq!(s.notes, nodes.len());
    assert_vault_matches(&store, vault.path(), &nodes);

    let notes = parse_vault(vault.path());
    let mut lower = BTreeSet::new();
    for note in &notes {
        let (dir, file) = note.path.split_once('/').unwrap();
        assert_eq!(dir, "Decisions");
        assert!(!file.contains('/') && !file.contains('\\'), "{file}");
        assert!(!file.starts_with('.'), "{file}");
        let stem = file.strip_suffix(".md").unwrap();
        assert!(!stem.ends_with(' ') && !stem.ends_with('.'), "{file:?}");
        assert!(!stem.chars().any(|c| "*\"<>:|?#^[]".contains(c) || c.is_control()), "{file:?}");
        let device = stem.split('.').next().unwrap().to_ascii_uppercase();
        assert!(!["CON", "PRN", "AUX", "NUL", "COM1", "LPT1"].contains(&device.as_str()), "{file}");
        assert!(stem.len() <= MAX_STEM_BYTES + 80, "{file}");
        assert!(lower.insert(file.to_lowercase()), "{file} is not unique (ignoring case)");
        // The title is kept as an alias when the name had to change.
        let title = str_of(&note.front, "title");
        let one_line = title.split_whitespace().collect::<Vec<_>>().join(" ");
        if stem != one_line {
            assert_eq!(list_of(&note.front, "aliases"), vec![one_line]);
        } else {
            assert!(list_of(&note.front, "aliases").is_empty());
        }
        // Marker lines in the body are neutralised: exactly one pair.
        assert_eq!(note.text.lines().filter(|l| *l == BEGIN).count(), 1, "{}", note.path);
        assert_eq!(note.text.lines().filter(|l| *l == END).count(), 1, "{}", note.path);
    }
    // Nothing outside the vault.
    assert!(!vault.path().join("../etc").exists());

    // Stable: the same names in a fresh export, and nothing rewritten in the same folder.
    let names = |dir: &Path| -> BTreeMap<String, String> {
        parse_vault(dir).into_iter().map(|n| (str_of(&n.front, "id").to_string(), n.path)).collect()
    };
    let again = TempDir::new().unwrap();
    export(&store, &ExportOptions::new(again.path(), &p)).unwrap();
    assert_eq!(names(vault.path()), names(again.path()));
    let s = export(&store, &ExportOptions::new(vault.path(), &p)).unwrap();
    assert_eq!((s.written, s.unchanged), (0, nodes.len()));
}

fn mtimes(dir: &Path) -> BTreeMap<String, (std::time::SystemTime, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let m = std::fs::metadata(&path).unwrap().modified().unwrap();
                out.insert(rel(dir, &path), (m, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out
}

#[test]
fn incremental_export_rewrites_only_what_changed_and_keeps_the_users_files_and_text() {
    let data = TempDir::new().unwrap();
    let vault = TempDir::new().unwrap();
    let store = store(data.path());
    let p = project("p");
    let task = add(&store, NewNode::new(&p, NodeType::Task, "Task one", "did it"));
    let decision = add(&store, NewNode::new(&p, NodeType::Decision, "Decide", "because"));
    let mistake = add(&store, NewNode::new(&p, NodeType::Mistake, "Oops", "broke it"));
    let pattern = add(&store, NewNode::new(&p, NodeType::Pattern, "Pattern", "do it so"));
    let lonely = add(&store, NewNode::new(&p, NodeType::Preference, "Lonely", "no links"));
    let renamed = add(&store, NewNode::new(&p, NodeType::Concept, "Old name", "a concept"));
    let gone_with_text = add(&store, NewNode::new(&p, NodeType::Concept, "Doomed", "bye"));
    link(&store, &decision, &task, EdgeType::PartOf);
    link(&store, &mistake, &task, EdgeType::CausedBy);

    // The user's vault settings are kept.
    std::fs::create_dir_all(vault.path().join(".obsidian")).unwrap();
    std::fs::write(vault.path().join(".obsidian/graph.json"), r#"{"showTags": true, "colorGroups": [{"query": "tag:#mine", "color": {"a": 1, "rgb": 1}}]}"#).unwrap();

    let opts = ExportOptions::new(vault.path(), &p);
    let s = export(&store, &opts).unwrap();
    assert_eq!((s.notes, s.written, s.unchanged, s.removed), (7, 7, 0, 0));
    let graph: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(vault.path().join(".obsidian/graph.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(graph["showTags"], json!(true));
    assert_eq!(graph["colorGroups"][0]["query"], json!("tag:#mine"));
    assert_eq!(graph["colorGroups"].as_array().unwrap().len(), 1 + NodeType::ALL.len());

    // A second export of an unchanged graph rewrites nothing.
    let before = mtimes(vault.path());
    std::thread::sleep(std::time::Duration::from_millis(20));
    let s = export(&store, &opts).unwrap();
    assert_eq!((s.written, s.unchanged, s.removed, s.renamed), (0, 7, 0, 0));
    assert_eq!(mtimes(vault.path()), before, "no file was touched");

    // The user adds files and writes in notes, outside troupe's part.
    std::fs::write(vault.path().join("Tasks/My own note.md"), "# mine\n[[Tasks/Task one]]\n")
        .unwrap();
    std::fs::write(vault.path().join("Scratch.md"), "scratch").unwrap();
    let decision_path = vault.path().join("Decisions/Decide.md");
    let text = std::fs::read_to_string(&decision_path).unwrap();
    let text = text.replacen(BEGIN, &format!("My note before.\n{BEGIN}"), 1) + "\nMy note after.\n";
    // A property of the user's own, added in Obsidian's properties view.
    let text = text.replacen("\ntags:\n", "\nstatus: draft\nreviewers:\n  - me\ntags:\n", 1);
    std::fs::write(&decision_path, text).unwrap();
    let concept_path = vault.path().join("Concepts/Old name.md");
    std::fs::write(
        &concept_path,
        std::fs::read_to_string(&concept_path).unwrap() + "Kept across a rename.\n",
    )
    .unwrap();
    let doomed_path = vault.path().join("Concepts/Doomed.md");
    std::fs::write(
        &doomed_path,
        std::fs::read_to_string(&doomed_path).unwrap() + "My last words.\n",
    )
    .unwrap();
    // The user also takes a name a new node would want.
    std::fs::write(vault.path().join("Concepts/Fresh.md"), "the user's Fresh").unwrap();

    // The graph changes: an update, a deletion, a new node and link, a rename, a deletion
    // of a note the user wrote in.
    store
        .upsert_node(
            NewNode::new(&p, NodeType::Decision, "Decide", "because, really")
                .with_id(decision.clone()),
        )
        .unwrap();
    store.delete_node(&mistake).unwrap();
    let fresh = add(&store, NewNode::new(&p, NodeType::Concept, "Fresh", "new"));
    link(&store, &fresh, &pattern, EdgeType::RelatedTo);
    store
        .upsert_node(
            NewNode::new(&p, NodeType::Concept, "New name", "a concept").with_id(renamed.clone()),
        )
        .unwrap();
    store.delete_node(&gone_with_text).unwrap();

    let s = export(&store, &opts).unwrap();
    // Written: the decision, the task (lost a link), the pattern (gained one), the new
    // concept, the renamed one. Unchanged: the preference.
    assert_eq!(s.notes, 6);
    assert_eq!((s.written, s.unchanged, s.removed, s.kept_user_notes, s.renamed), (5, 1, 1, 1, 1));
    assert_vault_matches(&store, vault.path(), &all_nodes(&store, &Scope::All));
    let _ = lonely;

    assert!(!vault.path().join("Mistakes/Oops.md").exists(), "the deleted node's note is gone");
    assert_eq!(
        std::fs::read_to_string(vault.path().join("Tasks/My own note.md")).unwrap(),
        "# mine\n[[Tasks/Task one]]\n"
    );
    assert_eq!(std::fs::read_to_string(vault.path().join("Scratch.md")).unwrap(), "scratch");
    assert_eq!(
        std::fs::read_to_string(vault.path().join("Concepts/Fresh.md")).unwrap(),
        "the user's Fresh"
    );
    let decision_text = std::fs::read_to_string(&decision_path).unwrap();
    assert!(decision_text.contains("My note before.\n<!-- troupe:begin -->"), "{decision_text}");
    assert!(decision_text.ends_with("<!-- troupe:end -->\n\nMy note after.\n"), "{decision_text}");
    assert!(decision_text.contains("because, really"), "{decision_text}");
    assert!(decision_text.contains("status: draft\nreviewers:\n  - me\n---\n"), "{decision_text}");
    assert!(!concept_path.exists());
    let renamed_text = std::fs::read_to_string(vault.path().join("Concepts/New name.md")).unwrap();
    assert!(renamed_text.ends_with("Kept across a rename.\n"), "{renamed_text}");
    let doomed = std::fs::read_to_string(&doomed_path).unwrap();
    assert_eq!(doomed, "My last words.\n", "the user's text stays, troupe's part goes");
    let fresh_note = parse_vault(vault.path())
        .into_iter()
        .find(|n| str_of(&n.front, "id") == fresh.as_str())
        .unwrap();
    assert!(fresh_note.path.starts_with("Concepts/Fresh ("), "{}", fresh_note.path);

    // And once more: nothing to do.
    let before = mtimes(vault.path());
    let s = export(&store, &opts).unwrap();
    assert_eq!((s.written, s.unchanged, s.removed, s.kept_user_notes), (0, 6, 0, 0));
    assert_eq!(mtimes(vault.path()), before);

    // Exporting a narrower selection removes the notes troupe wrote for the rest, and
    // nothing of the user's.
    let s = export(&store, &opts.clone().types([NodeType::Task])).unwrap();
    assert_eq!(s.notes, 1);
    assert!(decision_path.exists(), "the user wrote in it");
    assert_eq!(
        std::fs::read_to_string(&decision_path).unwrap(),
        "---\nstatus: draft\nreviewers:\n  - me\n---\nMy note before.\n\nMy note after.\n"
    );
    assert!(vault.path().join("Tasks/My own note.md").exists());
    assert!(vault.path().join("Concepts/Fresh.md").exists());
}

#[test]
fn a_tampered_manifest_cannot_reach_outside_the_vault() {
    let data = TempDir::new().unwrap();
    let outer = TempDir::new().unwrap();
    let vault = outer.path().join("vault");
    std::fs::create_dir_all(&vault).unwrap();
    std::fs::write(outer.path().join("victim.md"), "precious").unwrap();
    let manifest = json!({
        "format": 1,
        "notes": {
            "../victim.md": {"node": "gone", "hash": "x"},
            "Tasks/../../victim.md": {"node": "gone2", "hash": "x"},
        }
    });
    std::fs::write(vault.join(MANIFEST), manifest.to_string()).unwrap();
    let store = store(data.path());
    export(&store, &ExportOptions::new(&vault, Scope::All)).unwrap();
    assert_eq!(std::fs::read_to_string(outer.path().join("victim.md")).unwrap(), "precious");

    std::fs::write(vault.join(MANIFEST), "not json").unwrap();
    let e = export(&store, &ExportOptions::new(&vault, Scope::All)).unwrap_err();
    assert!(e.to_string().contains(MANIFEST), "{e}");
}

#[test]
fn summary_serialises_for_json_output() {
    let data = TempDir::new().unwrap();
    let vault = TempDir::new().unwrap();
    let store = store(data.path());
    let p = project("p");
    add(&store, NewNode::new(&p, NodeType::Task, "t", "b"));
    let s = export(&store, &ExportOptions::new(vault.path(), &p)).unwrap();
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["notes"], json!(1));
    assert_eq!(v["by_type"]["task"], json!(1));
    assert_eq!(troupe_export::folder(NodeType::CodeSnippet), "Code Snippets");
}

#[test]
fn a_large_graph_exports_once_and_then_rewrites_nothing() {
    let data = TempDir::new().unwrap();
    let vault = TempDir::new().unwrap();
    let store = store(data.path());
    let p = project("big");
    let nodes: Vec<NewNode> = (0..1500)
        .map(|i| {
            // Every title three times, in two cases: collisions all over.
            let title = if i % 2 == 0 {
                format!("src/mod{}.rs", i / 3)
            } else {
                format!("SRC/MOD{}.RS", i / 3)
            };
            NewNode::new(&p, NodeType::File, title, format!("file {i}"))
        })
        .collect();
    let ids: Vec<NodeId> = store.upsert_nodes(nodes).unwrap().into_iter().map(|n| n.id).collect();
    for pair in ids.windows(2).step_by(7) {
        link(&store, &pair[0], &pair[1], EdgeType::DependsOn);
    }
    let opts = ExportOptions::new(vault.path(), &p);
    let s = export(&store, &opts).unwrap();
    assert_eq!((s.notes, s.written), (1500, 1500));
    assert_vault_matches(&store, vault.path(), &all_nodes(&store, &Scope::All));
    let before = mtimes(vault.path());
    let s = export(&store, &opts).unwrap();
    assert_eq!((s.written, s.unchanged), (0, 1500));
    assert_eq!(mtimes(vault.path()), before);
}
