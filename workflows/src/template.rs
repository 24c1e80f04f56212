//! Prompt templates: one per role, overridable by file.
//!
//! The syntax is deliberately tiny: `{{name}}` inserts a variable, and
//! `{{#name}}…{{/name}}` keeps its contents only when `name` is non-empty, and
//! `{{^name}}…{{/name}}` only when it is empty. Unknown
//! variables and unbalanced sections are errors found when the template is loaded, not
//! when a run reaches the step.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use troupe_agent_config::config::Role;

/// The variables a template may use.
pub const VARIABLES: &[(&str, &str)] = &[
    ("task", "the user's task"),
    ("project", "the project's name and path"),
    ("context", "relevant project memory, already formatted (may be empty)"),
    ("conversation", "earlier turns of this conversation (may be empty)"),
    ("input", "the previous step's output (empty for the first step)"),
    ("review", "the latest review's findings (empty before the first review)"),
    ("iteration", "the current iteration, from 1"),
    ("max_iterations", "the workflow's iteration limit"),
    ("agent", "the agent running the step"),
    ("role", "the step's role"),
    ("agents", "the agents a planner may choose from, one per line (plan only)"),
    (
        "files",
        "the project files that matter, each path then its content in a fence (work steps of HTTP models)",
    ),
    ("file_list", "every file of the workspace, one path per line (work steps)"),
    (
        "edit_format",
        "how to make the change: the edit format with a worked example, or where to edit (work steps)",
    ),
    (
        "evidence",
        "the project's tests and linters on the latest change: failures in detail, or that they pass",
    ),
    ("changes", "the run's change so far as a diff against the project (review steps)"),
    ("unverified", "why a review has no evidence to go on (review steps without validators)"),
];

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Where it came from (a file, or `built-in:ROLE`), for messages.
    pub origin: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Var(String),
    Section(String, Vec<Part>),
    /// `{{^name}}…{{/name}}`: kept only when `name` is empty.
    Inverted(String, Vec<Part>),
}

/// A mistake in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Where the template came from.
    pub origin: String,
    /// 1-based line of the mistake.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.origin, self.line, self.message)
    }
}

impl std::error::Error for TemplateError {}

