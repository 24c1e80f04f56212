//! The change a run makes: its workspace, the files shown to the agents, edits applied with
//! patch safety and committed per step, and the validators whose results are the evidence.
//!
//! Git, edits and validators themselves live in `troupe-change`; this module decides when
//! they run in a run, keeps their records and events, and runs their blocking parts off the
//! async executor.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use troupe_change::edit::{self, EditFormat, EditOutcome};
use troupe_change::safety::Policy;
use troupe_change::validate::{self, Report};
use troupe_change::workspace::{Change, Commit, Workspace, Workspaces};
use troupe_workflows::engine::StepPos;

use crate::audit::AuditEvent;
use crate::model::{CheckRecord, RunEvent, RunRecord, StepChange, StepState};
use crate::shared::Shared;

/// Files larger than this are never put into a prompt whole.
const MAX_PROMPT_FILE_BYTES: u64 = 48 * 1024;
/// At most this many files are looked at when choosing what to show.
const MAX_LISTED_FILES: usize = 4000;
/// At most this many paths are listed in the prompt's file list.
const MAX_FILE_LIST: usize = 200;
/// The validators' evidence put into a prompt, in characters.
pub(crate) const EVIDENCE_CHARS: usize = 3000;
/// The diff put into a review prompt, in characters.
pub(crate) const DIFF_CHARS: usize = 8000;

/// Run blocking work (git, file I/O) off the async executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(|e| format!("a workspace task died: {e}"))?
}

/// Give a new run its workspace and its validators; check a resumed run's workspace is
/// still there. `Err` says why the run cannot go on.
pub(crate) async fn prepare(shared: &Arc<Shared>, record: &mut RunRecord) -> Result<(), String> {
    let Some(root) = shared.workspaces.clone() else { return Ok(()) };
    if let Some(ws) = &record.workspace {
        let ws = ws.clone();
        return match blocking(move || Ok(ws.exists())).await? {
            true => Ok(()),
            false => Err(format!(
                "the run's workspace {} is gone; discard the run (`troupe runs discard {}`) and start it again",
                record.workspace.as_ref().map(|w| w.dir.display().to_string()).unwrap_or_default(),
                record.id
            )),
        };
    }
    let project = record.project_path.clone();
    let run_id = record.id.clone();
    let in_place = record.change.in_place;
    let data_dir = shared.config.data_dir();
    let exclude: Vec<PathBuf> = [data_dir.canonicalize().unwrap_or(data_dir)]
        .into_iter()
        .filter(|d| d.starts_with(&project))
        .collect();
    let base = record.base.clone();
    let ws = blocking(move || {
        let workspaces = Workspaces::new(root);
        match &base {
            Some(commit) => {
                workspaces.create_branch(&project, &run_id, None, Some(commit), &exclude)
            }
            None => workspaces.create(&project, &run_id, in_place, &exclude),
        }
        .map_err(|e| format!("cannot make the run's workspace: {e}"))
    })
    .await?;

    // The validators: configured, else detected in the project, unless turned off.
    let settings = crate::settings::validate(&shared.config, &record.workflow);
    if record.change.no_validate {
        record.validators_source = Some("turned off with --no-validate".into());
    } else if !settings.enabled {
        record.validators_source = Some("turned off in [validate]".into());
    } else if !settings.commands.is_empty() {
        record.validators = settings.commands;
        record.validators_source = Some("configured".into());
    } else {
        let dir = ws.dir.clone();
        match blocking(move || Ok(validate::detect(&dir))).await? {
            Some(d) => {
                record.validators = d.commands;
                record.validators_source = Some(format!("detected: {}", d.reason));
            }
            None => {
                record.validators_source =
                    Some("none detected; set [validate] commands in troupe.toml".into());
            }
        }
    }
    // The names the run is expected to leave in the files are checked with the validators:
    // those given (a plan's task), else the names the task asks to add that no file has yet
    // ("add a function `median(values)`": a change without `median` is not done, whatever
    // the existing tests say).
    if !record.change.no_validate && settings.enabled {
        if record.expect.is_empty() && !record.change.expect_given_only {
            record.expect = asked_and_missing(&record.task, ws.dir.clone()).await?;
            if !record.expect.is_empty() {
                let names: Vec<String> = record.expect.iter().map(|n| format!("`{n}`")).collect();
                let it = if names.len() == 1 { "it" } else { "them" };
                let note = format!("expects {} (the task asks to add {it})", names.join(", "));
                record.validators_source = Some(match record.validators_source.take() {
                    Some(s) => format!("{s}; {note}"),
                    None => note,
                });
            }
        }
        if let Some(expect) = validate::expect_command(&record.expect) {
            record.validators.push(expect);
        }
    }
    record.workspace = Some(ws);
    Ok(())
}

