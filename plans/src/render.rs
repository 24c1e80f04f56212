//! A plan as people read it (Markdown, with each task's state) and as they edit it (TOML,
//! read back and checked by [`from_toml`]).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::model::{Plan, PlanSpec, TaskSpec};

/// The TOML shape: `[[task]]` tables.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlPlan {
    title: String,
    goal: String,
    #[serde(default)]
    task: Vec<TaskSpec>,
}

/// The plan as Markdown: title, goal, state, then each task with its dependencies,
/// acceptance criteria, likely files and state.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let s = &plan.spec;
    let _ = writeln!(out, "# {}\n", s.title);
    let _ = writeln!(
        out,
        "Plan `{}` · version {} · {} · project {}\n",
        plan.short_id(),
        plan.version(),
        plan.state,
        plan.project.display()
    );
    let _ = writeln!(out, "**Goal:** {}\n", s.goal);
    if let Some(e) = &plan.error {
        let _ = writeln!(out, "**Stopped:** {e}\n");
    }
    let _ = writeln!(out, "## Tasks\n");
    for (i, t) in s.tasks.iter().enumerate() {
        let status = plan.tasks.get(&t.id).cloned().unwrap_or_default();
        let _ = writeln!(out, "### {}. `{}` — {}\n", i + 1, t.id, status.state);
        let _ = writeln!(out, "{}\n", t.description.trim());
        if !t.after.is_empty() {
            let after: Vec<String> = t.after.iter().map(|a| format!("`{a}`")).collect();
            let _ = writeln!(out, "- after: {}", after.join(", "));
        }
        if let Some(w) = &t.workflow {
            let _ = writeln!(out, "- workflow: {w}");
        }
        if !t.files.is_empty() {
            let _ = writeln!(out, "- files: {}", t.files.join(", "));
        }
        for a in &t.acceptance {
            let _ = writeln!(out, "- [ ] {a}");
        }
        if let Some(run) = &status.run_id {
            let _ = writeln!(out, "- run: `{run}`");
        }
        if let Some(r) = &status.reason {
            let _ = writeln!(out, "- reason: {r}");
        }
        out.push('\n');
    }
    out.trim_end().to_string() + "\n"
}

/// The plan's text as TOML, for editing (`[[task]]` tables in order).
pub fn toml(spec: &PlanSpec) -> String {
    let header = "# Edit the plan, save and close the editor; troupe checks it when you are done.\n\
                  # Each [[task]] has an id, a description, and optionally acceptance, files,\n\
                  # after (ids of tasks that must be done first) and workflow.\n\n";
    let doc =
        TomlPlan { title: spec.title.clone(), goal: spec.goal.clone(), task: spec.tasks.clone() };
    match ::toml::to_string_pretty(&doc) {
        Ok(text) => format!("{header}{text}"),
        Err(e) => format!("{header}# (cannot render: {e})\n"),
    }
}

/// A plan from its TOML text, checked: `Err` lists every problem (a syntax error with its
/// line and column).
pub fn from_toml(text: &str) -> Result<PlanSpec, Vec<String>> {
    let doc: TomlPlan = ::toml::from_str(text).map_err(|e| vec![e.to_string()])?;
    let spec = PlanSpec { title: doc.title, goal: doc.goal, tasks: doc.task };
    crate::validate::check(&spec)?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PlanSpec {
        PlanSpec {
            title: "Word count".into(),
            goal: "Count words".into(),
            tasks: vec![
                TaskSpec {
                    id: "count".into(),
                    description: "Add count_words".into(),
                    acceptance: vec!["tabs separate words".into()],
                    files: vec!["textkit/core.py".into()],
                    ..Default::default()
                },
                TaskSpec {
                    id: "cli".into(),
                    description: "Expose it".into(),
                    after: vec!["count".into()],
                    workflow: Some("default".into()),
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn toml_round_trips_and_a_broken_edit_names_the_problem() {
        let s = spec();
        let text = toml(&s);
        assert_eq!(from_toml(&text).unwrap(), s);
        let broken = text.replace("after = [\"count\"]", "after = [\"cuont\"]");
        assert_eq!(
            from_toml(&broken).unwrap_err(),
            vec!["task `cli` comes after unknown task `cuont`"]
        );
        let err = from_toml("title = \"x\"\ngoal = \"y\"\n[[task]]\nid = \"a\"\nbogus = 1\n")
            .unwrap_err();
        assert!(err[0].contains("bogus"), "{err:?}");
    }

    #[test]
    fn markdown_shows_tasks_with_dependencies_and_states() {
        let plan = Plan::new("count words", "/p".into(), spec(), "test");
        let md = markdown(&plan);
        assert!(md.starts_with("# Word count\n"), "{md}");
        assert!(md.contains("### 2. `cli` — pending"), "{md}");
        assert!(md.contains("- after: `count`"), "{md}");
        assert!(md.contains("- [ ] tabs separate words"), "{md}");
    }
}
