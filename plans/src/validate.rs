//! Reading a plan out of a model's answer and checking any plan: every problem is listed,
//! each naming the task and field (missing fields, duplicate ids, unknown ids in `after`,
//! dependency cycles with the ids on the cycle).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::model::{PlanSpec, TaskSpec};

/// The JSON schema a planner's answer follows (sent to servers that enforce one).
pub fn schema() -> Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "goal": {"type": "string"},
            "tasks": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "description": {"type": "string"},
                        "acceptance": {"type": "array", "items": {"type": "string"}},
                        "files": {"type": "array", "items": {"type": "string"}},
                        "after": {"type": "array", "items": {"type": "string"}},
                        "workflow": {"type": "string"}
                    },
                    "required": ["id", "description", "acceptance", "after"]
                }
            }
        },
        "required": ["title", "goal", "tasks"]
    })
}

/// The plan in a model's answer (JSON, in a code fence or in prose): `Err` lists every
/// problem, for the re-ask.
pub fn parse_answer(text: &str) -> Result<PlanSpec, Vec<String>> {
    let text = troupe_workflows::extract::strip_reasoning(text);
    let objects = troupe_workflows::extract::json_objects(&text);
    let Some(value) = objects.iter().find(|v| v.get("tasks").is_some()).or(objects.first()) else {
        return Err(vec!["the answer holds no JSON object".into()]);
    };
    let spec = from_value(value)?;
    check(&spec)?;
    Ok(spec)
}

/// A plan from a JSON value, field by field, naming each missing or mistyped field.
pub fn from_value(value: &Value) -> Result<PlanSpec, Vec<String>> {
    let mut problems = Vec::new();
    let text = |v: &Value, field: &str, at: &str, problems: &mut Vec<String>| -> String {
        match v.get(field) {
            Some(Value::String(s)) => s.trim().to_string(),
            None | Some(Value::Null) => {
                problems.push(format!("{at}missing field `{field}`"));
                String::new()
            }
            Some(_) => {
                problems.push(format!("{at}field `{field}` must be a string"));
                String::new()
            }
        }
    };
    let list = |v: &Value, field: &str, at: &str, problems: &mut Vec<String>| -> Vec<String> {
        match v.get(field) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) if s.trim().is_empty() => Vec::new(),
            Some(Value::String(s)) => vec![s.trim().to_string()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(s.trim().to_string()),
                    _ => {
                        problems.push(format!("{at}`{field}` must list strings"));
                        None
                    }
                })
                .filter(|s| !s.is_empty())
                .collect(),
            Some(_) => {
                problems.push(format!("{at}field `{field}` must be a list of strings"));
                Vec::new()
            }
        }
    };
    let title = text(value, "title", "", &mut problems);
    let goal = text(value, "goal", "", &mut problems);
    let mut tasks = Vec::new();
    match value.get("tasks") {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("task {}: ", i + 1);
                if !item.is_object() {
                    problems.push(format!("{at}must be an object"));
                    continue;
                }
                let id = text(item, "id", &at, &mut problems);
                let at = if id.is_empty() { at } else { format!("task `{id}`: ") };
                let workflow = match item.get("workflow") {
                    Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
                    _ => None,
                };
                tasks.push(TaskSpec {
                    description: text(item, "description", &at, &mut problems),
                    acceptance: list(item, "acceptance", &at, &mut problems),
                    files: list(item, "files", &at, &mut problems),
                    after: list(item, "after", &at, &mut problems),
                    workflow,
                    id,
                });
            }
        }
        None | Some(Value::Null) => problems.push("missing field `tasks`".into()),
        Some(_) => problems.push("field `tasks` must be a list of tasks".into()),
    }
    if problems.is_empty() { Ok(PlanSpec { title, goal, tasks }) } else { Err(problems) }
}

