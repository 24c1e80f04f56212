//! `troupe export …`: the project memory in other tools' formats. Today: an Obsidian vault
//! (`troupe export obsidian DIR`), written by [`troupe_export::export`].

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use troupe_context::{NodeType, Scope, StoreOptions};
use troupe_export::{ExportOptions, ExportSummary};
use troupe_workflows::Config;

use super::exit;

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
    #[arg(long, value_name = "DATE", value_parser = super::parse_time)]
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

/// Run a `troupe export` command.
pub fn export_command(config: &Config, args: ExportArgs) -> Result<u8> {
    match args.command {
        ExportCommand::Obsidian(a) => export_obsidian(config, a),
    }
}

fn export_obsidian(config: &Config, args: ObsidianArgs) -> Result<u8> {
    // Exporting reads the graph only: no embedding model to load.
    let store = super::open_store(config, StoreOptions::without_embeddings())?;
    let scope = if args.all_projects {
        Scope::All
    } else {
        Scope::Project(super::context::resolve_project(&store, config, args.project.as_deref())?)
    };
    let mut options = ExportOptions::new(&args.dir, scope).types(args.types);
    options.since = args.since;
    let summary = troupe_export::export(&store, &options)
        .with_context(|| format!("cannot export to {}", args.dir.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(exit::OK)
}

fn print_summary(s: &ExportSummary) {
    println!(
        "{} notes in {}: {} written, {} unchanged, {} removed{}; {} links",
        s.notes,
        s.dir.display(),
        s.written,
        s.unchanged,
        s.removed,
        if s.renamed > 0 { format!(", {} renamed", s.renamed) } else { String::new() },
        s.links
    );
    if s.kept_user_notes > 0 {
        println!(
            "{} notes of nodes no longer exported were kept because you wrote in them",
            s.kept_user_notes
        );
    }
    if s.notes == 0 {
        println!(
            "Nothing to export: the selection is empty (try --all-projects, or fewer filters)."
        );
        return;
    }
    let by_type: Vec<String> = s
        .by_type
        .iter()
        .map(|(t, n)| format!("{} {n}", troupe_export::folder(*t).to_lowercase()))
        .collect();
    println!("{}", by_type.join(" · "));
    println!(
        "Open the folder as a vault in Obsidian; the graph view is coloured by type. Write your own \
         text outside the troupe markers: it survives the next export."
    );
}
