//! The run workspace against real git in temporary folders.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pretty_assertions::assert_eq;
use troupe_change::Error;
use troupe_change::git::Git;
use troupe_change::workspace::{FileStatus, Workspace, WorkspaceKind, Workspaces};

const RUN: &str = "0192f0aa-bbbb-7ccc-8ddd-eeeeffff0001";
const RUN2: &str = "0192f0aa-bbbb-7ccc-8ddd-eeeeffff0002";

fn git(dir: &Path, args: &[&str]) -> String {
    Git::new(dir).run(args).unwrap_or_else(|e| panic!("git {args:?} in {}: {e}", dir.display()))
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A project folder and a workspace root beside it (not inside).
struct Fixture {
    _tmp: tempfile::TempDir,
    project: PathBuf,
    workspaces: Workspaces,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("proj");
    std::fs::create_dir(&project).unwrap();
    let project = project.canonicalize().unwrap();
    let workspaces = Workspaces::new(tmp.path().join("data/workspaces"));
    Fixture { _tmp: tmp, project, workspaces }
}

/// A repository with two committed files.
fn repo() -> Fixture {
    let f = fixture();
    git(&f.project, &["init", "-q", "-b", "main"]);
    write(&f.project.join("a.txt"), "one\ntwo\nthree\n");
    write(&f.project.join("b.txt"), "bee\n");
    write(&f.project.join(".gitignore"), "*.log\n");
    git(&f.project, &["add", "-A"]);
    git(&f.project, &["commit", "-q", "-m", "first"]);
    f
}

/// Everything of the user's that troupe must not touch before apply: the index file's bytes,
/// the stash list, HEAD, the branch, and every file of the working tree.
#[derive(Debug, PartialEq)]
struct UserState {
    index: Option<Vec<u8>>,
    stash: String,
    head: String,
    branch: String,
    files: BTreeMap<PathBuf, Vec<u8>>,
}

fn user_state(project: &Path) -> UserState {
    let g = Git::new(project);
    let out = |args: &[&str]| {
        g.output(args, None).map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap()
    };
    UserState {
        index: std::fs::read(project.join(".git/index")).ok(),
        stash: out(&["stash", "list"]),
        head: out(&["rev-parse", "-q", "--verify", "HEAD"]),
        branch: out(&["symbolic-ref", "HEAD"]),
        files: tree_files(project),
    }
}

/// Every file under `dir` but `.git`, with its bytes.
fn tree_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            let meta = p.symlink_metadata().unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_symlink() {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), b"->".to_vec());
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn branches(project: &Path) -> Vec<String> {
    git(project, &["for-each-ref", "--format=%(refname)", "refs/heads"])
        .lines()
        .map(String::from)
        .collect()
}

/// A repository with uncommitted work of every kind: an unstaged edit, a staged edit, an
/// untracked file, an ignored file, and a stash entry.
fn busy_repo() -> Fixture {
    let f = repo();
    write(&f.project.join("stashed.txt"), "stash me\n");
    git(&f.project, &["stash", "push", "-q", "-u", "-m", "kept"]);
    write(&f.project.join("a.txt"), "one\nTWO\nthree\n");
    write(&f.project.join("b.txt"), "bee staged\n");
    git(&f.project, &["add", "b.txt"]);
    write(&f.project.join("new/c.txt"), "untracked\n");
    write(&f.project.join("debug.log"), "ignored\n");
    f
}

