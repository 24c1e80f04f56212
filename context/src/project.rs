//! Projects: deterministic ids, and scanning a folder into file nodes and a project node
//! (languages by share of code, frameworks and build tools from manifests, structure).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::graph::Scope;
use crate::model::{NewNode, NodeId, NodeType, ProjectId};
use crate::progress::Progress;
use crate::store::Store;

/// Files larger than this are not read (generated or data files, mostly).
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// A file's content kept for BM25 (the rest is cut).
const MAX_CONTENT_BYTES: usize = 256 * 1024;
/// Files stored per transaction during a scan.
const SCAN_BATCH: usize = 64;

/// The project id of a folder: the first 16 hex digits of the SHA-256 of its canonical
/// path (symlinks resolved), with the canonical path.
pub fn project_id_for(path: &Path) -> Result<(ProjectId, PathBuf)> {
    let canonical = path.canonicalize().map_err(|e| Error::io(path, e))?;
    if !canonical.is_dir() {
        return Err(Error::InvalidInput(format!("{} is not a folder", canonical.display())));
    }
    Ok((project_id_of_canonical(&canonical), canonical))
}

/// The project id of an already canonical path.
pub fn project_id_of_canonical(canonical: &Path) -> ProjectId {
    let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
    ProjectId::from_trusted(hex::encode(&digest[..8]))
}

/// The id of the file node for `rel_path` in `project` (stable across scans, so a re-scan
/// updates the node and keeps its edges).
pub fn file_node_id(project: &ProjectId, rel_path: &str) -> NodeId {
    let mut h = Sha256::new();
    h.update(project.as_str().as_bytes());
    h.update([0]);
    h.update(rel_path.as_bytes());
    NodeId::from_trusted(format!("file-{}", hex::encode(&h.finalize()[..10])))
}

/// A language's share of a project's code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LanguageShare {
    /// Language name.
    pub language: String,
    /// Files.
    pub files: u64,
    /// Bytes.
    pub bytes: u64,
    /// Fraction of all code bytes, 0..=1.
    pub share: f64,
}

/// What a scan learned about a project (kept as its project node's metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectInfo {
    /// Its id.
    pub id: ProjectId,
    /// Canonical path.
    pub path: PathBuf,
    /// Folder name.
    pub name: String,
    /// Languages by share of code bytes, largest first (programming languages only).
    pub languages: Vec<LanguageShare>,
    /// Frameworks and notable libraries found in manifests.
    pub frameworks: Vec<String>,
    /// Build tools and CI found.
    pub build_tools: Vec<String>,
    /// Manifests read (relative paths).
    pub manifests: Vec<String>,
    /// A few lines on the layout.
    pub structure: Vec<String>,
    /// Files with a file node.
    pub files: u64,
    /// When it was scanned last.
    pub scanned_at: DateTime<Utc>,
}

impl ProjectInfo {
    /// A short multi-line description (the project node's body).
    pub fn summary(&self) -> String {
        let mut s = format!("Project {} at {}\n", self.name, self.path.display());
        if !self.languages.is_empty() {
            let langs: Vec<String> = self
                .languages
                .iter()
                .take(6)
                .map(|l| format!("{} {:.0}%", l.language, l.share * 100.0))
                .collect();
            s.push_str(&format!("Languages: {}\n", langs.join(", ")));
        }
        if !self.frameworks.is_empty() {
            s.push_str(&format!("Frameworks and libraries: {}\n", self.frameworks.join(", ")));
        }
        if !self.build_tools.is_empty() {
            s.push_str(&format!("Build tools: {}\n", self.build_tools.join(", ")));
        }
        for line in &self.structure {
            s.push_str(line);
            s.push('\n');
        }
        s
    }
}

/// What a scan changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanReport {
    /// The project as scanned.
    pub project: ProjectInfo,
    /// New file nodes.
    pub added: usize,
    /// File nodes whose content changed.
    pub updated: usize,
    /// Files unchanged since the last scan.
    pub unchanged: usize,
    /// File nodes of files that are gone.
    pub removed: usize,
    /// Files not stored (binary, too large, unreadable).
    pub skipped: usize,
}

