//! `troupe context …`: the project memory from the command line (scan, search, add, show,
//! link, stats, forget, reindex). The flags are in [`crate::cli::context`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context as _, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use troupe_context::{
    Direction, EmbeddingStatus, NewNode, Progress, ProjectId, Scope, SearchHit, SearchQuery, Store,
    StoreOptions, project_id_for,
};
use troupe_workflows::Config;

use super::exit;
use crate::cli::context::{
    AddArgs, ContextArgs, ContextCommand, ForgetArgs, ScopeArgs, SearchArgs,
};
use crate::render::Table;
use crate::render::context::HitView;

/// Progress bars on standard error (hidden when it is not a terminal).
#[derive(Debug, Default)]
struct Bars {
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn start(&self, phase: &str, total: u64) {
        let bar = ProgressBar::new(total);
        if let Ok(style) =
            ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} ({elapsed})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(phase.to_string());
        if let Ok(mut b) = self.bar.lock() {
            *b = Some(bar);
        }
    }

    fn advance(&self, n: u64) {
        if let Ok(b) = self.bar.lock()
            && let Some(bar) = b.as_ref()
        {
            bar.inc(n);
        }
    }

    fn finish(&self) {
        if let Ok(mut b) = self.bar.lock()
            && let Some(bar) = b.take()
        {
            bar.finish_and_clear();
        }
    }
}

fn open_store(config: &Config) -> Result<Store> {
    super::open_store(config, StoreOptions::with_assets(config.assets_dir()))
}

/// The project named by `--project` (a folder, or the id of a known project), else the
/// configured project folder.
pub(crate) fn resolve_project(
    store: &Store,
    config: &Config,
    arg: Option<&str>,
) -> Result<ProjectId> {
    match arg {
        Some(p) if Path::new(p).is_dir() => Ok(project_id_for(Path::new(p))?.0),
        Some(p) => {
            let id = ProjectId::new(p)?;
            if store.project_ids()?.contains(&id) {
                Ok(id)
            } else {
                bail!(
                    "{p:?} is neither a folder nor a known project id (`troupe context stats --all` lists the projects)"
                )
            }
        }
        None => {
            let path = config.project_path();
            Ok(project_id_for(&path)
                .with_context(|| format!("the project folder {}", path.display()))?
                .0)
        }
    }
}

fn scope_of(store: &Store, config: &Config, s: &ScopeArgs) -> Result<Scope> {
    if s.all {
        Ok(Scope::All)
    } else {
        Ok(Scope::Project(resolve_project(store, config, s.project.as_deref())?))
    }
}

fn short(id: &str) -> String {
    if id.len() > 20 {
        format!("{}…", &id[..id.char_indices().nth(18).map_or(id.len(), |c| c.0)])
    } else {
        id.to_string()
    }
}

fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    if line.chars().count() > max {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

/// Run a `troupe context` command.
pub fn context_command(config: &Config, args: ContextArgs) -> Result<u8> {
    let store = open_store(config)?;
    match args.command {
        ContextCommand::Scan { path, json } => scan(&store, config, path, json),
        ContextCommand::Search(a) => search(&store, config, a),
        ContextCommand::Add(a) => add(&store, config, a),
        ContextCommand::Show { id, json } => show(&store, &id, json),
        ContextCommand::Link { from, to, edge, weight } => {
            let (from, to) = (store.resolve_id(&from)?, store.resolve_id(&to)?);
            let e = store.link(&from, &to, edge, weight, serde_json::Value::Null)?;
            println!("Linked {} -[{}]-> {} (weight {})", e.from, e.edge_type, e.to, e.weight);
            Ok(exit::OK)
        }
        ContextCommand::Stats(s) => stats(&store, config, &s),
        ContextCommand::Forget(f) => forget(&store, config, f),
        ContextCommand::Reindex { json } => {
            let report = store.reindex(&Bars::default())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "Indexed {} nodes; embedded {} (missing, or embedded before passages).",
                    report.indexed, report.embedded
                );
                if let Some(why) = report.embeddings_unavailable {
                    println!("No embeddings: {why}");
                }
            }
            Ok(exit::OK)
        }
    }
}

