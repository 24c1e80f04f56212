//! Spec coverage: a plan does all that its spec asks for. A small model planning a two-part
//! spec sometimes drops a part; the names the spec gives (identifiers, calls, file paths) that
//! no task repeats are the visible sign ([`uncovered`]). The planner is asked again once with
//! them named; what is still left out then becomes a task of its own ([`complete`]), made of
//! the spec's own sentences, so nothing the person asked for silently disappears.

use troupe_change::validate::names::{expected_in, is_path, named_things, sentences};

use crate::model::{PlanSpec, TaskSpec};

/// The names the spec mentions that no task of `plan` does: identifiers with an underscore
/// (`word_count`), calls (`longest_word(text)` → `longest_word`) and paths of files
/// (`textkit/words.py`). Each name once, in the spec's order.
pub fn uncovered(spec: &str, plan: &PlanSpec) -> Vec<String> {
    let mut text = format!("{}\n{}", plan.title, plan.goal);
    for t in &plan.tasks {
        text.push_str(&format!(
            "\n{} {} {} {}",
            t.id,
            t.description,
            t.acceptance.join(" "),
            t.files.join(" ")
        ));
    }
    let text = text.to_lowercase();
    let mut missing: Vec<String> = Vec::new();
    for name in named_things(spec) {
        if !text.contains(&name.to_lowercase()) && !missing.contains(&name) {
            missing.push(name);
        }
    }
    missing
}

/// Give what the spec asks for and no task covers a task of its own: the spec's sentences
/// that name something uncovered, as the task's description. It goes where the spec puts it:
/// when those sentences come before every sentence the plan covers (a fix asked for first),
/// the new task comes first and the tasks that waited for nothing wait for it; otherwise it
/// comes after every task. The new task's id, or `None` when the plan covers the spec.
pub fn complete(spec: &str, plan: &mut PlanSpec) -> Option<String> {
    let missing = uncovered(spec, plan);
    if missing.is_empty() {
        return None;
    }
    let sentences = sentences(spec);
    let names: Vec<Vec<String>> = sentences.iter().map(|s| named_things(s)).collect();
    // A sentence naming what is left out, with the sentences after it that name nothing
    // (`…; fix it so the tests pass.` goes with the fix it follows).
    let mut left_out: Vec<usize> = Vec::new();
    for (i, named) in names.iter().enumerate() {
        let names_missing = named.iter().any(|n| missing.contains(n));
        let continues = i > 0 && named.is_empty() && left_out.last() == Some(&(i - 1));
        if names_missing || continues {
            left_out.push(i);
        }
    }
    let first_left_out = *left_out.first()?;
    let first_covered =
        (0..sentences.len()).find(|i| !left_out.contains(i) && !names[*i].is_empty());
    let mut files: Vec<String> = Vec::new();
    for &i in &left_out {
        for n in &names[i] {
            if is_path(n) && !files.contains(n) {
                files.push(n.clone());
            }
        }
    }
    let id = fresh_id(plan, &missing[0]);
    let description = left_out.iter().map(|&i| sentences[i]).collect::<Vec<_>>().join(" ");
    let description = description.trim_end_matches([',', ';']).to_string();
    let mut task = TaskSpec {
        id: id.clone(),
        description,
        acceptance: vec![format!("It does what the spec asks here, which names {}.", {
            missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
        })],
        files,
        ..TaskSpec::default()
    };
    if first_covered.is_none_or(|c| first_left_out < c) {
        for t in plan.tasks.iter_mut().filter(|t| t.after.is_empty()) {
            t.after.push(id.clone());
        }
        plan.tasks.insert(0, task);
    } else {
        task.after = plan
            .tasks
            .iter()
            .filter(|t| !plan.tasks.iter().any(|o| o.after.contains(&t.id)))
            .map(|t| t.id.clone())
            .collect();
        plan.tasks.push(task);
    }
    Some(id)
}

/// The code names a task's description gives, which its run is expected to leave in the
/// project's files ([`expected_in`]): a run that never wrote the function it was asked for
/// is then not green just because the existing tests pass.
pub fn expected_names(task: &TaskSpec) -> Vec<String> {
    expected_in(&task.description)
}

/// What the spec says about a task: its sentences (with the name-less ones that follow
/// them) that give one of the code names the task's description gives. A small planner's
/// paraphrase loses detail ("split by whitespace" for "returns 1 for an empty string and
/// counts repeated spaces as words"); the run gets the person's own words for its part.
pub fn spec_says(spec: &str, task: &TaskSpec) -> Vec<String> {
    let wanted = expected_names(task);
    if wanted.is_empty() {
        return Vec::new();
    }
    let sentences = sentences(spec);
    let mut out: Vec<String> = Vec::new();
    let mut last: Option<usize> = None;
    for (i, sentence) in sentences.iter().enumerate() {
        let named = named_things(sentence);
        let about = named.iter().any(|n| wanted.contains(n));
        let continues = named.is_empty() && last.is_some_and(|l| l + 1 == i);
        if about || continues {
            out.push((*sentence).to_string());
            last = Some(i);
        }
    }
    if out.len() == sentences.len() {
        // The whole spec is about it: the task's description says the rest.
        return Vec::new();
    }
    out
}

