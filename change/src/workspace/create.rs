//! Creating a workspace: the snapshot of the user's tree, the worktree, the copy, the
//! checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Workspace, WorkspaceKind, checkpoint_ref, runs_ref};
use crate::error::{Error, Result};
use crate::git::Git;

pub(super) fn create(
    root: &Path,
    project: &Path,
    run_id: &str,
    in_place: bool,
    exclude: &[PathBuf],
) -> Result<Workspace> {
    let project = canonical_folder(project)
        .ok_or_else(|| Error::NotAFolder { path: project.to_path_buf() })?;
    let run_id = sanitize(run_id);
    let git = Git::new(&project);
    let top = repository_top(&git)?;
    if in_place {
        let Some(top) = top else { return Err(Error::NotARepository { path: project }) };
        return in_place_workspace(&project, &top, &run_id, &excluded(&top, root, exclude));
    }
    in_new_folder(root, &run_id, |folder| match top {
        Some(top) => {
            let at = Start::Snapshot;
            worktree(&project, &top, folder, &run_id, at, None, &excluded(&top, root, exclude))
        }
        None => copy(&project, folder, &run_id, &excluded(&project, root, exclude)),
    })
}

/// `path` made absolute, when it is a folder.
fn canonical_folder(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok().filter(|p| p.is_dir())
}

/// What `make` builds in a new folder for `run_id` under `root`; the folder is removed again
/// when that fails (nothing half-made is left behind).
fn in_new_folder(
    root: &Path,
    run_id: &str,
    make: impl FnOnce(&Path) -> Result<Workspace>,
) -> Result<Workspace> {
    std::fs::create_dir_all(root).map_err(|source| Error::Io {
        what: format!("creating the workspace folder {}", root.display()),
        source,
    })?;
    let folder = unique_folder(root, run_id)?;
    let result = make(&folder);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&folder);
    }
    result
}

/// Where a worktree starts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Start<'a> {
    /// At a snapshot of the user's tree (HEAD plus uncommitted changes).
    Snapshot,
    /// At this commit of the user's repository.
    Commit(&'a str),
}

/// A worktree workspace for `run_id` of `project`'s repository, starting at `start`, on
/// `branch` (or `troupe/<short-run-id>`). A project outside git is refused.
pub(super) fn create_worktree(
    root: &Path,
    project: &Path,
    run_id: &str,
    start: Start<'_>,
    branch: Option<&str>,
    exclude: &[PathBuf],
) -> Result<Workspace> {
    let project = canonical_folder(project)
        .ok_or_else(|| Error::NotARepository { path: project.to_path_buf() })?;
    let run_id = sanitize(run_id);
    let Some(top) = repository_top(&Git::new(&project))? else {
        return Err(Error::NotARepository { path: project });
    };
    let exclude = excluded(&top, root, exclude);
    in_new_folder(root, &run_id, |folder| {
        worktree(&project, &top, folder, &run_id, start, branch, &exclude)
    })
}

/// The top folder of the repository `git` runs in; `None` when it is not in one. Any other
/// failure (git refusing a repository another user owns, a `.git` folder) is an error:
/// copying such a project would hide the problem.
fn repository_top(git: &Git) -> Result<Option<PathBuf>> {
    let args = ["rev-parse", "--show-toplevel"];
    let out = git.output(args, None)?;
    let top = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !top.is_empty() {
        Ok(Some(PathBuf::from(top)))
    } else if String::from_utf8_lossy(&out.stderr).contains("not a git repository") {
        Ok(None)
    } else {
        let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        Err(git.failure(&args, &out))
    }
}

/// A commit of the working tree as it is (HEAD plus uncommitted and untracked files, without
/// `exclude`), on top of HEAD, made without touching the user's index.
fn snapshot_commit(git: &Git, exclude: &[PathBuf], message: &str) -> Result<String> {
    let head = resolve(git, "HEAD")?;
    let tree = snapshot_tree(git, head.as_deref(), exclude)?;
    commit_tree(git, &tree, head.as_deref(), message)
}

