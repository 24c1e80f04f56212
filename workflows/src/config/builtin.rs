//! The built-in defaults: what troupe knows with no configuration file at all.

use std::collections::BTreeMap;

use troupe_agent_config::catalog::llama_server;
use troupe_agent_config::config::{AgentConfig, AgentKind, CliFlavor, PromptInput, Role};

use super::{Config, Settings, StepCondition, StepConfig, WorkflowConfig};

/// The loopback port of the managed local server of `local-code` and `local-instruct`
/// (Qwen2.5-Coder-1.5B-Instruct); both agents share it.
pub const LOCAL_SERVER_PORT: u16 = 8765;

/// The loopback port of `local-fast`'s managed server (Qwen2.5-Coder-0.5B-Instruct): a
/// second model gets a second server, so both can stay warm (~2.2 GB + ~0.8 GB of memory).
pub const LOCAL_FAST_SERVER_PORT: u16 = 8766;

/// The context window the built-in local servers start with (`-c`): room for a few files
/// plus the answer; one request slot (`-np 1`) gets all of it.
pub const LOCAL_CONTEXT_TOKENS: u32 = 8192;

fn cli(command: &str, flavor: CliFlavor, role: Role, description: &str) -> AgentConfig {
    let mut a = AgentConfig::new(AgentKind::Cli);
    a.command = Some(command.to_string());
    a.flavor = Some(flavor);
    a.prompt_input = PromptInput::Arg;
    a.role = Some(role);
    a.description = Some(description.to_string());
    a.timeout_secs = 900;
    a
}

/// A local agent served by a managed llama.cpp server on `port` running the catalog model
/// `model` (`troupe_agent_config::catalog`), with generation settings that suit code: a low
/// temperature, a repeat penalty that stops the loops small models fall into, and a
/// max_tokens that fits one step.
fn local(model: &str, port: u16, role: Role, description: &str) -> AgentConfig {
    let spec = troupe_agent_config::catalog::find(model);
    let file = spec.map(|m| m.file).unwrap_or(model);
    let mut a = AgentConfig::new(AgentKind::Llamacpp);
    a.base_url = Some(format!("http://127.0.0.1:{port}/v1"));
    a.model = Some(file.trim_end_matches(".gguf").to_string());
    a.role = Some(role);
    a.description = Some(description.to_string());
    a.timeout_secs = 600;
    a.temperature = Some(if role == Role::Review { 0.0 } else { 0.2 });
    a.top_p = Some(0.9);
    a.top_k = Some(40);
    a.min_p = Some(0.05);
    a.repeat_penalty = Some(1.1);
    a.max_tokens = Some(1024);
    a.server = Some(llama_server(file, LOCAL_CONTEXT_TOKENS, 1));
    a
}

fn workflow(description: &str, max_iterations: u32, steps: Vec<StepConfig>) -> WorkflowConfig {
    WorkflowConfig {
        description: Some(description.to_string()),
        ..WorkflowConfig::new(max_iterations, steps)
    }
}

fn step(agent: &str, role: Role) -> StepConfig {
    StepConfig::new(agent, role)
}

pub(super) fn config() -> Config {
    let agents = BTreeMap::from([
        (
            "claude".to_string(),
            cli("claude", CliFlavor::Claude, Role::Refine, "Claude Code in print mode"),
        ),
        (
            "codex".to_string(),
            cli("codex", CliFlavor::Codex, Role::Implement, "OpenAI Codex CLI in exec mode"),
        ),
        (
            "gemini".to_string(),
            cli("gemini", CliFlavor::Gemini, Role::Review, "Google Gemini CLI in prompt mode"),
        ),
        (
            "copilot".to_string(),
            cli("copilot", CliFlavor::Copilot, Role::Review, "GitHub Copilot CLI in prompt mode"),
        ),
        (
            "local-code".to_string(),
            local(
                "qwen2.5-coder-1.5b",
                LOCAL_SERVER_PORT,
                Role::Implement,
                "Qwen2.5-Coder-1.5B on a local llama.cpp server (offline), for drafting code",
            ),
        ),
        (
            "local-instruct".to_string(),
            local(
                "qwen2.5-coder-1.5b",
                LOCAL_SERVER_PORT,
                Role::Review,
                "Qwen2.5-Coder-1.5B on a local llama.cpp server (offline), for review and planning",
            ),
        ),
        (
            "local-fast".to_string(),
            local(
                "qwen2.5-coder-0.5b",
                LOCAL_FAST_SERVER_PORT,
                Role::Implement,
                "Qwen2.5-Coder-0.5B on a local llama.cpp server (offline): about twice as fast, \
                 less often right; for quick checks",
            ),
        ),
    ]);

    let mut hybrid_review = step("claude", Role::Review);
    hybrid_review.fallback = vec!["local-instruct".to_string()];
    let mut offline_refine = step("local-code", Role::Refine);
    offline_refine.condition = Some(StepCondition::ChangesRequested);
    // Later iterations review the refined change and refine it again; implementing the
    // task from scratch again would throw the refined work away.
    let mut offline_implement = step("local-code", Role::Implement);
    offline_implement.condition = Some(StepCondition::FirstIteration);

    let workflows = BTreeMap::from([
        (
            "default".to_string(),
            workflow(
                "Implement, review, refine: codex writes, gemini reviews, claude refines",
                3,
                vec![
                    step("codex", Role::Implement),
                    step("gemini", Role::Review),
                    step("claude", Role::Refine),
                ],
            ),
        ),
        (
            "quick".to_string(),
            workflow("One agent, one pass", 1, vec![step("codex", Role::Implement)]),
        ),
        (
            "thorough".to_string(),
            workflow(
                "Implement, two independent reviews, refine",
                3,
                vec![
                    step("codex", Role::Implement),
                    step("copilot", Role::Review),
                    step("gemini", Role::Review),
                    step("claude", Role::Refine),
                ],
            ),
        ),
        (
            "review-only".to_string(),
            workflow(
                "Review existing work, then refine it",
                2,
                vec![step("gemini", Role::Review), step("claude", Role::Refine)],
            ),
        ),
        (
            "document".to_string(),
            workflow(
                "Write documentation, then review it",
                2,
                vec![step("claude", Role::Document), step("gemini", Role::Review)],
            ),
        ),
        (
            "offline-default".to_string(),
            workflow(
                "Fully offline: the local model implements, then reviews and refines until the checks pass and the review approves",
                3,
                vec![offline_implement, step("local-instruct", Role::Review), offline_refine],
            ),
        ),
        (
            "hybrid".to_string(),
            workflow(
                "Local draft, cloud review (local review when the cloud is unreachable)",
                2,
                vec![step("local-code", Role::Implement), hybrid_review],
            ),
        ),
    ]);

    Config {
        settings: Settings::default(),
        agents,
        workflows,
        telemetry: Default::default(),
        validate: Default::default(),
        edits: Default::default(),
    }
}