/// The names `task` asks to add that no file in `dir` has yet (the files are read only when
/// the task asks to add something).
async fn asked_and_missing(task: &str, dir: PathBuf) -> Result<Vec<String>, String> {
    let asked = validate::names::asked_to_add(task);
    if asked.is_empty() {
        return Ok(asked);
    }
    blocking(move || Ok(validate::unmet_expectations(&dir, &asked))).await
}

/// A file shown to an agent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PromptFile {
    /// Its path relative to the workspace, with `/`.
    pub path: String,
    /// Its content.
    pub content: String,
}

impl PromptFile {
    fn lines(&self) -> usize {
        self.content.lines().count()
    }
}

/// The files of the workspace (relative paths with `/`, text files no larger than the prompt
/// limit), at most [`MAX_LISTED_FILES`].
fn list_files(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let walk = ignore::WalkBuilder::new(dir)
        .hidden(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    for entry in walk.flatten() {
        if out.len() >= MAX_LISTED_FILES {
            break;
        }
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(dir) else { continue };
        let size = entry.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        out.push((rel.to_string_lossy().replace('\\', "/"), size));
    }
    out.sort();
    out
}

fn looks_like_source(path: &str) -> bool {
    const EXT: &[&str] = &[
        "py", "rs", "js", "ts", "tsx", "jsx", "go", "java", "kt", "c", "h", "cc", "cpp", "hpp",
        "rb", "php", "cs", "swift", "scala", "sh", "toml", "cfg", "ini", "json", "yaml", "yml",
        "md", "txt", "html", "css", "sql",
    ];
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".lock") || name == "package-lock.json" {
        return false;
    }
    name == "Makefile" || name.rsplit_once('.').is_some_and(|(_, ext)| EXT.contains(&ext))
}

/// Whether `text` mentions the file: its path, or its name (a name of at least 4 characters
/// with an extension, or a stem of at least 4 characters as a word).
fn mentions(text: &str, path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    if text.contains(path) || (name.contains('.') && text.contains(name)) {
        return true;
    }
    let stem = name.split('.').next().unwrap_or(name);
    stem.len() >= 4
        && text
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| w.eq_ignore_ascii_case(stem))
}

/// Choose the files that matter for a step, within `budget_chars`: files named in the task,
/// the files the run changed, files the validators' output names, their tests; then the
/// project's other source files while room remains (small projects are shown whole).
/// Returned in path order, so the prompt stays stable across iterations.
pub(crate) fn prompt_files(
    dir: &Path,
    task: &str,
    changed: &[PathBuf],
    evidence: &str,
    budget_chars: usize,
) -> (Vec<PromptFile>, Vec<String>) {
    let listed = list_files(dir);
    let changed: BTreeSet<String> =
        changed.iter().map(|p| p.to_string_lossy().replace('\\', "/")).collect();
    let mut scored: Vec<(u32, u64, &str)> = listed
        .iter()
        .filter(|(p, size)| *size <= MAX_PROMPT_FILE_BYTES && looks_like_source(p))
        .filter_map(|(p, size)| {
            let mut score = 0;
            if mentions(task, p) {
                score += 100;
            }
            if changed.contains(p.as_str()) {
                score += 80;
            }
            if !evidence.is_empty() && mentions(evidence, p) {
                score += 60;
            }
            let doc = p.ends_with(".md") || p.ends_with(".txt");
            if score == 0 && doc {
                return None; // documents only when the task names them
            } else if score == 0 && p.contains("test") {
                score = 1; // tests after the code
            } else if score == 0 {
                score = 5;
            }
            Some((score, *size, p.as_str()))
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(b.2)));
    let mut used = 0usize;
    let mut chosen = Vec::new();
    for (_, _, path) in scored {
        let Ok(content) = std::fs::read_to_string(dir.join(path)) else { continue };
        if content.contains('\0') {
            continue;
        }
        let cost = content.len() + path.len() + 16;
        if used + cost > budget_chars {
            continue;
        }
        used += cost;
        chosen.push(PromptFile { path: path.to_string(), content });
    }
    chosen.sort_by(|a, b| a.path.cmp(&b.path));
    let all: Vec<String> = listed.into_iter().take(MAX_FILE_LIST).map(|(p, _)| p).collect();
    (chosen, all)
}

