//! Patch safety: the rules every edit passes before it touches the workspace.
//!
//! A path a model wrote must resolve inside the workspace (no `..`, no absolute path, no
//! symlink in any component that leads out of it, nothing under a `.git` folder), must not
//! match a protected glob (matched on the whole relative path and on the file name, so
//! `.env*` protects `config/.env.local` too), and one answer may change at most
//! [`Policy::max_files`] files and [`Policy::max_lines`] lines. A refused edit is never
//! applied; it is reported as a [`Refused`] with a reason the model and the user can act on.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

/// The protected globs of [`Policy::default`].
pub const DEFAULT_PROTECTED: [&str; 4] = [".env*", "*.pem", "*.key", ".git/**"];
/// The default limit on files changed by one step.
pub const DEFAULT_MAX_FILES: usize = 20;
/// The default limit on lines changed (added plus removed) by one step.
pub const DEFAULT_MAX_LINES: usize = 1500;

/// What edits may touch (configured under `[edits]` in troupe.toml).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Globs of paths no edit may write, matched on the path relative to the workspace and
    /// on the file name (`*.pem` protects `keys/server.pem`).
    pub protected: Vec<String>,
    /// At most this many files may change in one step; over it, the whole answer is refused.
    pub max_files: usize,
    /// At most this many lines (added plus removed) may change in one step; over it, the
    /// whole answer is refused.
    pub max_lines: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            protected: DEFAULT_PROTECTED.iter().map(|g| (*g).to_string()).collect(),
            max_files: DEFAULT_MAX_FILES,
            max_lines: DEFAULT_MAX_LINES,
        }
    }
}

impl Policy {
    /// Why a step changing `files` files and `lines` lines is over the limits, or `None`.
    pub fn over_limits(&self, files: usize, lines: usize) -> Option<String> {
        if files > self.max_files {
            return Some(format!(
                "the answer changes {files} files and at most {} may change in one step \
                 (edits.max_files); change fewer files at a time",
                self.max_files
            ));
        }
        if lines > self.max_lines {
            return Some(format!(
                "the answer changes {lines} lines and at most {} may change in one step \
                 (edits.max_lines); make a smaller change",
                self.max_lines
            ));
        }
        None
    }

    fn globs(&self) -> Result<GlobSet, String> {
        let mut set = GlobSetBuilder::new();
        for glob in &self.protected {
            let built = GlobBuilder::new(glob).literal_separator(true).build().map_err(|e| {
                format!("the protected glob `{glob}` is invalid ({e}); fix edits.protected")
            })?;
            set.add(built);
        }
        set.build()
            .map_err(|e| format!("the protected globs are invalid ({e}); fix edits.protected"))
    }
}

/// An edit that was not applied because it broke a safety rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// The path as the model wrote it.
    pub path: String,
    /// Why it was refused, as a sentence.
    pub reason: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

impl Refused {
    fn new(path: &str, reason: impl Into<String>) -> Self {
        Self { path: path.to_string(), reason: reason.into() }
    }
}

/// The path relative to the workspace, cleaned of `./` and `.` components, with `/`
/// separators, or why it cannot be one.
pub fn relative(path: &str) -> Result<String, Refused> {
    let trimmed = path.trim();
    if trimmed.is_empty() {
        return Err(Refused::new(path, "the path is empty; name the file to change"));
    }
    if trimmed.contains('\0') {
        return Err(Refused::new(path, "the path contains a NUL byte"));
    }
    let bytes = trimmed.as_bytes();
    let windows_drive = bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic();
    if trimmed.starts_with('/') || trimmed.starts_with('\\') || windows_drive {
        return Err(Refused::new(
            path,
            "an absolute path is not accepted; give the path relative to the project root",
        ));
    }
    let mut parts: Vec<String> = Vec::new();
    for component in Path::new(trimmed).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(Refused::new(
                    path,
                    "the path uses `..` and could leave the workspace; give the path relative \
                     to the project root without `..`",
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(Refused::new(
                    path,
                    "an absolute path is not accepted; give the path relative to the project root",
                ));
            }
        }
    }
    if parts.is_empty() {
        return Err(Refused::new(path, "the path names no file"));
    }
    Ok(parts.join("/"))
}

