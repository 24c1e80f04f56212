//! A node's place in the vault: the file its note gets (kept across exports while its
//! title stays), the link to it, and troupe's part of the note.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use troupe_context::{Direction, EdgeType, Node};

use crate::error::Result;
use crate::kinds::link_heading;
use crate::manifest::Manifest;
use crate::markdown::{render_body, title_line};
use crate::names::candidates;
use crate::note::{BEGIN, END};

/// A note's links: (0 outgoing / 1 incoming, edge type) → (index of the other note in the
/// placed notes, edge weight).
pub(crate) type LinkGroups = BTreeMap<(u8, EdgeType), Vec<(usize, f32)>>;

/// One node's place in the vault.
pub(crate) struct Placed {
    pub(crate) node: Node,
    /// Vault-relative path, `/`-separated.
    pub(crate) path: String,
    /// The wikilink target: the path without `.md`.
    target: String,
    /// The file stem (what a link shows when the title has nothing showable).
    pub(crate) stem: String,
}

impl Placed {
    /// A wikilink to the note, showing the node's title (on one line, without the
    /// characters that would end the link, at most 80 characters).
    pub(crate) fn link(&self) -> String {
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

/// Give every node a path: the one it had when that is still one of its candidates, else
/// the first candidate nobody has (not another node, not a note troupe wrote before for
/// another node, not a file of the user's). Comparisons ignore case, for the file systems
/// that do.
pub(crate) fn place(dir: &Path, old: &Manifest, nodes: Vec<Node>) -> Result<Vec<Placed>> {
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

/// Troupe's part of `p`'s note: its title, its body and its links to the other notes of
/// `placed`.
pub(crate) fn managed_section(p: &Placed, links: Option<&LinkGroups>, placed: &[Placed]) -> String {
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
