//! Snapshots of the prompts every built-in workflow's steps render, with one fixed context:
//! a change to a role template (or to how templates render) shows up as a reviewed diff.
//! Update with `INSTA_UPDATE=always cargo test -p troupe-workflows --test prompts` (or
//! `cargo insta review`) after checking the change is meant.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use troupe_workflows::config::Config;
use troupe_workflows::template::Templates;

/// Everything a step's prompt can use, fixed.
fn vars(agent: &str, role: &str, iteration: u32) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("task", "Make `slugify` treat tabs like spaces.".to_string()),
        ("project", "textkit at /work/textkit".to_string()),
        ("context", "- mistake: slugify once dropped unicode letters".to_string()),
        ("conversation", "User: add slugify\nResult (completed): added slugify".to_string()),
        ("input", "def slugify(s):\n    return s.replace(' ', '-')".to_string()),
        ("review", "- error: tabs are not handled".to_string()),
        ("iteration", iteration.to_string()),
        ("max_iterations", "3".to_string()),
        ("agent", agent.to_string()),
        ("role", role.to_string()),
        ("evidence", "pytest: 1 failed — test_tabs: assert 'a\\tb' -> 'a-b'".to_string()),
        ("file_list", "textkit/slug.py\ntests/test_slug.py".to_string()),
        ("files", "textkit/slug.py\n```python\ndef slugify(s): ...\n```".to_string()),
        ("edit_format", "Answer with SEARCH/REPLACE blocks.".to_string()),
        ("changes", "textkit/slug.py | 2 +-".to_string()),
    ])
}

#[test]
fn every_builtin_workflow_step_renders_its_prompt() {
    let config = Config::builtin();
    let templates = Templates::builtin();
    for (name, workflow) in &config.workflows {
        for (i, step) in workflow.steps.iter().enumerate() {
            let template = templates.get(step.role).expect("every role has a template");
            let prompt = template.render(&vars(&step.agent, step.role.as_str(), 2));
            insta::assert_snapshot!(format!("{name}-{i}-{}", step.role), prompt);
        }
    }
}