#[test]
fn a_worktree_starts_from_head_plus_uncommitted_changes_and_leaves_the_user_alone() {
    let f = busy_repo();
    let before = user_state(&f.project);
    let mut ws = f.workspaces.create(&f.project, RUN, false, &[]).unwrap();
    assert_eq!(ws.kind, WorkspaceKind::Worktree);
    assert_eq!(ws.branch.as_deref(), Some("troupe/0192f0aabbbb"));
    assert_eq!(ws.head, ws.base);
    assert!(ws.dir.starts_with(f.workspaces.root().canonicalize().unwrap()));
    assert!(ws.exists());
    assert_eq!(read(&ws.dir.join("a.txt")), "one\nTWO\nthree\n");
    assert_eq!(read(&ws.dir.join("b.txt")), "bee staged\n");
    assert_eq!(read(&ws.dir.join("new/c.txt")), "untracked\n");
    assert!(!ws.dir.join("debug.log").exists(), "ignored files stay out");
    assert!(!ws.dir.join("stashed.txt").exists(), "the stash is not part of the tree");
    assert!(ws.describe().contains("troupe/0192f0aabbbb"), "{}", ws.describe());
    assert_eq!(user_state(&f.project), before, "create touched the user's repository");

    write(&ws.dir.join("a.txt"), "one\nTWO\nthree\nfour\n");
    let commit = ws.commit("step 1").unwrap().unwrap();
    assert_eq!(commit.added(), 1);
    let change = ws.diff().unwrap();
    let paths: Vec<_> = change.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(paths, vec![PathBuf::from("a.txt")], "the base already holds the user's edits");
    assert_eq!(user_state(&f.project), before, "commit or diff touched the user's repository");

    ws.discard().unwrap();
    assert_eq!(user_state(&f.project), before, "discard touched the user's repository");
    assert!(!ws.dir.exists());
    assert!(!ws.exists());
    assert_eq!(branches(&f.project), vec!["refs/heads/main".to_string()]);
    assert_eq!(
        git(&f.project, &["worktree", "list", "--porcelain"]).matches("worktree ").count(),
        1
    );
    assert!(matches!(ws.diff(), Err(Error::Missing { .. })));
}

#[test]
fn an_unborn_repository_gets_a_root_snapshot() {
    let f = fixture();
    git(&f.project, &["init", "-q", "-b", "main"]);
    write(&f.project.join("hello.txt"), "hi\n");
    let before = user_state(&f.project);
    let mut ws = f.workspaces.create(&f.project, RUN, false, &[]).unwrap();
    assert_eq!(read(&ws.dir.join("hello.txt")), "hi\n");
    write(&ws.dir.join("hello.txt"), "hello\n");
    assert!(ws.commit("edit").unwrap().is_some());
    assert_eq!(ws.diff().unwrap().files[0].status, FileStatus::Modified);
    assert_eq!(user_state(&f.project), before);
    ws.apply(Some("greet")).unwrap();
    assert_eq!(read(&f.project.join("hello.txt")), "hello\n");
    let log = git(&f.project, &["log", "--format=%s", "main"]);
    assert_eq!(log, "greet\n", "the applied change is the first commit on the user's branch");
}

#[test]
fn commit_reports_nothing_when_nothing_changed_and_exact_stats_otherwise() {
    let f = repo();
    let mut ws = f.workspaces.create(&f.project, RUN, false, &[]).unwrap();
    assert_eq!(ws.commit("nothing").unwrap(), None);
    let base = ws.head.clone();
    write(&ws.dir.join("src/new.rs"), "a\nb\nc\n");
    write(&ws.dir.join("a.txt"), "one\n2\nthree\n");
    std::fs::remove_file(ws.dir.join("b.txt")).unwrap();
    let commit = ws.commit("three kinds").unwrap().unwrap();
    assert_ne!(commit.id, base);
    assert_eq!(ws.head, commit.id);
    let by_path: BTreeMap<_, _> = commit
        .files
        .iter()
        .map(|f| (f.path.to_string_lossy().into_owned(), (f.status, f.added, f.removed)))
        .collect();
    assert_eq!(by_path["src/new.rs"], (FileStatus::Added, 3, 0));
    assert_eq!(by_path["a.txt"], (FileStatus::Modified, 1, 1));
    assert_eq!(by_path["b.txt"], (FileStatus::Deleted, 0, 1));
    assert_eq!((commit.added(), commit.removed()), (4, 2));
    assert_eq!(ws.commit("again").unwrap(), None, "a second commit without edits is empty");

    // An agent that commits by itself: its commit counts.
    write(&ws.dir.join("a.txt"), "one\n2\n3\n");
    git(&ws.dir, &["commit", "-q", "-am", "by the agent"]);
    let own = ws.commit("after the agent").unwrap().unwrap();
    assert_eq!(own.files.len(), 1);

    let change = ws.diff().unwrap();
    assert_eq!((change.added(), change.removed()), (5, 3));
    let stat = change.stat();
    assert!(stat.contains(" a.txt      |   4 ++--\n"), "{stat}");
    assert!(stat.ends_with(" 3 files changed, 5 insertions(+), 3 deletions(-)\n"), "{stat}");
    assert!(change.patch.contains("diff --git a/src/new.rs b/src/new.rs"), "{}", change.patch);
}

