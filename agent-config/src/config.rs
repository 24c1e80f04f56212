//! How one agent is configured: the `[agents.NAME]` table of `troupe.toml`.
//!
//! These types are plain data. Loading, merging with the built-in defaults and
//! validating a whole configuration file is the job of `troupe-workflows`; building a
//! running agent from an [`AgentConfig`] is the job of `troupe-adapters`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The transport an agent speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(utoipa::ToSchema)]
pub enum AgentKind {
    /// A coding-agent CLI run as a subprocess (Claude Code, Codex, Gemini, Copilot or any
    /// other program), one process per request.
    Cli,
    /// Any server speaking the OpenAI chat-completions API.
    #[serde(alias = "openai-compatible", alias = "openai_compatible")]
    Openai,
    /// An Ollama server, through its native `/api` endpoints.
    Ollama,
    /// A llama.cpp `llama-server`: OpenAI-compatible plus `/health` and `/props`.
    #[serde(alias = "llama.cpp", alias = "llama-cpp")]
    Llamacpp,
}

impl AgentKind {
    /// Every kind, in the order they are documented.
    pub const ALL: [AgentKind; 4] =
        [AgentKind::Cli, AgentKind::Openai, AgentKind::Ollama, AgentKind::Llamacpp];

    /// The name used in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Cli => "cli",
            AgentKind::Openai => "openai",
            AgentKind::Ollama => "ollama",
            AgentKind::Llamacpp => "llamacpp",
        }
    }

    /// Whether the agent is reached over HTTP (and so needs a `base_url`).
    pub fn is_http(self) -> bool {
        !matches!(self, AgentKind::Cli)
    }
}

impl fmt::Display for AgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a workflow step (or an agent, as its strength) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(utoipa::ToSchema)]
pub enum Role {
    /// Write the code or the answer.
    #[serde(alias = "implementation", alias = "implementer", alias = "code")]
    Implement,
    /// Judge the previous output and return a verdict with findings.
    #[serde(alias = "reviewer")]
    Review,
    /// Improve the previous output using the review's findings.
    #[serde(alias = "refinement", alias = "refiner")]
    Refine,
    /// Write documentation for the result.
    #[serde(alias = "documentation", alias = "docs")]
    Document,
    /// Break a task into steps (the dynamic planner).
    #[serde(alias = "planner", alias = "planning")]
    Plan,
}

impl Role {
    /// Every role, in workflow order.
    pub const ALL: [Role; 5] =
        [Role::Implement, Role::Review, Role::Refine, Role::Document, Role::Plan];

    /// The name used in configuration files and prompt template file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Implement => "implement",
            Role::Review => "review",
            Role::Refine => "refine",
            Role::Document => "document",
            Role::Plan => "plan",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which vendor CLI a `cli` agent drives; decides how its output is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CliFlavor {
    /// Claude Code (`claude -p … --output-format json`).
    Claude,
    /// OpenAI Codex CLI (`codex exec --json …`).
    Codex,
    /// Google Gemini CLI (`gemini -p … --output-format json`).
    Gemini,
    /// GitHub Copilot CLI (`copilot -p …`).
    Copilot,
    /// Any other program: stdout is the answer.
    Generic,
}

impl CliFlavor {
    /// The flavor implied by a command name (`/usr/bin/claude` → Claude).
    pub fn from_command(command: &str) -> CliFlavor {
        let base = command.rsplit(['/', '\\']).next().unwrap_or(command);
        let base = base.strip_suffix(".exe").unwrap_or(base);
        match base {
            "claude" => CliFlavor::Claude,
            "codex" => CliFlavor::Codex,
            "gemini" => CliFlavor::Gemini,
            "copilot" => CliFlavor::Copilot,
            _ => CliFlavor::Generic,
        }
    }
}

/// How the prompt reaches a CLI agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptInput {
    /// Substituted for `{prompt}` in the argument template.
    #[default]
    Arg,
    /// Written to the process's standard input.
    Stdin,
}

/// Requests and tokens per minute an agent may use, shared by every run in the process.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per minute; none means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Prompt plus completion tokens per minute; none means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u32>,
    /// How long a caller may wait for capacity before the call fails as rate-limited.
    #[serde(default = "default_max_wait_secs")]
    pub max_wait_secs: u64,
}

fn default_max_wait_secs() -> u64 {
    120
}

