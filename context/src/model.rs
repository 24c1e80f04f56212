//! The graph's vocabulary: projects, nodes, edges and their types.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wrap a string, checking that it can be used as a key: non-empty, at most
            /// [`MAX_ID_LEN`] bytes, no whitespace or control characters.
            pub fn new(id: impl Into<String>) -> Result<Self> {
                let id = id.into();
                validate_id(&id)?;
                Ok($name(id))
            }

            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub(crate) fn from_trusted(id: String) -> Self {
                $name(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                $name::new(s)
            }
        }
    };
}

id_type!(
    /// A project's id: the first 16 hex digits of the SHA-256 of its canonical path, so the
    /// same folder always gets the same id (see [`crate::project_id_for`]).
    ProjectId
);

id_type!(
    /// A node's id. Opaque: generated nodes get a UUIDv7 (time-ordered), file nodes a
    /// deterministic id derived from project and path, a project's node the project id.
    NodeId
);

impl NodeId {
    /// A fresh time-ordered id (UUIDv7).
    pub fn generate() -> NodeId {
        NodeId(uuid::Uuid::now_v7().to_string())
    }
}

fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::InvalidInput("an id cannot be empty".into()));
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::InvalidInput(format!(
            "id is longer than {MAX_ID_LEN} bytes: {id:.40}…"
        )));
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::InvalidInput(format!(
            "id {id:?} contains whitespace or control characters"
        )));
    }
    Ok(())
}

macro_rules! name_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in a fixed order (their codes in storage are these positions:
            /// append new values at the end).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The snake_case name used in storage, on the command line and in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub(crate) fn code(self) -> u8 {
                // ALL has fewer than 256 entries and lists every variant.
                $name::ALL.iter().position(|v| *v == self).unwrap_or(0) as u8
            }

            pub(crate) fn from_code(code: u8) -> Option<$name> {
                $name::ALL.get(code as usize).copied()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
                $name::ALL.iter().copied().find(|v| v.as_str() == wanted).ok_or_else(|| {
                    let names: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                    Error::InvalidInput(format!(
                        "unknown {} {s:?}; expected one of: {}",
                        $what,
                        names.join(", ")
                    ))
                })
            }
        }
    };
}

name_enum!(
    /// What a node records.
    NodeType, "node type" {
        /// A turn of a conversation with an agent or the user.
        Conversation => "conversation",
        /// A task that was run, with its outcome.
        Task => "task",
        /// Something that went wrong, with its fix and how to prevent it.
        Mistake => "mistake",
        /// A reusable way of doing something in this project.
        Pattern => "pattern",
        /// A decision with its rationale.
        Decision => "decision",
        /// A useful piece of code.
        CodeSnippet => "code_snippet",
        /// A preference of the user or the team.
        Preference => "preference",
        /// A file of the project (from a scan).
        File => "file",
        /// Domain knowledge.
        Concept => "concept",
        /// The project itself (from a scan): languages, frameworks, structure.
        Project => "project",
        /// A plan: a spec broken into tasks run in order (`troupe plan`), with their outcomes.
        Plan => "plan",
    }
);

name_enum!(
    /// How two nodes relate. Edges are directed: `from` → `to`.
    EdgeType, "edge type" {
        /// Loosely related.
        RelatedTo => "related_to",
        /// `from` was caused by `to`.
        CausedBy => "caused_by",
        /// `from` (a mistake) was fixed by `to`.
        FixedBy => "fixed_by",
        /// `from` is similar to `to`.
        SimilarTo => "similar_to",
        /// `from` depends on `to`.
        DependsOn => "depends_on",
        /// `from` is part of `to`.
        PartOf => "part_of",
        /// `from` was derived from `to`.
        DerivedFrom => "derived_from",
        /// `from` replaces `to`.
        Supersedes => "supersedes",
        /// `from` refers to `to`.
        References => "references",
        /// `from` implements `to`.
        Implements => "implements",
        /// `from` mentions `to`.
        Mentions => "mentions",
        /// `from` comes after `to` (e.g. conversation turns).
        Follows => "follows",
    }
);

/// Which edges of a node: those leaving it, those arriving at it, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Edges `node → other`.
    Outgoing,
    /// Edges `other → node`.
    Incoming,
    /// Both.
    Both,
}

/// A node of the graph: one thing the project's memory holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Its id.
    pub id: NodeId,
    /// The project it belongs to; every query is scoped by it.
    pub project: ProjectId,
    /// What it records.
    #[serde(rename = "type")]
    pub node_type: NodeType,
    /// One line: what it is.
    pub title: String,
    /// The text: what is searched, embedded and shown.
    pub body: String,
    /// Free-form labels (searched too).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Structured extras (a task's outcome, a file's path and hash, …).
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// When it was first stored.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// What to store as a node; the store fills in the id (unless given) and the timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNode {
    /// The id; a fresh UUIDv7 when `None`. Storing an existing id updates that node and
    /// keeps its edges (upsert).
    pub id: Option<NodeId>,
    /// The project it belongs to.
    pub project: ProjectId,
    /// What it records.
    pub node_type: NodeType,
    /// One line: what it is. Must not be empty.
    pub title: String,
    /// The text.
    pub body: String,
    /// Labels.
    pub tags: Vec<String>,
    /// Structured extras (a JSON object, or null).
    pub metadata: serde_json::Value,
    /// Extra text that is searched by BM25 but not shown nor embedded (a file's full
    /// content; the body holds its summary).
    pub content: Option<String>,
    /// When it happened; now when `None`. Sets `updated_at` (and `created_at` for a new node).
    pub at: Option<DateTime<Utc>>,
}

