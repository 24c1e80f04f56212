//! Apply a run's change to the user's tree, all or nothing, and revert it.
//!
//! Apply checks first (`git apply --check` of the binary patch against the user's working
//! tree) and refuses with the conflicting files named, having written nothing; then
//! `git apply` (atomic: every file or none). With a commit message it also commits exactly
//! the applied files on the user's current branch — refused up front when the user has
//! other staged changes, so their work never ends up in troupe's commit. Revert refuses
//! when any applied file changed since (content ids recorded at apply), then applies the
//! patch in reverse; if apply made a commit, revert makes a new commit that undoes it
//! (history is never rewritten). In place, the change is already in the tree: apply only
//! records it (and commits it when asked; after a revert it applies it again), and revert
//! restores the checkpoint's content of the files the run changed.

use std::path::PathBuf;

use super::{Applied, Workspace, WorkspaceKind};
use crate::error::{Error, Result};
use crate::git::Git;

impl Workspace {
    /// A dry run of [`Workspace::apply`]: `Err(Error::Conflict)` naming the files that no
    /// longer match, `Err(Error::NothingToApply)` for an empty change.
    pub fn check_apply(&self) -> Result<()> {
        self.prepare().map(|_| ())
    }

    /// Applies the change to the user's tree, all or nothing; with `commit_message`, also
    /// commits exactly the changed files on the user's current branch (refused up front,
    /// [`Error::StagedChanges`], when the user has staged work). In place, the change is
    /// normally in the tree already: then this only records it (and commits it when asked);
    /// after a revert it applies the change again.
    ///
    /// If the files are written but the commit then fails, the change is recorded as
    /// applied (revert undoes it) and the commit's error is returned.
    pub fn apply(&mut self, commit_message: Option<&str>) -> Result<Applied> {
        let (target, change, in_tree) = self.prepare()?;
        let files = change.paths();
        if commit_message.is_some() {
            if self.kind == WorkspaceKind::Copy {
                return Err(Error::CommitOutsideRepository { path: self.project.clone() });
            }
            staged_nothing(&target)?;
        }
        if !in_tree {
            target.run_input(["apply", "--binary"], Some(change.patch.as_bytes()))?;
        }
        let mut applied = Applied {
            at: chrono::Utc::now(),
            after: content_ids(&target, &files)?,
            files,
            commit: None,
            patch: change.patch,
        };
        self.applied = Some(applied.clone());
        if let Some(message) = commit_message {
            let message = format!("{message}\n\nApplied from troupe run {}.", self.run_id);
            applied.commit = commit_files(&target, &applied.files, &message)?;
            self.applied = Some(applied.clone());
        }
        Ok(applied)
    }

    /// Undoes the applied change: `Err(Error::ChangedSinceApply)` naming the files the user
    /// edited since (nothing is reverted then). A change applied with a commit is undone
    /// with a new commit. In place, restores the checkpoint's content of the run's files
    /// (no apply needed first).
    pub fn revert(&mut self) -> Result<()> {
        let target = self.target()?;
        let (patch, after, commit) = match (&self.applied, self.kind) {
            (Some(a), _) => (a.patch.clone(), a.after.clone(), a.commit.clone()),
            (None, WorkspaceKind::InPlace) => {
                let change = self.diff()?;
                let files = change.paths();
                if content_ids(&target, &files)? == blob_ids(&target, &self.base, &files)? {
                    return Err(Error::NotApplied);
                }
                (change.patch, blob_ids(&target, &self.head, &files)?, None)
            }
            (None, _) => return Err(Error::NotApplied),
        };
        let files: Vec<PathBuf> = after.iter().map(|(p, _)| p.clone()).collect();
        let now = content_ids(&target, &files)?;
        let changed: Vec<PathBuf> =
            after.iter().zip(&now).filter(|(a, n)| a.1 != n.1).map(|(a, _)| a.0.clone()).collect();
        if !changed.is_empty() {
            return Err(Error::ChangedSinceApply { files: changed });
        }
        if commit.is_some() {
            staged_nothing(&target)?;
        }
        check(&target, &patch, true, &files)?;
        target.run_input(["apply", "--binary", "-R"], Some(patch.as_bytes()))?;
        self.applied = None;
        if let Some(commit) = commit {
            let message =
                format!("Revert troupe run {}\n\nThis reverts commit {commit}.", self.run_id);
            commit_files(&target, &files, &message)?;
        }
        Ok(())
    }