#[test]
fn a_clean_apply_writes_the_change_into_the_users_tree_only() {
    let f = busy_repo();
    let mut ws = f.workspaces.create(&f.project, RUN, false, &[]).unwrap();
    write(&ws.dir.join("new/c.txt"), "untracked, edited\n");
    write(&ws.dir.join("img.bin"), "\0\x01\x02binary\0");
    ws.commit("edit").unwrap();
    let before = user_state(&f.project);
    ws.check_apply().unwrap();
    assert_eq!(user_state(&f.project), before, "check_apply wrote something");
    let applied = ws.apply(None).unwrap();
    assert_eq!(applied.files, vec![PathBuf::from("img.bin"), PathBuf::from("new/c.txt")]);
    assert_eq!(applied.commit, None);
    assert_eq!(ws.applied.as_ref(), Some(&applied));
    let after = user_state(&f.project);
    assert_eq!(after.index, before.index, "apply without --commit stages nothing");
    assert_eq!(after.head, before.head);
    assert_eq!(read(&f.project.join("new/c.txt")), "untracked, edited\n");
    assert_eq!(std::fs::read(f.project.join("img.bin")).unwrap(), b"\0\x01\x02binary\0");
    assert_eq!(read(&f.project.join("a.txt")), "one\nTWO\nthree\n", "the user's edit is kept");
    assert!(matches!(ws.apply(None), Err(Error::AlreadyApplied { .. })));

    ws.revert().unwrap();
    assert_eq!(user_state(&f.project), before, "revert restores the tree exactly");
    assert_eq!(ws.applied, None);
    assert!(matches!(ws.revert(), Err(Error::NotApplied)));
}

#[test]
fn a_conflicting_apply_names_the_files_and_writes_nothing() {
    let f = repo();
    let mut ws = f.workspaces.create(&f.project, RUN, false, &[]).unwrap();
    write(&ws.dir.join("a.txt"), "one\nfrom the run\nthree\n");
    write(&ws.dir.join("b.txt"), "bee\nbuzz\n");
    ws.commit("edit").unwrap();
    write(&f.project.join("a.txt"), "one\nfrom the user\nthree\n");
    let before = user_state(&f.project);
    match ws.check_apply() {
        Err(Error::Conflict { files }) => assert_eq!(files, vec![PathBuf::from("a.txt")]),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let err = ws.apply(Some("msg")).unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { files } if files == &[PathBuf::from("a.txt")]),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was applied"), "{err}");
    assert_eq!(
        user_state(&f.project),
        before,
        "b.txt would apply, yet nothing may be half-applied"
    );
    assert_eq!(ws.applied, None);
}

#[test]
fn apply_with_a_commit_commits_only_the_changed_files_and_revert_commits_the_undo() {
    let f = repo();
    let mut ws = f.workspaces.create(&f.project, RUN, false, &[]).unwrap();
    write(&ws.dir.join("b.txt"), "bee\nbuzz\n");
    ws.commit("edit").unwrap();
    // The user's own unstaged edit must stay out of troupe's commit.
    write(&f.project.join("a.txt"), "one\nmine\nthree\n");
    // Staged work of the user's is refused up front, with nothing applied.
    write(&f.project.join("staged.txt"), "mine\n");
    git(&f.project, &["add", "staged.txt"]);
    let err = ws.apply(Some("Add buzz")).unwrap_err();
    assert!(
        matches!(&err, Error::StagedChanges { files } if files == &[PathBuf::from("staged.txt")]),
        "{err}"
    );
    assert_eq!(read(&f.project.join("b.txt")), "bee\n");
    git(&f.project, &["rm", "-q", "--cached", "staged.txt"]);

    let head = git(&f.project, &["rev-parse", "HEAD"]);
    let applied = ws.apply(Some("Add buzz")).unwrap();
    let commit = applied.commit.clone().unwrap();
    assert_eq!(git(&f.project, &["rev-parse", "HEAD^"]), head);
    assert_eq!(git(&f.project, &["rev-parse", "HEAD"]).trim(), commit);
    assert_eq!(git(&f.project, &["show", "--name-only", "--format=", "HEAD"]), "b.txt\n");
    let message = git(&f.project, &["log", "-1", "--format=%B"]);
    assert!(message.starts_with("Add buzz\n") && message.contains(RUN), "{message}");
    assert_eq!(git(&f.project, &["status", "--porcelain"]), " M a.txt\n?? staged.txt\n");

    ws.revert().unwrap();
    assert_eq!(read(&f.project.join("b.txt")), "bee\n");
    assert_eq!(git(&f.project, &["rev-parse", "HEAD~2"]), head, "revert is a new commit");
    assert_eq!(git(&f.project, &["show", "--name-only", "--format=", "HEAD"]), "b.txt\n");
    assert!(
        git(&f.project, &["log", "-1", "--format=%B"])
            .contains(&format!("This reverts commit {commit}"))
    );
    assert_eq!(read(&f.project.join("a.txt")), "one\nmine\nthree\n");
}

