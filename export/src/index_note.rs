//! The map of content (`_Index.md`): notes by kind, per project, the most connected notes
//! and recent activity.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use troupe_context::{Edge, NodeId, NodeType, ProjectId, Store};

use crate::kinds::folder;
use crate::markdown::title_line;
use crate::note::{BEGIN, END};
use crate::placed::Placed;

/// Notes listed under "Most connected" and "Recent activity".
const INDEX_TOP: usize = 15;

/// The map's frontmatter and troupe's part of it, for the notes `placed` with these
/// `edges`, `by_type` counts and number of `projects`.
pub(crate) fn index_note(
    store: &Store,
    placed: &[Placed],
    edges: &[Edge],
    by_type: &BTreeMap<NodeType, usize>,
    projects: usize,
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
        edges.len(),
        projects,
        if projects == 1 { "" } else { "s" }
    );

    out.push_str("## Notes by type\n\n| Type | Folder | Notes |\n|---|---|---:|\n");
    for t in NodeType::ALL {
        let count = by_type.get(t).copied().unwrap_or(0);
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
        let recent = newest_first(notes.iter().copied());
        let not_files = recent.into_iter().filter(|p| p.node.node_type != NodeType::File);
        activity(&mut out, not_files.take(5), "%Y-%m-%d");
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
    let recent = newest_first(placed.iter());
    out.push_str("\n## Recent activity\n\n");
    if recent.is_empty() {
        out.push_str("Nothing exported.\n");
    }
    activity(&mut out, recent.into_iter().take(INDEX_TOP), "%Y-%m-%d %H:%M");
    out.push_str(END);
    out.push('\n');
    (front, out)
}

/// Notes by last update, newest first (ties by id).
fn newest_first<'a>(notes: impl Iterator<Item = &'a Placed>) -> Vec<&'a Placed> {
    let mut v: Vec<&Placed> = notes.collect();
    v.sort_by(|a, b| {
        b.node.updated_at.cmp(&a.node.updated_at).then_with(|| a.node.id.cmp(&b.node.id))
    });
    v
}

/// One line per note: when (in `date_format`), its type, a link to it.
fn activity<'a>(out: &mut String, notes: impl Iterator<Item = &'a Placed>, date_format: &str) {
    for p in notes {
        let _ = writeln!(
            out,
            "- {} · {} · {}",
            p.node.updated_at.format(date_format),
            p.node.node_type.as_str(),
            p.link()
        );
    }
}
