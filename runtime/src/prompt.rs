//! Prompts that fit the model: how much of a context window a step's files may fill, and
//! fitting a rendered prompt into the window by leaving out its least important parts first.
//!
//! Priority, highest first: the task and instructions (never left out) > the validators'
//! failures > the files being changed > the diff > the previous answer > the file list >
//! the project's memory > the conversation. A part is first cut to half (a long part keeps
//! its head), then left out; what was cut or left out is said in the prompt itself and in
//! the audit trail. A prompt that does not fit even with every part left out is not sent.

use std::collections::BTreeMap;
use std::sync::Arc;

use troupe_adapters::config::AgentKind;
use troupe_workflows::template::Template;

use crate::shared::Shared;

/// Characters per token assumed when sizing prompt parts (code runs ~3–4).
const CHARS_PER_TOKEN: usize = 3;
/// Tokens kept for the instructions, task, memory, evidence and the template itself.
const PROMPT_OVERHEAD_TOKENS: usize = 1800;
/// The window assumed for an HTTP model that does not say its own.
const DEFAULT_WINDOW: usize = 8192;
/// The most file text put into any prompt.
const MAX_FILE_CHARS: usize = 60_000;
/// Tokens kept free between the prompt and the answer's room (chat template, counting slack).
const MARGIN_TOKENS: u64 = 64;

/// The template variables that may be cut or left out, lowest priority first, with what
/// they are called in the note that says so.
pub(crate) const DROP_ORDER: &[(&str, &str)] = &[
    ("conversation", "the conversation so far"),
    ("context", "the project's memory"),
    ("file_list", "the list of the project's files"),
    ("input", "the previous answer"),
    ("changes", "the diff"),
    ("files", "the files"),
    ("evidence", "the test output"),
];

/// The characters of project files a work step for `agent` may carry: its context window
/// less the answer's room and the rest of the prompt. The window is the configured
/// `context_tokens`, else what the agent's server reports, else a conservative default.
pub(crate) async fn file_budget_chars(shared: &Arc<Shared>, agent: &str) -> usize {
    let Some(config) = shared.config.agent(agent) else { return 0 };
    if config.kind == AgentKind::Cli {
        return 0; // a CLI agent reads the files itself
    }
    let window = window_of(shared, agent).await.map_or(DEFAULT_WINDOW, |w| w as usize);
    let answer = config.max_tokens.unwrap_or(shared.max_tokens) as usize;
    let tokens = window.saturating_sub(answer + PROMPT_OVERHEAD_TOKENS);
    (tokens * CHARS_PER_TOKEN).min(MAX_FILE_CHARS)
}

/// A prompt fitted into a budget.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fitted {
    /// The prompt to send.
    pub prompt: String,
    /// What was cut or left out, in words ("the conversation so far (left out)").
    pub left_out: Vec<String>,
    /// Its size, as counted.
    pub tokens: u64,
}

/// Render `template` with `vars` so it counts at most `budget` tokens by `count`, cutting
/// and leaving out parts in [`DROP_ORDER`]. `Err` says why it cannot fit.
pub(crate) fn fit(
    template: &Template,
    vars: &BTreeMap<&str, String>,
    budget: u64,
    count: &dyn Fn(&str) -> u64,
) -> Result<Fitted, String> {
    let mut vars = vars.clone();
    let mut left_out: Vec<String> = Vec::new();
    let render = |vars: &BTreeMap<&str, String>, left_out: &[String]| {
        with_note(template.render(vars), left_out)
    };
    let mut prompt = render(&vars, &left_out);
    let mut tokens = count(&prompt);
    for (name, what) in DROP_ORDER {
        if tokens <= budget {
            break;
        }
        let Some(value) = vars.get(name).filter(|v| !v.trim().is_empty()).cloned() else {
            continue;
        };
        // Cut to half once (keeping the head, at a line), then leave it out.
        let half = cut(&value, value.len() / 2);
        if half.len() >= 200 {
            vars.insert(name, half);
            left_out.push(format!("{what} (cut short)"));
            prompt = render(&vars, &left_out);
            tokens = count(&prompt);
            if tokens <= budget {
                break;
            }
            left_out.pop();
        }
        vars.remove(name);
        left_out.push(format!("{what} (left out)"));
        prompt = render(&vars, &left_out);
        tokens = count(&prompt);
    }
    if tokens > budget {
        return Err(format!(
            "the prompt needs about {tokens} tokens even without {}; the model has room for {budget}: use an agent with a larger context window (context_tokens) or a shorter task",
            if left_out.is_empty() { "anything optional".to_string() } else { left_out.join(", ") }
        ));
    }
    Ok(Fitted { prompt, left_out, tokens })
}