/// What the file metadata of a file node holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileMeta {
    path: String,
    language: String,
    size: u64,
    lines: u64,
    hash: String,
    /// Modification time, nanoseconds since the epoch (seconds would miss a same-size
    /// edit within the second of the previous scan).
    mtime: i64,
}

struct Lang {
    name: &'static str,
    /// Counts towards "share of code".
    code: bool,
}

fn language_of(path: &Path) -> Option<Lang> {
    let file = path.file_name()?.to_str()?;
    let by_name = match file {
        "Dockerfile" | "Containerfile" => Some(("Dockerfile", false)),
        "Makefile" | "GNUmakefile" => Some(("Makefile", false)),
        "CMakeLists.txt" => Some(("CMake", false)),
        "Justfile" | "justfile" => Some(("just", false)),
        "Gemfile" | "Rakefile" => Some(("Ruby", true)),
        // Lock files are generated and long: no file node.
        "Cargo.lock" | "package-lock.json" | "yarn.lock" | "pnpm-lock.yaml" | "poetry.lock"
        | "go.sum" | "composer.lock" | "Gemfile.lock" | "uv.lock" => return None,
        _ => None,
    };
    let (name, code) = match by_name {
        Some(x) => x,
        None => {
            let ext = path.extension()?.to_str()?.to_ascii_lowercase();
            match ext.as_str() {
                "rs" => ("Rust", true),
                "py" | "pyi" => ("Python", true),
                "js" | "mjs" | "cjs" | "jsx" => ("JavaScript", true),
                "ts" | "tsx" | "mts" | "cts" => ("TypeScript", true),
                "go" => ("Go", true),
                "java" => ("Java", true),
                "kt" | "kts" => ("Kotlin", true),
                "scala" => ("Scala", true),
                "c" | "h" => ("C", true),
                "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" => ("C++", true),
                "cs" => ("C#", true),
                "rb" => ("Ruby", true),
                "php" => ("PHP", true),
                "swift" => ("Swift", true),
                "m" | "mm" => ("Objective-C", true),
                "sh" | "bash" | "zsh" => ("Shell", true),
                "ps1" => ("PowerShell", true),
                "lua" => ("Lua", true),
                "sql" => ("SQL", true),
                "html" | "htm" => ("HTML", true),
                "css" | "scss" | "sass" | "less" => ("CSS", true),
                "vue" => ("Vue", true),
                "svelte" => ("Svelte", true),
                "dart" => ("Dart", true),
                "ex" | "exs" => ("Elixir", true),
                "erl" | "hrl" => ("Erlang", true),
                "hs" => ("Haskell", true),
                "ml" | "mli" => ("OCaml", true),
                "clj" | "cljs" => ("Clojure", true),
                "r" => ("R", true),
                "jl" => ("Julia", true),
                "pl" | "pm" => ("Perl", true),
                "zig" => ("Zig", true),
                "nix" => ("Nix", true),
                "proto" => ("Protocol Buffers", true),
                "md" | "markdown" => ("Markdown", false),
                "rst" => ("reStructuredText", false),
                "toml" => ("TOML", false),
                "yaml" | "yml" => ("YAML", false),
                "json" => ("JSON", false),
                _ => return None,
            }
        }
    };
    Some(Lang { name, code })
}

/// Folders never worth scanning even when no ignore file says so.
fn skipped_dir(name: &str) -> bool {
    matches!(
        name,
        "node_modules"
            | "__pycache__"
            | ".venv"
            | "venv"
            | ".tox"
            | ".mypy_cache"
            | ".pytest_cache"
            | ".git"
    )
}

/// One walked file.
struct Walked {
    rel: String,
    abs: PathBuf,
    lang: Lang,
    size: u64,
    mtime: i64,
}