fn scan(store: &Store, config: &Config, path: Option<PathBuf>, json: bool) -> Result<u8> {
    let path = path.unwrap_or_else(|| config.project_path());
    let report = store
        .scan_project(&path, &Bars::default())
        .with_context(|| format!("cannot scan {}", path.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(exit::OK);
    }
    let p = &report.project;
    println!("Project {} ({}) at {}", p.name, p.id, p.path.display());
    println!(
        "Files: {} added, {} updated, {} unchanged, {} removed, {} skipped (binary or over 1 MiB)",
        report.added, report.updated, report.unchanged, report.removed, report.skipped
    );
    if !p.languages.is_empty() {
        let langs: Vec<String> = p
            .languages
            .iter()
            .take(8)
            .map(|l| format!("{} {:.1}%", l.language, l.share * 100.0))
            .collect();
        println!("Languages: {}", langs.join(", "));
    }
    if !p.frameworks.is_empty() {
        println!("Frameworks and libraries: {}", p.frameworks.join(", "));
    }
    if !p.build_tools.is_empty() {
        println!("Build tools: {}", p.build_tools.join(", "));
    }
    for line in &p.structure {
        println!("{line}");
    }
    if let EmbeddingStatus::Unavailable { reason } = store.embedding_status() {
        println!("Note: no embeddings (search uses BM25 only): {reason}");
    }
    Ok(exit::OK)
}

fn search(store: &Store, config: &Config, a: SearchArgs) -> Result<u8> {
    let scope = scope_of(store, config, &a.scope)?;
    let mut query = SearchQuery::new(&a.query, scope.clone())
        .mode(a.mode)
        .types(a.types.iter().copied())
        .limit(a.limit);
    if let Some(f) = a.fusion {
        query = query.fusion(f);
    }
    if let Some(k) = a.rrf_k {
        query = query.rrf_k(k);
    }
    if a.no_expand {
        query = query.expand(false);
    }
    let results = store.search(&query)?;
    if let Some(w) = &results.warning {
        eprintln!("troupe: warning: {w}");
    }
    if a.scope.json {
        let hits: Vec<_> = results
            .hits
            .iter()
            .map(|h| CliHit {
                hit: HitView::new(h),
                bm25_rank: h.found_by.bm25.map(|r| r.rank),
                vector_rank: h.found_by.vector.map(|r| r.rank),
                passage: h.passage.as_ref(),
                snippet: &h.snippet,
            })
            .collect();
        let out = json!({
            "query": a.query, "mode": results.mode, "fusion": results.fusion,
            "warning": results.warning, "hits": hits,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(exit::OK);
    }
    let where_ = match &scope {
        Scope::Project(p) => match store.project(p)? {
            Some(info) => format!("project {} ({p})", info.name),
            None => format!("project {p}"),
        },
        Scope::All => "all projects".to_string(),
    };
    let fusion = results.fusion.as_deref().map(|f| format!(", fused by {f}")).unwrap_or_default();
    println!(
        "{} search in {where_} for {:?}{fusion}: {} hit(s)",
        results.mode.as_str(),
        a.query,
        results.hits.len()
    );
    if results.hits.is_empty() {
        if let Scope::Project(p) = &scope
            && store.project(p)?.is_none()
        {
            println!("This project was never scanned: run `troupe context scan` first.");
        }
        return Ok(exit::OK);
    }
    if a.explain {
        for (i, h) in results.hits.iter().enumerate() {
            print!("{}", explain(i + 1, h));
        }
        return Ok(exit::OK);
    }
    let mut t = Table::new(&["#", "SCORE", "FOUND BY", "TYPE", "TITLE", "ID"]);
    for (i, h) in results.hits.iter().enumerate() {
        t.row(vec![
            (i + 1).to_string(),
            format!("{:.4}", h.score),
            h.found_by.label(),
            h.node.node_type.to_string(),
            one_line(&h.node.title, 60),
            short(h.node.id.as_str()),
        ]);
    }
    print!("{}", t.render());
    Ok(exit::OK)
}

/// A hit as `context search --json` prints it: the shared view and how it ranked.
#[derive(Debug, serde::Serialize)]
struct CliHit<'a> {
    #[serde(flatten)]
    hit: HitView,
    bm25_rank: Option<usize>,
    vector_rank: Option<usize>,
    passage: Option<&'a troupe_context::Passage>,
    snippet: &'a str,
}

/// One hit of `context search --explain`: what it is, then why it ranked there.
fn explain(n: usize, h: &SearchHit) -> String {
    let f = &h.found_by;
    let bm25 = match f.bm25 {
        Some(r) => format!("bm25 rank {} (score {:.3})", r.rank, r.score),
        None => "bm25 rank – (not in its list)".to_string(),
    };
    let vector = match (f.vector, f.cosine) {
        (Some(r), _) => format!("vector rank {} (cosine {:.3})", r.rank, r.score),
        (None, Some(c)) => format!("vector rank – (cosine {c:.3}, below its list)"),
        (None, None) => "vector rank – (no vectors)".to_string(),
    };
    let mut why = format!("{bm25} · {vector} · fused score {:.4}", h.score);
    if f.exact_title {
        why.push_str(" · exact title match, kept first");
    }
    if let Some(g) = &f.graph {
        why.push_str(&format!(" · graph neighbour of {} ({})", short(g.from.as_str()), g.edge));
    }
    let mut out = format!(
        "{n:>2}. {} {}  {}\n    {why}\n",
        h.node.node_type,
        one_line(&h.node.title, 70),
        short(h.node.id.as_str())
    );
    if !h.snippet.is_empty() {
        let place =
            h.passage.map(|p| format!(" (bytes {}–{})", p.start, p.end)).unwrap_or_default();
        out.push_str(&format!("    passage{place}:\n"));
        // The whole passage (a few hundred words at most), wrapped.
        let mut line = String::new();
        for word in h.snippet.split_whitespace() {
            if !line.is_empty() && line.len() + word.len() > 96 {
                out.push_str(&format!("      {line}\n"));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            out.push_str(&format!("      {line}\n"));
        }
    }
    out
}

fn add(store: &Store, config: &Config, a: AddArgs) -> Result<u8> {
    let project = resolve_project(store, config, a.project.as_deref())?;
    let node = store
        .upsert_node(NewNode::new(&project, a.node_type, a.title, a.body).with_tags(a.tags))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&node)?);
    } else {
        println!("Added {} {} in project {}", node.node_type, node.id, node.project);
    }
    Ok(exit::OK)
}