/// Retries of transient failures (connection errors, 5xx, timeouts, 429).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts in all, the first included; 1 disables retries.
    pub max_attempts: u32,
    /// First backoff delay; it doubles (with jitter) on every retry.
    pub initial_backoff_ms: u64,
    /// Upper bound of one backoff delay.
    pub max_backoff_ms: u64,
    /// No retry starts once this much time has passed since the first attempt.
    pub max_elapsed_secs: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            max_elapsed_secs: 300,
        }
    }
}

/// The per-agent circuit breaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failed calls that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker rejects calls before it lets one trial call through.
    pub recovery_secs: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { failure_threshold: 5, recovery_secs: 60 }
    }
}

/// A local model server that troupe starts on first use, watches and stops on exit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagedServerConfig {
    /// The server program. `{assets}` expands to the offline assets folder.
    pub command: String,
    /// Its arguments (`{assets}`, `{port}` and `{host}` expand).
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment for the server process (`{assets}` expands in values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// How long to wait for the server to report healthy after starting it.
    #[serde(default = "default_startup_timeout_secs")]
    pub startup_timeout_secs: u64,
    /// What `{threads}` expands to (llama.cpp `-t`, the decode threads); none picks from
    /// the machine (see [`machine_threads`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// What `{batch_threads}` expands to (llama.cpp `-tb`, the prompt threads); none picks
    /// from the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_threads: Option<u32>,
}

/// The decode and prompt threads a local model server should use on this machine, from the
/// logical CPUs: measured on a shared 2-core machine, one decode thread beats two (`-t 1
/// -tb 2`); with more CPUs, half of them decode (logical CPUs are usually hyper-threads) and
/// all of them read the prompt.
pub fn machine_threads() -> (u32, u32) {
    let cpus = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1);
    threads_for(cpus)
}

/// [`machine_threads`] for a machine of `cpus` logical CPUs.
pub fn threads_for(cpus: u32) -> (u32, u32) {
    let cpus = cpus.max(1);
    if cpus <= 2 { (1, cpus) } else { ((cpus / 2).min(16), cpus.min(32)) }
}

impl ManagedServerConfig {
    /// The `{threads}` and `{batch_threads}` values: the configured ones, else the machine's.
    pub fn threads(&self) -> (u32, u32) {
        let (t, tb) = machine_threads();
        (self.threads.unwrap_or(t).max(1), self.batch_threads.unwrap_or(tb).max(1))
    }
}

fn default_startup_timeout_secs() -> u64 {
    60
}

/// Price per 1,000 tokens, for cost accounting and budgets.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    /// Price of 1,000 prompt tokens.
    #[serde(default)]
    pub prompt_per_1k: f64,
    /// Price of 1,000 completion tokens.
    #[serde(default)]
    pub completion_per_1k: f64,
}

/// One `[agents.NAME]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The transport: `cli`, `openai`, `ollama` or `llamacpp`.
    pub kind: AgentKind,
    /// `cli`: the program to run (looked up on `PATH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// `cli`: the argument template; `{prompt}`, `{workdir}` and `{model}` expand.
    /// Empty means the vendor's documented non-interactive invocation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// `cli`: which vendor CLI this is (decides output parsing); inferred from `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<CliFlavor>,
    /// `cli`: pass the prompt as an argument (`arg`) or on standard input (`stdin`).
    #[serde(default)]
    pub prompt_input: PromptInput,
    /// HTTP kinds: the server's base URL (for `openai`/`llamacpp` including `/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The model to ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The name of the environment variable holding the API key (never the key itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// What this agent is best at; the dynamic planner prefers it for that role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// A one-line description shown in listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Total time one call may take, in seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// HTTP kinds: time to establish a connection, in seconds.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// HTTP kinds: time from sending a request until the first byte of the answer, in
    /// seconds. None means the default: 30 s, and for a local server 45 s plus one second
    /// per 30 prompt tokens (a small model on one core reads ~60 tokens/s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_timeout_secs: Option<u64>,
    /// HTTP kinds: the longest silence between two pieces of an answer, in seconds.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Requests and tokens per minute.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Retries of transient failures.
    #[serde(default)]
    pub retry: RetryConfig,
    /// The circuit breaker.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// Agents that answer the same request, in order, when this one fails transiently
    /// or its breaker is open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<String>,
    /// At most this many calls to the agent at once (1 for a local server with one slot);
    /// the others wait their turn. None: no bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_calls: Option<u32>,
    /// Disabled agents are listed but never called.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// A local model server troupe starts on demand for this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ManagedServerConfig>,
    /// Price per 1,000 tokens, for cost accounting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<PriceConfig>,
    /// Extra environment variables for a CLI agent's process.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    // --- generation settings (issue 15): defaults for every request of this agent; a
    // request's (or a workflow step's) explicit value wins. See `generation_defaults`.
    /// Sampling temperature, 0 to 2 (0 = as deterministic as the server allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling: keep the smallest set of tokens whose probability adds up to this
    /// (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Keep only the this many most likely tokens (llama.cpp, Ollama; 0 = no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Drop tokens less likely than this fraction of the most likely one (llama.cpp,
    /// Ollama; 0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
    /// Penalty for repeating recent tokens (llama.cpp, Ollama; 1 = none, about 1.1 stops
    /// the loops small models fall into).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_penalty: Option<f32>,
    /// Upper bound of completion tokens per call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sequences that end the answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Sampling seed, for repeatable answers where the server supports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The model's context window in tokens, when the server cannot say (it wins over what
    /// the server reports; Ollama also receives it as `num_ctx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_tokens: Option<u32>,
}