/// The files of the project at `root`, leaving out the folders in `excluded` (troupe's own
/// data folder and store, when they lie inside the project: they are not the project).
fn walk(root: &Path, excluded: &[&Path]) -> Vec<Walked> {
    let mut out = Vec::new();
    let excluded: Vec<PathBuf> = excluded
        .iter()
        .filter_map(|d| d.canonicalize().ok())
        .filter(|d| d.as_path() != root && d.starts_with(root))
        .collect();
    let walker = ignore::WalkBuilder::new(root)
        .require_git(false)
        .filter_entry(move |e| {
            let name = e.file_name().to_string_lossy();
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            if is_dir && excluded.iter().any(|d| e.path() == d) {
                return false;
            }
            // A Rust build folder that is not ignored (no .gitignore): it says what it is.
            !(is_dir && (skipped_dir(&name) || e.path().join("CACHEDIR.TAG").exists()))
        })
        .build();
    for entry in walker {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let abs = entry.path().to_path_buf();
        let Some(lang) = language_of(&abs) else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        let Ok(rel) = abs.strip_prefix(root) else { continue };
        let rel =
            rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        out.push(Walked { rel, abs, lang, size: meta.len(), mtime });
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

impl Store {
    /// Register a project: scan it (see [`Store::scan_project`]) and return its id.
    pub fn register_project(&self, path: &Path) -> Result<ProjectId> {
        Ok(self.scan_project(path, &crate::progress::NoProgress)?.project.id)
    }

    /// The project of `path`, scanning it first if it was never scanned.
    pub fn ensure_project(&self, path: &Path) -> Result<ProjectId> {
        let (id, _) = project_id_for(path)?;
        if self.project(&id)?.is_some() {
            return Ok(id);
        }
        self.register_project(path)
    }

    /// Scan the folder at `path` (gitignore-aware): store a file node per source, doc and
    /// config file (only the ones that changed since the last scan; nodes of deleted files
    /// are removed) and the project node with languages, frameworks, build tools and
    /// structure.
    pub fn scan_project(&self, path: &Path, progress: &dyn Progress) -> Result<ScanReport> {
        let (project, root) = project_id_for(path)?;
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into());
        let store_dir = self.inner.root.as_path();
        let data_dir = store_dir.parent().unwrap_or(store_dir);
        let files = walk(&root, &[store_dir, data_dir]);

        // What the last scan stored.
        let mut known: HashMap<String, (NodeId, FileMeta)> = HashMap::new();
        for id in self.ids_in(&Scope::Project(project.clone()), Some(NodeType::File))? {
            if let Some(node) = self.get_node(&id)?
                && let Ok(meta) = serde_json::from_value::<FileMeta>(node.metadata.clone())
            {
                known.insert(meta.path.clone(), (id, meta));
            }
        }

        let mut report_counts = (0usize, 0usize, 0usize, 0usize); // added, updated, unchanged, skipped
        let mut langs: BTreeMap<&'static str, (u64, u64, bool)> = BTreeMap::new();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut batch: Vec<NewNode> = Vec::new();
        let mut stored_files = 0u64;
        progress.start("scanning", files.len() as u64);
        for f in &files {
            progress.advance(1);
            if f.size > MAX_FILE_BYTES {
                report_counts.3 += 1;
                continue;
            }
            if let Some((_, meta)) = known.get(&f.rel)
                && meta.size == f.size
                && meta.mtime == f.mtime
            {
                seen.insert(f.rel.clone());
                count_lang(&mut langs, &f.lang, f.size);
                report_counts.2 += 1;
                stored_files += 1;
                continue;
            }
            let Ok(bytes) = std::fs::read(&f.abs) else {
                report_counts.3 += 1;
                continue;
            };
            if bytes.iter().take(8192).any(|b| *b == 0) {
                report_counts.3 += 1;
                continue;
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let hash = hex::encode(&Sha256::digest(&bytes)[..16]);
            seen.insert(f.rel.clone());
            count_lang(&mut langs, &f.lang, f.size);
            stored_files += 1;
            let previous = known.get(&f.rel);
            if previous.is_some_and(|(_, m)| m.hash == hash) {
                report_counts.2 += 1;
                continue;
            }
            if previous.is_some() {
                report_counts.1 += 1;
            } else {
                report_counts.0 += 1;
            }
            batch.push(file_node(&project, f, &text, hash));
            if batch.len() >= SCAN_BATCH {
                self.upsert_nodes(std::mem::take(&mut batch))?;
            }
        }
        self.upsert_nodes(batch)?;
        progress.finish();

        let gone: Vec<NodeId> = known
            .iter()
            .filter(|(path, _)| !seen.contains(*path))
            .map(|(_, (id, _))| id.clone())
            .collect();
        let removed = self.delete_nodes(&gone)?;

        let (frameworks, build_tools, manifests) = detect_frameworks(&root, &files);
        let code_total: u64 = langs.values().filter(|v| v.2).map(|v| v.1).sum();
        let mut languages: Vec<LanguageShare> = langs
            .iter()
            .filter(|(_, v)| v.2)
            .map(|(name, (n, bytes, _))| LanguageShare {
                language: name.to_string(),
                files: *n,
                bytes: *bytes,
                share: if code_total > 0 { *bytes as f64 / code_total as f64 } else { 0.0 },
            })
            .collect();
        languages.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.language.cmp(&b.language)));
        let info = ProjectInfo {
            id: project.clone(),
            path: root.clone(),
            name: name.clone(),
            languages,
            frameworks,
            build_tools,
            manifests,
            structure: structure(&files),
            files: stored_files,
            scanned_at: Utc::now(),
        };
        let mut tags: Vec<String> =
            info.languages.iter().take(4).map(|l| l.language.clone()).collect();
        tags.extend(info.frameworks.iter().take(8).cloned());
        self.upsert_node(
            NewNode::new(&project, NodeType::Project, &name, info.summary())
                .with_id(NodeId::from_trusted(project.as_str().to_string()))
                .with_tags(tags)
                .with_metadata(serde_json::to_value(&info)?),
        )?;
        tracing::info!(
            project = %project,
            added = report_counts.0,
            updated = report_counts.1,
            removed,
            "project scanned"
        );
        Ok(ScanReport {
            project: info,
            added: report_counts.0,
            updated: report_counts.1,
            unchanged: report_counts.2,
            removed,
            skipped: report_counts.3,
        })
    }

    /// A scanned project's description.
    pub fn project(&self, id: &ProjectId) -> Result<Option<ProjectInfo>> {
        let Some(node) = self.get_node(&NodeId::from_trusted(id.as_str().to_string()))? else {
            return Ok(None);
        };
        if node.node_type != NodeType::Project {
            return Ok(None);
        }
        serde_json::from_value(node.metadata)
            .map(Some)
            .map_err(|e| Error::corrupt(format!("project {id}"), e))
    }

    /// Every scanned project.
    pub fn projects(&self) -> Result<Vec<ProjectInfo>> {
        let mut out = Vec::new();
        for id in self.project_ids()? {
            if let Some(p) = self.project(&id)? {
                out.push(p);
            }
        }
        Ok(out)
    }
}

