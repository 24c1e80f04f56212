//! The kinds of note in a vault: which nodes each holds, its folder, its colour in the graph
//! view, and the headings of the links between notes. To add a kind, add a row to
//! [`KINDS`] (a test checks that every node type has one).

use troupe_context::{Direction, EdgeType, NodeType};

/// A kind of note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoteKind {
    /// The nodes it holds.
    pub node_type: NodeType,
    /// Its folder in the vault.
    pub folder: &'static str,
    /// Its colour (`0xRRGGBB`) in the graph view.
    pub colour: u32,
}

/// Every kind of note.
pub const KINDS: &[NoteKind] = &[
    NoteKind { node_type: NodeType::Conversation, folder: "Conversations", colour: 0x4FC3F7 }, // light blue
    NoteKind { node_type: NodeType::Task, folder: "Tasks", colour: 0x4CAF50 }, // green
    NoteKind { node_type: NodeType::Mistake, folder: "Mistakes", colour: 0xF44336 }, // red
    NoteKind { node_type: NodeType::Pattern, folder: "Patterns", colour: 0xFF9800 }, // orange
    NoteKind { node_type: NodeType::Decision, folder: "Decisions", colour: 0x9C27B0 }, // purple
    NoteKind { node_type: NodeType::CodeSnippet, folder: "Code Snippets", colour: 0x9E9E9E }, // grey
    NoteKind { node_type: NodeType::Preference, folder: "Preferences", colour: 0x009688 }, // teal
    NoteKind { node_type: NodeType::File, folder: "Files", colour: 0x607D8B }, // blue grey
    NoteKind { node_type: NodeType::Concept, folder: "Concepts", colour: 0xCDDC39 }, // lime
    NoteKind { node_type: NodeType::Project, folder: "Projects", colour: 0xFFC107 }, // amber
    NoteKind { node_type: NodeType::Plan, folder: "Plans", colour: 0x3F51B5 }, // indigo
];

/// The folder of nodes without a row in [`KINDS`] (none today).
const OTHER: NoteKind =
    NoteKind { node_type: NodeType::Concept, folder: "Other", colour: 0x9E9E9E };

/// The kind of note a node of `node_type` becomes.
pub fn kind(node_type: NodeType) -> NoteKind {
    KINDS
        .iter()
        .find(|k| k.node_type == node_type)
        .copied()
        .unwrap_or(NoteKind { node_type, ..OTHER })
}

/// The vault folder of a node type.
pub fn folder(node_type: NodeType) -> &'static str {
    kind(node_type).folder
}

/// The colour (`0xRRGGBB`) of a node type in the graph view.
pub fn colour(node_type: NodeType) -> u32 {
    kind(node_type).colour
}

/// Whether `dir` is one of the vault's note folders.
pub(crate) fn is_note_folder(dir: &str) -> bool {
    KINDS.iter().any(|k| k.folder == dir)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_type_has_its_own_kind_and_folder() {
        for t in NodeType::ALL {
            let k = kind(*t);
            assert_eq!(k.node_type, *t);
            assert_ne!(k.folder, OTHER.folder, "{t:?} has no row in KINDS");
            assert_eq!(KINDS.iter().filter(|k| k.node_type == *t).count(), 1, "{t:?}");
        }
        let mut folders: Vec<&str> = KINDS.iter().map(|k| k.folder).collect();
        folders.sort_unstable();
        folders.dedup();
        assert_eq!(folders.len(), KINDS.len(), "two kinds share a folder");
        assert!(is_note_folder("Tasks") && !is_note_folder("Other"));
    }
}