/// The files as prompt text: each path on its own line, then its content in a fence.
pub(crate) fn files_text(files: &[PromptFile]) -> String {
    let mut s = String::new();
    for f in files {
        let lang = f.path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        let fence = if f.content.contains("```") { "````" } else { "```" };
        s.push_str(&format!("{}\n{fence}{lang}\n{}", f.path, f.content));
        if !f.content.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(fence);
        s.push_str("\n\n");
    }
    s.trim_end().to_string()
}

/// The edit-format instructions for these files.
pub(crate) fn edit_instructions(format: EditFormat, files: &[PromptFile]) -> String {
    let sizes: Vec<(String, usize)> = files.iter().map(|f| (f.path.clone(), f.lines())).collect();
    edit::instructions(format, &sizes)
}

/// What an answer's edits did to the workspace. `shown` are the paths the model was shown
/// (a bare file name it wrote is matched to one of them). The flag says the answer shows
/// code in a fence but holds no edit at all (no file named), so it is worth asking again.
pub(crate) async fn apply_answer(
    dir: &Path,
    answer: &str,
    shown: &[String],
    policy: &Policy,
) -> Result<(EditOutcome, bool), String> {
    let dir = dir.to_path_buf();
    let answer = answer.to_string();
    let shown = shown.to_vec();
    let policy = policy.clone();
    blocking(move || {
        let (edits, outcome) = edit::apply_answer(&dir, &answer, &shown, &policy)
            .map_err(|e| format!("cannot write the edits: {e}"))?;
        Ok((outcome, edits.is_empty() && answer.contains("```")))
    })
    .await
}

/// Commit what changed in the workspace since its last commit.
pub(crate) async fn commit(ws: &mut Workspace, message: String) -> Result<Option<Commit>, String> {
    let mut w = ws.clone();
    let (w, commit) = blocking(move || {
        let c = w.commit(&message).map_err(|e| format!("cannot commit the step's change: {e}"))?;
        Ok((w, c))
    })
    .await?;
    *ws = w;
    Ok(commit)
}

/// The workspace's change against its base.
pub(crate) async fn diff(ws: &Workspace) -> Result<Change, String> {
    let w = ws.clone();
    blocking(move || w.diff().map_err(|e| format!("cannot diff the workspace: {e}"))).await
}

/// A step's change record from an edit outcome and the commit it made.
pub(crate) fn step_change(
    outcome: Option<&EditOutcome>,
    commit: Option<Commit>,
    reasked: bool,
) -> StepChange {
    StepChange {
        commit: commit.as_ref().map(|c| c.id.clone()),
        files: commit.map(|c| c.files).unwrap_or_default(),
        refused: outcome
            .map(|o| o.refused.iter().map(|r| format!("{}: {}", r.path, r.reason)).collect())
            .unwrap_or_default(),
        failed: outcome
            .map(|o| o.failed.iter().map(|f| format!("{}: {}", f.path, f.message)).collect())
            .unwrap_or_default(),
        reasked,
        candidate: 0,
    }
}