fn count_lang(langs: &mut BTreeMap<&'static str, (u64, u64, bool)>, lang: &Lang, size: u64) {
    let e = langs.entry(lang.name).or_insert((0, 0, lang.code));
    e.0 += 1;
    e.1 += size;
}

fn file_node(project: &ProjectId, f: &Walked, text: &str, hash: String) -> NewNode {
    // A scanned `.env` or config file can hold a secret the process knows of: the memory
    // (and so every prompt, search hit and export built from it) gets it masked.
    let redactor = troupe_observability::redact::global();
    let text = redactor.redact(text);
    let text = text.as_ref();
    let lines = text.lines().count() as u64;
    let meta = FileMeta {
        path: f.rel.clone(),
        language: f.lang.name.to_string(),
        size: f.size,
        lines,
        hash,
        mtime: f.mtime,
    };
    let mut content = text.to_string();
    crate::graph::truncate_at_char(&mut content, MAX_CONTENT_BYTES);
    NewNode::new(project, NodeType::File, &f.rel, summarise(&f.rel, f.lang.name, text, lines))
        .with_id(file_node_id(project, &f.rel))
        .with_tags([f.lang.name.to_ascii_lowercase()])
        .with_metadata(serde_json::to_value(&meta).unwrap_or_default())
        .with_content(content)
}

