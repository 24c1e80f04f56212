//! [`Memory`] over the `troupe-context` store: what runs read from and teach the project's
//! graph.

use std::path::Path;

use troupe_context::{
    DecisionRecord, MistakeRecord, NodeId, PatternRecord, ProjectId, Store, TaskRecord, TurnRecord,
};
use troupe_workflows::verdict::{Finding, FindingSeverity};

use crate::error::Result;
use crate::memory::{ContextBlock, Memory, RunOutcome};

/// Longest outcome text kept in a task node.
const OUTCOME_CHARS: usize = 4000;

/// The project memory in a context store.
#[derive(Debug, Clone)]
pub struct ContextMemory {
    store: Store,
}

impl ContextMemory {
    /// Memory over `store`.
    pub fn new(store: Store) -> ContextMemory {
        ContextMemory { store }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

fn title(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let mut t: String = line.chars().take(100).collect();
    if line.chars().count() > 100 {
        t.push('…');
    }
    t
}

/// What a finding becomes in the graph.
enum Lesson {
    Mistake,
    Decision,
    Pattern,
}

fn lesson(f: &Finding) -> Option<Lesson> {
    match f.kind.as_deref() {
        Some("mistake") | Some("bug") => Some(Lesson::Mistake),
        Some("decision") => Some(Lesson::Decision),
        Some("pattern") => Some(Lesson::Pattern),
        None if f.severity == FindingSeverity::Error => Some(Lesson::Mistake),
        _ => None,
    }
}

impl Memory for ContextMemory {
    fn ensure_project(&self, path: &Path) -> Result<String> {
        Ok(self.store.ensure_project(path)?.as_str().to_string())
    }

    fn relevant_context(
        &self,
        project_id: &str,
        task: &str,
        token_budget: usize,
    ) -> Result<ContextBlock> {
        let project = ProjectId::new(project_id)?;
        let block = self.store.relevant_context(&project, task, token_budget)?;
        Ok(ContextBlock {
            text: block.text,
            nodes: block.used.iter().map(|u| u.id.as_str().to_string()).collect(),
            tokens: block.tokens,
        })
    }

    fn refresh_files(&self, project_path: &Path) -> Result<()> {
        // The scan is incremental: only files that changed are stored again.
        self.store.scan_project(project_path, &troupe_context::NoProgress)?;
        Ok(())
    }

    fn record_run(&self, outcome: &RunOutcome) -> Result<String> {
        let project = ProjectId::new(&outcome.project_id)?;
        let summary: String = outcome.output.chars().take(OUTCOME_CHARS).collect();
        let task_id = self.store.store_task(
            &project,
            &TaskRecord {
                task: outcome.task.clone(),
                outcome: summary.clone(),
                success: outcome.success,
                agent: outcome.agents.first().cloned(),
                workflow: Some(outcome.workflow.clone()),
                run_id: Some(outcome.run_id.clone()),
                files: outcome.files.clone(),
                tags: vec![outcome.workflow.clone()],
            },
        )?;
        let mut seen = std::collections::BTreeSet::new();
        for f in &outcome.findings {
            if !seen.insert(f.message.clone()) {
                continue;
            }
            match lesson(f) {
                Some(Lesson::Mistake) => {
                    self.store.store_mistake(
                        &project,
                        &MistakeRecord {
                            title: title(&f.message),
                            what_happened: f.message.clone(),
                            fix: if outcome.success {
                                "fixed in a later iteration of the same run".into()
                            } else {
                                String::new()
                            },
                            prevention: String::new(),
                            task: Some(task_id.clone()),
                            fixed_by: outcome.success.then(|| task_id.clone()),
                        },
                    )?;
                }
                Some(Lesson::Decision) => {
                    self.store.store_decision(
                        &project,
                        &DecisionRecord {
                            title: title(&f.message),
                            decision: f.message.clone(),
                            rationale: "named by the review".into(),
                            alternatives: Vec::new(),
                            task: Some(task_id.clone()),
                            supersedes: None,
                        },
                    )?;
                }
                Some(Lesson::Pattern) => {
                    self.store.store_pattern(
                        &project,
                        &PatternRecord {
                            title: title(&f.message),
                            description: f.message.clone(),
                            example: None,
                            derived_from: vec![task_id.clone()],
                        },
                    )?;
                }
                None => {}
            }
        }
        if let Some(conv) = &outcome.conversation {
            for (role, text) in [("user", outcome.task.as_str()), ("assistant", summary.as_str())] {
                self.store.store_conversation_turn(
                    &project,
                    &TurnRecord {
                        conversation: conv.clone(),
                        role: role.into(),
                        text: text.to_string(),
                        task: Some(task_id.clone()),
                    },
                )?;
            }
        }
        Ok(NodeId::as_str(&task_id).to_string())
    }
}
