//! A run's change after the run: its diff, applying it to the project, reverting an applied
//! change, discarding the workspace. Git work runs off the async executor; every apply and
//! revert is written to the run's record and audit trail.

use std::sync::Arc;

use troupe_change::workspace::{Change, Workspace};

use crate::audit::AuditEvent;
use crate::error::{Error, Result};
use crate::model::RunRecord;
use crate::shared::Shared;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> troupe_change::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Join(e.to_string()))?
        .map_err(Error::Change)
}

/// The workspace of `record`, or why it has none.
pub(crate) fn workspace_of(record: &RunRecord) -> Result<Workspace> {
    record.workspace.clone().ok_or_else(|| {
        Error::Invalid(format!(
            "run {} has no workspace (it ran before runs worked in workspaces, or without a project); there is no change to use",
            record.id
        ))
    })
}

/// Apply `ws`'s change to its project; with `commit`, also commit it on the user's branch.
/// Returns the workspace with its `applied` state.
pub(crate) async fn apply(
    shared: &Arc<Shared>,
    mut ws: Workspace,
    commit: Option<String>,
) -> Result<Workspace> {
    let _ = shared;
    blocking(move || {
        ws.apply(commit.as_deref())?;
        Ok(ws)
    })
    .await
}

/// The change of a run against its base.
pub(crate) async fn diff(record: &RunRecord) -> Result<Change> {
    let ws = workspace_of(record)?;
    blocking(move || ws.diff()).await
}

/// Apply a run's change (see [`apply`]), record it and audit it.
pub(crate) async fn apply_run(
    shared: &Arc<Shared>,
    mut record: RunRecord,
    commit_message: Option<String>,
) -> Result<RunRecord> {
    let ws = workspace_of(&record)?;
    let ws = apply(shared, ws, commit_message).await?;
    let (files, commit) =
        ws.applied.as_ref().map(|a| (a.files.clone(), a.commit.clone())).unwrap_or_default();
    record.workspace = Some(ws);
    shared.store.put_run(&record).await?;
    shared.audit.append(&record.id, AuditEvent::ChangeApplied { files, commit });
    refresh_memory(shared, &record).await;
    Ok(record)
}

/// Undo a run's applied change, record it and audit it.
pub(crate) async fn revert_run(shared: &Arc<Shared>, mut record: RunRecord) -> Result<RunRecord> {
    let mut ws = workspace_of(&record)?;
    let files = ws.applied.as_ref().map(|a| a.files.clone()).unwrap_or_default();
    let ws = blocking(move || {
        ws.revert()?;
        Ok(ws)
    })
    .await?;
    record.workspace = Some(ws);
    shared.store.put_run(&record).await?;
    shared.audit.append(&record.id, AuditEvent::ChangeReverted { files });
    refresh_memory(shared, &record).await;
    Ok(record)
}

/// Remove a run's workspace (worktree or copy, and its branch). The run's record stays,
/// without a workspace.
pub(crate) async fn discard_run(shared: &Arc<Shared>, mut record: RunRecord) -> Result<RunRecord> {
    let ws = workspace_of(&record)?;
    blocking(move || ws.discard()).await?;
    record.workspace = None;
    shared.store.put_run(&record).await?;
    Ok(record)
}

/// Bring the memory's notes of the project's files up to date after its files changed; a
/// failure is logged, the apply or revert stands.
async fn refresh_memory(shared: &Arc<Shared>, record: &RunRecord) {
    let memory = shared.memory.clone();
    let project = record.project_path.clone();
    match tokio::task::spawn_blocking(move || memory.refresh_files(&project)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(run = %record.id, error = %e, "cannot re-index the changed files")
        }
        Err(e) => {
            tracing::warn!(run = %record.id, error = %e, "re-indexing the changed files died")
        }
    }
}