/// A file's body: what it is, its leading comment or heading, the names it defines, and
/// its first lines.
pub(crate) fn summarise(rel: &str, language: &str, text: &str, lines: u64) -> String {
    let mut s = format!("{rel} ({language}, {lines} lines)\n");
    let header = leading_comment(text, language);
    if !header.is_empty() {
        let mut h = header;
        crate::graph::truncate_at_char(&mut h, 600);
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
    crate::graph::truncate_at_char(&mut head, 500);
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

/// Frameworks, build tools and the manifests they came from.
fn detect_frameworks(root: &Path, files: &[Walked]) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut frameworks: BTreeSet<String> = BTreeSet::new();
    let mut tools: BTreeSet<String> = BTreeSet::new();
    let mut manifests: Vec<String> = Vec::new();
    let names = |deps: &[String], table: &[(&str, &str)], out: &mut BTreeSet<String>| {
        for (dep, label) in table {
            if deps.iter().any(|d| d == dep) {
                out.insert(label.to_string());
            }
        }
    };
    for f in files {
        let file = f.rel.rsplit('/').next().unwrap_or(&f.rel);
        let read = || std::fs::read_to_string(&f.abs).ok();
        match file {
            "Cargo.toml" => {
                tools.insert("Cargo".into());
                manifests.push(f.rel.clone());
                if let Some(text) = read()
                    && let Ok(doc) = text.parse::<toml::Table>()
                {
                    if doc.contains_key("workspace") {
                        tools.insert("Cargo workspace".into());
                    }
                    let mut deps = Vec::new();
                    toml_keys(
                        &doc,
                        &["dependencies", "dev-dependencies", "build-dependencies"],
                        &mut deps,
                    );
                    if let Some(ws) = doc.get("workspace").and_then(|w| w.as_table()) {
                        toml_keys(ws, &["dependencies"], &mut deps);
                    }
                    names(&deps, RUST_CRATES, &mut frameworks);
                }
            }
            "package.json" => {
                tools.insert("npm".into());
                manifests.push(f.rel.clone());
                if let Some(text) = read()
                    && let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text)
                {
                    let mut deps = Vec::new();
                    for key in ["dependencies", "devDependencies", "peerDependencies"] {
                        if let Some(m) = doc.get(key).and_then(|d| d.as_object()) {
                            deps.extend(m.keys().cloned());
                        }
                    }
                    names(&deps, JS_PACKAGES, &mut frameworks);
                }
            }
            "pyproject.toml" | "requirements.txt" | "setup.py" | "setup.cfg" | "Pipfile" => {
                manifests.push(f.rel.clone());
                let text = read().unwrap_or_default();
                let mut deps = Vec::new();
                if file == "pyproject.toml" {
                    if let Ok(doc) = text.parse::<toml::Table>() {
                        if let Some(list) = doc
                            .get("project")
                            .and_then(|p| p.get("dependencies"))
                            .and_then(|d| d.as_array())
                        {
                            deps.extend(
                                list.iter().filter_map(|v| v.as_str()).map(python_requirement_name),
                            );
                        }
                        if let Some(poetry) = doc.get("tool").and_then(|t| t.get("poetry")) {
                            tools.insert("Poetry".into());
                            if let Some(t) = poetry.get("dependencies").and_then(|d| d.as_table()) {
                                deps.extend(t.keys().map(|k| k.to_ascii_lowercase()));
                            }
                        }
                        if let Some(req) = doc
                            .get("build-system")
                            .and_then(|b| b.get("requires"))
                            .and_then(|r| r.as_array())
                        {
                            for r in
                                req.iter().filter_map(|v| v.as_str()).map(python_requirement_name)
                            {
                                match r.as_str() {
                                    "hatchling" => tools.insert("Hatch".into()),
                                    "setuptools" => tools.insert("setuptools".into()),
                                    "maturin" => tools.insert("maturin".into()),
                                    "flit_core" | "flit-core" => tools.insert("Flit".into()),
                                    _ => false,
                                };
                            }
                        }
                    }
                } else {
                    tools.insert("pip".into());
                    deps.extend(
                        text.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty() && !l.starts_with('#'))
                            .map(python_requirement_name),
                    );
                }
                names(&deps, PYTHON_PACKAGES, &mut frameworks);
            }
            "go.mod" => {
                tools.insert("Go modules".into());
                manifests.push(f.rel.clone());
                let text = read().unwrap_or_default();
                for (module, label) in GO_MODULES {
                    if text.contains(module) {
                        frameworks.insert(label.to_string());
                    }
                }
            }
            "pom.xml" | "build.gradle" | "build.gradle.kts" => {
                tools.insert(if file == "pom.xml" { "Maven" } else { "Gradle" }.into());
                manifests.push(f.rel.clone());
                let text = read().unwrap_or_default();
                if text.contains("spring-boot") || text.contains("org.springframework") {
                    frameworks.insert("Spring".into());
                }
                if text.contains("com.android") {
                    frameworks.insert("Android".into());
                }
            }
            "Gemfile" => {
                tools.insert("Bundler".into());
                manifests.push(f.rel.clone());
                if read().is_some_and(|t| t.contains("'rails'") || t.contains("\"rails\"")) {
                    frameworks.insert("Rails".into());
                }
            }
            "composer.json" => {
                tools.insert("Composer".into());
                manifests.push(f.rel.clone());
                let text = read().unwrap_or_default();
                if text.contains("laravel/framework") {
                    frameworks.insert("Laravel".into());
                }
                if text.contains("symfony/") {
                    frameworks.insert("Symfony".into());
                }
            }
            "CMakeLists.txt" => {
                tools.insert("CMake".into());
            }
            "Makefile" | "GNUmakefile" => {
                tools.insert("Make".into());
            }
            "Justfile" | "justfile" => {
                tools.insert("just".into());
            }
            "Dockerfile" | "Containerfile" => {
                tools.insert("Docker".into());
            }
            "docker-compose.yml" | "docker-compose.yaml" | "compose.yml" | "compose.yaml" => {
                tools.insert("Docker Compose".into());
            }
            _ => {}
        }
    }
    if root.join(".github").join("workflows").is_dir() {
        tools.insert("GitHub Actions".into());
    }
    if root.join(".gitlab-ci.yml").is_file() {
        tools.insert("GitLab CI".into());
    }
    if root.join("yarn.lock").is_file() {
        tools.insert("Yarn".into());
    }
    if root.join("pnpm-lock.yaml").is_file() {
        tools.insert("pnpm".into());
    }
    if root.join("uv.lock").is_file() {
        tools.insert("uv".into());
    }
    (frameworks.into_iter().collect(), tools.into_iter().collect(), manifests)
}

