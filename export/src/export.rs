//! The export: select the nodes, place them, move renamed notes, remove (or keep, when the
//! user wrote in them) the notes of nodes no longer selected, write every note, the map
//! of content, the settings and the manifest.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;
use troupe_context::{Direction, Edge, Node, NodeId, NodeType, ProjectId, Scope, Store};

use crate::INDEX;
use crate::error::Result;
use crate::files::{io_err, read_optional, sha256_hex, write_atomic};
use crate::frontmatter::frontmatter;
use crate::index_note::index_note;
use crate::manifest::{Manifest, ManifestNote};
use crate::note::{NoteParts, user_properties, write_note};
use crate::placed::{LinkGroups, managed_section, place};
use crate::settings::vault_settings;

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
    let placed_ids: HashSet<&str> = placed.iter().map(|p| p.node.id.as_str()).collect();
    for (path, note) in &old.notes {
        let still = placed_ids.contains(note.node.as_str());
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

    let mut manifest = Manifest::new();
    let mut projects: HashSet<&ProjectId> = HashSet::new();
    for p in &placed {
        projects.insert(&p.node.project);
        *summary.by_type.entry(p.node.node_type).or_default() += 1;
        let front = frontmatter(&p.node, &p.stem);
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

    let (front, managed) = index_note(store, &placed, &edges, &summary.by_type, summary.projects);
    write_note(&dir.join(INDEX), &front, &managed)?;
    manifest.files.insert(INDEX.into(), sha256_hex(&(front + &managed)));
    vault_settings(dir)?;

    manifest.save(dir)?;
    tracing::info!(
        dir = %dir.display(),
        notes = summary.notes,
        written = summary.written,
        removed = summary.removed,
        "obsidian export"
    );
    Ok(summary)
}