impl Template {
    /// Parse `text`; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Template, TemplateError> {
        let err = |offset: usize, message: String| TemplateError {
            origin: origin.to_string(),
            line: text[..offset].matches('\n').count() + 1,
            message,
        };
        // A stack of open sections: (name, parts so far, offset of the opening tag).
        let mut stack: Vec<(String, Vec<Part>, usize)> = vec![(String::new(), Vec::new(), 0)];
        let mut rest = text;
        let mut offset = 0;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                push_text(&mut stack, &rest[..start]);
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                return Err(err(offset + start, "`{{` is never closed with `}}`".into()));
            };
            let tag = after[..end].trim();
            let tag_offset = offset + start;
            if let Some(name) = tag.strip_prefix('#') {
                let name = check_var(name.trim()).map_err(|m| err(tag_offset, m))?;
                stack.push((name, Vec::new(), tag_offset));
            } else if let Some(name) = tag.strip_prefix('^') {
                // An inverted section is kept on the stack as `^name`.
                let name = check_var(name.trim()).map_err(|m| err(tag_offset, m))?;
                stack.push((format!("^{name}"), Vec::new(), tag_offset));
            } else if let Some(name) = tag.strip_prefix('/') {
                let name = name.trim();
                match stack.pop() {
                    Some((open, parts, _))
                        if open.strip_prefix('^').unwrap_or(&open) == name && !stack.is_empty() =>
                    {
                        if let Some(parent) = stack.last_mut() {
                            parent.1.push(match open.strip_prefix('^') {
                                Some(inverted) => Part::Inverted(inverted.to_string(), parts),
                                None => Part::Section(open, parts),
                            });
                        }
                    }
                    Some((open, _, _)) if !open.is_empty() => {
                        return Err(err(
                            tag_offset,
                            format!(
                                "`{{{{/{name}}}}}` closes `{{{{#{open}}}}}`; close sections in order"
                            ),
                        ));
                    }
                    _ => {
                        return Err(err(
                            tag_offset,
                            format!("`{{{{/{name}}}}}` closes no open section"),
                        ));
                    }
                }
            } else {
                let name = check_var(tag).map_err(|m| err(tag_offset, m))?;
                if let Some(top) = stack.last_mut() {
                    top.1.push(Part::Var(name));
                }
            }
            let consumed = start + 2 + end + 2;
            rest = &rest[consumed..];
            offset += consumed;
        }
        if !rest.is_empty() {
            push_text(&mut stack, rest);
        }
        if stack.len() > 1 {
            let (name, _, at) = stack.pop().unwrap_or_default();
            return Err(err(
                at,
                format!("`{{{{#{name}}}}}` is never closed with `{{{{/{name}}}}}`"),
            ));
        }
        let parts = stack.pop().map(|s| s.1).unwrap_or_default();
        Ok(Template { origin: origin.to_string(), parts })
    }

    /// Fill in the variables; missing ones are empty.
    pub fn render(&self, vars: &BTreeMap<&str, String>) -> String {
        // Variables go in as markers, so tidying the template's blank lines never touches
        // their values (file contents keep their blank lines).
        let mut out = String::new();
        let mut values: Vec<&str> = Vec::new();
        render_parts(&self.parts, vars, &mut out, &mut values);
        let tidied = tidy(&out);
        let mut result =
            String::with_capacity(tidied.len() + values.iter().map(|v| v.len()).sum::<usize>());
        let mut rest = tidied.as_str();
        while let Some(start) = rest.find(MARK_OPEN) {
            result.push_str(&rest[..start]);
            let after = &rest[start + MARK_OPEN.len_utf8()..];
            let Some(end) = after.find(MARK_CLOSE) else {
                rest = after;
                continue;
            };
            if let Some(v) = after[..end].parse::<usize>().ok().and_then(|i| values.get(i)) {
                result.push_str(v);
            }
            rest = &after[end + MARK_CLOSE.len_utf8()..];
        }
        result.push_str(rest);
        result
    }
}

fn push_text(stack: &mut [(String, Vec<Part>, usize)], text: &str) {
    if let Some(top) = stack.last_mut() {
        top.1.push(Part::Text(text.to_string()));
    }
}

fn check_var(name: &str) -> Result<String, String> {
    if VARIABLES.iter().any(|(v, _)| *v == name) {
        Ok(name.to_string())
    } else {
        let known: Vec<_> = VARIABLES.iter().map(|(v, _)| *v).collect();
        Err(format!("unknown variable `{name}`; known: {}", known.join(", ")))
    }
}

/// Private-use characters marking where a variable's value goes (see [`Template::render`]).
const MARK_OPEN: char = '\u{E000}';
const MARK_CLOSE: char = '\u{E001}';

fn render_parts<'v>(
    parts: &[Part],
    vars: &'v BTreeMap<&str, String>,
    out: &mut String,
    values: &mut Vec<&'v str>,
) {
    for part in parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Var(v) => {
                let value = vars.get(v.as_str()).map(String::as_str).unwrap_or("");
                if !value.is_empty() {
                    out.push(MARK_OPEN);
                    out.push_str(&values.len().to_string());
                    out.push(MARK_CLOSE);
                    values.push(value.trim_matches('\n'));
                }
            }
            Part::Section(v, inner) => {
                if vars.get(v.as_str()).is_some_and(|s| !s.trim().is_empty()) {
                    render_parts(inner, vars, out, values);
                }
            }
            Part::Inverted(v, inner) => {
                if vars.get(v.as_str()).is_none_or(|s| s.trim().is_empty()) {
                    render_parts(inner, vars, out, values);
                }
            }
        }
    }
}