fn show(store: &Store, id: &str, json: bool) -> Result<u8> {
    let id = store.resolve_id(id)?;
    let node = store.node(&id)?;
    let neighbours = store.neighbours(&id, Direction::Both, None)?;
    if json {
        let edges: Vec<_> = neighbours
            .iter()
            .map(|(e, other)| {
                json!({
                    "from": e.from, "to": e.to, "type": e.edge_type, "weight": e.weight,
                    "metadata": e.metadata, "other_title": other.title, "other_type": other.node_type,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "node": node, "edges": edges }))?);
        return Ok(exit::OK);
    }
    println!("{} {}", node.node_type, node.id);
    println!("Title:   {}", node.title);
    println!("Project: {}", node.project);
    if !node.tags.is_empty() {
        println!("Tags:    {}", node.tags.join(", "));
    }
    println!("Created: {}", node.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    println!("Updated: {}", node.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    if node.metadata.as_object().is_some_and(|m| !m.is_empty()) {
        println!("Metadata: {}", serde_json::to_string(&node.metadata)?);
    }
    if !node.body.trim().is_empty() {
        println!("\n{}\n", node.body.trim_end());
    }
    if neighbours.is_empty() {
        println!("No edges.");
    } else {
        let mut t = Table::new(&["DIRECTION", "EDGE", "WEIGHT", "TYPE", "TITLE", "ID"]);
        for (e, other) in &neighbours {
            let dir = if e.from == id { "->" } else { "<-" };
            t.row(vec![
                dir.into(),
                e.edge_type.to_string(),
                format!("{}", e.weight),
                other.node_type.to_string(),
                one_line(&other.title, 50),
                other.id.to_string(),
            ]);
        }
        print!("{}", t.render());
    }
    Ok(exit::OK)
}

fn stats(store: &Store, config: &Config, s: &ScopeArgs) -> Result<u8> {
    let scope = scope_of(store, config, s)?;
    let stats = store.stats(&scope)?;
    let projects = store.projects()?;
    if s.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "stats": stats, "projects": projects }))?
        );
        return Ok(exit::OK);
    }
    match &scope {
        Scope::Project(p) => match projects.iter().find(|x| &x.id == p) {
            Some(info) => println!("Project {} ({p}) at {}", info.name, info.path.display()),
            None => println!("Project {p} (never scanned)"),
        },
        Scope::All => println!("All projects ({})", stats.projects),
    }
    println!("Nodes: {}", stats.total_nodes);
    for (t, n) in &stats.nodes {
        println!("  {t:<13} {n}");
    }
    println!("Edges: {}", stats.edges);
    println!("Embedded nodes: {} of {}", stats.embedded, stats.total_nodes);
    println!(
        "Search index: {} documents (all projects), {} changes pending",
        stats.index_docs, stats.index_pending
    );
    println!(
        "Store: {} ({:.1} MiB)",
        store.root().display(),
        stats.disk_bytes as f64 / (1024.0 * 1024.0)
    );
    let embedding = match store.embedding_status() {
        EmbeddingStatus::Ready { model, dims } => format!("ready ({model}, {dims} dimensions)"),
        EmbeddingStatus::Unavailable { reason } => format!("unavailable: {reason}"),
        EmbeddingStatus::Disabled => "disabled".into(),
        _ => "unknown".into(),
    };
    println!("Embeddings: {embedding}");
    if stats.embedded < stats.total_nodes && store.embedding_status() != EmbeddingStatus::Disabled {
        println!("Some nodes have no embedding: `troupe context reindex` computes them.");
    }
    if matches!(scope, Scope::All) && !projects.is_empty() {
        let mut t = Table::new(&["PROJECT", "NAME", "FILES", "PATH"]);
        for p in &projects {
            t.row(vec![
                p.id.to_string(),
                p.name.clone(),
                p.files.to_string(),
                p.path.display().to_string(),
            ]);
        }
        print!("{}", t.render());
    }
    Ok(exit::OK)
}

