//! A run's workspace: where its agents edit, and the commits that record what they changed.
//!
//! Three kinds ([`WorkspaceKind`]):
//! - **worktree** (the project is in a git repository): a `git worktree` under troupe's
//!   workspace root on a new branch `troupe/<short-run-id>`, checked out at a *snapshot*
//!   commit of the user's tree — HEAD plus uncommitted changes, untracked non-ignored files
//!   included — built with a temporary index, so the user's index, stash, branch and files
//!   are never touched;
//! - **copy** (not a repository): a gitignore-aware copy of the project with `git init` and a
//!   base commit, so the same diff and commit machinery works; apply writes into the project;
//! - **in place** (`--in-place`, git projects only): agents edit the project itself; the base
//!   is a checkpoint snapshot kept alive by `refs/troupe/checkpoints/<run-id>` and step
//!   commits are snapshots chained under `refs/troupe/runs/<run-id>`. A non-git project in
//!   place is refused ([`Error::NotARepository`]): there would be nothing to revert to.
//!
//! **Invariant:** nothing outside the workspace folder is written before `apply` (in place:
//! nothing but the agents' own edits and troupe's refs).

mod apply;
mod change;
mod cleanup;
mod create;
mod merge;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use change::{Change, Commit, FileStat, FileStatus};
pub use cleanup::Listed;
pub use merge::Merge;

use crate::error::{Error, Result};
use crate::git::Git;

/// Held while a worktree of any repository is added, removed or pruned: `git worktree`
/// is not safe to run twice at once on one repository (two adds of checkouts with the same
/// folder name race on the name of their entry under `.git/worktrees`, and one fails reading
/// the other's half-written entry; a prune can remove an entry being made). Runs of one
/// project start at once (a plan's independent tasks), so this process takes turns.
fn worktree_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which kind of workspace a run has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum WorkspaceKind {
    /// A git worktree of the user's repository on the branch `troupe/<short-run-id>`.
    Worktree,
    /// A git-initialised copy of a project that is not a git repository.
    Copy,
    /// The project itself, with a checkpoint to revert to.
    InPlace,
}

/// A run's workspace. Stored in the run record as JSON; every method works from these fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Workspace {
    /// The kind.
    pub kind: WorkspaceKind,
    /// Where agents work (the project's place inside the checkout, or the project in place).
    pub dir: PathBuf,
    /// The user's folder.
    pub project: PathBuf,
    /// The base snapshot commit.
    pub base: String,
    /// `troupe/<short>` for a worktree or copy; `None` in place.
    pub branch: Option<String>,
    /// The run's latest commit (the base before any change).
    pub head: String,
    /// Set while the change is applied to the user's tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Applied>,
    /// The run this workspace belongs to (names the in-place refs).
    #[serde(default)]
    pub run_id: String,
    /// The top folder of the worktree or copy (a repository of its own), `None` in place.
    /// Discard removes its parent, the run's folder under the workspace root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<PathBuf>,
    /// Folders left out of every snapshot, relative to the repository's top (troupe's data
    /// folder when it lies inside the project).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<PathBuf>,
}

/// A change applied to the user's tree: what revert needs to undo it safely.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Applied {
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The paths written or removed, relative to the project's repository top (or the
    /// project folder for a copy).
    pub files: Vec<PathBuf>,
    /// The commit made on the user's branch by `apply --commit`.
    pub commit: Option<String>,
    /// The patch that was applied; revert applies it in reverse.
    pub patch: String,
    /// Each file's content id (`git hash-object`) right after the apply, `None` for a removed
    /// file: revert refuses when a file no longer matches.
    #[serde(default)]
    #[schema(value_type = Vec<Vec<String>>)]
    pub after: Vec<(PathBuf, Option<String>)>,
}

/// Where workspaces live: one folder per run under a root (troupe's `workspaces/`).
#[derive(Debug, Clone)]
pub struct Workspaces {
    /// The root folder, never inside a project snapshot (it is always excluded).
    root: PathBuf,
}

impl Workspaces {
    /// Workspaces under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Workspaces {
        Workspaces { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A new workspace for `run_id` on `project`: a worktree, a copy, or the project itself
    /// with a checkpoint (`in_place`). `exclude` names folders to leave out (troupe's data
    /// folder when it lies inside the project); the root is always left out.
    pub fn create(
        &self,
        project: &Path,
        run_id: &str,
        in_place: bool,
        exclude: &[PathBuf],
    ) -> Result<Workspace> {
        create::create(&self.root, project, run_id, in_place, exclude)
    }

    /// A new worktree workspace for `run_id` of the git repository `project` is in, on
    /// `branch` (or `troupe/<short-run-id>`), starting at `from` — a commit of that
    /// repository, e.g. a plan's integration branch — or, without it, at a snapshot of the
    /// user's tree like [`Workspaces::create`]. A project outside git is
    /// [`Error::NotARepository`].
    pub fn create_branch(
        &self,
        project: &Path,
        run_id: &str,
        branch: Option<&str>,
        from: Option<&str>,
        exclude: &[PathBuf],
    ) -> Result<Workspace> {
        let start = match from {
            Some(commit) => create::Start::Commit(commit),
            None => create::Start::Snapshot,
        };
        create::create_worktree(&self.root, project, run_id, start, branch, exclude)
    }
}

impl Workspace {
    /// Whether the workspace and its commits are still there (resume checks this).
    pub fn exists(&self) -> bool {
        self.git().is_ok_and(|git| {
            git.succeeds(["cat-file", "-e", &format!("{}^{{commit}}", self.head)]).unwrap_or(false)
        })
    }