#[test]
fn revert_refuses_when_the_user_edited_an_applied_file() {
    let f = repo();
    let mut ws = f.workspaces.create(&f.project, RUN, false, &[]).unwrap();
    write(&ws.dir.join("a.txt"), "one\nrun\nthree\n");
    write(&ws.dir.join("gone.txt"), "new\n");
    ws.commit("edit").unwrap();
    ws.apply(None).unwrap();
    write(&f.project.join("a.txt"), "one\nrun\nthree\nmine\n");
    let err = ws.revert().unwrap_err();
    assert!(
        matches!(&err, Error::ChangedSinceApply { files } if files == &[PathBuf::from("a.txt")]),
        "{err}"
    );
    assert_eq!(read(&f.project.join("a.txt")), "one\nrun\nthree\nmine\n");
    assert!(f.project.join("gone.txt").exists(), "nothing is reverted when one file changed");
    assert!(ws.applied.is_some());
    // A removed file counts as changed too.
    write(&f.project.join("a.txt"), "one\nrun\nthree\n");
    std::fs::remove_file(f.project.join("gone.txt")).unwrap();
    assert!(
        matches!(ws.revert(), Err(Error::ChangedSinceApply { files }) if files == [PathBuf::from("gone.txt")])
    );
}

#[test]
fn a_project_outside_git_is_copied_and_apply_writes_back() {
    let f = fixture();
    let p = &f.project;
    write(&p.join(".gitignore"), "target/\n");
    write(&p.join("src/main.rs"), "fn main() {}\n");
    write(&p.join("target/big.o"), "object\n");
    write(&p.join(".troupe/store/db"), "troupe's data\n");
    write(&f._tmp.path().join("outside.txt"), "secret\n");
    std::os::unix::fs::symlink(f._tmp.path().join("outside.txt"), p.join("leak")).unwrap();
    std::os::unix::fs::symlink("src/main.rs", p.join("main-link")).unwrap();
    // The workspace root inside the project is left out too.
    let workspaces = Workspaces::new(p.join(".troupe/workspaces"));
    let before = tree_files(p);
    let mut ws = workspaces.create(p, RUN, false, &[p.join(".troupe")]).unwrap();
    assert_eq!(ws.kind, WorkspaceKind::Copy);
    assert!(ws.describe().contains("not a git repository"), "{}", ws.describe());
    let copied: Vec<PathBuf> = tree_files(&ws.dir).into_keys().collect();
    let expected: Vec<PathBuf> =
        [".gitignore", "main-link", "src/main.rs"].iter().map(PathBuf::from).collect();
    assert_eq!(copied, expected);
    assert!(!p.join(".git").exists(), "the project stays without git");
    let listed = workspaces.list().unwrap();
    assert_eq!((listed.len(), listed[0].kind), (1, WorkspaceKind::Copy));

    write(&ws.dir.join("src/main.rs"), "fn main() { println!(\"hi\"); }\n");
    write(&ws.dir.join("src/lib.rs"), "pub fn f() {}\n");
    assert_eq!(ws.commit("edit").unwrap().unwrap().files.len(), 2);
    let mut after_commit = tree_files(p);
    after_commit.retain(|k, _| !k.starts_with(".troupe/workspaces"));
    assert_eq!(after_commit, before, "nothing outside the workspace is written before apply");

    assert!(matches!(ws.clone().apply(Some("msg")), Err(Error::CommitOutsideRepository { .. })));
    ws.apply(None).unwrap();
    assert_eq!(read(&p.join("src/main.rs")), "fn main() { println!(\"hi\"); }\n");
    assert_eq!(read(&p.join("src/lib.rs")), "pub fn f() {}\n");
    ws.revert().unwrap();
    assert_eq!(read(&p.join("src/main.rs")), "fn main() {}\n");
    assert!(!p.join("src/lib.rs").exists());
    ws.discard().unwrap();
    assert!(!ws.dir.exists());
    assert_eq!(read(&p.join(".troupe/store/db")), "troupe's data\n");
}