/// Run the validators on the workspace's current commit, as the `validate` step after
/// `after`: stored before and after, audited, announced.
pub(crate) async fn check(
    shared: &Arc<Shared>,
    record: &RunRecord,
    after: StepPos,
    events: &broadcast::Sender<RunEvent>,
    cancel: &CancellationToken,
) -> Result<CheckRecord, String> {
    let Some(ws) = &record.workspace else {
        return Err("the run has no workspace to validate".into());
    };
    let settings = crate::settings::validate(&shared.config, &record.workflow);
    let started = Instant::now();
    let mut check = CheckRecord {
        run_id: record.id.clone(),
        after,
        commit: ws.head.clone(),
        state: StepState::Running,
        commands: record.validators.clone(),
        report: None,
        started_at: Utc::now(),
        latency_ms: 0,
    };
    shared
        .store
        .put_check(&check)
        .await
        .map_err(|e| format!("cannot persist the validators' run: {e}"))?;
    for e in crate::events::check_events(&check) {
        let _ = events.send(e);
    }
    let opts = validate::Options {
        timeout: Duration::from_secs(settings.timeout_secs.max(1)),
        ..validate::Options::default()
    };
    let mut report = validate::run(&ws.dir, &record.validators, &opts, cancel).await;
    // Test output can print anything, secrets included; and paths read better relative to
    // the project (the workspace's folder means nothing to the model or the user).
    let prefix = format!("{}/", ws.dir.display().to_string().trim_end_matches('/'));
    for r in &mut report.results {
        let output = std::mem::take(&mut r.output).replace(&prefix, "");
        r.output = shared.redactor.redact_string(output);
    }
    check.latency_ms = started.elapsed().as_millis() as u64;
    check.state = if cancel.is_cancelled() { StepState::Cancelled } else { StepState::Completed };
    shared.audit.append(
        &record.id,
        AuditEvent::Validated {
            after,
            commit: check.commit.clone(),
            passed: report.passed(),
            summary: report.summary(),
            evidence: report.evidence(EVIDENCE_CHARS),
        },
    );
    check.report = Some(report);
    shared
        .store
        .put_check(&check)
        .await
        .map_err(|e| format!("cannot persist the validators' run: {e}"))?;
    if let Some(e) = crate::events::check_events(&check).into_iter().nth(1) {
        let _ = events.send(e);
    }
    Ok(check)
}

/// The validators' results as prompt evidence: the failures in detail, or one line saying
/// everything passed.
pub(crate) fn evidence(report: &Report) -> String {
    if report.passed() {
        format!("RESULT: the project's checks PASS. {}", report.summary())
    } else {
        format!(
            "RESULT: the project's checks FAIL, so the work is not done.\n\n{}",
            report.evidence(EVIDENCE_CHARS)
        )
    }
}

/// A diff trimmed for a prompt.
pub(crate) fn diff_text(change: &Change) -> String {
    if change.patch.len() <= DIFF_CHARS {
        return change.patch.clone();
    }
    let mut cut = DIFF_CHARS;
    while !change.patch.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}\n… (the diff goes on; {} files changed in all: {})",
        &change.patch[..cut],
        change.files.len(),
        change.files.iter().map(|f| f.path.display().to_string()).collect::<Vec<_>>().join(", ")
    )
}

/// The memory block without its file notes: a work step shows the files themselves, whole
/// and current, so the memory's excerpts of them would only repeat (stale) text. The block's
/// sections start with `## <type>: ` (see `troupe_context`'s formatting).
pub(crate) fn without_file_notes(
    block: &crate::memory::ContextBlock,
) -> crate::memory::ContextBlock {
    let mut text = String::new();
    let mut keep = true;
    for line in block.text.split_inclusive('\n') {
        if line.starts_with("## ") {
            keep = !line.starts_with("## file: ");
        }
        if keep {
            text.push_str(line);
        }
    }
    let text = if text.lines().all(|l| l.trim().is_empty() || l.starts_with("# ")) {
        String::new()
    } else {
        text
    };
    crate::memory::ContextBlock {
        tokens: text.len().div_ceil(4),
        nodes: block.nodes.iter().filter(|n| !n.starts_with("file-")).cloned().collect(),
        text,
    }
}

/// The commit a run's commit was made on.
pub(crate) async fn parent(ws: &Workspace, commit: &str) -> Result<String, String> {
    let w = ws.clone();
    let commit = commit.to_string();
    blocking(move || {
        w.parent_of(&commit).map_err(|e| format!("cannot read the run's history: {e}"))
    })
    .await
}

/// Move the run's checkout back to `commit` (see `Workspace::reset_to`); `false` in place.
pub(crate) async fn reset_to(ws: &mut Workspace, commit: &str) -> Result<bool, String> {
    let mut w = ws.clone();
    let commit = commit.to_string();
    let (w, moved) = blocking(move || {
        let moved =
            w.reset_to(&commit).map_err(|e| format!("cannot roll the workspace back: {e}"))?;
        Ok((w, moved))
    })
    .await?;
    *ws = w;
    Ok(moved)
}