/// Checks that `path` (as a model wrote it) may be written under `root`; returns the file's
/// path inside the workspace (with the workspace's real location, symlinks resolved).
pub fn check(root: &Path, path: &str, policy: &Policy) -> Result<PathBuf, Refused> {
    let rel = relative(path)?;
    let parts: Vec<&str> = rel.split('/').collect();
    if parts.iter().any(|p| p.eq_ignore_ascii_case(".git")) {
        return Err(Refused::new(path, "files under .git/ belong to git and are never edited"));
    }
    let globs = policy.globs().map_err(|reason| Refused::new(path, reason))?;
    let name = parts.last().copied().unwrap_or_default();
    if globs.is_match(&rel) || globs.is_match(name) {
        return Err(Refused::new(
            path,
            format!(
                "the path is protected (edits.protected: {}); troupe never writes it — leave \
                 this file alone",
                policy.protected.join(", ")
            ),
        ));
    }
    let real_root = root.canonicalize().map_err(|e| {
        Refused::new(path, format!("the workspace {} cannot be resolved: {e}", root.display()))
    })?;
    // Walk the components that exist: a symlink anywhere must stay inside the workspace.
    let mut current = real_root.clone();
    for (i, part) in parts.iter().enumerate() {
        let next = current.join(part);
        match std::fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = next.canonicalize().map_err(|_| {
                    Refused::new(
                        path,
                        format!(
                            "{} is a symlink that points nowhere inside the workspace; \
                             edit the real file instead",
                            parts[..=i].join("/")
                        ),
                    )
                })?;
                if !target.starts_with(&real_root) {
                    return Err(Refused::new(
                        path,
                        format!(
                            "{} is a symlink leading out of the workspace; troupe never \
                             writes outside it",
                            parts[..=i].join("/")
                        ),
                    ));
                }
                if target.components().any(|c| c.as_os_str() == ".git") {
                    return Err(Refused::new(
                        path,
                        "the path leads into .git/ through a symlink; files there are never \
                         edited",
                    ));
                }
                current = target;
            }
            Ok(_) => current = next,
            Err(_) => {
                // The rest does not exist yet: it will be created as plain folders and a file.
                for rest in &parts[i..] {
                    current.push(rest);
                }
                break;
            }
        }
    }
    if !current.starts_with(&real_root) {
        return Err(Refused::new(path, "the path leaves the workspace"));
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(root: &Path, path: &str) -> String {
        match check(root, path, &Policy::default()) {
            Ok(p) => panic!("{path} was accepted as {}", p.display()),
            Err(r) => r.reason,
        }
    }

    #[test]
    fn hostile_paths_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(refused(root, "../../etc/passwd").contains(".."));
        assert!(refused(root, "src/../../outside.txt").contains(".."));
        assert!(refused(root, "/etc/passwd").contains("absolute"));
        assert!(refused(root, "C:\\Windows\\x").contains("absolute"));
        assert!(refused(root, ".git/config").contains(".git"));
        assert!(refused(root, "./.git/hooks/pre-commit").contains(".git"));
        assert!(refused(root, "vendor/lib/.git/config").contains(".git"));
        assert!(refused(root, ".GIT/config").contains(".git"));
        assert!(refused(root, ".env").contains("protected"));
        assert!(refused(root, "config/.env.local").contains("protected"));
        assert!(refused(root, "keys/server.pem").contains("protected"));
        assert!(refused(root, "deploy/id.key").contains("protected"));
        assert!(refused(root, "").contains("empty"));
        assert!(refused(root, "./").contains("names no file"));
    }

    #[test]
    fn ordinary_paths_resolve_inside_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src")).unwrap();
        let real = root.canonicalize().unwrap();
        assert_eq!(
            check(root, "./src/lib.rs", &Policy::default()).unwrap(),
            real.join("src/lib.rs")
        );
        assert_eq!(
            check(root, "new/dir/file.py", &Policy::default()).unwrap(),
            real.join("new/dir/file.py")
        );
        // `.environment.md` is not `.env*`? It is: the glob is a prefix glob. A name that
        // merely contains "env" is fine.
        assert!(check(root, "src/environment.py", &Policy::default()).is_ok());
        assert!(check(root, "docs/keys.md", &Policy::default()).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_leaving_the_workspace_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(outside.path().join("secret.txt"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("link.txt"))
            .unwrap();
        assert!(refused(root, "out/secret.txt").contains("symlink"));
        assert!(refused(root, "out/new/file.txt").contains("symlink"));
        assert!(refused(root, "link.txt").contains("symlink"));
        // A symlink that stays inside is followed to the real file.
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("alias")).unwrap();
        assert_eq!(
            check(root, "alias/a.txt", &Policy::default()).unwrap(),
            root.canonicalize().unwrap().join("real/a.txt")
        );
        // ... unless it leads into .git.
        std::fs::create_dir(root.join(".git")).unwrap();
        std::os::unix::fs::symlink(root.join(".git"), root.join("g")).unwrap();
        assert!(refused(root, "g/config").contains(".git"));
    }

    #[test]
    fn custom_globs_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let policy = Policy {
            protected: vec!["secrets/**".into(), "*.lock".into()],
            max_files: 2,
            max_lines: 10,
        };
        assert!(check(dir.path(), "secrets/a/b.txt", &policy).is_err());
        assert!(check(dir.path(), "Cargo.lock", &policy).is_err());
        assert!(check(dir.path(), ".env", &policy).is_ok());
        assert!(policy.over_limits(3, 1).unwrap().contains("3 files"));
        assert!(policy.over_limits(1, 11).unwrap().contains("11 lines"));
        assert_eq!(policy.over_limits(2, 10), None);
        let bad = Policy { protected: vec!["a[".into()], ..Policy::default() };
        assert!(check(dir.path(), "x.txt", &bad).unwrap_err().reason.contains("invalid"));
    }
}