/// Collapse runs of three or more newlines (left by empty sections) into one blank line.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut newlines = 0;
    for c in s.trim().chars() {
        if c == '\n' {
            newlines += 1;
            if newlines > 2 {
                continue;
            }
        } else {
            newlines = 0;
        }
        out.push(c);
    }
    out.push('\n');
    out
}

/// The task and what the memory says about it, as the reviewer, refiner and writer get them
/// (after each role's first line).
macro_rules! task_and_memory {
    () => {
        r#"

## Task
{{task}}
{{#context}}

## What the project's memory says
{{context}}
{{/context}}
"#
    };
}

/// The sections the implementer and the refiner both get, in the same words: the project's
/// file list, the files that matter as they are now, and the checks' results.
macro_rules! work_sections {
    () => {
        r#"{{#file_list}}

## The project's files
{{file_list}}
{{/file_list}}
{{#files}}

## The files that matter, as they are now
{{files}}
{{/files}}
{{#evidence}}

## The project's tests and checks on the current code
{{evidence}}
{{/evidence}}
"#
    };
}

const IMPLEMENT: &str = concat!(
    r#"You are the implementer in a team of AI agents working on a software project ({{project}}).

## Task
{{task}}
{{#context}}

## What the project's memory says (earlier tasks, decisions, mistakes, patterns, files)
{{context}}
{{/context}}
{{#conversation}}

## The conversation so far
{{conversation}}
{{/conversation}}
"#,
    work_sections!(),
    r#"{{#review}}

## The last review asked for these changes
{{review}}
{{/review}}
{{#input}}

## The previous answer
{{input}}
{{/input}}
{{#edit_format}}

## How to answer
{{edit_format}}
{{/edit_format}}
{{^edit_format}}

Write the complete solution: code in fenced blocks with their language, and one short paragraph on the approach.
{{/edit_format}}

Do what the task asks, completely, so that the project's tests pass. Write only the files you change, and leave existing tests as they are unless the task asks to change them. Avoid the mistakes the memory lists."#
);

const REVIEW: &str = concat!(
    r#"You are the reviewer in a team of AI agents working on a software project ({{project}})."#,
    task_and_memory!(),
    r#"{{#evidence}}

## Evidence: the project's tests and checks on this change
{{evidence}}
{{/evidence}}
{{#changes}}

## The change (a diff against the project before this task)
{{changes}}
{{/changes}}
{{#unverified}}

## No evidence
{{unverified}}
{{/unverified}}
{{^changes}}

## The work to review
{{input}}
{{/changes}}

Review the change for correctness against the task, bugs, missing cases and clarity. When the evidence shows a failing test or check, the verdict is "changes_requested" and a finding says what fails and how to fix it. Answer with one JSON object in a ```json code block and nothing else, reasoning first and the verdict last:
```json
{"analysis": "what the change does and whether it does what the task asks", "findings": [], "summary": "one sentence", "verdict": "approved"}
```
When something must change, list each real problem as {"severity": ..., "kind": ..., "message": ...} in "findings" and set "verdict" to "changes_requested": severity is "error" (must fix), "warning" (should fix) or "suggestion"; kind is "bug", "mistake", "decision", "pattern" or "style"; message says what is wrong and how to fix it. Never list a problem you did not find."#
);

const REFINE: &str = concat!(
    r#"You are the refiner in a team of AI agents working on a software project ({{project}})."#,
    task_and_memory!(),
    work_sections!(),
    r#"{{#review}}

## The review's findings
{{review}}
{{/review}}
{{^files}}

## The current work
{{input}}
{{/files}}
{{#edit_format}}

## How to answer
{{edit_format}}
{{/edit_format}}
{{^edit_format}}

Produce the improved, complete version: fix every finding, keep what was right, code in fenced blocks with their language.
{{/edit_format}}

Fix the code so every failing test passes, and address every finding; keep what was right. Write only the files you change, and leave existing tests as they are unless the task asks to change them."#
);

const DOCUMENT: &str = concat!(
    r#"You are the technical writer in a team of AI agents working on a software project ({{project}})."#,
    task_and_memory!(),
    r#"{{#files}}

## The files that matter, as they are now
{{files}}
{{/files}}
{{#input}}

## The material to document
{{input}}
{{/input}}
{{#review}}

## The review's findings
{{review}}
{{/review}}
{{#edit_format}}

## How to answer
{{edit_format}}
{{/edit_format}}

Write clear documentation in Markdown: what it is, how to use it (with examples), and its limits."#
);

const PLAN: &str = r#"You plan work for a team of AI agents on a software project ({{project}}).
{{#context}}

## What the project's memory says
{{context}}
{{/context}}

## Task
{{task}}

## Agents you may use (name: strength, measured success rate)
{{agents}}

Break the task into 1 to 6 steps. Each step has a role ("implement", "review", "refine" or "document"), one agent from the list, and why. Put a review after implementing. Answer with one JSON object in a ```json code block and nothing else:
```json
{"steps": [{"role": "implement", "agent": "name", "why": "reason"}], "max_iterations": 2}
```"#;

/// The built-in template of a role.
pub fn builtin(role: Role) -> &'static str {
    match role {
        Role::Implement => IMPLEMENT,
        Role::Review => REVIEW,
        Role::Refine => REFINE,
        Role::Document => DOCUMENT,
        Role::Plan => PLAN,
    }
}

/// The templates of every role: built-in, overridden by `ROLE.md` files in a folder.
#[derive(Debug, Clone)]
pub struct Templates {
    by_role: BTreeMap<Role, Template>,
}

impl Templates {
    /// The built-in templates only.
    pub fn builtin() -> Templates {
        let by_role = Role::ALL
            .iter()
            .filter_map(|r| {
                Template::parse(&format!("built-in:{r}"), builtin(*r)).ok().map(|t| (*r, t))
            })
            .collect();
        Templates { by_role }
    }

    /// The built-ins with `dir/ROLE.md` files (where present) taking their place. Every
    /// mistake in every file is returned at once.
    pub fn load(dir: Option<&Path>) -> Result<Templates, Vec<TemplateError>> {
        let mut t = Templates::builtin();
        let Some(dir) = dir else { return Ok(t) };
        let mut errors = Vec::new();
        for role in Role::ALL {
            let path = dir.join(format!("{role}.md"));
            if !path.is_file() {
                continue;
            }
            match load_file(&path) {
                Ok(template) => {
                    t.by_role.insert(role, template);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() { Ok(t) } else { Err(errors) }
    }

    /// The template of `role`.
    pub fn get(&self, role: Role) -> Option<&Template> {
        self.by_role.get(&role)
    }
}

/// Read and parse one template file.
pub fn load_file(path: &Path) -> Result<Template, TemplateError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| TemplateError {
        origin: origin.clone(),
        line: 1,
        message: format!("cannot read the template: {e}"),
    })?;
    Template::parse(&origin, &text)
}

/// Resolve a step's `prompt` path against the folder of the configuration file.
pub fn resolve_prompt_path(prompt: &Path, config_file: Option<&Path>) -> PathBuf {
    if prompt.is_absolute() {
        return prompt.to_path_buf();
    }
    match config_file.and_then(Path::parent) {
        Some(dir) => dir.join(prompt),
        None => prompt.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&'static str, &str)]) -> BTreeMap<&'static str, String> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn variables_and_sections_render() {
        let t =
            Template::parse("t", "A {{task}}.{{#review}} R: {{review}}{{/review}} end").unwrap();
        assert_eq!(t.render(&vars(&[("task", "x")])), "A x. end\n");
        assert_eq!(t.render(&vars(&[("task", "x"), ("review", "fix it")])), "A x. R: fix it end\n");
        // Whitespace-only counts as empty for sections.
        assert_eq!(t.render(&vars(&[("task", "x"), ("review", "  \n")])), "A x. end\n");
    }

    #[test]
    fn nested_sections_render() {
        let t =
            Template::parse("t", "{{#input}}[{{#review}}{{review}}{{/review}}{{input}}]{{/input}}")
                .unwrap();
        assert_eq!(t.render(&vars(&[("input", "i")])), "[i]\n");
        assert_eq!(t.render(&vars(&[("input", "i"), ("review", "r")])), "[ri]\n");
        assert_eq!(t.render(&vars(&[("review", "r")])), "\n");
    }

    #[test]
    fn mistakes_are_reported_with_lines() {
        let cases = [
            ("a\n{{tsak}}", 2, "unknown variable `tsak`"),
            ("{{#input}}x", 1, "never closed"),
            ("x\n\n{{/input}}", 3, "closes no open section"),
            ("{{#input}}{{#review}}{{/input}}{{/review}}", 1, "close sections in order"),
            ("a {{task", 1, "never closed with `}}`"),
        ];
        for (text, line, msg) in cases {
            let e = Template::parse("f.md", text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(msg), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("f.md:{line}: ")));
        }
    }

    #[test]
    fn values_keep_their_blank_lines() {
        let t = Template::parse("t", "## Files\n\n\n\n{{files}}\n\n\n\nend").unwrap();
        let code = "def a():\n    pass\n\n\ndef b():\n    pass";
        let out = t.render(&BTreeMap::from([("files", code.to_string())]));
        assert_eq!(out.trim_end(), format!("## Files\n\n{code}\n\nend"));
    }

    #[test]
    fn inverted_sections_render_only_when_their_variable_is_empty() {
        let t =
            Template::parse("t", "a{{^files}} no files{{/files}}{{#files}} {{files}}{{/files}}")
                .unwrap();
        assert_eq!(t.render(&BTreeMap::new()).trim_end(), "a no files");
        assert_eq!(t.render(&BTreeMap::from([("files", "x.py".to_string())])).trim_end(), "a x.py");
        let e = Template::parse("t", "{{^files}}open").unwrap_err();
        assert!(e.message.contains("never closed"), "{e}");
        let e = Template::parse("t", "{{^files}}x{{/task}}").unwrap_err();
        assert!(e.message.contains("closes"), "{e}");
    }

    #[test]
    fn builtin_templates_parse_and_mention_their_inputs() {
        let t = Templates::builtin();
        for role in Role::ALL {
            let template = t.get(role).unwrap_or_else(|| panic!("{role} did not parse"));
            let out = template.render(&vars(&[("task", "TASK-TEXT"), ("input", "INPUT-TEXT")]));
            assert!(out.contains("TASK-TEXT"), "{role}: {out}");
            assert!(!out.contains("{{"), "{role}: {out}");
            assert!(!out.contains("\n\n\n"), "{role}: {out}");
        }
        let review = t.get(Role::Review).unwrap().render(&vars(&[("input", "x")]));
        assert!(review.contains("\"verdict\""));
    }

    #[test]
    fn files_override_builtins_and_all_errors_are_collected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("implement.md"), "Do {{task}} now").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let out = t.get(Role::Implement).unwrap().render(&vars(&[("task", "it")]));
        assert_eq!(out, "Do it now\n");
        assert!(t.get(Role::Review).unwrap().origin.starts_with("built-in"));

        std::fs::write(dir.path().join("review.md"), "{{nope}}").unwrap();
        std::fs::write(dir.path().join("refine.md"), "{{#input}}").unwrap();
        let errors = Templates::load(Some(dir.path())).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    #[test]
    fn prompt_paths_resolve_against_the_config_folder() {
        let p =
            resolve_prompt_path(Path::new("p/x.md"), Some(Path::new("/etc/troupe/troupe.toml")));
        assert_eq!(p, PathBuf::from("/etc/troupe/p/x.md"));
        assert_eq!(resolve_prompt_path(Path::new("/a.md"), None), PathBuf::from("/a.md"));
    }
}
