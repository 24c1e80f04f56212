//! How much of a model's context window a step's prompt may fill with project files.

use std::sync::Arc;

use troupe_adapters::config::AgentKind;

use crate::runtime::Shared;

/// Characters per token assumed when sizing prompt parts (code runs ~3–4).
const CHARS_PER_TOKEN: usize = 3;
/// Tokens kept for the instructions, task, memory, evidence and the template itself.
const PROMPT_OVERHEAD_TOKENS: usize = 1800;
/// The window assumed for an HTTP model that does not say its own.
const DEFAULT_WINDOW: usize = 8192;
/// The most file text put into any prompt.
const MAX_FILE_CHARS: usize = 60_000;

/// The characters of project files a work step for `agent` may carry: its context window
/// less the answer's room and the rest of the prompt. The window is the configured
/// `context_tokens`, else what the agent's server reports, else a conservative default.
pub(crate) async fn file_budget_chars(shared: &Arc<Shared>, agent: &str) -> usize {
    let Some(config) = shared.config.agent(agent) else { return 0 };
    if config.kind == AgentKind::Cli {
        return 0; // a CLI agent reads the files itself
    }
    let window = match config.context_tokens {
        Some(t) => t as usize,
        None => shared.agents.context_window(agent).await.map_or(DEFAULT_WINDOW, |w| w as usize),
    };
    let answer = config.max_tokens.unwrap_or(shared.max_tokens) as usize;
    let tokens = window.saturating_sub(answer + PROMPT_OVERHEAD_TOKENS);
    (tokens * CHARS_PER_TOKEN).min(MAX_FILE_CHARS)
}
