//! Walking a project's folder: the files worth a node, gitignore-aware.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::languages::{Lang, language_of};

/// Folders never worth scanning even when no ignore file says so.
const SKIPPED_DIRS: &[&str] = &[
    "node_modules",
    "__pycache__",
    ".venv",
    "venv",
    ".tox",
    ".mypy_cache",
    ".pytest_cache",
    ".git",
];

/// One walked file.
pub(crate) struct Walked {
    /// Its path relative to the project, `/`-separated.
    pub(crate) rel: String,
    pub(crate) abs: PathBuf,
    pub(crate) lang: Lang,
    pub(crate) size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub(crate) mtime: i64,
}

/// The files of the project at `root` that troupe reads, as the scan sees them: `.gitignore`
/// and the other ignore files respected, hidden, build and cache folders left out, only files
/// of a known language or kind (no lock files, no binaries). Relative, `/`-separated, sorted.
pub fn project_files(root: &Path) -> Vec<String> {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    walk(&root, &[]).into_iter().map(|w| w.rel).collect()
}

/// The files of the project at `root`, leaving out the folders in `excluded` (troupe's own
/// data folder and store, when they lie inside the project: they are not the project).
pub(crate) fn walk(root: &Path, excluded: &[&Path]) -> Vec<Walked> {
    let mut out = Vec::new();
    let excluded: Vec<PathBuf> = excluded
        .iter()
        .filter_map(|d| d.canonicalize().ok())
        .filter(|d| d.as_path() != root && d.starts_with(root))
        .collect();
    let walker = ignore::WalkBuilder::new(root)
        .require_git(false)
        .filter_entry(move |e| {
            let name = e.file_name().to_string_lossy();
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            if is_dir && excluded.iter().any(|d| e.path() == d) {
                return false;
            }
            // A Rust build folder that is not ignored (no .gitignore): it says what it is.
            !(is_dir
                && (SKIPPED_DIRS.contains(&name.as_ref())
                    || e.path().join("CACHEDIR.TAG").exists()))
        })
        .build();
    for entry in walker {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let abs = entry.path().to_path_buf();
        let Some(lang) = language_of(&abs) else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        let Ok(rel) = abs.strip_prefix(root) else { continue };
        let rel =
            rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        out.push(Walked { rel, abs, lang, size: meta.len(), mtime });
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}