fn default_timeout_secs() -> u64 {
    600
}

fn default_connect_timeout_secs() -> u64 {
    10
}

/// The default of `idle_timeout_secs`.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 30;

fn default_idle_timeout_secs() -> u64 {
    DEFAULT_IDLE_TIMEOUT_SECS
}

fn default_true() -> bool {
    true
}

impl AgentConfig {
    /// A configuration of `kind` with every optional field at its default.
    pub fn new(kind: AgentKind) -> AgentConfig {
        AgentConfig {
            kind,
            command: None,
            args: Vec::new(),
            flavor: None,
            prompt_input: PromptInput::Arg,
            base_url: None,
            model: None,
            api_key_env: None,
            role: None,
            description: None,
            timeout_secs: default_timeout_secs(),
            connect_timeout_secs: default_connect_timeout_secs(),
            first_byte_timeout_secs: None,
            idle_timeout_secs: default_idle_timeout_secs(),
            rate_limit: RateLimitConfig {
                max_wait_secs: default_max_wait_secs(),
                ..Default::default()
            },
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
            fallback: Vec::new(),
            max_concurrent_calls: None,
            enabled: true,
            server: None,
            price: None,
            env: BTreeMap::new(),
            temperature: None,
            top_p: None,
            top_k: None,
            min_p: None,
            repeat_penalty: None,
            max_tokens: None,
            stop: Vec::new(),
            seed: None,
            context_tokens: None,
        }
    }

    /// The configured generation settings, as the defaults of every request of this agent.
    pub fn generation_defaults(&self) -> crate::generation::GenerationOptions {
        crate::generation::GenerationOptions {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            max_tokens: self.max_tokens,
            stop: self.stop.clone(),
            seed: self.seed,
            context_tokens: self.context_tokens,
            output: crate::generation::OutputFormat::Text,
        }
    }

    /// The CLI flavor: the configured one, or the one the command's name implies.
    pub fn cli_flavor(&self) -> CliFlavor {
        self.flavor
            .or_else(|| self.command.as_deref().map(CliFlavor::from_command))
            .unwrap_or(CliFlavor::Generic)
    }

    /// Whether every connection this agent opens stays on this machine: a CLI agent never
    /// counts as local (it talks to its vendor's cloud), an HTTP agent does when its
    /// `base_url` host is a loopback address or `localhost`.
    pub fn is_local(&self) -> bool {
        match self.kind {
            AgentKind::Cli => false,
            _ => self.base_url.as_deref().is_some_and(is_loopback_url),
        }
    }

    /// What to show for this agent's endpoint in listings: the URL or the command.
    pub fn endpoint(&self) -> String {
        match self.kind {
            AgentKind::Cli => {
                let mut s = self.command.clone().unwrap_or_default();
                for a in &self.args {
                    s.push(' ');
                    s.push_str(a);
                }
                s
            }
            _ => self.base_url.clone().unwrap_or_default(),
        }
    }
}

