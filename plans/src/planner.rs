//! The planner's turn: a spec (with the project's memory and a listing of its files) becomes
//! a [`PlanSpec`]; an invalid answer is re-asked once with the problems named, then the
//! planner fails with its raw answer kept. A valid plan that leaves out part of the spec is
//! re-asked once too, and what it still leaves out becomes a task of its own
//! ([`cover::complete`]). Revisions ask the same way, with the current plan
//! and the person's feedback.

use std::path::{Path, PathBuf};

use troupe_runtime::{Ask, Runtime};

use crate::cover;
use crate::error::{Error, Result};
use crate::model::PlanSpec;
use crate::validate;

/// Most files listed in the prompt.
const MAX_FILES: usize = 150;

/// What to plan.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// The spec, in the user's words.
    pub spec: String,
    /// The project folder.
    pub project: PathBuf,
    /// The planner agent; the runtime's pick when none.
    pub planner: Option<String>,
    /// Only local agents.
    pub offline: bool,
    /// A revision: the current plan and the feedback on it.
    pub revise: Option<(PlanSpec, String)>,
    /// The audit label (`plan-<id>`).
    pub label: String,
}

/// Ask the planner for a plan; `(plan, the agent that answered)`.
pub async fn plan(runtime: &Runtime, req: &PlanRequest) -> Result<(PlanSpec, String)> {
    let context =
        runtime.project_context(Some(req.project.clone()), &req.spec).await.unwrap_or_default();
    let prompt = prompt(req, &context, &listing(&req.project));
    let mut ask = Ask {
        label: req.label.clone(),
        agent: req.planner.clone(),
        prompt: prompt.clone(),
        project: Some(req.project.clone()),
        offline: req.offline,
        schema: Some(("plan".into(), validate::schema())),
    };
    let first = runtime.ask(ask.clone()).await?;
    // A valid plan that leaves out what the spec names is asked again once too; if the second
    // answer is no valid plan, the first one stands; either way what is still left out becomes
    // a task.
    let mut fallback = None;
    let problems = match validate::parse_answer(&first.text) {
        Ok(spec) => {
            let missing =
                if req.revise.is_none() { cover::uncovered(&req.spec, &spec) } else { Vec::new() };
            if missing.is_empty() {
                return Ok((spec, first.agent));
            }
            let names = missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ");
            fallback = Some(spec);
            vec![format!(
                "no task covers what the spec names: {names}; every part of the spec must be \
                 part of some task (a fix the spec asks for first comes first)"
            )]
        }
        Err(p) => p,
    };
    tracing::info!(label = %req.label, problems = problems.len(), "the plan was invalid; asking again");
    ask.agent = Some(first.agent.clone());
    ask.prompt = format!(
        "{prompt}\n\nYour previous answer was not a valid plan:\n{}\n\nYour previous answer was:\n{}\n\n\
         Answer again with only the corrected JSON object.",
        problems.iter().map(|p| format!("- {p}")).collect::<Vec<_>>().join("\n"),
        first.text
    );
    let second = runtime.ask(ask).await?;
    let (mut spec, agent) = match (validate::parse_answer(&second.text), fallback) {
        (Ok(spec), _) => (spec, second.agent),
        (Err(_), Some(spec)) => (spec, first.agent),
        (Err(problems), None) => {
            return Err(Error::PlannerFailed {
                agent: second.agent,
                problems,
                answer: second.text,
                answer_file: None,
            });
        }
    };
    if req.revise.is_none()
        && let Some(id) = cover::complete(&req.spec, &mut spec)
    {
        tracing::info!(label = %req.label, task = %id, "the plan left part of the spec out; it is task `{id}` now");
    }
    Ok((spec, agent))
}

fn prompt(req: &PlanRequest, context: &str, files: &str) -> String {
    let mut p = String::from(
        "You plan software work. Turn the spec below into a plan of small tasks, each one a \
         change an AI coding agent makes and tests in one go. Give each task an id (short, \
         lowercase, with dashes), a description that says exactly what to change, acceptance \
         criteria a reviewer can check, the files it will likely touch, and `after`: the ids \
         of tasks that must be done first (only when the task needs their change; independent \
         tasks run at the same time). Use as few tasks as the work needs (1 to 6). Cover every \
         part of the spec: each thing it asks for is part of some task, in the order it asks.\n\n\
         Answer with only a JSON object like:\n\
         {\"title\": \"…\", \"goal\": \"…\", \"tasks\": [{\"id\": \"add-parser\", \"description\": \"…\", \
         \"acceptance\": [\"…\"], \"files\": [\"src/parser.py\"], \"after\": []}]}\n\n",
    );
    p.push_str(&format!("## Spec\n\n{}\n\n", req.spec.trim()));
    if let Some((current, feedback)) = &req.revise {
        let json = serde_json::to_string_pretty(current).unwrap_or_default();
        p.push_str(&format!(
            "## The current plan\n\n{json}\n\n## Feedback on it\n\n{}\n\nRevise the plan to address \
             the feedback; keep what the feedback does not touch.\n\n",
            feedback.trim()
        ));
    }
    if !files.is_empty() {
        p.push_str(&format!("## Files of the project\n\n{files}\n\n"));
    }
    if !context.trim().is_empty() {
        p.push_str(&format!("## What the project memory knows\n\n{}\n", context.trim()));
    }
    p
}

/// The project's files as the rest of troupe sees them ([`troupe_context::project_files`]:
/// ignore files respected, hidden, build and cache folders left out), one a line, the first
/// [`MAX_FILES`].
fn listing(project: &Path) -> String {
    let mut files = troupe_context::project_files(project);
    files.truncate(MAX_FILES);
    files.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_leaves_out_what_the_project_ignores() {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(".gitignore", "generated/\n*.log\n");
        write("README.md", "# demo\n");
        write("src/words.py", "def count(s): pass\n");
        write("generated/api.py", "x = 1\n");
        write("build.log", "ok\n");
        // A Rust build folder says what it is, ignored or not.
        write("target/CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n");
        write("target/debug/build.rs", "fn main() {}\n");
        write("node_modules/left-pad/index.js", "module.exports = 1;\n");
        write(".hidden/notes.md", "secret\n");
        assert_eq!(listing(dir.path()), "README.md\nsrc/words.py");
    }
}
