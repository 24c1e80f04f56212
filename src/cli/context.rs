//! The flags of `troupe context …` (the commands are in `commands/context.rs`).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use troupe_context::{EdgeType, Fusion, NodeType, SearchMode};

/// `troupe context`.
#[derive(Debug, Args)]
pub struct ContextArgs {
    #[command(subcommand)]
    pub command: ContextCommand,
}

/// The `context` subcommands.
#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// Scan a project folder into the memory (gitignore-aware; only changed files are re-read)
    Scan {
        /// The project folder [default: settings.project_path, else the current folder]
        path: Option<PathBuf>,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Search the project memory (hybrid BM25 + embeddings by default)
    Search(SearchArgs),
    /// Add a node (a decision, a mistake, a pattern, …) by hand
    Add(AddArgs),
    /// Show a node with its edges
    Show {
        /// The node id (a unique prefix is enough)
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Link two nodes with a directed edge A → B
    Link {
        /// Where the edge starts (id or unique prefix)
        from: String,
        /// Where it ends (id or unique prefix)
        to: String,
        /// Edge type: related_to, caused_by, fixed_by, similar_to, depends_on, part_of,
        /// derived_from, supersedes, references, implements, mentions, follows
        #[arg(long, value_parser = parse_edge_type)]
        edge: EdgeType,
        /// Edge weight
        #[arg(long, default_value_t = 1.0)]
        weight: f32,
    },
    /// Counts of nodes, edges, embeddings and disk use
    Stats(ScopeArgs),
    /// Delete a node, a whole project, or the nodes of a type older than a date
    Forget(ForgetArgs),
    /// Rebuild the search index from the graph and compute missing embeddings (and upgrade
    /// embeddings from before passages)
    Reindex {
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
}

/// `--project` / `--all`.
#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// The project: a folder or a project id [default: settings.project_path, else the current folder]
    #[arg(long, value_name = "P", conflicts_with = "all")]
    pub project: Option<String>,
    /// Every project
    #[arg(long)]
    pub all: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `troupe context search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to look for
    pub query: String,
    /// Retrievers: hybrid (BM25 + embeddings, fused), bm25, or vector
    #[arg(long, default_value = "hybrid", value_parser = parse_mode)]
    pub mode: SearchMode,
    /// Only nodes of this type (repeat for several)
    #[arg(long = "type", value_name = "T", value_parser = parse_node_type)]
    pub types: Vec<NodeType>,
    /// Hits to show
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// How hybrid mode fuses BM25 and vectors: `convex`, `convex:W` (normalised scores, W =
    /// BM25's share), `rrf`, `rrf:K`, `rrf:K:W` (reciprocal rank fusion), `adaptive`,
    /// `adaptive:SHORT:LONG` (BM25's share by query length) (default: convex:0.2)
    #[arg(long, value_name = "F", value_parser = parse_fusion, conflicts_with = "rrf_k")]
    pub fusion: Option<Fusion>,
    /// Fuse with textbook Reciprocal Rank Fusion with this k (same as --fusion rrf:K)
    #[arg(long, value_name = "K")]
    pub rrf_k: Option<f64>,
    /// Show why each hit ranked where it did: its BM25 rank and score, its vector rank and
    /// cosine, the fused score, and the passage that matched
    #[arg(long)]
    pub explain: bool,
    /// Do not add graph neighbours of the top hits
    #[arg(long)]
    pub no_expand: bool,
    #[command(flatten)]
    pub scope: ScopeArgs,
}

/// `troupe context add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Node type: conversation, task, mistake, pattern, decision, code_snippet, preference,
    /// file, concept, project
    #[arg(long = "type", value_name = "T", value_parser = parse_node_type)]
    pub node_type: NodeType,
    /// One line: what it is
    #[arg(long)]
    pub title: String,
    /// The text
    #[arg(long, default_value = "")]
    pub body: String,
    /// Labels (repeat for several)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// The project: a folder or a project id [default: settings.project_path, else the current folder]
    #[arg(long, value_name = "P")]
    pub project: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `troupe context forget`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["id", "project", "node_type"])))]
pub struct ForgetArgs {
    /// A node to delete, with its edges
    pub id: Option<String>,
    /// With --type: the project to delete from; alone: delete this whole project
    #[arg(long, value_name = "P")]
    pub project: Option<String>,
    /// Delete the nodes of this type last updated before --before
    #[arg(long = "type", value_name = "T", value_parser = parse_node_type, requires = "before")]
    pub node_type: Option<NodeType>,
    /// A date (2025-01-31, RFC 3339) or an age (30d, 12h)
    #[arg(long, value_name = "DATE", value_parser = crate::time::parse_time, requires = "node_type")]
    pub before: Option<DateTime<Utc>>,
    /// With --type: in every project
    #[arg(long, requires = "node_type", conflicts_with = "project")]
    pub all: bool,
    /// Say what would be deleted, delete nothing
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_node_type(s: &str) -> std::result::Result<NodeType, String> {
    s.parse().map_err(|e: troupe_context::Error| e.to_string())
}

fn parse_edge_type(s: &str) -> std::result::Result<EdgeType, String> {
    s.parse().map_err(|e: troupe_context::Error| e.to_string())
}

fn parse_fusion(s: &str) -> std::result::Result<Fusion, String> {
    s.parse().map_err(|e: troupe_context::Error| e.to_string())
}

fn parse_mode(s: &str) -> std::result::Result<SearchMode, String> {
    s.parse().map_err(|e: troupe_context::Error| e.to_string())
}
