//! The vault's `.obsidian/` settings: enough for the folder to open as a vault, and the
//! graph view's colour groups.

use std::collections::HashSet;
use std::path::Path;

use troupe_context::NodeType;

use crate::error::Result;
use crate::files::{io_err, read_optional, write_atomic};
use crate::kinds::kind;

/// `.obsidian/`: enough for the folder to open as a vault, and the graph view's colour
/// groups (merged into the user's `graph.json`, whose other settings are kept).
pub(crate) fn vault_settings(dir: &Path) -> Result<()> {
    let obsidian = dir.join(".obsidian");
    std::fs::create_dir_all(&obsidian).map_err(io_err(&obsidian))?;
    let app = obsidian.join("app.json");
    if read_optional(&app)?.is_none() {
        write_atomic(&app, "{}\n")?;
    }
    let graph_path = obsidian.join("graph.json");
    let existing = read_optional(&graph_path)?;
    let mut graph = match existing.as_deref().map(serde_json::from_str::<serde_json::Value>) {
        None => serde_json::json!({}),
        Some(Ok(v)) if v.is_object() => v,
        // Not ours to repair.
        Some(_) => {
            tracing::warn!("{} is not a JSON object; left as it is", graph_path.display());
            return Ok(());
        }
    };
    let ours: Vec<serde_json::Value> = NodeType::ALL
        .iter()
        .map(|t| {
            let k = kind(*t);
            serde_json::json!({
                "query": format!("path:\"{}/\"", k.folder),
                "color": { "a": 1, "rgb": k.colour },
            })
        })
        .collect();
    let our_queries: HashSet<String> =
        ours.iter().filter_map(|g| g["query"].as_str().map(String::from)).collect();
    let mut groups: Vec<serde_json::Value> = graph
        .get("colorGroups")
        .and_then(|g| g.as_array())
        .map(|a| {
            a.iter()
                .filter(|g| g["query"].as_str().is_none_or(|q| !our_queries.contains(q)))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    groups.extend(ours);
    if let Some(obj) = graph.as_object_mut() {
        obj.insert("colorGroups".into(), serde_json::Value::Array(groups));
    }
    let text = serde_json::to_string_pretty(&graph)? + "\n";
    if existing.as_deref() != Some(text.as_str()) {
        write_atomic(&graph_path, &text)?;
    }
    Ok(())
}