    /// What apply and its dry run share: the refusals, the change, and whether it is in the
    /// tree already (in place).
    fn prepare(&self) -> Result<(Git, super::Change, bool)> {
        if let Some(applied) = &self.applied {
            return Err(Error::AlreadyApplied { at: applied.at });
        }
        let change = self.diff()?;
        if change.is_empty() {
            return Err(Error::NothingToApply);
        }
        let target = self.target()?;
        let files = change.paths();
        let in_tree = self.kind == WorkspaceKind::InPlace
            && content_ids(&target, &files)? == blob_ids(&target, &self.head, &files)?;
        if !in_tree {
            check(&target, &change.patch, false, &files)?;
        }
        Ok((target, change, in_tree))
    }

    /// git in the folder the change is applied to: the user's repository top, or the
    /// project folder for a copy.
    fn target(&self) -> Result<Git> {
        match self.kind {
            WorkspaceKind::Copy => Ok(Git::new(&self.project)),
            WorkspaceKind::Worktree | WorkspaceKind::InPlace => {
                let top = Git::new(&self.project).run(["rev-parse", "--show-toplevel"])?;
                Ok(Git::new(top.trim()))
            }
        }
    }
}

/// `git apply --check` (reversed with `reverse`); a failure names the files git complained
/// about (all of them when it names none).
fn check(git: &Git, patch: &str, reverse: bool, files: &[PathBuf]) -> Result<()> {
    let mut args = vec!["apply", "--check", "--binary"];
    if reverse {
        args.push("-R");
    }
    let out = git.output(&args, Some(patch.as_bytes()))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let named: Vec<PathBuf> = files
        .iter()
        .filter(|f| {
            let f = f.to_string_lossy();
            stderr.lines().any(|l| {
                l.contains(&format!(" {f}:")) || l.contains(&format!(" {f}\n")) || l.ends_with(&*f)
            })
        })
        .cloned()
        .collect();
    Err(Error::Conflict { files: if named.is_empty() { files.to_vec() } else { named } })
}

/// Refuses when the user has staged changes (they would end up in troupe's commit).
fn staged_nothing(git: &Git) -> Result<()> {
    let out = git.run(["diff", "--cached", "--name-only", "--no-relative", "-z"])?;
    let files: Vec<PathBuf> =
        out.split('\0').filter(|f| !f.is_empty()).map(PathBuf::from).collect();
    if files.is_empty() { Ok(()) } else { Err(Error::StagedChanges { files }) }
}

/// Stages exactly `files` (additions and removals, `git update-index --add --remove`, so a
/// path neither tracked nor on disk is no error) and commits them on the current branch, as
/// the user when the user has an identity; `None` when that stages nothing (e.g. the change
/// only removed files the user never committed).
fn commit_files(git: &Git, files: &[PathBuf], message: &str) -> Result<Option<String>> {
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["update-index".as_ref(), "--add".as_ref(), "--remove".as_ref(), "--".as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    git.run(args)?;
    if git.succeeds(["diff", "--cached", "--quiet"])? {
        return Ok(None);
    }
    git.clone().as_user().run(["commit", "-q", "--no-verify", "-m", message])?;
    Ok(Some(git.run(["rev-parse", "HEAD"])?.trim().to_string()))
}

/// Each file's content id on disk as git would store it (`git hash-object`; a symbolic
/// link by its target's text), `None` when it does not exist.
fn content_ids(git: &Git, files: &[PathBuf]) -> Result<Vec<(PathBuf, Option<String>)>> {
    let mut ids = std::collections::HashMap::new();
    let mut regular = Vec::new();
    for file in files {
        match git.dir().join(file).symlink_metadata() {
            Err(_) => {}
            Ok(meta) if meta.is_symlink() => {
                let link = std::fs::read_link(git.dir().join(file)).map_err(|source| {
                    Error::Io { what: format!("reading the link {}", file.display()), source }
                })?;
                let text = link.as_os_str().as_encoded_bytes();
                let id = git.run_input(["hash-object", "--stdin"], Some(text))?;
                ids.insert(file, id.trim().to_string());
            }
            Ok(_) => regular.push(file),
        }
    }
    if !regular.is_empty() {
        let mut args: Vec<&std::ffi::OsStr> = vec!["hash-object".as_ref(), "--".as_ref()];
        args.extend(regular.iter().map(|f| f.as_os_str()));
        let out = git.run(args)?;
        ids.extend(regular.into_iter().zip(out.lines().map(str::to_string)));
    }
    Ok(files.iter().map(|f| (f.clone(), ids.get(f).cloned())).collect())
}

/// Each file's content id in commit `head`, `None` when it is not there.
fn blob_ids(git: &Git, head: &str, files: &[PathBuf]) -> Result<Vec<(PathBuf, Option<String>)>> {
    files
        .iter()
        .map(|f| {
            let spec = format!("{head}:{}", f.display());
            let out = git.output(["rev-parse", "--verify", "-q", &spec], None)?;
            let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
            Ok((f.clone(), (out.status.success() && !id.is_empty()).then_some(id)))
        })
        .collect()
}