/// Check a plan: a title and goal, at least one task, every task with an id (letters,
/// digits, `-`, `_`), a unique id and a description, every `after` naming a known other
/// task, and no dependency cycle.
pub fn check(spec: &PlanSpec) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if spec.title.trim().is_empty() {
        problems.push("missing field `title`".to_string());
    }
    if spec.goal.trim().is_empty() {
        problems.push("missing field `goal`".to_string());
    }
    if spec.tasks.is_empty() {
        problems.push("the plan has no tasks".to_string());
    }
    let mut seen = BTreeSet::new();
    for (i, t) in spec.tasks.iter().enumerate() {
        if t.id.trim().is_empty() {
            problems.push(format!("task {}: missing field `id`", i + 1));
        } else if !t.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            problems
                .push(format!("task `{}`: an id may hold only letters, digits, `-` and `_`", t.id));
        } else if !seen.insert(t.id.as_str()) {
            problems.push(format!("task `{}`: the id is used twice", t.id));
        }
        if t.description.trim().is_empty() && !t.id.trim().is_empty() {
            problems.push(format!("task `{}`: missing field `description`", t.id));
        }
    }
    for t in &spec.tasks {
        for dep in &t.after {
            if dep == &t.id {
                problems.push(format!("task `{}` comes after itself", t.id));
            } else if !seen.contains(dep.as_str()) {
                problems.push(format!("task `{}` comes after unknown task `{dep}`", t.id));
            }
        }
    }
    if problems.is_empty()
        && let Err(cycle) = order(spec)
    {
        problems.push(format!("dependency cycle: {}", cycle.join(" → ")));
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

/// The tasks' ids in an order where each comes after the tasks it depends on (ties in the
/// order written); `Err` is a cycle, its first id repeated at the end.
pub fn order(spec: &PlanSpec) -> Result<Vec<String>, Vec<String>> {
    let index: BTreeMap<&str, usize> =
        spec.tasks.iter().enumerate().map(|(i, t)| (t.id.as_str(), i)).collect();
    // 0 unvisited, 1 on the current path, 2 done.
    let mut mark = vec![0u8; spec.tasks.len()];
    let mut out = Vec::new();
    let mut path: Vec<usize> = Vec::new();
    fn visit(
        i: usize,
        spec: &PlanSpec,
        index: &BTreeMap<&str, usize>,
        mark: &mut [u8],
        path: &mut Vec<usize>,
        out: &mut Vec<String>,
    ) -> Result<(), Vec<String>> {
        match mark[i] {
            2 => return Ok(()),
            1 => {
                let start = path.iter().position(|p| *p == i).unwrap_or(0);
                let mut cycle: Vec<String> =
                    path[start..].iter().map(|p| spec.tasks[*p].id.clone()).collect();
                cycle.push(spec.tasks[i].id.clone());
                return Err(cycle);
            }
            _ => {}
        }
        mark[i] = 1;
        path.push(i);
        for dep in &spec.tasks[i].after {
            if let Some(&d) = index.get(dep.as_str()) {
                visit(d, spec, index, mark, path, out)?;
            }
        }
        path.pop();
        mark[i] = 2;
        out.push(spec.tasks[i].id.clone());
        Ok(())
    }
    for i in 0..spec.tasks.len() {
        visit(i, spec, &index, &mut mark, &mut path, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, after: &[&str]) -> TaskSpec {
        TaskSpec {
            id: id.into(),
            description: format!("do {id}"),
            after: after.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn spec(tasks: Vec<TaskSpec>) -> PlanSpec {
        PlanSpec { title: "t".into(), goal: "g".into(), tasks }
    }

    #[test]
    fn a_cycle_is_named_with_its_ids() {
        let s = spec(vec![task("a", &["c"]), task("b", &["a"]), task("c", &["b"]), task("d", &[])]);
        let err = check(&s).unwrap_err();
        assert_eq!(err, vec!["dependency cycle: a → c → b → a".to_string()]);
    }

    #[test]
    fn unknown_ids_duplicates_and_self_dependencies_are_each_reported() {
        let s = spec(vec![task("a", &["zz"]), task("a", &[]), task("b", &["b"])]);
        let err = check(&s).unwrap_err();
        assert!(err.contains(&"task `a` comes after unknown task `zz`".to_string()), "{err:?}");
        assert!(err.contains(&"task `a`: the id is used twice".to_string()), "{err:?}");
        assert!(err.contains(&"task `b` comes after itself".to_string()), "{err:?}");
    }

    #[test]
    fn missing_fields_are_named_per_task() {
        let answer = r#"{"title": "x", "tasks": [{"id": "a"}, {"description": "no id"}]}"#;
        let err = parse_answer(answer).unwrap_err();
        assert!(err.contains(&"missing field `goal`".to_string()), "{err:?}");
        assert!(err.contains(&"task `a`: missing field `description`".to_string()), "{err:?}");
        assert!(err.contains(&"task 2: missing field `id`".to_string()), "{err:?}");
        assert_eq!(
            parse_answer("no json here").unwrap_err(),
            vec!["the answer holds no JSON object"]
        );
    }

    #[test]
    fn an_answer_in_a_fence_with_prose_is_read_and_ordered_by_dependencies() {
        let answer = "Here is the plan:\n```json\n{\"title\": \"T\", \"goal\": \"G\", \"tasks\": [\
            {\"id\": \"tests\", \"description\": \"d\", \"acceptance\": [\"pass\"], \"after\": [\"impl\"]},\
            {\"id\": \"impl\", \"description\": \"d\", \"acceptance\": \"works\", \"after\": []}]}\n```";
        let s = parse_answer(answer).unwrap();
        assert_eq!(s.tasks[1].acceptance, vec!["works"]);
        assert_eq!(order(&s).unwrap(), vec!["impl", "tests"]);
    }
}
