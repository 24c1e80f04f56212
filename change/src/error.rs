//! The crate's error type.

use std::path::PathBuf;

/// What went wrong with a workspace, an edit or a validator, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// `git` could not be started.
    #[error(
        "git is not installed (or not on PATH); troupe keeps each run's change in git. Install \
         git (e.g. `apt install git`) and try again"
    )]
    GitMissing,
    /// A git command failed.
    #[error("`{command}` failed: {stderr}; {hint}")]
    Git {
        /// The command line.
        command: String,
        /// What git said.
        stderr: String,
        /// What to do about it.
        hint: String,
    },
    /// An `--in-place` run was asked for in a folder that is not a git repository.
    #[error(
        "{} is not a git repository, so an --in-place run would have no checkpoint to revert \
         to; drop --in-place (troupe then works in a copy and `troupe runs apply` writes the \
         change back) or run `git init` there first", path.display()
    )]
    NotARepository {
        /// The project folder.
        path: PathBuf,
    },
    /// The change does not apply to the user's tree as it is now.
    #[error(
        "the change does not apply cleanly: {} changed since the run started; nothing was \
         applied. See the change with `troupe runs diff`, then commit, stash or undo your edits \
         to those files and apply again (or apply the patch by hand)",
        list(files)
    )]
    Conflict {
        /// The files whose content no longer matches what the change expects.
        files: Vec<PathBuf>,
    },
    /// The user edited files of an applied change; reverting would lose those edits.
    #[error(
        "{} changed since the change was applied; nothing was reverted. Undo your edits to \
         those files (or revert them by hand) and try again",
        list(files)
    )]
    ChangedSinceApply {
        /// The files that differ from what apply wrote.
        files: Vec<PathBuf>,
    },
    /// Revert was asked for a change that is not applied.
    #[error("this run's change is not applied, so there is nothing to revert")]
    NotApplied,
    /// Apply was asked for a change that is already applied.
    #[error(
        "this run's change was already applied at {at}; revert it first (`troupe runs revert`) \
         to apply it again"
    )]
    AlreadyApplied {
        /// When it was applied.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// The run changed nothing.
    #[error("the run changed no file; there is nothing to apply")]
    NothingToApply,
    /// `--commit` was asked while the user has staged work that would end up in the commit.
    #[error(
        "you have staged changes ({}); committing troupe's change would mix them in. Commit or \
         unstage them first (`git restore --staged .`), or apply without --commit",
        list(files)
    )]
    StagedChanges {
        /// The staged files.
        files: Vec<PathBuf>,
    },
    /// `apply --commit` for a project that is not a git repository.
    #[error(
        "{} is not a git repository, so there is no branch to commit the change on; apply \
         without --commit", path.display()
    )]
    CommitOutsideRepository {
        /// The project folder.
        path: PathBuf,
    },
    /// The workspace folder (or the commits it refers to) is gone.
    #[error(
        "the run's workspace {} is gone (removed by hand or by `troupe runs cleanup`); its \
         change can no longer be diffed, committed or applied", path.display()
    )]
    Missing {
        /// The workspace folder.
        path: PathBuf,
    },
    /// The change holds bytes that are not UTF-8 even as a binary patch (a repository's
    /// `.gitattributes` forces those files to be diffed as text).
    #[error(
        "the change cannot be shown as a patch: {} is not UTF-8 text and the repository's \
         .gitattributes says to diff it as text; look at the run's branch with git instead",
        list(files)
    )]
    PatchNotText {
        /// The `diff --git` lines of the files concerned.
        files: Vec<PathBuf>,
    },
    /// The project folder cannot hold a workspace.
    #[error("{} is not a folder; give troupe the project folder to work in", path.display())]
    NotAFolder {
        /// The path given.
        path: PathBuf,
    },
}

/// Paths as one readable list.
fn list(files: &[PathBuf]) -> String {
    const SHOWN: usize = 10;
    let mut out =
        files.iter().take(SHOWN).map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ");
    if files.len() > SHOWN {
        out.push_str(&format!(" and {} more", files.len() - SHOWN));
    }
    out
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