/// The agents a call to `agent` may end at, in the order they are tried: the agent, its
/// own `fallback` chain, then each of the step's `fallbacks` followed by its own chain.
/// Each agent once; disabled fallbacks are left out (unknown ones stay: calling them says
/// what is wrong). The one statement of that order: the runtime's call path and
/// `AgentRegistry::with_fallbacks` both follow it.
pub fn fallback_chain(
    agents: &BTreeMap<String, AgentConfig>,
    agent: &str,
    step_fallbacks: &[String],
) -> Vec<String> {
    let mut chain = vec![agent.to_string()];
    let own = |name: &str| agents.get(name).map(|c| c.fallback.clone()).unwrap_or_default();
    for head in std::iter::once(agent).chain(step_fallbacks.iter().map(String::as_str)) {
        for name in std::iter::once(head.to_string()).chain(own(head)) {
            let disabled = agents.get(&name).is_some_and(|c| !c.enabled);
            if !chain.contains(&name) && !disabled {
                chain.push(name);
            }
        }
    }
    chain
}

/// Whether a URL's host is `localhost` or a loopback IP address.
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    match parsed.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_chain_is_the_agents_own_then_the_steps_each_once() {
        let mut agents = BTreeMap::new();
        let with = |fallback: &[&str]| {
            let mut a = AgentConfig::new(AgentKind::Llamacpp);
            a.fallback = fallback.iter().map(|f| f.to_string()).collect();
            a
        };
        agents.insert("a".to_string(), with(&["x", "b"]));
        agents.insert("b".to_string(), with(&["y", "a"]));
        agents.insert("x".to_string(), with(&[]));
        agents.insert("y".to_string(), with(&[]));
        let mut off = with(&[]);
        off.enabled = false;
        agents.insert("off".to_string(), off);
        let chain = fallback_chain(&agents, "a", &["off".to_string(), "b".to_string()]);
        assert_eq!(chain, ["a", "x", "b", "y"]);
        assert_eq!(fallback_chain(&agents, "x", &[]), ["x"]);
    }

    #[test]
    fn loopback_urls_are_recognised() {
        assert!(is_loopback_url("http://127.0.0.1:8080/v1"));
        assert!(is_loopback_url("http://127.3.4.5/v1"));
        assert!(is_loopback_url("http://localhost:11434"));
        assert!(is_loopback_url("http://[::1]:8080"));
        assert!(!is_loopback_url("https://api.openai.com/v1"));
        assert!(!is_loopback_url("http://192.168.1.10:8080"));
        assert!(!is_loopback_url("not a url"));
    }

    #[test]
    fn flavor_is_inferred_from_the_command_name() {
        assert_eq!(CliFlavor::from_command("/usr/local/bin/claude"), CliFlavor::Claude);
        assert_eq!(CliFlavor::from_command("codex"), CliFlavor::Codex);
        assert_eq!(CliFlavor::from_command("my-agent"), CliFlavor::Generic);
        let mut cfg = AgentConfig::new(AgentKind::Cli);
        cfg.command = Some("gemini".into());
        assert_eq!(cfg.cli_flavor(), CliFlavor::Gemini);
        cfg.flavor = Some(CliFlavor::Generic);
        assert_eq!(cfg.cli_flavor(), CliFlavor::Generic);
    }

    #[test]
    fn threads_follow_the_machine() {
        assert_eq!(threads_for(1), (1, 1));
        assert_eq!(
            threads_for(2),
            (1, 2),
            "measured: one decode thread on a shared 2-core machine"
        );
        assert_eq!(threads_for(8), (4, 8));
        assert_eq!(threads_for(0), (1, 1));
        let mut s = ManagedServerConfig {
            command: "x".into(),
            args: vec![],
            env: BTreeMap::new(),
            startup_timeout_secs: 1,
            threads: Some(3),
            batch_threads: None,
        };
        assert_eq!(s.threads(), (3, machine_threads().1));
        s.threads = Some(0);
        assert_eq!(s.threads().0, 1, "0 threads is read as 1");
    }

    #[test]
    fn cli_agents_are_never_local() {
        let mut cfg = AgentConfig::new(AgentKind::Cli);
        cfg.command = Some("claude".into());
        assert!(!cfg.is_local());
        let mut http = AgentConfig::new(AgentKind::Openai);
        http.base_url = Some("http://127.0.0.1:1/v1".into());
        assert!(http.is_local());
    }
}