/// A worktree of the user's repository at a snapshot of HEAD plus uncommitted changes.
fn worktree(
    project: &Path,
    top: &Path,
    folder: &Path,
    run_id: &str,
    start: Start<'_>,
    branch: Option<&str>,
    exclude: &[PathBuf],
) -> Result<Workspace> {
    let git = Git::new(top);
    let base = match start {
        Start::Snapshot => {
            let message =
                format!("troupe: snapshot for run {run_id} (HEAD and uncommitted changes)");
            snapshot_commit(&git, exclude, &message)?
        }
        Start::Commit(commit) => resolve(&git, commit)?.ok_or_else(|| Error::Git {
            command: format!("git rev-parse {commit}"),
            stderr: "no such commit".into(),
            hint: "the base commit is gone from the repository".into(),
        })?,
    };
    let checkout = folder.join(name_of(top));
    // Runs started in the same millisecond share a short id: the branch is the first free
    // name, chosen and taken in this process's turn; another process may still take it
    // between the check and the add: then the next free name.
    let _turn = super::worktree_turn();
    let mut tries = 0;
    let branch = loop {
        let branch = match branch {
            Some(name) if tries == 0 => name.to_string(),
            Some(name) => format!("{name}-{}", tries + 1),
            None => unique_branch(&git, run_id)?,
        };
        let add: [&std::ffi::OsStr; 7] = [
            "worktree".as_ref(),
            "add".as_ref(),
            "-q".as_ref(),
            "-b".as_ref(),
            branch.as_ref(),
            checkout.as_os_str(),
            base.as_ref(),
        ];
        match git.run(add) {
            Ok(_) => break branch,
            Err(Error::Git { stderr, .. }) if stderr.contains("already exists") && tries < 5 => {
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let prefix = project.strip_prefix(top).unwrap_or(Path::new(""));
    Ok(Workspace {
        kind: WorkspaceKind::Worktree,
        dir: checkout.join(prefix),
        project: project.to_path_buf(),
        base: base.clone(),
        branch: Some(branch),
        head: base,
        applied: None,
        run_id: run_id.to_string(),
        checkout: Some(checkout),
        exclude: exclude.to_vec(),
    })
}

/// A gitignore-aware copy of a project that is not a repository, with its own repository.
fn copy(project: &Path, folder: &Path, run_id: &str, exclude: &[PathBuf]) -> Result<Workspace> {
    let checkout = folder.join(name_of(project));
    copy_tree(project, &checkout, exclude)?;
    let branch = format!("troupe/{}", short(run_id));
    let git = Git::new(&checkout);
    git.run(["init", "-q", "--initial-branch", &branch])?;
    git.run(["add", "-A", "--", ":/"])?;
    let message = format!("troupe: a copy of {} for run {run_id}", project.display());
    git.run(["commit", "-q", "--allow-empty", "--no-verify", "-m", &message])?;
    let base = git.run(["rev-parse", "HEAD"])?.trim().to_string();
    Ok(Workspace {
        kind: WorkspaceKind::Copy,
        dir: checkout.clone(),
        project: project.to_path_buf(),
        base: base.clone(),
        branch: Some(branch),
        head: base,
        applied: None,
        run_id: run_id.to_string(),
        checkout: Some(checkout),
        exclude: Vec::new(),
    })
}

/// The project itself, with a checkpoint snapshot kept alive by a ref.
fn in_place_workspace(
    project: &Path,
    top: &Path,
    run_id: &str,
    exclude: &[PathBuf],
) -> Result<Workspace> {
    let git = Git::new(top);
    let base = snapshot_commit(&git, exclude, &format!("troupe: checkpoint before run {run_id}"))?;
    git.run(["update-ref", &checkpoint_ref(run_id), &base])?;
    git.run(["update-ref", &runs_ref(run_id), &base])?;
    Ok(Workspace {
        kind: WorkspaceKind::InPlace,
        dir: project.to_path_buf(),
        project: project.to_path_buf(),
        base: base.clone(),
        branch: None,
        head: base,
        applied: None,
        run_id: run_id.to_string(),
        checkout: None,
        exclude: exclude.to_vec(),
    })
}

/// The tree of the working tree as it is — tracked changes, staged or not, and untracked
/// files that are not ignored — built in a temporary index (a copy of the user's, so
/// unchanged files are not hashed again). The user's index, stash and files are untouched.
pub(super) fn snapshot_tree(git: &Git, head: Option<&str>, exclude: &[PathBuf]) -> Result<String> {
    let index = PathBuf::from(
        git.run(["rev-parse", "--path-format=absolute", "--git-path", "index"])?.trim(),
    );
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let temp = std::env::temp_dir().join(format!(
        "troupe-index-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let result = (|| {
        let with = git.clone().env("GIT_INDEX_FILE", &temp);
        if index.is_file() {
            std::fs::copy(&index, &temp).map_err(|source| Error::Io {
                what: format!("copying the index {} to {}", index.display(), temp.display()),
                source,
            })?;
        } else if let Some(head) = head {
            with.run(["read-tree", head])?;
        }
        let mut args = vec!["add".to_string(), "-A".into(), "--".into(), ":/".into()];
        args.extend(exclude.iter().map(|x| format!(":(top,exclude){}", x.display())));
        with.run(&args)?;
        Ok(with.run(["write-tree"])?.trim().to_string())
    })();
    let _ = std::fs::remove_file(&temp);
    result
}

/// A commit of `tree` on `parent` (a root commit in an unborn repository).
fn commit_tree(git: &Git, tree: &str, parent: Option<&str>, message: &str) -> Result<String> {
    let mut args = vec!["commit-tree", tree];
    if let Some(parent) = parent {
        args.extend(["-p", parent]);
    }
    args.extend(["-m", message]);
    Ok(git.run(args)?.trim().to_string())
}

/// The commit a name points to, `None` when it does not resolve (an unborn HEAD).
fn resolve(git: &Git, name: &str) -> Result<Option<String>> {
    let out = git.output(["rev-parse", "--verify", "-q", &format!("{name}^{{commit}}")], None)?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok((out.status.success() && !id.is_empty()).then_some(id))
}

/// `troupe/<short>`, with a suffix when a branch of that name exists.
fn unique_branch(git: &Git, run_id: &str) -> Result<String> {
    let short = short(run_id);
    for n in 1.. {
        let name = if n == 1 { format!("troupe/{short}") } else { format!("troupe/{short}-{n}") };
        if !git.succeeds(["show-ref", "--verify", "--quiet", &format!("refs/heads/{name}")])? {
            return Ok(name);
        }
    }
    Ok(format!("troupe/{run_id}"))
}

/// `<root>/<run-id>`, with a suffix when it exists; created empty.
fn unique_folder(root: &Path, run_id: &str) -> Result<PathBuf> {
    let root = std::fs::canonicalize(root).map_err(|source| Error::Io {
        what: format!("resolving the workspace folder {}", root.display()),
        source,
    })?;
    for n in 1.. {
        let folder = if n == 1 { root.join(run_id) } else { root.join(format!("{run_id}-{n}")) };
        match std::fs::create_dir(&folder) {
            Ok(()) => return Ok(folder),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => {
                return Err(Error::Io { what: format!("creating {}", folder.display()), source });
            }
        }
    }
    Ok(root.join(run_id))
}

/// The folders to leave out, relative to `top`: those given and the workspace root, when
/// they lie inside it.
fn excluded(top: &Path, root: &Path, exclude: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = exclude
        .iter()
        .map(PathBuf::as_path)
        .chain([root])
        .filter_map(|p| std::fs::canonicalize(p).ok().or_else(|| absolute(p)))
        .filter_map(|p| p.strip_prefix(top).ok().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn absolute(path: &Path) -> Option<PathBuf> {
    std::path::absolute(path).ok()
}

/// The run id with only characters safe in a branch, ref and folder name.
fn sanitize(run_id: &str) -> String {
    let id: String = run_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    if id.is_empty() { "run".into() } else { id }
}

/// The first 12 characters of the id without dashes (a UUIDv7's creation time, as
/// `troupe runs` shows it).
pub(super) fn short(run_id: &str) -> String {
    run_id.chars().filter(|c| *c != '-').take(12).collect()
}

/// A folder's own name, for the checkout (tools that read it see the same name).
fn name_of(path: &Path) -> PathBuf {
    path.file_name().map_or_else(|| PathBuf::from("project"), PathBuf::from)
}

/// Copies `from` into `to`: files that `.gitignore` does not ignore, no `.git`, nothing under `exclude`
/// (relative to `from`), and symbolic links only when they point inside the project.
fn copy_tree(from: &Path, to: &Path, exclude: &[PathBuf]) -> Result<()> {
    let exclude: Vec<PathBuf> = exclude.iter().map(|x| from.join(x)).collect();
    let walk = ignore::WalkBuilder::new(from)
        .hidden(false)
        .ignore(false)
        .parents(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(move |e| {
            e.file_name() != ".git" && !exclude.iter().any(|x| e.path().starts_with(x))
        })
        .build();
    for entry in walk {
        let entry = entry.map_err(|e| Error::Io {
            what: format!("reading {} to copy it", from.display()),
            source: std::io::Error::other(e.to_string()),
        })?;
        let rel = entry.path().strip_prefix(from).unwrap_or(entry.path());
        let target = to.join(rel);
        let io = |what: &str| {
            let what = format!("{what} {}", target.display());
            move |source| Error::Io { what, source }
        };
        let Some(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(io("creating"))?;
        } else if kind.is_symlink() {
            let inside =
                std::fs::canonicalize(entry.path()).is_ok_and(|real| real.starts_with(from));
            if inside {
                let link = std::fs::read_link(entry.path()).map_err(io("reading the link"))?;
                std::os::unix::fs::symlink(link, &target).map_err(io("creating the link"))?;
            }
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).map_err(io("copying to"))?;
        }
    }
    Ok(())
}
