//! The built-in defaults: what troupe knows with no configuration file at all.

use std::collections::BTreeMap;

use troupe_adapters::config::{
    AgentConfig, AgentKind, CliFlavor, ManagedServerConfig, PromptInput, Role,
};

use super::{Config, Settings, StepCondition, StepConfig, WorkflowConfig};

/// The loopback port of the local model server that `scripts/setup.sh` installs.
pub const LOCAL_SERVER_PORT: u16 = 8765;

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

fn local(role: Role, description: &str, fallback: &[&str]) -> AgentConfig {
    let mut a = AgentConfig::new(AgentKind::Llamacpp);
    a.base_url = Some(format!("http://127.0.0.1:{LOCAL_SERVER_PORT}/v1"));
    a.model = Some("SmolLM2-135M-Instruct".to_string());
    a.role = Some(role);
    a.description = Some(description.to_string());
    a.timeout_secs = 300;
    a.fallback = fallback.iter().map(|s| s.to_string()).collect();
    a.server = Some(ManagedServerConfig {
        command: "{assets}/llama/llama-server".to_string(),
        args: [
            "-m",
            "{assets}/models/SmolLM2-135M-Instruct.Q4_1.gguf",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "-t",
            "1",
            "-tb",
            "2",
            "-c",
            "8192",
            "-np",
            "2",
            "--no-webui",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        env: BTreeMap::from([("LD_LIBRARY_PATH".to_string(), "{assets}/llama".to_string())]),
        startup_timeout_secs: 60,
    });
    a
}

fn workflow(description: &str, max_iterations: u32, steps: Vec<StepConfig>) -> WorkflowConfig {
    WorkflowConfig {
        description: Some(description.to_string()),
        steps,
        max_iterations,
        validate: None,
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
            local(Role::Implement, "Local llama.cpp server (offline), for drafting code", &[]),
        ),
        (
            "local-instruct".to_string(),
            local(Role::Review, "Local llama.cpp server (offline), for review and planning", &[]),
        ),
    ]);

    let mut hybrid_review = step("claude", Role::Review);
    hybrid_review.fallback = vec!["local-instruct".to_string()];
    let mut offline_refine = step("local-code", Role::Refine);
    offline_refine.condition = Some(StepCondition::ChangesRequested);

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
                "Fully offline: the local model implements, reviews and refines",
                2,
                vec![
                    step("local-code", Role::Implement),
                    step("local-instruct", Role::Review),
                    offline_refine,
                ],
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