/// `template` rendered with every part in [`DROP_ORDER`] left out: the smallest prompt a step
/// can have, for when counting with the model's own tokenizer keeps disagreeing with the
/// estimate (text a tokenizer splits finely, like a model's repeated garbage).
pub(crate) fn without_optional(template: &Template, vars: &BTreeMap<&str, String>) -> Fitted {
    let mut vars = vars.clone();
    let mut left_out = Vec::new();
    for (name, what) in DROP_ORDER {
        if vars.remove(name).is_some_and(|v| !v.trim().is_empty()) {
            left_out.push(format!("{what} (left out)"));
        }
    }
    let prompt = with_note(template.render(&vars), &left_out);
    let tokens = estimate(&prompt);
    Fitted { prompt, left_out, tokens }
}

/// `prompt` with a closing note naming what was left out or shortened, when anything was.
fn with_note(mut prompt: String, left_out: &[String]) -> String {
    if !left_out.is_empty() {
        prompt.push_str(&format!(
            "\n\n(To fit the model's context window, this prompt leaves out or shortens: {}.)",
            left_out.join("; ")
        ));
    }
    prompt
}

/// The head of `text`, at most `max` bytes, ending at a line, marked as cut.
fn cut(text: &str, max: usize) -> String {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    let head = head.rfind('\n').map_or(head, |i| &head[..i]);
    format!("{head}\n… (cut to fit the model's context window)")
}

/// The token budget of a prompt for `agent` answering in at most `max_answer` tokens, and a
/// counter: the model's own tokenizer where the server offers one (checked on the result),
/// else an estimate. `None` when the agent's window is unknown (CLI agents, remote APIs
/// that do not say): no fitting then.
pub(crate) async fn budget_for(shared: &Arc<Shared>, agent: &str, max_answer: u32) -> Option<u64> {
    if shared.config.agent(agent)?.kind == AgentKind::Cli {
        return None;
    }
    let window = window_of(shared, agent).await?;
    Some(u64::from(window).saturating_sub(u64::from(max_answer) + MARGIN_TOKENS))
}

/// `agent`'s context window: the configured `context_tokens`, else what its server reports.
async fn window_of(shared: &Arc<Shared>, agent: &str) -> Option<u32> {
    match shared.config.agent(agent)?.context_tokens {
        Some(t) => Some(t),
        None => shared.agents.context_window(agent).await,
    }
}