/// An id made of `name` (`word_count` → `word-count`) that no task of `plan` has.
fn fresh_id(plan: &PlanSpec, name: &str) -> String {
    let stem = name.rsplit('/').next().unwrap_or(name);
    let stem = stem.split('.').next().unwrap_or(stem);
    let mut base: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if base.is_empty() {
        base = "rest-of-spec".into();
    }
    let mut id = base.clone();
    let mut n = 2;
    while plan.tasks.iter().any(|t| t.id == id) {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate;

    const SPEC: &str = "In textkit/words.py: first, word_count must return 0 for an empty \
                        string, so tests/test_words.py passes. Then add longest_word(text), e.g. \
                        with a test in tests/test_words.py. Use plain Python.";

    fn task(id: &str, description: &str, after: &[&str]) -> TaskSpec {
        TaskSpec {
            id: id.into(),
            description: description.into(),
            after: after.iter().map(|s| s.to_string()).collect(),
            files: vec!["textkit/words.py".into(), "tests/test_words.py".into()],
            ..Default::default()
        }
    }

    fn plan(tasks: Vec<TaskSpec>) -> PlanSpec {
        PlanSpec { title: "Words".into(), goal: "Better words".into(), tasks }
    }

    #[test]
    fn names_the_spec_gives_and_no_task_repeats_are_uncovered() {
        let mut p = plan(vec![task("add-longest-word", "Add longest_word to the module", &[])]);
        assert_eq!(uncovered(SPEC, &p), ["word_count"]);
        p.tasks[0].acceptance.push("WORD_COUNT('') == 0".into());
        assert!(uncovered(SPEC, &p).is_empty());
        // Plain prose names nothing.
        assert!(uncovered("Count the words, please. Tabs too!", &p).is_empty());
    }

    #[test]
    fn a_task_expects_the_code_names_its_description_gives_but_not_paths_or_removals() {
        let t = task(
            "add",
            "Add longest_word(text) to textkit/words.py, using word_count. Remove old_helper.",
            &[],
        );
        assert_eq!(expected_names(&t), ["longest_word", "word_count"]);
        let t = task(
            "test",
            "Add longest_word(text) with a unittest for it in tests/test_words.py.",
            &[],
        );
        assert_eq!(expected_names(&t), ["longest_word", "longest_word@tests/test_words.py"]);
        assert!(expected_names(&task("doc", "Document the module.", &[])).is_empty());
    }

    #[test]
    fn a_task_gets_the_spec_sentences_about_its_names() {
        let spec = "First, word_count must count words, but it returns 1 for an empty string; \
                    fix it so the tests pass. Then add longest_word(text) with a test.";
        let t = task("fix", "Make word_count split by whitespace", &[]);
        assert_eq!(
            spec_says(spec, &t),
            [
                "First, word_count must count words, but it returns 1 for an empty string;",
                "fix it so the tests pass."
            ]
        );
        assert_eq!(
            spec_says(spec, &task("add", "Add longest_word", &[])),
            ["Then add longest_word(text) with a test."]
        );
        // Nothing to match, or the whole spec: nothing quoted.
        assert!(spec_says(spec, &task("doc", "Write the README", &[])).is_empty());
        assert!(spec_says("Fix word_count.", &t).is_empty());
    }

    #[test]
    fn sentences_end_at_stops_and_line_breaks_but_not_inside_names_or_abbreviations() {
        assert_eq!(
            sentences(SPEC),
            [
                "In textkit/words.py: first, word_count must return 0 for an empty string, so \
                 tests/test_words.py passes.",
                "Then add longest_word(text), e.g. with a test in tests/test_words.py.",
                "Use plain Python."
            ]
        );
        assert_eq!(sentences("- add a\n\n- add b!"), ["- add a", "- add b!"]);
        assert_eq!(
            sentences("Fix a_b; add c_d, then e_f, f_g."),
            ["Fix a_b;", "add c_d,", "then e_f, f_g."]
        );
    }

    #[test]
    fn a_part_the_spec_asks_for_first_becomes_the_first_task() {
        let mut p = plan(vec![
            task("add-longest-word", "Add longest_word", &[]),
            task("document", "Document longest_word", &["add-longest-word"]),
        ]);
        assert_eq!(complete(SPEC, &mut p).as_deref(), Some("word-count"));
        let first = &p.tasks[0];
        assert_eq!(first.id, "word-count");
        assert!(first.description.starts_with("In textkit/words.py: first, word_count must"));
        assert!(!first.description.contains("longest_word"), "{}", first.description);
        assert_eq!(first.files, ["textkit/words.py", "tests/test_words.py"]);
        assert!(first.after.is_empty());
        // The task that waited for nothing waits for it; the other keeps its own order.
        assert_eq!(p.tasks[1].after, ["word-count"]);
        assert_eq!(p.tasks[2].after, ["add-longest-word"]);
        assert!(uncovered(SPEC, &p).is_empty());
        assert_eq!(validate::order(&p).unwrap(), ["word-count", "add-longest-word", "document"]);
        // The sentences after it that name nothing go with it.
        let mut q = plan(vec![task("add-longest-word", "Add longest_word", &[])]);
        complete(
            "Fix word_count; make the tests pass. Use Python. Add longest_word(text).",
            &mut q,
        );
        assert_eq!(q.tasks[0].description, "Fix word_count; make the tests pass. Use Python.");
        // A covered plan is left as it is.
        let before = p.clone();
        assert_eq!(complete(SPEC, &mut p), None);
        assert_eq!(p, before);
    }

    #[test]
    fn a_part_the_spec_asks_for_later_comes_after_every_task_with_a_fresh_id() {
        let mut p = plan(vec![
            task("word-count", "Fix word_count", &[]),
            task("tests", "Test word_count", &[]),
        ]);
        assert_eq!(complete(SPEC, &mut p).as_deref(), Some("longest-word"));
        let last = p.tasks.last().unwrap();
        assert_eq!(last.after, ["word-count", "tests"]);
        assert!(last.description.starts_with("Then add longest_word(text)"));
        assert!(validate::check(&p).is_ok());

        let mut p = plan(vec![task("word-count", "Do something else", &[])]);
        assert_eq!(complete("Fix word_count.", &mut p).as_deref(), Some("word-count-2"));
    }
}
