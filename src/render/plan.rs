//! A plan's task graph with states, and the commit message of `plan apply --commit`.

use troupe_plans::{Plan, TaskState};

/// The commit message of `plan apply --commit`.
pub fn commit_message(plan: &Plan) -> String {
    let tasks: Vec<String> = plan
        .spec
        .tasks
        .iter()
        .filter(|t| plan.task_state(&t.id) == TaskState::Green)
        .map(|t| format!("- {}: {}", t.id, t.description.lines().next().unwrap_or("")))
        .collect();
    format!("{}\n\n{}\n\n{}", plan.spec.title, plan.spec.goal.trim(), tasks.join("\n"))
}

/// The task graph: one line per task in dependency order, with its state and what it
/// comes after.
pub fn status_text(plan: &Plan) -> String {
    let mut out = format!("plan {} · {} · {}\n", plan.short_id(), plan.state, plan.spec.title);
    let order = troupe_plans::validate::order(&plan.spec).unwrap_or_default();
    for id in order {
        let Some(t) = plan.task(&id) else { continue };
        let s = plan.tasks.get(&id).cloned().unwrap_or_default();
        let after = if t.after.is_empty() {
            String::new()
        } else {
            format!("  ← {}", t.after.join(", "))
        };
        let run = s.run_id.as_deref().map(|r| format!("  run {}", short(r))).unwrap_or_default();
        out.push_str(&format!(
            "  {} {:<9} {}{after}{run}\n",
            mark(s.state),
            s.state.as_str(),
            t.id
        ));
        if let Some(r) = &s.reason {
            out.push_str(&format!("      {r}\n"));
        }
    }
    if let Some(e) = &plan.error {
        out.push_str(&format!("  stopped: {e}\n"));
    }
    out
}

pub fn mark(state: TaskState) -> &'static str {
    match state {
        TaskState::Green => "✓",
        TaskState::Skipped => "-",
        TaskState::Running => "▶",
        TaskState::Failed | TaskState::Conflict => "✗",
        TaskState::Blocked => "⊘",
        TaskState::Pending | TaskState::Queued => "·",
    }
}

/// The first 12 characters of an id without dashes.
pub fn short(id: &str) -> String {
    id.chars().filter(|c| *c != '-').take(12).collect()
}