/// An estimate of `text`'s tokens when the model's tokenizer is not at hand.
pub(crate) fn estimate(text: &str) -> u64 {
    (text.len() as u64).div_ceil(CHARS_PER_TOKEN as u64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use proptest::prelude::*;

    use super::*;

    fn template() -> Template {
        Template::parse(
            "t",
            "## Task\n{{task}}\n{{#context}}## Memory\n{{context}}\n{{/context}}{{#conversation}}## Conversation\n{{conversation}}\n{{/conversation}}{{#files}}## Files\n{{files}}\n{{/files}}{{#evidence}}## Tests\n{{evidence}}\n{{/evidence}}",
        )
        .unwrap()
    }

    fn words(n: usize) -> String {
        (0..n).map(|i| format!("w{i}\n")).collect()
    }

    #[test]
    fn without_optional_keeps_the_task_and_names_what_it_left_out() {
        let vars = BTreeMap::from([
            ("task", "fix it".to_string()),
            ("conversation", "#!r+f\n".repeat(300)),
            ("files", words(10)),
            ("evidence", "   ".to_string()),
        ]);
        let f = without_optional(&template(), &vars);
        assert!(f.prompt.contains("fix it"), "{}", f.prompt);
        assert!(!f.prompt.contains("#!r+f") && !f.prompt.contains("w9"), "{}", f.prompt);
        assert_eq!(
            f.left_out,
            ["the conversation so far (left out)", "the files (left out)"],
            "blank parts are not named"
        );
        assert!(f.prompt.contains("leaves out or shortens: the conversation so far"));
        assert_eq!(f.tokens, estimate(&f.prompt));
    }

    #[test]
    fn nothing_is_left_out_when_it_fits() {
        let vars = BTreeMap::from([("task", "fix it".to_string()), ("files", words(10))]);
        let f = fit(&template(), &vars, 10_000, &|t| estimate(t)).unwrap();
        assert!(f.left_out.is_empty());
        assert!(f.prompt.contains("w9") && !f.prompt.contains("leaves out"));
    }

    #[test]
    fn the_conversation_goes_before_the_memory_and_the_files_before_the_evidence() {
        let vars = BTreeMap::from([
            ("task", "fix it".to_string()),
            ("conversation", words(400)),
            ("context", words(400)),
            ("files", words(400)),
            ("evidence", words(50)),
        ]);
        let all = estimate(&template().render(&vars));
        // Room for everything but about the conversation.
        let f = fit(&template(), &vars, all - 500, &|t| estimate(t)).unwrap();
        assert!(f.left_out[0].starts_with("the conversation"), "{:?}", f.left_out);
        assert!(f.prompt.contains("## Memory") && f.prompt.contains("## Files"));
        assert!(f.prompt.contains("leaves out or shortens: the conversation"), "{}", f.prompt);
        // Room for little: the evidence is the last optional part to go.
        let f = fit(&template(), &vars, 400, &|t| estimate(t)).unwrap();
        assert!(f.prompt.contains("## Tests"), "{:?}", f.left_out);
        assert!(!f.prompt.contains("## Conversation") && !f.prompt.contains("## Memory"));
    }

    #[test]
    fn a_task_too_long_for_the_window_is_refused() {
        let vars = BTreeMap::from([("task", words(1000))]);
        let e = fit(&template(), &vars, 100, &|t| estimate(t)).unwrap_err();
        assert!(e.contains("larger context window"), "{e}");
    }

    proptest! {
        #[test]
        fn a_fitted_prompt_never_exceeds_its_budget(
            sizes in proptest::collection::vec(0usize..3000, 4),
            budget in 200u64..6000,
        ) {
            let vars = BTreeMap::from([
                ("task", "fix the bug".to_string()),
                ("conversation", words(sizes[0])),
                ("context", words(sizes[1])),
                ("files", words(sizes[2])),
                ("evidence", words(sizes[3])),
            ]);
            match fit(&template(), &vars, budget, &|t| estimate(t)) {
                Ok(f) => {
                    prop_assert!(f.tokens <= budget);
                    prop_assert_eq!(f.tokens, estimate(&f.prompt));
                    // Parts go in order: a kept part never ranks below a dropped one.
                    let rank = |name: &str| DROP_ORDER.iter().position(|(n, _)| *n == name).unwrap();
                    let dropped: Vec<usize> = DROP_ORDER.iter().enumerate()
                        .filter(|(_, (_, what))| f.left_out.iter().any(|l| l.starts_with(what) && l.ends_with("(left out)")))
                        .map(|(i, _)| i).collect();
                    if let Some(&highest) = dropped.iter().max() {
                        for name in ["conversation", "context", "files", "evidence"] {
                            let kept = !vars[name].is_empty() && rank(name) < highest
                                && f.prompt.contains(&vars[name][..vars[name].len().min(6)])
                                && !f.left_out.iter().any(|l| l.starts_with(DROP_ORDER[rank(name)].1));
                            prop_assert!(!kept, "{} kept while a higher part was dropped: {:?}", name, f.left_out);
                        }
                    }
                }
                Err(e) => prop_assert!(e.contains("larger context window")),
            }
        }
    }
}