#[test]
fn in_place_keeps_a_checkpoint_and_revert_restores_it() {
    let f = busy_repo();
    let before = user_state(&f.project);
    let mut ws = f.workspaces.create(&f.project, RUN, true, &[]).unwrap();
    assert_eq!(ws.kind, WorkspaceKind::InPlace);
    assert_eq!(ws.dir, f.project);
    assert_eq!(ws.branch, None);
    assert_eq!(user_state(&f.project), before, "the checkpoint touched the user's tree");
    let checkpoint = format!("refs/troupe/checkpoints/{RUN}");
    assert_eq!(git(&f.project, &["rev-parse", &checkpoint]).trim(), ws.base);
    assert_eq!(git(&f.project, &["show", &format!("{}:new/c.txt", ws.base)]), "untracked\n");

    write(&f.project.join("a.txt"), "edited in place\n");
    write(&f.project.join("made.txt"), "made\n");
    assert_eq!(ws.commit("nothing yet").map(|c| c.map(|c| c.files.len())).unwrap(), Some(2));
    assert_eq!(ws.commit("again").unwrap(), None);
    assert_eq!(git(&f.project, &["rev-parse", &format!("refs/troupe/runs/{RUN}")]).trim(), ws.head);
    let now = user_state(&f.project);
    assert_eq!(
        (now.index, now.head, now.branch, now.stash),
        (before.index.clone(), before.head.clone(), before.branch.clone(), before.stash.clone())
    );
    assert!(
        ws.apply(None).unwrap().files.contains(&PathBuf::from("made.txt")),
        "apply records the change"
    );

    write(&f.project.join("made.txt"), "made, then edited by the user\n");
    assert!(
        matches!(ws.revert(), Err(Error::ChangedSinceApply { files }) if files == [PathBuf::from("made.txt")])
    );
    write(&f.project.join("made.txt"), "made\n");
    ws.revert().unwrap();
    assert_eq!(user_state(&f.project), before, "revert restores the checkpoint exactly");
    ws.discard().unwrap();
    assert!(
        !Git::new(&f.project).succeeds(["show-ref", "--verify", "--quiet", &checkpoint]).unwrap()
    );
}

#[test]
fn in_place_outside_git_is_refused() {
    let f = fixture();
    let err = f.workspaces.create(&f.project, RUN, true, &[]).unwrap_err();
    assert!(matches!(err, Error::NotARepository { .. }), "{err}");
    assert!(err.to_string().contains("drop --in-place"), "{err}");
    assert!(!f.project.join(".git").exists());
}

#[test]
fn a_subfolder_of_a_repository_works_at_the_same_place_in_the_worktree() {
    let f = repo();
    write(&f.project.join("sub/x.txt"), "x\n");
    git(&f.project, &["add", "-A"]);
    git(&f.project, &["commit", "-q", "-m", "sub"]);
    let mut ws = f.workspaces.create(&f.project.join("sub"), RUN, false, &[]).unwrap();
    assert!(ws.dir.ends_with("proj/sub"), "{}", ws.dir.display());
    write(&ws.dir.join("x.txt"), "y\n");
    ws.commit("edit").unwrap();
    ws.apply(None).unwrap();
    assert_eq!(read(&f.project.join("sub/x.txt")), "y\n");
}

