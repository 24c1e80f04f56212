//! Merging another workspace's commits into this one (a plan's integration branch takes
//! each green task's change), with conflicts reported by file and nothing left half-merged.

use std::path::PathBuf;

use super::{Workspace, WorkspaceKind};
use crate::error::{Error, Result};

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// The commit is part of the workspace now (`head` is the new head; unchanged when the
    /// commit was in it already).
    Merged {
        /// The workspace's head after the merge.
        head: String,
    },
    /// The commit's change conflicts with what the workspace has; nothing was merged.
    Conflict {
        /// The conflicting files, relative to the repository's top.
        files: Vec<PathBuf>,
    },
}

impl Workspace {
    /// Merges `commit` (of the same repository, e.g. another run's workspace head) into the
    /// workspace's branch with a merge commit saying `message`. A conflict aborts the merge
    /// (the workspace is as it was) and names the files. A merge a crash left unfinished is
    /// aborted first; the head is read back from git, so a merge that happened before a
    /// crash is not made twice. Only worktrees and copies can merge.
    pub fn merge(&mut self, commit: &str, message: &str) -> Result<Merge> {
        if self.kind == WorkspaceKind::InPlace {
            return Err(Error::Git {
                command: format!("git merge {commit}"),
                stderr: "an in-place workspace has no branch of its own".into(),
                hint: "merge into a worktree workspace".into(),
            });
        }
        let git = self.git()?;
        if git.succeeds(["rev-parse", "-q", "--verify", "MERGE_HEAD"])? {
            git.run(["merge", "--abort"])?;
        }
        self.head = git.run(["rev-parse", "HEAD"])?.trim().to_string();
        if git.succeeds(["merge-base", "--is-ancestor", commit, "HEAD"])? {
            return Ok(Merge::Merged { head: self.head.clone() });
        }
        let out =
            git.output(["merge", "--no-ff", "--no-edit", "-q", "-m", message, commit], None)?;
        if !out.status.success() {
            let listed = git.run(["diff", "--name-only", "--diff-filter=U"])?;
            let files: Vec<PathBuf> =
                listed.lines().filter(|l| !l.trim().is_empty()).map(PathBuf::from).collect();
            if git.succeeds(["rev-parse", "-q", "--verify", "MERGE_HEAD"])? {
                git.run(["merge", "--abort"])?;
            }
            if files.is_empty() {
                let args: Vec<std::ffi::OsString> =
                    ["merge", commit].iter().map(Into::into).collect();
                return Err(git.failure(&args, &out));
            }
            return Ok(Merge::Conflict { files });
        }
        self.head = git.run(["rev-parse", "HEAD"])?.trim().to_string();
        Ok(Merge::Merged { head: self.head.clone() })
    }
}
