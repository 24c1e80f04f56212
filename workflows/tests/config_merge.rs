//! Properties of merging a `troupe.toml` over the built-in defaults: a key given replaces
//! the built-in one and nothing else, an `[agents.X]` table replaces the built-in agent of
//! that name whole, agents not named stay as built in, and the order of the tables does not
//! matter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use proptest::prelude::*;
use troupe_workflows::config::Config;

/// The `[settings]` keys the property sets (each `None`: left out of the file).
#[derive(Debug, Clone)]
struct Settings {
    offline: Option<bool>,
    context_token_budget: Option<usize>,
    max_concurrent_runs: Option<usize>,
    review_max_suggestions: Option<usize>,
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        prop::option::of(any::<bool>()),
        prop::option::of(100usize..100_000),
        prop::option::of(1usize..64),
        prop::option::of(0usize..10),
    )
        .prop_map(
            |(offline, context_token_budget, max_concurrent_runs, review_max_suggestions)| {
                Settings {
                    offline,
                    context_token_budget,
                    max_concurrent_runs,
                    review_max_suggestions,
                }
            },
        )
}

/// Agent tables: a name (a built-in one or a new one) and its timeout.
fn agents() -> impl Strategy<Value = Vec<(String, u64)>> {
    let names: Vec<String> = Config::builtin()
        .agents
        .keys()
        .cloned()
        .chain(["mine-a", "mine-b", "mine-c"].map(String::from))
        .collect();
    prop::collection::btree_map(prop::sample::select(names), 1u64..3600, 0..5)
        .prop_map(|m| m.into_iter().collect())
}

fn file(settings: &Settings, agents: &[(String, u64)]) -> String {
    let mut out = String::from("[settings]\n");
    if let Some(v) = settings.offline {
        out.push_str(&format!("offline = {v}\n"));
    }
    if let Some(v) = settings.context_token_budget {
        out.push_str(&format!("context_token_budget = {v}\n"));
    }
    if let Some(v) = settings.max_concurrent_runs {
        out.push_str(&format!("max_concurrent_runs = {v}\n"));
    }
    if let Some(v) = settings.review_max_suggestions {
        out.push_str(&format!("review_max_suggestions = {v}\n"));
    }
    for (name, timeout) in agents {
        out.push_str(&format!(
            "\n[agents.{name}]\nkind = \"llamacpp\"\nbase_url = \"http://127.0.0.1:9/v1\"\ntimeout_secs = {timeout}\n"
        ));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_file_replaces_what_it_names_and_nothing_else(s in settings(), a in agents()) {
        let builtin = Config::builtin();
        let (merged, problems) = Config::parse_toml(&file(&s, &a), Path::new("troupe.toml"));
        prop_assert!(problems.0.is_empty(), "{}", problems);

        let b = &builtin.settings;
        let m = &merged.settings;
        prop_assert_eq!(m.offline, s.offline.unwrap_or(b.offline));
        prop_assert_eq!(m.context_token_budget, s.context_token_budget.unwrap_or(b.context_token_budget));
        prop_assert_eq!(m.max_concurrent_runs, s.max_concurrent_runs.unwrap_or(b.max_concurrent_runs));
        prop_assert_eq!(m.review_max_suggestions, s.review_max_suggestions.unwrap_or(b.review_max_suggestions));
        prop_assert_eq!(&m.default_workflow, &b.default_workflow, "a key not given stays");

        for (name, agent) in &merged.agents {
            match a.iter().find(|(n, _)| n == name) {
                // Replaced whole: the file's values, nothing kept from a built-in.
                Some((_, timeout)) => {
                    prop_assert_eq!(agent.timeout_secs, *timeout);
                    prop_assert!(agent.fallback.is_empty() && agent.model.is_none(), "{name}: {agent:?}");
                }
                None => prop_assert_eq!(Some(agent), builtin.agents.get(name), "{} changed", name),
            }
        }
        for (name, _) in &a {
            prop_assert!(merged.agents.contains_key(name), "{} missing", name);
        }
        prop_assert_eq!(&merged.workflows, &builtin.workflows, "no workflow was named");

        // The order of the tables does not matter.
        let mut reversed = a.clone();
        reversed.reverse();
        let (again, _) = Config::parse_toml(&file(&s, &reversed), Path::new("troupe.toml"));
        prop_assert_eq!(&again.agents, &merged.agents);
        prop_assert_eq!(&again.settings, &merged.settings);
    }
}
