//! A run's change as a user meets it: `troupe run` leaves it in the run's own git worktree,
//! `troupe runs diff | apply | revert | discard | cleanup` and `run --apply` move it into
//! (and out of) the user's repository, the same through a running `troupe serve` and its
//! HTTP API, and from the shell. Real processes and a real git repository; the agent is a
//! `generic` CLI agent whose script edits a file in its working folder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Pty, Server, World, write_script};
use serde_json::{Value, json};

const ORIGINAL: &str = "line1\nline2\nline3\n";
const CHANGED: &str = "line1\nCHANGED\nline3\n";

/// git with a fixed identity and no user or system configuration.
fn git_env(c: &mut Command, home: &Path) {
    c.env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test User")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test User")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid");
}

fn git(w: &World, args: &[&str]) -> String {
    let mut c = Command::new("git");
    c.args(args).current_dir(&w.project);
    git_env(&mut c, &w.home);
    let o = c.output().unwrap();
    assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A git repository with `notes.txt` committed; the `coder` agent rewrites its second line
/// (a task containing "explode" makes it exit 3 after the edit); the `sleeper` never ends.
fn world() -> World {
    let w = World::new();
    let dir = &w.dir;
    let d = dir.path();
    write_script(
        &d.join("coder.sh"),
        &format!(
            "printf '{}' > notes.txt\ncase \"$1\" in *explode*) echo broken >&2; exit 3;; esac\necho 'rewrote notes.txt'\n",
            CHANGED.replace('\n', "\\n")
        ),
    );
    write_script(&d.join("sleeper.sh"), "echo starting\nexec sleep 60\n");
    let config = w.config.clone();
    let agent = |name: &str| {
        format!(
            "[agents.{name}]\nkind = \"cli\"\ncommand = \"{}\"\nargs = [\"{{prompt}}\"]\nflavor = \"generic\"\nretry = {{ max_attempts = 1 }}\n\n",
            d.join(format!("{name}.sh")).display()
        )
    };
    std::fs::write(
        &config,
        format!(
            "[settings]\ndefault_workflow = \"solo\"\nmax_concurrent_runs = 4\n\n{}{}\
             [workflows.solo]\nmax_iterations = 1\nsteps = [{{ agent = \"coder\", role = \"implement\" }}]\n\n\
             [workflows.slow]\nmax_iterations = 1\nsteps = [{{ agent = \"sleeper\", role = \"implement\" }}]\n",
            agent("coder"),
            agent("sleeper")
        ),
    )
    .unwrap();
    git(&w, &["init", "-q", "-b", "main"]);
    std::fs::write(w.project.join("notes.txt"), ORIGINAL).unwrap();
    git(&w, &["add", "notes.txt"]);
    git(&w, &["commit", "-q", "-m", "first"]);
    w
}

fn troupe_cmd(w: &World, args: &[&str]) -> Command {
    let mut c = w.troupe(args);
    c.env_remove("TROUPE_ASSETS").stdin(Stdio::null());
    git_env(&mut c, &w.home);
    c
}

fn troupe(w: &World, args: &[&str]) -> Output {
    troupe_cmd(w, args).output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn notes(w: &World) -> String {
    std::fs::read_to_string(w.project.join("notes.txt")).unwrap()
}

/// `troupe run --json …`: the final record (the last line).
fn run(w: &World, extra: &[&str]) -> Value {
    let mut args = vec!["run", "--json"];
    args.extend_from_slice(extra);
    let o = troupe(w, &args);
    let record: Value = out(&o).lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap();
    assert!(record["id"].is_string(), "{}\n{}", out(&o), err(&o));
    record
}

fn id(record: &Value) -> String {
    record["id"].as_str().unwrap().to_string()
}

/// The workspace's top folder (what discard removes).
fn checkout(record: &Value) -> PathBuf {
    PathBuf::from(record["workspace"]["checkout"].as_str().unwrap())
}

#[test]
fn a_run_leaves_the_tree_alone_and_its_change_is_diffed_applied_reverted_and_discarded() {
    let w = world();
    let r = run(&w, &["--no-validate", "rewrite the second line of the notes"]);
    assert_eq!(r["state"], "completed", "{r}");
    let id = id(&r);
    // The user's tree is untouched: the edit is in the run's worktree.
    assert_eq!(notes(&w), ORIGINAL);
    assert_eq!(git(&w, &["status", "--porcelain"]), "");
    assert_eq!(std::fs::read_to_string(checkout(&r).join("notes.txt")).unwrap(), CHANGED);

    let d = troupe(&w, &["runs", "diff", &id]);
    assert_eq!(d.status.code(), Some(0), "{}", err(&d));
    let patch = out(&d);
    assert!(patch.contains("--- a/notes.txt\n+++ b/notes.txt\n"), "{patch}");
    assert!(patch.contains("\n-line2\n+CHANGED\n"), "{patch}");
    assert!(!patch.contains('\x1b'), "piped output has no colour: {patch:?}");

    let s = out(&troupe(&w, &["runs", "diff", &id, "--stat"]));
    assert!(s.contains("notes.txt |   2 +-"), "{s}");
    assert!(s.contains("1 file changed, 1 insertion(+), 1 deletion(-)"), "{s}");
    let j: Value =
        serde_json::from_str(&out(&troupe(&w, &["runs", "diff", &id, "--json"]))).unwrap();
    assert_eq!(j["files"][0]["path"], "notes.txt");
    assert_eq!(j["files"][0]["added"], 1);
    assert_eq!(j["patch"].as_str().unwrap(), patch);

    let show = out(&troupe(&w, &["runs", "show", &id]));
    assert!(show.contains("workspace git worktree"), "{show}");
    assert!(show.contains(&format!("branch troupe/{}{}", &id[..8], &id[9..13])), "{show}");
    assert!(show.contains("files     1 changed (+1 -1)"), "{show}");
    assert!(show.contains("checks    off (--no-validate)"), "{show}");
    assert!(show.contains("applied   no"), "{show}");

    let a = troupe(&w, &["runs", "apply", &id]);
    assert_eq!(a.status.code(), Some(0), "{}", err(&a));
    assert!(out(&a).contains("applied run"), "{}", out(&a));
    assert_eq!(notes(&w), CHANGED);
    // Applied to the working tree, not committed.
    assert_eq!(git(&w, &["status", "--porcelain"]), " M notes.txt\n");
    assert!(out(&troupe(&w, &["runs", "show", &id])).contains("applied   20"));
    let again = troupe(&w, &["runs", "apply", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(err(&again).contains("already applied"), "{}", err(&again));

    // The user edits an applied file: revert would lose that, so it is refused.
    std::fs::write(w.project.join("notes.txt"), "line1\nCHANGED\nline3\nmine\n").unwrap();
    let refused = troupe(&w, &["runs", "revert", &id]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(err(&refused).contains("notes.txt changed since"), "{}", err(&refused));
    assert_eq!(notes(&w), "line1\nCHANGED\nline3\nmine\n", "nothing was reverted");
    std::fs::write(w.project.join("notes.txt"), CHANGED).unwrap();
    let reverted = troupe(&w, &["runs", "revert", &id]);
    assert_eq!(reverted.status.code(), Some(0), "{}", err(&reverted));
    assert!(out(&reverted).contains("reverted run"), "{}", out(&reverted));
    assert_eq!(notes(&w), ORIGINAL);
    assert_eq!(git(&w, &["status", "--porcelain"]), "");

    let discarded = troupe(&w, &["runs", "discard", &id]);
    assert_eq!(discarded.status.code(), Some(0), "{}", err(&discarded));
    assert!(!checkout(&r).exists(), "the worktree is removed");
    assert_eq!(git(&w, &["branch", "--list", "troupe/*"]), "");
    assert_eq!(git(&w, &["worktree", "list"]).lines().count(), 1);
    let gone = troupe(&w, &["runs", "diff", &id]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(err(&gone).contains("no workspace"), "{}", err(&gone));
    // Unknown runs are refused, and a change command without a run is a usage error.
    assert_eq!(troupe(&w, &["runs", "apply", "nope"]).status.code(), Some(1));
    assert_eq!(troupe(&w, &["runs", "apply"]).status.code(), Some(2));
}

#[test]
fn a_conflicting_apply_is_refused_with_the_files_named_and_nothing_changed() {
    let w = world();
    let r = run(&w, &["--no-validate", "rewrite the second line"]);
    assert_eq!(r["state"], "completed", "{r}");
    // Meanwhile the user changed the same line.
    let mine = "line1\nMINE\nline3\n";
    std::fs::write(w.project.join("notes.txt"), mine).unwrap();
    std::fs::write(w.project.join("other.txt"), "untracked\n").unwrap();
    let before = git(&w, &["status", "--porcelain"]);
    let a = troupe(&w, &["runs", "apply", &id(&r)]);
    assert_eq!(a.status.code(), Some(1), "{}", out(&a));
    assert!(err(&a).contains("does not apply cleanly: notes.txt changed"), "{}", err(&a));
    assert_eq!(notes(&w), mine);
    assert_eq!(git(&w, &["status", "--porcelain"]), before, "nothing else moved");
    assert_eq!(git(&w, &["stash", "list"]), "");
}

#[test]
fn apply_commit_commits_on_the_current_branch_naming_the_run() {
    let w = world();
    let r = run(&w, &["--no-validate", "Rewrite the second line\nwith care"]);
    let a = troupe(&w, &["runs", "apply", &id(&r), "--commit"]);
    assert_eq!(a.status.code(), Some(0), "{}", err(&a));
    assert!(out(&a).contains("committed as"), "{}", out(&a));
    assert_eq!(
        git(&w, &["log", "-1", "--format=%s"]).trim(),
        format!("troupe: Rewrite the second line (run {})", &id(&r)[..13])
    );
    assert_eq!(git(&w, &["status", "--porcelain"]), "");
    assert_eq!(git(&w, &["show", "HEAD:notes.txt"]), CHANGED);
}

#[test]
fn run_apply_applies_a_green_run_and_leaves_a_red_one_alone() {
    let w = world();
    let o = troupe(&w, &["run", "--no-validate", "--apply", "rewrite the second line"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", out(&o), err(&o));
    assert!(out(&o).contains("✔ applied to the project: notes.txt"), "{}", out(&o));
    assert_eq!(notes(&w), CHANGED);

    git(&w, &["checkout", "--", "notes.txt"]);
    // The agent edits, then fails: the run is red and nothing reaches the project.
    let o = troupe(&w, &["run", "--no-validate", "--apply", "rewrite and explode"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(!out(&o).contains("applied to the project"), "{}", out(&o));
    assert_eq!(notes(&w), ORIGINAL);
}

#[test]
fn an_in_place_run_edits_the_tree_and_revert_restores_the_checkpoint() {
    let w = world();
    let o = troupe(&w, &["run", "--in-place", "--no-validate", "rewrite the second line"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", out(&o), err(&o));
    assert!(out(&o).contains("undo it: troupe runs revert"), "{}", out(&o));
    assert!(!out(&o).contains("troupe runs apply"), "nothing to apply in place: {}", out(&o));
    assert_eq!(notes(&w), CHANGED);
    let (_, id) = last_run(&w);
    let show = out(&troupe(&w, &["runs", "show", &id]));
    assert!(show.contains("applied   in place"), "{show}");
    let d = out(&troupe(&w, &["runs", "diff", &id]));
    assert!(d.contains("\n-line2\n+CHANGED\n"), "{d}");
    let reverted = troupe(&w, &["runs", "revert", &id]);
    assert_eq!(reverted.status.code(), Some(0), "{}", err(&reverted));
    assert_eq!(notes(&w), ORIGINAL);
    assert_eq!(git(&w, &["status", "--porcelain"]), "");
}

/// The newest run: its record and id.
fn last_run(w: &World) -> (Value, String) {
    let runs: Value = serde_json::from_str(&out(&troupe(w, &["runs", "--json"]))).unwrap();
    let id = runs[0]["id"].as_str().unwrap().to_string();
    (runs[0].clone(), id)
}

#[test]
fn show_lists_each_validator_run_and_a_red_run_is_not_applied() {
    let w = world();
    // `make test` is detected as the validator; this one fails whatever the agent does.
    std::fs::write(w.project.join("Makefile"), "test:\n\tgrep -q NEVER notes.txt\n").unwrap();
    git(&w, &["add", "Makefile"]);
    git(&w, &["commit", "-q", "-m", "tests"]);
    let o = troupe(&w, &["run", "--apply", "rewrite the second line"]);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", out(&o), err(&o));
    assert_eq!(notes(&w), ORIGINAL, "a red run is not applied");
    let (r, id) = last_run(&w);
    assert_eq!(r["state"], "failed", "{r}");
    let show = out(&troupe(&w, &["runs", "show", &id]));
    assert!(show.contains("checks    make test (detected"), "{show}");
    assert!(show.contains("· 0/1 passed (make test failed"), "{show}");
    assert!(show.contains("verified  no"), "{show}");
    let j: Value =
        serde_json::from_str(&out(&troupe(&w, &["runs", "show", &id, "--json"]))).unwrap();
    assert_eq!(j["checks"][0]["commands"][0], "make test", "{j}");

    // Uncommitted, the passing test is in the run's base too.
    std::fs::write(w.project.join("Makefile"), "test:\n\tgrep -q CHANGED notes.txt\n").unwrap();
    let o = troupe(&w, &["run", "rewrite the second line"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", out(&o), err(&o));
    let (_, id) = last_run(&w);
    let show = out(&troupe(&w, &["runs", "show", &id]));
    assert!(show.contains("· 1/1 passed (make test"), "{show}");
    assert!(show.contains("verified  yes"), "{show}");
}

#[test]
fn cleanup_dry_run_lists_runs_and_workspaces_then_cleanup_removes_both() {
    let w = world();
    let r = run(&w, &["--no-validate", "rewrite the second line"]);
    let short = &id(&r)[..13];
    let dry = troupe(&w, &["runs", "cleanup", "--older-than", "0", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", err(&dry));
    let listed = out(&dry);
    assert!(listed.contains(&format!("would remove run {short} (completed)")), "{listed}");
    assert!(listed.contains(&format!("and its workspace {}", checkout(&r).display())), "{listed}");
    assert!(checkout(&r).exists(), "a dry run removes nothing");
    assert!(out(&troupe(&w, &["runs"])).contains(short));

    let done = troupe(&w, &["runs", "cleanup", "--older-than", "0"]);
    assert_eq!(done.status.code(), Some(0), "{}", err(&done));
    assert!(out(&done).contains("removed 1 run(s)"), "{}", out(&done));
    assert!(out(&done).contains("1 workspace(s)"), "{}", out(&done));
    assert!(!checkout(&r).exists());
    assert_eq!(git(&w, &["branch", "--list", "troupe/*"]), "");
    assert!(!out(&troupe(&w, &["runs"])).contains(short));
    assert_eq!(notes(&w), ORIGINAL);
}

fn serve(w: &World) -> Server {
    let mut cmd = troupe_cmd(w, &["serve", "--grace-secs", "1", "--addr", "127.0.0.1:0"]);
    cmd.stdin(Stdio::null());
    Server::spawn(cmd, None)
}

/// Ended, and its process has let go of it (the end is stored before the run's memory is
/// written; until then the run is still live and refuses apply).
fn ended(v: &Value) -> bool {
    matches!(v["run"]["state"].as_str(), Some("completed" | "failed" | "cancelled"))
        && v["live"] == false
}

#[tokio::test]
async fn the_http_api_diffs_applies_reverts_and_discards_with_409_on_conflicts() {
    let w = world();
    let s = serve(&w);
    let project = w.project.canonicalize().unwrap();
    let id = s
        .execute(
            json!({ "task": "rewrite the second line", "project": project, "no_validate": true }),
        )
        .await;
    let v = s.wait_for(&id, ended).await;
    assert_eq!(v["run"]["state"], "completed", "{v}");
    assert_eq!(v["run"]["no_validate"], true);
    assert!(v["checks"].is_array(), "{v}");

    let (status, change) = s.get(&format!("/api/runs/{id}/diff")).await;
    assert_eq!(status, 200, "{change}");
    assert_eq!(change["files"][0]["path"], "notes.txt");
    let r = s
        .request(reqwest::Method::GET, &format!("/api/runs/{id}/diff?format=patch"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/x-diff"));
    let patch = r.text().await.unwrap();
    assert_eq!(patch, change["patch"].as_str().unwrap());
    assert!(patch.contains("+CHANGED"), "{patch}");
    let (status, v) = s.get(&format!("/api/runs/{id}/diff?format=html")).await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("bad_query")), "{v}");

    // Unknown runs: 404.
    let (status, v) = s.post("/api/runs/nope/apply", &json!({})).await;
    assert_eq!((status, v["error"]["code"].as_str()), (404, Some("no_such_run")), "{v}");
    // A conflict: 409 `conflict`, the file named, nothing written.
    std::fs::write(w.project.join("notes.txt"), "line1\nMINE\nline3\n").unwrap();
    let (status, v) = s.post_raw(&format!("/api/runs/{id}/apply"), "").await;
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("conflict")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("notes.txt"), "{v}");
    assert_eq!(notes(&w), "line1\nMINE\nline3\n");
    git(&w, &["checkout", "--", "notes.txt"]);
    let (status, v) = s.post(&format!("/api/runs/{id}/apply"), &json!({ "commitx": true })).await;
    assert_eq!(status, 400, "{v}");

    let (status, v) = s.post_raw(&format!("/api/runs/{id}/apply"), "").await;
    assert_eq!(status, 200, "{v}");
    assert!(v["workspace"]["applied"].is_object(), "{v}");
    assert_eq!(notes(&w), CHANGED);
    let (status, v) = s.post_raw(&format!("/api/runs/{id}/apply"), "").await;
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("already_applied")), "{v}");
    // Changed since the apply: revert refused with 409 `conflict`.
    std::fs::write(w.project.join("notes.txt"), "edited\n").unwrap();
    let (status, v) = s.post_raw(&format!("/api/runs/{id}/revert"), "").await;
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("conflict")), "{v}");
    std::fs::write(w.project.join("notes.txt"), CHANGED).unwrap();
    let (status, v) = s.post_raw(&format!("/api/runs/{id}/revert"), "").await;
    assert_eq!(status, 200, "{v}");
    assert!(v["workspace"]["applied"].is_null(), "{v}");
    assert_eq!(notes(&w), ORIGINAL);
    let (status, v) = s.post_raw(&format!("/api/runs/{id}/revert"), "").await;
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("not_applied")), "{v}");
    // With a commit and a message of the caller's; a message alone is a bad request.
    let apply = format!("/api/runs/{id}/apply");
    let (status, v) = s.post(&apply, &json!({ "message": "mine" })).await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("invalid_request")), "{v}");
    let (status, v) = s.post(&apply, &json!({ "commit": true, "message": "Notes: line 2" })).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(git(&w, &["log", "-1", "--format=%s"]).trim(), "Notes: line 2");
    assert_eq!(git(&w, &["status", "--porcelain"]), "");
    let (status, v) = s.post_raw(&format!("/api/runs/{id}/revert"), "").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(notes(&w), ORIGINAL);
    let (status, v) = s.post_raw(&format!("/api/runs/{id}/discard"), "").await;
    assert_eq!(status, 200, "{v}");
    assert!(v["workspace"].is_null(), "{v}");
    assert_eq!(git(&w, &["branch", "--list", "troupe/*"]), "");

    // A run still running: 409.
    let slow = s
        .execute(
            json!({ "task": "wait", "workflow": "slow", "project": project, "no_validate": true }),
        )
        .await;
    s.wait_for(&slow, |v| {
        v["steps"].as_array().is_some_and(|st| st.iter().any(|x| x["state"] == "running"))
    })
    .await;
    let (status, v) = s.post_raw(&format!("/api/runs/{slow}/apply"), "").await;
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("wrong_state")), "{v}");
    let (status, _) = s.post_raw(&format!("/api/runs/{slow}/cancel"), "").await;
    assert_eq!(status, 202);
    s.wait_for(&slow, ended).await;
}

#[tokio::test]
async fn the_cli_goes_through_a_running_server_with_the_same_output_and_exit_codes() {
    let w = world();
    let s = serve(&w);
    // `run` passes --no-validate and --apply in the body.
    let o = troupe(&w, &["run", "--no-validate", "--apply", "rewrite the second line"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", out(&o), err(&o));
    assert!(out(&o).contains("✔ applied to the project: notes.txt"), "{}", out(&o));
    assert_eq!(notes(&w), CHANGED);
    let (_, runs) = s.get("/api/runs").await;
    let id = runs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["no_validate"], true, "{runs}");
    assert_eq!(runs[0]["apply"], true, "{runs}");

    let d = troupe(&w, &["runs", "diff", &id]);
    assert_eq!(d.status.code(), Some(0), "{}", err(&d));
    assert!(out(&d).contains("\n-line2\n+CHANGED\n"), "{}", out(&d));
    assert!(out(&troupe(&w, &["runs", "diff", &id, "--stat"])).contains("notes.txt |   2 +-"));
    let show = out(&troupe(&w, &["runs", "show", &id]));
    assert!(show.contains("applied   20"), "{show}");
    let again = troupe(&w, &["runs", "apply", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(err(&again).contains("already applied"), "{}", err(&again));
    let reverted = troupe(&w, &["runs", "revert", &id]);
    assert_eq!(reverted.status.code(), Some(0), "{}", err(&reverted));
    assert_eq!(notes(&w), ORIGINAL);
    let a = troupe(&w, &["runs", "apply", &id, "--commit"]);
    assert_eq!(a.status.code(), Some(0), "{}", err(&a));
    assert!(
        git(&w, &["log", "-1", "--format=%s"]).starts_with("troupe: rewrite the second line (run ")
    );
    // Cleanup lists through the server; removing needs the store to itself.
    let dry = troupe(&w, &["runs", "cleanup", "--older-than", "0", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", err(&dry));
    assert!(out(&dry).contains(&format!("would remove run {}", &id[..13])), "{}", out(&dry));
    assert!(out(&dry).contains("and its workspace"), "{}", out(&dry));
    let held = troupe(&w, &["runs", "cleanup", "--older-than", "0"]);
    assert_eq!(held.status.code(), Some(1));
    assert!(err(&held).contains("stop the server"), "{}", err(&held));
    let discarded = troupe(&w, &["runs", "discard", &id]);
    assert_eq!(discarded.status.code(), Some(0), "{}", err(&discarded));
    let gone = troupe(&w, &["runs", "diff", &id]);
    assert_eq!(gone.status.code(), Some(1), "{}", out(&gone));
    drop(s);
}

#[test]
fn the_shell_diffs_applies_reverts_and_discards_the_last_run() {
    let w = world();
    let mut child = troupe_cmd(&w, &["shell"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(
                b"/diff\nrewrite the second line\n/diff\n/diff --stat\n/apply\n/revert\n/discard\n/diff\n",
            )
            .unwrap();
    }
    let o = child.wait_with_output().unwrap();
    let text = out(&o);
    assert!(text.contains("No run yet in this session"), "{text}");
    assert!(text.contains("\n-line2\n+CHANGED\n"), "{text}");
    assert!(text.contains("notes.txt |   2 +-"), "{text}");
    assert!(text.contains("applied run"), "{text}");
    assert!(text.contains("reverted run"), "{text}");
    assert!(text.contains("discarded run"), "{text}");
    // The last /diff has no workspace left: refused, so the session fails.
    assert!(err(&o).contains("no workspace"), "{}", err(&o));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(notes(&w), ORIGINAL);

    let help = troupe_cmd(&w, &["shell"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"/help\n/apply --force\n")?;
            c.wait_with_output()
        })
        .unwrap();
    for c in ["/diff", "/apply", "/revert", "/discard"] {
        assert!(out(&help).contains(c), "{}", out(&help));
    }
    assert!(err(&help).contains("/apply takes --commit or nothing"), "{}", err(&help));
    assert_eq!(help.status.code(), Some(2));
}

/// `troupe run` in a terminal: after a green run it shows the change's stat and asks.
fn run_in_a_terminal(w: &World, task: &str) -> Pty {
    let cmdline = format!(
        "exec '{}' --config '{}' run --no-validate '{task}'",
        env!("CARGO_BIN_EXE_troupe"),
        w.config.display()
    );
    Pty::start(&cmdline, troupe_cmd(w, &[]))
}

#[test]
fn in_a_terminal_a_green_run_asks_before_applying_and_d_shows_the_diff_in_colour() {
    let w = world();
    let mut pty = run_in_a_terminal(&w, "rewrite the second line");
    let stat = pty.expect("Apply these changes? [y/N/d=diff] ");
    assert!(stat.contains("1 file changed, 1 insertion(+), 1 deletion(-)"), "{stat}");
    pty.send("d\r");
    let diff = pty.expect("Apply these changes? [y/N/d=diff] ");
    assert!(diff.contains("\x1b[31m-line2\x1b[0m"), "{diff:?}");
    assert!(diff.contains("\x1b[32m+CHANGED\x1b[0m"), "{diff:?}");
    assert!(diff.contains("\x1b[36m@@ -1,3 +1,3 @@\x1b[0m"), "{diff:?}");
    assert_eq!(notes(&w), ORIGINAL, "nothing is applied before the answer");
    pty.send("y\r");
    pty.expect("applied run");
    assert_eq!(pty.wait(), Some(0));
    assert_eq!(notes(&w), CHANGED);

    // No (the default) leaves the change in the run's workspace.
    git(&w, &["checkout", "--", "notes.txt"]);
    let mut pty = run_in_a_terminal(&w, "rewrite it again");
    pty.expect("Apply these changes? [y/N/d=diff] ");
    pty.send("\r");
    pty.expect("Left in the run's workspace");
    assert_eq!(pty.wait(), Some(0));
    assert_eq!(notes(&w), ORIGINAL);
}