fn forget(store: &Store, config: &Config, f: ForgetArgs) -> Result<u8> {
    if let Some(id) = &f.id {
        let id = store.resolve_id(id)?;
        let node = store.node(&id)?;
        if f.dry_run {
            println!("Would delete {} {} ({})", node.node_type, id, node.title);
        } else {
            store.delete_node(&id)?;
            println!("Deleted {} {} ({}) and its edges", node.node_type, id, node.title);
        }
        return Ok(exit::OK);
    }
    if let (Some(t), Some(before)) = (f.node_type, f.before) {
        let scope = if f.all {
            Scope::All
        } else {
            Scope::Project(resolve_project(store, config, f.project.as_deref())?)
        };
        let old: Vec<_> = store
            .list_nodes(&scope, Some(t), usize::MAX)?
            .into_iter()
            .filter(|n| n.updated_at < before)
            .collect();
        let when = before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if f.dry_run {
            println!("Would delete {} {t} node(s) last updated before {when}", old.len());
        } else {
            let n = store.delete_older_than(&scope, t, before)?;
            println!("Deleted {n} {t} node(s) last updated before {when}");
        }
        return Ok(exit::OK);
    }
    if let Some(p) = &f.project {
        let project = resolve_project(store, config, Some(p))?;
        let count = store.stats(&Scope::Project(project.clone()))?.total_nodes;
        if f.dry_run {
            println!("Would delete project {project}: {count} node(s)");
        } else {
            let n = store.delete_project(&project)?;
            println!("Deleted project {project}: {n} node(s) and their edges");
        }
        return Ok(exit::OK);
    }
    bail!("say what to forget: a node id, --project P, or --type T --before DATE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_shortened_for_tables() {
        assert_eq!(short("file-abc"), "file-abc");
        assert_eq!(short("0192f3a4-5b6c-7d8e-9f00-112233445566"), "0192f3a4-5b6c-7d8e…");
    }
}
