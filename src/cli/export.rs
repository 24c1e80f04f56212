//! The flags of `troupe export …` (the command is in `commands/export.rs`).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use troupe_context::NodeType;

/// `troupe export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub command: ExportCommand,
}

/// The `export` subcommands.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write the project memory as an Obsidian vault: a note per node, links for edges, a
    /// graph view coloured by type. Exporting again updates the vault and keeps your own
    /// notes and the text you write outside troupe's markers.
    Obsidian(ObsidianArgs),
}

/// `troupe export obsidian`.
#[derive(Debug, Args)]
pub struct ObsidianArgs {
    /// The vault folder (created when missing)
    pub dir: PathBuf,
    /// The project: a folder or a project id [default: settings.project_path, else the current folder]
    #[arg(long, value_name = "P", conflicts_with = "all_projects")]
    pub project: Option<String>,
    /// Every project
    #[arg(long)]
    pub all_projects: bool,
    /// Only these node types, comma-separated: task, decision, mistake, pattern,
    /// conversation, code_snippet, concept, project, file, preference
    #[arg(long, value_name = "T,…", value_delimiter = ',', value_parser = parse_node_type)]
    pub types: Vec<NodeType>,
    /// Only nodes updated since: `2025-01-31`, an RFC 3339 time, or an age (`30d`, `12h`)
    #[arg(long, value_name = "DATE", value_parser = crate::time::parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

/// A node type, singular or plural (`decisions`, `code-snippets`).
fn parse_node_type(s: &str) -> std::result::Result<NodeType, String> {
    s.parse().or_else(|e: troupe_context::Error| {
        s.trim().strip_suffix('s').ok_or(e.to_string())?.parse().map_err(|_| e.to_string())
    })
}
