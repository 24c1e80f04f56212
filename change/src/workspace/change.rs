//! A change as data: the files it touches with their line counts, and the patch.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::git::Git;

/// How a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum FileStatus {
    /// A new file.
    Added,
    /// An existing file with new content (or mode).
    Modified,
    /// A removed file.
    Deleted,
    /// A file moved to a new path (perhaps with edits); [`FileStat::from`] is the old path.
    Renamed,
}

/// One file of a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileStat {
    /// The path relative to the repository's top folder (the new path of a rename).
    pub path: PathBuf,
    /// How it changed.
    pub status: FileStatus,
    /// Lines added (0 for a binary file).
    pub added: u64,
    /// Lines removed (0 for a binary file).
    pub removed: u64,
    /// The old path of a rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<PathBuf>,
    /// Whether git treats the file as binary (no line counts).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binary: bool,
}

/// One commit a run made in its workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// The commit id.
    pub id: String,
    /// The files it changed.
    pub files: Vec<FileStat>,
}

impl Commit {
    /// Lines added over all files.
    pub fn added(&self) -> u64 {
        self.files.iter().map(|f| f.added).sum()
    }

    /// Lines removed over all files.
    pub fn removed(&self) -> u64 {
        self.files.iter().map(|f| f.removed).sum()
    }
}

/// A run's change: everything between its base snapshot and its latest commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Change {
    /// The base snapshot commit.
    pub base: String,
    /// The run's latest commit.
    pub head: String,
    /// The binary-safe patch (`git diff --binary --full-index`), what apply applies.
    pub patch: String,
    /// The files it touches.
    pub files: Vec<FileStat>,
}

impl Change {
    /// Whether the run changed nothing.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Lines added over all files.
    pub fn added(&self) -> u64 {
        self.files.iter().map(|f| f.added).sum()
    }

    /// Lines removed over all files.
    pub fn removed(&self) -> u64 {
        self.files.iter().map(|f| f.removed).sum()
    }

    /// Every path the change writes or removes (both paths of a rename).
    pub fn paths(&self) -> Vec<PathBuf> {
        touched(&self.files)
    }

    /// A summary like `git diff --stat`, as plain text.
    pub fn stat(&self) -> String {
        if self.is_empty() {
            return "no changes\n".into();
        }
        let names: Vec<String> = self
            .files
            .iter()
            .map(|f| match &f.from {
                Some(from) => format!("{} => {}", from.display(), f.path.display()),
                None => f.path.display().to_string(),
            })
            .collect();
        let name_width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        let most = self.files.iter().map(|f| f.added + f.removed).max().unwrap_or(0);
        let count_width = most.to_string().len().max(3);
        const BAR: u64 = 40;
        let mut out = String::new();
        for (file, name) in self.files.iter().zip(&names) {
            let total = file.added + file.removed;
            let (plus, minus) = if most > BAR {
                let plus = (file.added * BAR).div_ceil(most);
                let minus = (file.removed * BAR).div_ceil(most);
                (plus, minus)
            } else {
                (file.added, file.removed)
            };
            let counts = if file.binary { "Bin".to_string() } else { total.to_string() };
            out.push_str(&format!(
                " {name:<name_width$} | {counts:>count_width$} {}{}\n",
                "+".repeat(plus as usize),
                "-".repeat(minus as usize)
            ));
        }
        let n = self.files.len();
        out.push_str(&format!(
            " {n} file{} changed, {} insertion{}(+), {} deletion{}(-)\n",
            plural(n as u64),
            self.added(),
            plural(self.added()),
            self.removed(),
            plural(self.removed())
        ));
        out
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Every path the files write or remove (both paths of a rename), sorted.
pub(crate) fn touched(files: &[FileStat]) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> =
        files.iter().flat_map(|f| std::iter::once(f.path.clone()).chain(f.from.clone())).collect();
    paths.sort();
    paths.dedup();
    paths
}

/// The options every diff passes, whatever the user's configuration says.
const DIFF: [&str; 6] =
    ["--no-color", "--no-ext-diff", "--no-textconv", "--no-relative", "--find-renames", "-z"];

/// The files changed between two commits.
pub(crate) fn stats(git: &Git, from: &str, to: &str) -> Result<Vec<FileStat>> {
    let status = git.run(["diff", "--name-status"].into_iter().chain(DIFF).chain([from, to]))?;
    let numstat = git.run(["diff", "--numstat"].into_iter().chain(DIFF).chain([from, to]))?;
    let mut files = parse_name_status(&status);
    for (path, counts) in parse_numstat(&numstat) {
        if let Some(file) = files.iter_mut().find(|f| f.path == path) {
            match counts {
                Some((added, removed)) => (file.added, file.removed) = (added, removed),
                None => file.binary = true,
            }
        }
    }
    Ok(files)
}

/// The binary-safe patch between two commits, with `a/` and `b/` prefixes.
///
/// A patch is text; when a changed file is not UTF-8 (say Latin-1 source), its lines would
/// not survive as a `String`, so the patch is made again with every file treated as binary
/// (base85, exact bytes) — still what `git apply` applies, only less readable.
pub(crate) fn patch(git: &Git, from: &str, to: &str) -> Result<String> {
    let args = || {
        ["diff", "--binary", "--full-index", "--src-prefix=a/", "--dst-prefix=b/"]
            .into_iter()
            .chain(DIFF.into_iter().filter(|o| *o != "-z"))
            .chain([from, to])
    };
    let text = match String::from_utf8(git.run_bytes(args(), None)?) {
        Ok(text) => return Ok(text),
        Err(e) => e,
    };
    let attributes = std::env::temp_dir().join(format!(
        "troupe-attributes-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::write(&attributes, "* -diff -text\n").map_err(|source| Error::Io {
        what: format!("writing {}", attributes.display()),
        source,
    })?;
    let binary = git
        .clone()
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "core.attributesFile")
        .env("GIT_CONFIG_VALUE_0", &attributes)
        .run_bytes(args(), None);
    let _ = std::fs::remove_file(&attributes);
    String::from_utf8(binary?).map_err(|_| Error::PatchNotText { files: not_text(text.as_bytes()) })
}