impl NewNode {
    /// A node of `node_type` in `project` with a title and body, no tags nor metadata.
    pub fn new(
        project: &ProjectId,
        node_type: NodeType,
        title: impl Into<String>,
        body: impl Into<String>,
    ) -> NewNode {
        NewNode {
            id: None,
            project: project.clone(),
            node_type,
            title: title.into(),
            body: body.into(),
            tags: Vec::new(),
            metadata: serde_json::Value::Null,
            content: None,
            at: None,
        }
    }

    /// With this id (upsert when it exists).
    pub fn with_id(mut self, id: NodeId) -> NewNode {
        self.id = Some(id);
        self
    }

    /// With these tags.
    pub fn with_tags<I, S>(mut self, tags: I) -> NewNode
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// With this metadata (a JSON object).
    pub fn with_metadata(mut self, metadata: serde_json::Value) -> NewNode {
        self.metadata = metadata;
        self
    }

    /// With extra searched-only text.
    pub fn with_content(mut self, content: impl Into<String>) -> NewNode {
        self.content = Some(content.into());
        self
    }

    /// As having happened at `at`.
    pub fn at(mut self, at: DateTime<Utc>) -> NewNode {
        self.at = Some(at);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.title.trim().is_empty() {
            return Err(Error::InvalidInput("a node needs a non-empty title".into()));
        }
        if !(self.metadata.is_object() || self.metadata.is_null()) {
            return Err(Error::InvalidInput("node metadata must be a JSON object".into()));
        }
        if let Some(id) = &self.id {
            validate_id(id.as_str())?;
        }
        Ok(())
    }
}

/// A directed, weighted edge between two nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// Where it starts.
    pub from: NodeId,
    /// Where it ends.
    pub to: NodeId,
    /// What it means.
    #[serde(rename = "type")]
    pub edge_type: EdgeType,
    /// How strong (1.0 unless said otherwise); scales graph expansion in search.
    pub weight: f32,
    /// Structured extras.
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// Which projects a query covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One project (the normal case).
    Project(ProjectId),
    /// Every project (only when asked for explicitly).
    All,
}

impl Scope {
    pub(crate) fn project(&self) -> Option<&ProjectId> {
        match self {
            Scope::Project(p) => Some(p),
            Scope::All => None,
        }
    }

    pub(crate) fn contains(&self, project: &ProjectId) -> bool {
        self.project().is_none_or(|p| p == project)
    }
}

impl From<ProjectId> for Scope {
    fn from(p: ProjectId) -> Scope {
        Scope::Project(p)
    }
}

impl From<&ProjectId> for Scope {
    fn from(p: &ProjectId) -> Scope {
        Scope::Project(p.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip_and_codes_are_positions() {
        for (i, t) in NodeType::ALL.iter().enumerate() {
            assert_eq!(t.as_str().parse::<NodeType>().unwrap(), *t);
            assert_eq!(t.code() as usize, i);
            assert_eq!(NodeType::from_code(t.code()), Some(*t));
            assert_eq!(serde_json::to_value(t).unwrap(), serde_json::json!(t.as_str()));
        }
        for e in EdgeType::ALL {
            assert_eq!(e.as_str().parse::<EdgeType>().unwrap(), *e);
        }
        assert_eq!(NodeType::ALL.len(), 11);
        assert_eq!(EdgeType::ALL.len(), 12);
        assert_eq!("Code-Snippet".parse::<NodeType>().unwrap(), NodeType::CodeSnippet);
    }

    #[test]
    fn unknown_type_names_list_the_valid_ones() {
        let e = "bug".parse::<NodeType>().unwrap_err().to_string();
        assert!(e.contains("unknown node type \"bug\""), "{e}");
        assert!(e.contains("mistake"), "{e}");
        assert!("linked".parse::<EdgeType>().is_err());
    }

    #[test]
    fn ids_are_validated() {
        assert!(NodeId::new("").is_err());
        assert!(NodeId::new("a b").is_err());
        assert!(NodeId::new("a\0b").is_err());
        assert!(NodeId::new("x".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(NodeId::new("file-abc").is_ok());
        let a = NodeId::generate();
        let b = NodeId::generate();
        assert_ne!(a, b);
        assert!(NodeId::new(a.as_str()).is_ok());
    }

    #[test]
    fn new_node_validation() {
        let p = ProjectId::new("p").unwrap();
        assert!(NewNode::new(&p, NodeType::Task, " ", "b").validate().is_err());
        let bad_meta =
            NewNode::new(&p, NodeType::Task, "t", "b").with_metadata(serde_json::json!([1]));
        assert!(bad_meta.validate().is_err());
        assert!(NewNode::new(&p, NodeType::Task, "t", "").validate().is_ok());
    }
}
