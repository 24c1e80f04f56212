//! `troupe export …`: the project memory in other tools' formats. Today: an Obsidian vault
//! (`troupe export obsidian DIR`), written by [`troupe_export::export`].

use anyhow::{Context as _, Result};
use troupe_context::{Scope, StoreOptions};
use troupe_export::{ExportOptions, ExportSummary};
use troupe_workflows::Config;

use super::exit;
use crate::cli::export::{ExportArgs, ExportCommand, ObsidianArgs};

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