#[test]
fn cleanup_lists_in_a_dry_run_and_removes_for_real() {
    let f = repo();
    let first = f.workspaces.create(&f.project, RUN, false, &[]).unwrap();
    let second = f.workspaces.create(&f.project, RUN2, false, &[]).unwrap();
    assert_eq!(second.branch.as_deref(), Some("troupe/0192f0aabbbb-2"), "branch names stay unique");
    let listed = f.workspaces.list().unwrap();
    assert_eq!(listed.iter().map(|l| l.run_id.as_str()).collect::<Vec<_>>(), vec![RUN, RUN2]);
    let dry = f.workspaces.cleanup(&[RUN], true).unwrap();
    assert_eq!(dry.len(), 1);
    assert_eq!(
        dry[0].to_string(),
        format!("run {RUN}: git worktree {}", first.checkout.as_ref().unwrap().display())
    );
    assert!(first.exists(), "a dry run removes nothing");
    let removed = f.workspaces.cleanup(&[RUN.to_string()], false).unwrap();
    assert!(f.workspaces.cleanup(&["no-such-run"], false).unwrap().is_empty());
    assert_eq!(removed, dry);
    assert!(!first.exists() && !first.dir.exists());
    assert!(second.exists());
    assert_eq!(
        branches(&f.project),
        vec!["refs/heads/main".to_string(), "refs/heads/troupe/0192f0aabbbb-2".to_string()]
    );
    assert_eq!(f.workspaces.list().unwrap().len(), 1);
}

#[test]
fn the_workspace_round_trips_through_json() {
    let f = repo();
    let ws = f.workspaces.create(&f.project, RUN, false, &[]).unwrap();
    let json = serde_json::to_string(&ws).unwrap();
    assert!(json.contains("\"kind\":\"worktree\""), "{json}");
    let back: Workspace = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ws);
}

#[test]
fn a_rename_is_reported_as_one_and_applies_and_reverts() {
    let f = repo();
    write(&f.project.join("long.txt"), &"line\n".repeat(20));
    git(&f.project, &["add", "-A"]);
    git(&f.project, &["commit", "-q", "-m", "long"]);
    let mut ws = f.workspaces.create(&f.project, RUN, false, &[]).unwrap();
    std::fs::rename(ws.dir.join("long.txt"), ws.dir.join("moved.txt")).unwrap();
    let commit = ws.commit("move").unwrap().unwrap();
    assert_eq!(commit.files.len(), 1, "{:?}", commit.files);
    assert_eq!(commit.files[0].status, FileStatus::Renamed);
    assert_eq!(commit.files[0].from, Some(PathBuf::from("long.txt")));
    assert!(ws.diff().unwrap().stat().contains("long.txt => moved.txt"));
    let before = user_state(&f.project);
    let applied = ws.apply(None).unwrap();
    assert_eq!(applied.files, vec![PathBuf::from("long.txt"), PathBuf::from("moved.txt")]);
    assert!(!f.project.join("long.txt").exists());
    assert_eq!(read(&f.project.join("moved.txt")), "line\n".repeat(20));
    ws.revert().unwrap();
    assert_eq!(user_state(&f.project), before);
}

#[test]
fn a_file_the_user_removed_or_created_meanwhile_is_a_conflict() {
    let f = repo();
    let mut ws = f.workspaces.create(&f.project, RUN, false, &[]).unwrap();
    write(&ws.dir.join("b.txt"), "bee\nbuzz\n");
    write(&ws.dir.join("fresh.txt"), "from the run\n");
    ws.commit("edit").unwrap();
    std::fs::remove_file(f.project.join("b.txt")).unwrap();
    write(&f.project.join("fresh.txt"), "from the user\n");
    let before = user_state(&f.project);
    let err = ws.apply(None).unwrap_err();
    let Error::Conflict { files } = &err else { panic!("{err}") };
    assert_eq!(files, &[PathBuf::from("b.txt"), PathBuf::from("fresh.txt")]);
    assert_eq!(user_state(&f.project), before);
}

#[test]
fn an_empty_change_has_nothing_to_apply() {
    let f = repo();
    let mut ws = f.workspaces.create(&f.project, RUN, false, &[]).unwrap();
    assert!(ws.diff().unwrap().is_empty());
    assert!(matches!(ws.apply(None), Err(Error::NothingToApply)));
}

