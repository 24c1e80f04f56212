//! A plan in the project memory: a `plan` node (title, goal, each task's outcome), the
//! task nodes its runs recorded linked to it (`part_of`) and to each other (`depends_on`,
//! following `after`), so a search finds the plan and the graph shows which task changed
//! which files and what its review decided (the runs link those themselves).

use troupe_context::{EdgeType, NewNode, NodeId, NodeType, Scope, Store};

use crate::error::{Error, Result};
use crate::model::Plan;

/// Most task nodes looked at to find the ones a plan's runs recorded.
const TASK_SCAN: usize = 5000;

/// Record (or update) `plan` in `store`; the plan node's id.
pub fn record(store: &Store, plan: &Plan) -> Result<String> {
    let ctx = |e: troupe_context::Error| Error::Runtime(troupe_runtime::Error::Context(e));
    let (project, _) = troupe_context::project_id_for(&plan.project).map_err(ctx)?;
    let mut body = format!(
        "Plan: {}\nGoal: {}\nState: {}\n",
        plan.spec.title,
        plan.spec.goal.trim(),
        plan.state
    );
    for t in &plan.spec.tasks {
        let s = plan.tasks.get(&t.id).cloned().unwrap_or_default();
        body.push_str(&format!(
            "- {} ({}): {}",
            t.id,
            s.state,
            t.description.lines().next().unwrap_or("")
        ));
        if !s.files.is_empty() {
            let files: Vec<String> = s.files.iter().map(|f| f.display().to_string()).collect();
            body.push_str(&format!(" [{}]", files.join(", ")));
        }
        if let Some(r) = &s.reason {
            body.push_str(&format!(" — {r}"));
        }
        body.push('\n');
    }
    let id = NodeId::new(format!("plan-{}", plan.id)).map_err(ctx)?;
    let metadata = serde_json::json!({
        "plan_id": plan.id,
        "state": plan.state,
        "version": plan.version(),
        "tasks": plan.tasks,
    });
    let node = store
        .upsert_node(
            NewNode::new(&project, NodeType::Plan, plan.spec.title.clone(), body)
                .with_id(id)
                .with_tags(["plan".to_string(), plan.state.to_string()])
                .with_metadata(metadata),
        )
        .map_err(ctx)?;
    // The task nodes the plan's runs recorded, by run id.
    let runs: std::collections::BTreeMap<&str, &str> = plan
        .tasks
        .iter()
        .filter_map(|(task, s)| s.run_id.as_deref().map(|r| (r, task.as_str())))
        .collect();
    let mut task_nodes = std::collections::BTreeMap::new();
    for n in store
        .list_nodes(&Scope::Project(project.clone()), Some(NodeType::Task), TASK_SCAN)
        .map_err(ctx)?
    {
        let run = n.metadata.get("run_id").and_then(|r| r.as_str()).unwrap_or_default();
        if let Some(task) = runs.get(run) {
            task_nodes.insert(task.to_string(), n.id.clone());
        }
    }
    for t in &plan.spec.tasks {
        let Some(from) = task_nodes.get(&t.id) else { continue };
        store.link(from, &node.id, EdgeType::PartOf, 1.0, serde_json::Value::Null).map_err(ctx)?;
        for dep in &t.after {
            if let Some(to) = task_nodes.get(dep) {
                store
                    .link(from, to, EdgeType::DependsOn, 1.0, serde_json::Value::Null)
                    .map_err(ctx)?;
            }
        }
    }
    Ok(node.id.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PlanSpec, PlanState, TaskSpec, TaskState};
    use troupe_context::{Direction, StoreOptions, TaskRecord};

    #[test]
    fn a_plan_becomes_a_node_its_task_runs_are_part_of() {
        let data = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        let store = Store::open_in(data.path(), StoreOptions::without_embeddings()).unwrap();
        let (pid, _) = troupe_context::project_id_for(project.path()).unwrap();
        let task = |id: &str, after: &[&str]| TaskSpec {
            id: id.into(),
            description: format!("do {id}"),
            after: after.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let spec = PlanSpec {
            title: "Word count".into(),
            goal: "count".into(),
            tasks: vec![task("a", &[]), task("b", &["a"])],
        };
        let mut plan = Plan::new("s", project.path().to_path_buf(), spec, "test");
        plan.state = PlanState::Done;
        let mut nodes = Vec::new();
        for (t, run) in [("a", "run-a"), ("b", "run-b")] {
            let s = plan.tasks.get_mut(t).unwrap();
            s.state = TaskState::Green;
            s.run_id = Some(run.into());
            s.files = vec![format!("{t}.py").into()];
            let record = TaskRecord {
                task: format!("do {t}"),
                outcome: "ok".into(),
                success: true,
                agent: None,
                workflow: None,
                run_id: Some(run.into()),
                files: vec![format!("{t}.py")],
                tags: Vec::new(),
            };
            nodes.push(store.store_task(&pid, &record).unwrap());
        }
        let id = record(&store, &plan).unwrap();
        // Again (a later state): the same node.
        assert_eq!(record(&store, &plan).unwrap(), id);
        let node = store.node(&NodeId::new(id.clone()).unwrap()).unwrap();
        assert_eq!(node.node_type, NodeType::Plan);
        assert!(node.body.contains("- b (green): do b [b.py]"), "{}", node.body);
        let parts = store.edges(&node.id, Direction::Incoming, Some(EdgeType::PartOf)).unwrap();
        assert_eq!(parts.len(), 2);
        let deps = store.edges(&nodes[1], Direction::Outgoing, Some(EdgeType::DependsOn)).unwrap();
        assert_eq!(deps.len(), 1);
        assert_eq!(deps[0].to, nodes[0]);
    }
}