fn toml_keys(table: &toml::Table, sections: &[&str], out: &mut Vec<String>) {
    for s in sections {
        if let Some(t) = table.get(*s).and_then(|v| v.as_table()) {
            out.extend(t.keys().cloned());
        }
    }
}

/// `Django>=4.2 ; python_version…` → `django`.
fn python_requirement_name(spec: &str) -> String {
    spec.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
        .replace('_', "-")
}

const RUST_CRATES: &[(&str, &str)] = &[
    ("tokio", "Tokio"),
    ("async-std", "async-std"),
    ("actix", "Actix"),
    ("actix-web", "Actix Web"),
    ("axum", "axum"),
    ("rocket", "Rocket"),
    ("warp", "warp"),
    ("hyper", "hyper"),
    ("tonic", "tonic (gRPC)"),
    ("reqwest", "reqwest"),
    ("serde", "serde"),
    ("clap", "clap"),
    ("diesel", "Diesel"),
    ("sqlx", "SQLx"),
    ("sea-orm", "SeaORM"),
    ("sled", "sled"),
    ("tantivy", "tantivy"),
    ("fastembed", "fastembed"),
    ("bevy", "Bevy"),
    ("tauri", "Tauri"),
    ("leptos", "Leptos"),
    ("yew", "Yew"),
    ("dioxus", "Dioxus"),
    ("tracing", "tracing"),
    ("opentelemetry", "OpenTelemetry"),
    ("prometheus", "Prometheus"),
    ("criterion", "criterion"),
    ("proptest", "proptest"),
    ("wasm-bindgen", "wasm-bindgen"),
];