#[test]
fn apply_with_a_commit_handles_files_the_user_never_committed() {
    let f = repo();
    write(&f.project.join("scratch.txt"), "untracked\n");
    let mut ws = f.workspaces.create(&f.project, RUN, false, &[]).unwrap();
    std::fs::remove_file(ws.dir.join("scratch.txt")).unwrap();
    ws.commit("remove scratch").unwrap();
    let head = git(&f.project, &["rev-parse", "HEAD"]);
    let applied = ws.apply(Some("Tidy")).unwrap();
    assert!(!f.project.join("scratch.txt").exists());
    assert_eq!(applied.commit, None, "removing an untracked file leaves nothing to commit");
    assert_eq!(git(&f.project, &["rev-parse", "HEAD"]), head);
    ws.revert().unwrap();
    assert_eq!(read(&f.project.join("scratch.txt")), "untracked\n");
    assert_eq!(git(&f.project, &["status", "--porcelain"]), "?? scratch.txt\n");
}

#[test]
fn discard_after_the_folder_was_deleted_by_hand_still_drops_the_branch() {
    let f = repo();
    let ws = f.workspaces.create(&f.project, RUN, false, &[]).unwrap();
    std::fs::remove_dir_all(ws.checkout.as_ref().unwrap()).unwrap();
    assert!(!ws.exists());
    assert!(matches!(ws.diff(), Err(Error::Missing { .. })));
    ws.discard().unwrap();
    assert_eq!(branches(&f.project), vec!["refs/heads/main".to_string()]);
    assert_eq!(
        git(&f.project, &["worktree", "list", "--porcelain"]).matches("worktree ").count(),
        1
    );
    ws.discard().unwrap();
}

#[test]
fn a_file_that_is_not_utf8_applies_byte_for_byte() {
    let f = repo();
    std::fs::write(f.project.join("latin1.txt"), b"caf\xe9\nna\xefve\n").unwrap();
    git(&f.project, &["add", "-A"]);
    git(&f.project, &["commit", "-q", "-m", "latin-1"]);
    let mut ws = f.workspaces.create(&f.project, RUN, false, &[]).unwrap();
    std::fs::write(ws.dir.join("latin1.txt"), b"caf\xe9\nna\xefve\nd\xe9j\xe0 vu\n").unwrap();
    write(&ws.dir.join("a.txt"), "one\ntwo\nthree\nfour\n");
    ws.commit("edit").unwrap();
    let change = ws.diff().unwrap();
    assert!(change.patch.contains("GIT binary patch"), "{}", change.patch);
    ws.apply(None).unwrap();
    assert_eq!(
        std::fs::read(f.project.join("latin1.txt")).unwrap(),
        b"caf\xe9\nna\xefve\nd\xe9j\xe0 vu\n"
    );
    assert_eq!(read(&f.project.join("a.txt")), "one\ntwo\nthree\nfour\n");
    ws.revert().unwrap();
    assert_eq!(std::fs::read(f.project.join("latin1.txt")).unwrap(), b"caf\xe9\nna\xefve\n");
}

#[test]
fn in_place_apply_records_or_reapplies_and_can_commit() {
    let f = repo();
    let mut ws = f.workspaces.create(&f.project, RUN, true, &[]).unwrap();
    write(&f.project.join("b.txt"), "bee\nbuzz\n");
    std::os::unix::fs::symlink("b.txt", f.project.join("b-link")).unwrap();
    ws.commit("edit").unwrap().unwrap();
    ws.revert().unwrap();
    assert_eq!(read(&f.project.join("b.txt")), "bee\n");
    assert!(f.project.join("b-link").symlink_metadata().is_err());
    assert!(matches!(ws.revert(), Err(Error::NotApplied)), "a second revert has nothing to do");

    let head = git(&f.project, &["rev-parse", "HEAD"]);
    let applied = ws.apply(Some("Buzz")).unwrap();
    assert_eq!(read(&f.project.join("b.txt")), "bee\nbuzz\n", "apply after revert applies again");
    assert_eq!(std::fs::read_link(f.project.join("b-link")).unwrap(), PathBuf::from("b.txt"));
    assert_eq!(git(&f.project, &["rev-parse", "HEAD^"]), head);
    assert_eq!(git(&f.project, &["show", "--name-only", "--format=", "HEAD"]), "b-link\nb.txt\n");
    assert_eq!(applied.commit.as_deref(), Some(git(&f.project, &["rev-parse", "HEAD"]).trim()));
    ws.revert().unwrap();
    assert_eq!(read(&f.project.join("b.txt")), "bee\n");
    assert_eq!(git(&f.project, &["status", "--porcelain"]), "");
    assert_eq!(git(&f.project, &["rev-parse", "HEAD~2"]), head);
}