/// The files (as `a/… b/…` from their `diff --git` line) whose part of a patch is not UTF-8.
fn not_text(patch: &[u8]) -> Vec<PathBuf> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    for (i, _) in patch.iter().enumerate() {
        if patch[i..].starts_with(b"diff --git ") && (i == 0 || patch[i - 1] == b'\n') && i > start
        {
            parts.push(&patch[start..i]);
            start = i;
        }
    }
    parts.push(&patch[start..]);
    parts
        .into_iter()
        .filter(|part| std::str::from_utf8(part).is_err())
        .filter_map(|part| part.split(|b| *b == b'\n').next())
        .map(|line| {
            let line = String::from_utf8_lossy(line);
            PathBuf::from(line.trim_start_matches("diff --git ").to_string())
        })
        .collect()
}

/// `git diff --name-status -z`: `M\0path\0`, `R087\0old\0new\0`.
fn parse_name_status(out: &str) -> Vec<FileStat> {
    let mut fields = out.split('\0').filter(|f| !f.is_empty());
    let mut files = Vec::new();
    while let Some(code) = fields.next() {
        let Some(first) = fields.next() else { break };
        let (status, from, path) = match code.chars().next() {
            Some('A') => (FileStatus::Added, None, first),
            Some('D') => (FileStatus::Deleted, None, first),
            Some('R') => match fields.next() {
                Some(new) => (FileStatus::Renamed, Some(PathBuf::from(first)), new),
                None => break,
            },
            Some('C') => match fields.next() {
                Some(new) => (FileStatus::Added, None, new),
                None => break,
            },
            _ => (FileStatus::Modified, None, first),
        };
        files.push(FileStat {
            path: PathBuf::from(path),
            status,
            added: 0,
            removed: 0,
            from,
            binary: false,
        });
    }
    files
}

/// `git diff --numstat -z`: `1\t2\tpath\0`, renames `1\t2\t\0old\0new\0`, binary `-\t-\t…`.
fn parse_numstat(out: &str) -> Vec<(PathBuf, Option<(u64, u64)>)> {
    let mut fields = out.split('\0');
    let mut stats = Vec::new();
    while let Some(field) = fields.next() {
        let mut parts = field.splitn(3, '\t');
        let (Some(added), Some(removed), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = if path.is_empty() {
            let _old = fields.next();
            match fields.next() {
                Some(new) => new,
                None => break,
            }
        } else {
            path
        };
        let counts = added.parse().ok().zip(removed.parse().ok());
        stats.push((PathBuf::from(path), counts));
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_status_and_numstat_parse_renames_and_binaries() {
        let files = parse_name_status("M\0a.rs\0R087\0old.rs\0new.rs\0D\0gone\0A\0img.png\0");
        assert_eq!(files.len(), 4);
        assert_eq!(files[1].status, FileStatus::Renamed);
        assert_eq!(files[1].from, Some(PathBuf::from("old.rs")));
        assert_eq!(files[1].path, PathBuf::from("new.rs"));
        assert_eq!(files[2].status, FileStatus::Deleted);
        let stats = parse_numstat("3\t1\ta.rs\x002\t2\t\0old.rs\0new.rs\0-\t-\timg.png\0");
        assert_eq!(stats[0], (PathBuf::from("a.rs"), Some((3, 1))));
        assert_eq!(stats[1], (PathBuf::from("new.rs"), Some((2, 2))));
        assert_eq!(stats[2], (PathBuf::from("img.png"), None));
    }

    #[test]
    fn the_files_of_a_patch_that_are_not_text_are_named() {
        let patch = b"diff --git a/ok b/ok\n+fine\ndiff --git a/bad b/bad\n+caf\xe9\n";
        assert_eq!(not_text(patch), vec![PathBuf::from("a/bad b/bad")]);
        assert!(not_text(b"diff --git a/ok b/ok\n+fine\n").is_empty());
    }

    #[test]
    fn stat_reads_like_git_diff_stat() {
        let file = |path: &str, added, removed| FileStat {
            path: PathBuf::from(path),
            status: FileStatus::Modified,
            added,
            removed,
            from: None,
            binary: false,
        };
        let change = Change {
            base: "a".into(),
            head: "b".into(),
            patch: String::new(),
            files: vec![file("src/lib.rs", 3, 1), file("README.md", 1, 0)],
        };
        assert_eq!(
            change.stat(),
            " src/lib.rs |   4 +++-\n README.md  |   1 +\n 2 files changed, 4 insertions(+), 1 deletion(-)\n"
        );
        let empty = Change { files: vec![], ..change };
        assert!(empty.is_empty());
        assert_eq!(empty.stat(), "no changes\n");
    }
}