const JS_PACKAGES: &[(&str, &str)] = &[
    ("react", "React"),
    ("next", "Next.js"),
    ("vue", "Vue"),
    ("nuxt", "Nuxt"),
    ("svelte", "Svelte"),
    ("@sveltejs/kit", "SvelteKit"),
    ("@angular/core", "Angular"),
    ("solid-js", "Solid"),
    ("express", "Express"),
    ("fastify", "Fastify"),
    ("koa", "Koa"),
    ("@nestjs/core", "NestJS"),
    ("electron", "Electron"),
    ("typescript", "TypeScript"),
    ("jest", "Jest"),
    ("vitest", "Vitest"),
    ("mocha", "Mocha"),
    ("webpack", "webpack"),
    ("vite", "Vite"),
    ("tailwindcss", "Tailwind CSS"),
    ("prisma", "Prisma"),
    ("eslint", "ESLint"),
];

const PYTHON_PACKAGES: &[(&str, &str)] = &[
    ("django", "Django"),
    ("flask", "Flask"),
    ("fastapi", "FastAPI"),
    ("starlette", "Starlette"),
    ("pytest", "pytest"),
    ("numpy", "NumPy"),
    ("pandas", "pandas"),
    ("torch", "PyTorch"),
    ("tensorflow", "TensorFlow"),
    ("sqlalchemy", "SQLAlchemy"),
    ("pydantic", "Pydantic"),
    ("celery", "Celery"),
    ("scikit-learn", "scikit-learn"),
    ("click", "Click"),
    ("typer", "Typer"),
];

const GO_MODULES: &[(&str, &str)] = &[
    ("github.com/gin-gonic/gin", "Gin"),
    ("github.com/labstack/echo", "Echo"),
    ("github.com/gofiber/fiber", "Fiber"),
    ("github.com/spf13/cobra", "Cobra"),
    ("gorm.io/gorm", "GORM"),
    ("google.golang.org/grpc", "gRPC"),
];

/// A few lines on the layout: top-level folders with their file counts and main
/// language, notable top-level files, entry points and test folders.
fn structure(files: &[Walked]) -> Vec<String> {
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
    fn ids_are_deterministic_and_path_based() {
        let dir = tempfile::tempdir().unwrap();
        let (a, canon) = project_id_for(dir.path()).unwrap();
        let (b, _) = project_id_for(&dir.path().join(".")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str().len(), 16);
        assert_eq!(project_id_of_canonical(&canon), a);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(project_id_for(other.path()).unwrap().0, a);
        assert!(project_id_for(&dir.path().join("missing")).is_err());
        assert_eq!(file_node_id(&a, "src/x.rs"), file_node_id(&a, "src/x.rs"));
        assert_ne!(file_node_id(&a, "src/x.rs"), file_node_id(&a, "src/y.rs"));
    }

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

    #[test]
    fn python_requirement_names() {
        assert_eq!(python_requirement_name("Django>=4.2 ; python_version>'3'"), "django");
        assert_eq!(python_requirement_name("scikit_learn==1.0"), "scikit-learn");
    }

    #[test]
    fn languages_by_extension_and_name() {
        assert_eq!(language_of(Path::new("a/b.rs")).map(|l| l.name), Some("Rust"));
        assert_eq!(language_of(Path::new("Dockerfile")).map(|l| l.code), Some(false));
        assert!(language_of(Path::new("Cargo.lock")).is_none());
        assert!(language_of(Path::new("image.png")).is_none());
        assert!(language_of(Path::new("README.md")).is_some_and(|l| !l.code));
    }
}