#[test]
fn a_folder_inside_dot_git_is_an_error_not_a_copy() {
    let f = repo();
    let err = f.workspaces.create(&f.project.join(".git/refs"), RUN, false, &[]).unwrap_err();
    assert!(matches!(err, Error::Git { .. }), "{err}");
    assert!(f.workspaces.list().unwrap().is_empty(), "nothing half-made is left");
    let err = f.workspaces.create(&f.project.join("nowhere"), RUN, false, &[]).unwrap_err();
    assert!(matches!(err, Error::NotAFolder { .. }), "{err}");
}

#[test]
fn a_project_that_is_itself_a_linked_worktree_works() {
    let f = repo();
    let linked = f.project.parent().unwrap().join("linked");
    git(&f.project, &["worktree", "add", "-q", "-b", "feature", linked.to_str().unwrap()]);
    write(&linked.join("a.txt"), "one\ntwo\nthree\nlinked\n");
    let before = user_state(&linked);
    let mut ws = f.workspaces.create(&linked, RUN, false, &[]).unwrap();
    assert_eq!(read(&ws.dir.join("a.txt")), "one\ntwo\nthree\nlinked\n");
    write(&ws.dir.join("b.txt"), "bee\nbuzz\n");
    ws.commit("edit").unwrap().unwrap();
    assert_eq!(user_state(&linked).files, before.files);
    ws.apply(Some("Buzz")).unwrap();
    assert_eq!(git(&linked, &["log", "-1", "--format=%s", "feature"]), "Buzz\n");
    assert_eq!(git(&f.project, &["log", "-1", "--format=%s", "main"]), "first\n");
    ws.discard().unwrap();
    let worktrees = git(&f.project, &["worktree", "list", "--porcelain"]);
    assert_eq!(worktrees.matches("worktree ").count(), 2, "{worktrees}");
    assert!(branches(&f.project).iter().all(|b| !b.contains("troupe/")));
}

#[test]
fn reset_to_goes_back_to_an_earlier_commit_of_the_run_and_leaves_the_user_alone() {
    let f = repo();
    let before = user_state(&f.project);
    let mut ws = f.workspaces.create(&f.project, RUN, false, &[]).unwrap();
    let start = ws.head.clone();
    write(&ws.dir.join("a.txt"), "changed\n");
    ws.commit("candidate").unwrap().unwrap();
    write(&ws.dir.join("stray.txt"), "uncommitted\n");
    assert!(ws.reset_to(&start).unwrap());
    assert_eq!(ws.head, start);
    assert_eq!(read(&ws.dir.join("a.txt")), "one\ntwo\nthree\n");
    assert!(!ws.dir.join("stray.txt").exists());
    assert!(ws.diff().unwrap().is_empty());
    assert_eq!(user_state(&f.project), before);
    // In place the folder is the user's: nothing moves.
    let mut inplace = f.workspaces.create(&f.project, "0193a1b2-inplace", true, &[]).unwrap();
    let head = inplace.head.clone();
    assert!(!inplace.reset_to(&head).unwrap());
    assert_eq!(user_state(&f.project), before);
}

#[test]
fn runs_of_one_project_make_and_discard_their_worktrees_at_the_same_time() {
    // A plan's independent tasks start their runs together: every worktree of the same
    // repository (same folder name, so git's entries under .git/worktrees collide; ids of
    // the same millisecond, so the same short id for their branches) must be made, and
    // discarded, while the others are.
    let f = repo();
    for round in 0..12 {
        let made: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (workspaces, project) = (&f.workspaces, &f.project);
                    s.spawn(move || {
                        let id = format!("0192f0aa-bbbb-7{round:03}-8000-{i:012}");
                        workspaces.create(project, &id, false, &[])
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let made: Vec<_> = made.into_iter().map(|w| w.expect("a worktree made at once")).collect();
        for ws in &made {
            assert_eq!(read(&ws.dir.join("a.txt")), "one\ntwo\nthree\n");
        }
        std::thread::scope(|s| {
            for ws in &made {
                s.spawn(move || ws.discard().expect("a worktree discarded at once"));
            }
        });
        assert!(made.iter().all(|w| !w.exists()));
    }
    let listed = git(&f.project, &["worktree", "list"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
}