    /// One line for the run header.
    pub fn describe(&self) -> String {
        let short = short_commit(&self.base);
        match self.kind {
            WorkspaceKind::Worktree => format!(
                "git worktree {} on branch {} (base {short} = your HEAD plus uncommitted changes)",
                self.dir.display(),
                self.branch.as_deref().unwrap_or("?"),
            ),
            WorkspaceKind::Copy => format!(
                "a copy of {} in {} (not a git repository; `troupe runs apply` writes the change \
                 back)",
                self.project.display(),
                self.dir.display()
            ),
            WorkspaceKind::InPlace => format!(
                "in place in {} (checkpoint {short}; `troupe runs revert` restores it)",
                self.project.display()
            ),
        }
    }

    /// Commits everything changed since [`Workspace::head`]; `None` when nothing changed.
    pub fn commit(&mut self, message: &str) -> Result<Option<Commit>> {
        let git = self.git()?;
        let new = match self.kind {
            WorkspaceKind::InPlace => {
                let tree = create::snapshot_tree(&git, Some(&self.head), &self.exclude)?;
                let old_tree = git.run(["rev-parse", &format!("{}^{{tree}}", self.head)])?;
                if tree == old_tree.trim() {
                    return Ok(None);
                }
                let id = git.run(["commit-tree", &tree, "-p", &self.head, "-m", message])?;
                let id = id.trim().to_string();
                git.run(["update-ref", &runs_ref(&self.run_id), &id])?;
                id
            }
            WorkspaceKind::Worktree | WorkspaceKind::Copy => {
                git.run(["add", "-A", "--", ":/"])?;
                if !git.succeeds(["diff", "--cached", "--quiet"])? {
                    git.run(["commit", "-q", "--no-verify", "-m", message])?;
                }
                // An agent may also have committed by itself; its commits count too.
                git.run(["rev-parse", "HEAD"])?.trim().to_string()
            }
        };
        if new == self.head {
            return Ok(None);
        }
        let files = change::stats(&git, &self.head, &new)?;
        self.head = new.clone();
        Ok(Some(Commit { id: new, files }))
    }

    /// Moves the run back to `commit` (one of its own commits), dropping what came after it
    /// and anything uncommitted — to try another candidate for a step from the same start.
    /// Only the run's own checkout moves (its branch, in its worktree or copy); in place,
    /// where the folder is the user's, nothing is touched and `false` is returned.
    pub fn reset_to(&mut self, commit: &str) -> Result<bool> {
        if self.kind == WorkspaceKind::InPlace {
            return Ok(false);
        }
        let git = self.git()?;
        git.run(["reset", "-q", "--hard", commit])?;
        git.run(["clean", "-q", "-fd"])?;
        self.head = git.run(["rev-parse", "HEAD"])?.trim().to_string();
        Ok(true)
    }

    /// The commit `commit` was made on (its first parent).
    pub fn parent_of(&self, commit: &str) -> Result<String> {
        let git = self.git()?;
        Ok(git.run(["rev-parse", &format!("{commit}^")])?.trim().to_string())
    }

    /// The run's committed change: base..head.
    pub fn diff(&self) -> Result<Change> {
        let git = self.git()?;
        Ok(Change {
            base: self.base.clone(),
            head: self.head.clone(),
            patch: change::patch(&git, &self.base, &self.head)?,
            files: change::stats(&git, &self.base, &self.head)?,
        })
    }

    /// Removes the worktree or copy and its branch; in place, drops troupe's refs only.
    pub fn discard(&self) -> Result<()> {
        match (&self.kind, &self.checkout) {
            (WorkspaceKind::InPlace, _) => {
                let git = Git::new(&self.project);
                for name in [checkpoint_ref(&self.run_id), runs_ref(&self.run_id)] {
                    if git.succeeds(["show-ref", "--verify", "--quiet", &name])? {
                        git.run(["update-ref", "-d", &name])?;
                    }
                }
                Ok(())
            }
            (_, Some(checkout)) => {
                // Never remove a folder that holds the user's project.
                let folder = checkout.parent().unwrap_or(checkout);
                if self.project.starts_with(folder) {
                    return Err(Error::Missing { path: checkout.clone() });
                }
                let repo = (self.kind == WorkspaceKind::Worktree).then_some(self.project.as_path());
                cleanup::remove(checkout, self.branch.as_deref(), repo)
            }
            (_, None) => Err(Error::Missing { path: self.dir.clone() }),
        }
    }

    /// git in the workspace's repository: the checkout's top, or the project in place.
    /// A checkout without its `.git` is [`Error::Missing`] — never let git find a repository
    /// above it (troupe's data folder may lie inside the user's project).
    fn git(&self) -> Result<Git> {
        match (&self.kind, &self.checkout) {
            (WorkspaceKind::InPlace, _) => Ok(Git::new(&self.project)),
            (_, Some(top)) if top.join(".git").exists() => Ok(Git::new(top)),
            _ => Err(Error::Missing { path: self.dir.clone() }),
        }
    }
}

/// The first 7 characters of a commit id.
fn short_commit(id: &str) -> &str {
    id.get(..7).unwrap_or(id)
}

/// The ref that keeps an in-place run's checkpoint alive.
fn checkpoint_ref(run_id: &str) -> String {
    format!("refs/troupe/checkpoints/{run_id}")
}

/// The ref of an in-place run's latest step commit.
fn runs_ref(run_id: &str) -> String {
    format!("refs/troupe/runs/{run_id}")
}
