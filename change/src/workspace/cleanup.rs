//! Finding and removing workspace folders under the root (`troupe runs cleanup`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{WorkspaceKind, Workspaces};
use crate::error::{Error, Result};
use crate::git::Git;

/// A workspace folder found under the root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listed {
    /// The run it belongs to (the folder's name).
    pub run_id: String,
    /// The checkout: the worktree or copy inside the run's folder.
    pub checkout: PathBuf,
    /// [`WorkspaceKind::Worktree`] or [`WorkspaceKind::Copy`].
    pub kind: WorkspaceKind,
}

impl std::fmt::Display for Listed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            WorkspaceKind::Worktree => "git worktree",
            WorkspaceKind::Copy | WorkspaceKind::InPlace => "copy",
        };
        write!(f, "run {}: {what} {}", self.run_id, self.checkout.display())
    }
}

impl Workspaces {
    /// Every workspace folder under the root, sorted by run id.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        for run in read_dir(&self.root)? {
            let Some(run_id) = run.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
                continue;
            };
            if run_id.starts_with('.') || !run.is_dir() {
                continue;
            }
            for checkout in read_dir(&run)? {
                let dot_git = checkout.join(".git");
                let kind = if dot_git.is_file() {
                    WorkspaceKind::Worktree
                } else if dot_git.is_dir() {
                    WorkspaceKind::Copy
                } else {
                    continue;
                };
                out.push(Listed { run_id: run_id.clone(), checkout, kind });
            }
        }
        out.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        Ok(out)
    }

    /// Removes the workspaces of `run_ids` (worktree and branch, or copy); with `dry_run`,
    /// only says which. Returns what was (or would be) removed.
    pub fn cleanup(&self, run_ids: &[impl AsRef<str>], dry_run: bool) -> Result<Vec<Listed>> {
        let chosen: Vec<Listed> = self
            .list()?
            .into_iter()
            .filter(|l| run_ids.iter().any(|id| id.as_ref() == l.run_id))
            .collect();
        if !dry_run {
            for listed in &chosen {
                let branch = Git::new(&listed.checkout)
                    .run(["symbolic-ref", "-q", "--short", "HEAD"])
                    .ok()
                    .map(|b| b.trim().to_string())
                    .filter(|b| b.starts_with("troupe/"));
                remove(&listed.checkout, branch.as_deref(), None)?;
            }
        }
        Ok(chosen)
    }
}

/// Removes a checkout and the run folder holding it; for a worktree, also its registration
/// in the user's repository and its `troupe/…` branch. `repo` (the user's project, for a
/// worktree) finds that repository when the checkout was already deleted by hand.
pub(super) fn remove(checkout: &Path, branch: Option<&str>, repo: Option<&Path>) -> Result<()> {
    let dot_git = checkout.join(".git");
    // A worktree's `.git` says `gitdir: <repo>/.git/worktrees/<name>`.
    let common = std::fs::read_to_string(&dot_git)
        .ok()
        .and_then(|s| s.strip_prefix("gitdir:").map(|p| PathBuf::from(p.trim())))
        .and_then(|gitdir| gitdir.parent().and_then(Path::parent).map(Path::to_path_buf))
        .filter(|c| c.is_dir())
        .or_else(|| repo.filter(|r| r.is_dir()).map(Path::to_path_buf));
    if let Some(common) = common {
        let git = Git::new(common);
        let turn = super::worktree_turn();
        if dot_git.is_file() {
            git.run([
                "worktree".as_ref(),
                "remove".as_ref(),
                "--force".as_ref(),
                checkout.as_os_str(),
            ])?;
        }
        git.run(["worktree", "prune"])?;
        drop(turn);
        let heads = branch.map(|b| format!("refs/heads/{b}"));
        if let (Some(branch), Some(heads)) = (branch, heads)
            && git.succeeds(["show-ref", "--verify", "--quiet", &heads])?
        {
            git.run(["branch", "-D", "-q", branch])?;
        }
    }
    let folder = checkout.parent().unwrap_or(checkout);
    if folder.exists() {
        std::fs::remove_dir_all(folder).map_err(|source| Error::Io {
            what: format!("removing the workspace {}", folder.display()),
            source,
        })?;
    }
    Ok(())
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries.filter_map(|e| e.ok().map(|e| e.path())).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(Error::Io { what: format!("listing {}", dir.display()), source }),
    }
}
