//! Projects: deterministic ids, and scanning a folder into file nodes and a project node
//! (languages by share of code, frameworks and build tools from manifests, structure).
//!
//! Walking the folder is `walk.rs`, which language a file is in `languages.rs`, frameworks
//! and build tools `frameworks.rs` (both tables of data), the file and layout summaries
//! `summary.rs`; this file stores what they find.

mod frameworks;
mod languages;
mod summary;
mod walk;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::{NewNode, NodeId, NodeType, ProjectId, Scope};
use crate::progress::Progress;
use crate::store::Store;
use languages::Lang;
use summary::summarise;
pub use walk::project_files;
use walk::{Walked, walk};

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

        let detected = frameworks::detect(&root, &files);
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
            frameworks: detected.frameworks,
            build_tools: detected.build_tools,
            manifests: detected.manifests,
            structure: summary::structure(&files),
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
    crate::text::truncate_at_char(&mut content, MAX_CONTENT_BYTES);
    NewNode::new(project, NodeType::File, &f.rel, summarise(&f.rel, f.lang.name, text, lines))
        .with_id(file_node_id(project, &f.rel))
        .with_tags([f.lang.name.to_ascii_lowercase()])
        .with_metadata(serde_json::to_value(&meta).unwrap_or_default())
        .with_content(content)
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
}
