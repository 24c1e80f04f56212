//! The configuration model: `troupe.toml`.
//!
//! A [`Config`] is the built-in defaults ([`Config::builtin`]) with at most one file laid over
//! them ([`Config::load`]): `[settings]` keys override one by one, an `[agents.NAME]` or
//! `[workflows.NAME]` table replaces the built-in of that name whole (or adds a new one), and
//! environment variables override the common fields last. Loading never stops at the first
//! mistake: every problem is collected with its file, line and column ([`Problem`]).

mod builtin;
mod load;
mod template;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
pub use troupe_agent_config::config::{AgentConfig, AgentKind, Role};

pub use crate::problem::{Location, Problem, Problems, Severity};
pub use load::{ConfigSource, LoadedConfig, env_overrides, resolve_config_path};
pub use template::INIT_TEMPLATE;

/// The name of the workflow that asks a planner agent for the steps.
pub const DYNAMIC_WORKFLOW: &str = "dynamic";

/// The whole configuration: settings, agents, workflows and telemetry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Process-wide settings.
    pub settings: Settings,
    /// Agents by name.
    pub agents: BTreeMap<String, AgentConfig>,
    /// Workflows by name.
    pub workflows: BTreeMap<String, WorkflowConfig>,
    /// OpenTelemetry trace export (off unless an endpoint is set here or in the standard
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` variables).
    #[serde(default, skip_serializing_if = "TelemetryConfig::is_empty")]
    pub telemetry: TelemetryConfig,
    /// The `[validate]` table: the project's tests and linters, run after changes.
    #[serde(default)]
    pub validate: ValidateConfig,
    /// The `[edits]` table: the edit format asked of models and the patch-safety limits.
    #[serde(default)]
    pub edits: EditsConfig,
}

/// The `[validate]` table (and, merged over it, a workflow's `validate = { … }`): the
/// validators run in a run's workspace. Their results are the review's evidence; failing
/// validators count as "changes requested" whatever the review says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidateConfig {
    /// Whether validators run at all (`--no-validate` turns them off for one run).
    pub enabled: bool,
    /// The commands, split with shell quoting rules and run without a shell in the workspace;
    /// empty: detected from the project (Cargo.toml → `cargo test`, …).
    pub commands: Vec<String>,
    /// Each command is killed (with everything it started) after this many seconds.
    pub timeout_secs: u64,
    /// When they run.
    pub when: ValidateWhen,
}

impl Default for ValidateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            commands: Vec::new(),
            timeout_secs: 600,
            when: ValidateWhen::AfterChange,
        }
    }
}

/// When validators run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum ValidateWhen {
    /// After every step that changed files.
    #[default]
    AfterChange,
    /// Once, when the workflow's steps are done.
    End,
}

/// A workflow's `validate = { … }`: each field set here wins over `[validate]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(utoipa::ToSchema)]
pub struct ValidateOverride {
    /// Overrides `validate.enabled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Overrides `validate.commands` (an empty list: detect from the project).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<String>>,
    /// Overrides `validate.timeout_secs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Overrides `validate.when`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<ValidateWhen>,
}

impl ValidateOverride {
    /// `base` with this override's fields laid over it.
    pub fn over(&self, base: &ValidateConfig) -> ValidateConfig {
        ValidateConfig {
            enabled: self.enabled.unwrap_or(base.enabled),
            commands: self.commands.clone().unwrap_or_else(|| base.commands.clone()),
            timeout_secs: self.timeout_secs.unwrap_or(base.timeout_secs),
            when: self.when.unwrap_or(base.when),
        }
    }
}

/// The `[edits]` table: how models are asked to write changes, and what edits may touch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EditsConfig {
    /// The edit format asked of HTTP and local models.
    pub format: EditFormat,
    /// Globs of paths no edit may write (matched on the path relative to the project and on
    /// the file name). Setting it replaces the defaults; keep them in the list.
    pub protected: Vec<String>,
    /// At most this many files may change in one step; over it, the step's edits are refused.
    pub max_files: usize,
    /// At most this many lines (added plus removed) may change in one step.
    pub max_lines: usize,
    /// When a step's change leaves the validators failing, up to this many more answers are
    /// sampled from the same start (at `candidate_temperature`), each checked, and the first
    /// that passes is kept (0: never). Measured: for a bug the greedy answer never fixed, 3 of
    /// 5 samples at 0.9 did.
    pub candidates: u32,
    /// The sampling temperature of those extra candidates.
    pub candidate_temperature: f32,
}

impl Default for EditsConfig {
    fn default() -> Self {
        Self {
            format: EditFormat::Auto,
            protected: [".env*", "*.pem", "*.key", ".git/**"].map(String::from).to_vec(),
            max_files: 20,
            max_lines: 1500,
            candidates: 2,
            candidate_temperature: 0.8,
        }
    }
}

/// The edit format asked of a model (`[edits] format`): its one definition is the agents'
/// configuration vocabulary's.
pub use troupe_agent_config::EditFormat;

/// `settings.apply`: what happens to a run's change when the run ends green.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyMode {
    /// In a terminal, show the change's summary and ask; piped or `--json`, never apply.
    #[default]
    Ask,
    /// Apply it to the project (as `troupe run --apply`).
    Auto,
    /// Never apply; `troupe runs apply ID` does it later.
    Never,
}

/// The `[telemetry]` table: where troupe's trace spans are exported over OTLP/HTTP.
///
/// Nothing is exported, and no connection opened, without an endpoint (here or in
/// `$OTEL_EXPORTER_OTLP_ENDPOINT`); in offline mode only an endpoint on this machine is used.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP endpoint: a base URL like `http://127.0.0.1:4318` (`/v1/traces` is
    /// appended) or the full traces URL. Wins over `$OTEL_EXPORTER_OTLP_ENDPOINT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Extra request headers, often a collector's API key. Values are secrets: they are
    /// redacted wherever the configuration is shown. `$OTEL_EXPORTER_OTLP_HEADERS` adds to
    /// them (and wins per header).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The `service.name` of the spans (default `$OTEL_SERVICE_NAME`, else `troupe`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// The fraction of runs traced, from 0 to 1 (default 1: every run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_ratio: Option<f64>,
}

impl fmt::Debug for TelemetryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: BTreeMap<&str, &str> =
            self.headers.keys().map(|k| (k.as_str(), "<redacted>")).collect();
        f.debug_struct("TelemetryConfig")
            .field("endpoint", &self.endpoint)
            .field("headers", &headers)
            .field("service_name", &self.service_name)
            .field("sample_ratio", &self.sample_ratio)
            .finish()
    }
}

impl TelemetryConfig {
    /// Whether nothing is set (the table is left out when the configuration is written).
    pub fn is_empty(&self) -> bool {
        self == &TelemetryConfig::default()
    }
}

impl Config {
    /// What the telemetry set-up needs from this configuration: the `[telemetry]` table and
    /// the offline switch (resolve it with `TelemetryPlan::from_env`).
    pub fn telemetry_options(&self) -> troupe_observability::TelemetryOptions {
        troupe_observability::TelemetryOptions {
            endpoint: self.telemetry.endpoint.clone(),
            headers: self.telemetry.headers.clone(),
            service_name: self.telemetry.service_name.clone(),
            sample_ratio: self.telemetry.sample_ratio,
            offline: self.settings.offline,
        }
    }
}

/// The `[settings]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where troupe keeps its store and run records. `$TROUPE_HOME` wins over it;
    /// without either, the platform's data folder (`~/.local/share/troupe` on Linux).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Where the offline assets are installed (ONNX Runtime, the embedding model, the local
    /// model server). `$TROUPE_ASSETS` wins over it; without either, the user's data
    /// folder's `assets` (`~/.local/share/troupe/assets`), whatever the data folder: one
    /// install serves every `TROUPE_HOME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assets_dir: Option<PathBuf>,
    /// The project runs work on; without it, the current directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_path: Option<PathBuf>,
    /// Only agents on this machine are called; no other connection is opened.
    pub offline: bool,
    /// The workflow `troupe run` uses when none is named.
    pub default_workflow: String,
    /// The agent that plans dynamic workflows; without it, the first usable agent whose
    /// role is `plan`, then any usable agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planner_agent: Option<String>,
    /// Runs executing at once in one process; more wait their turn.
    pub max_concurrent_runs: usize,
    /// Tokens of project memory put into each prompt.
    pub context_token_budget: usize,
    /// The most tokens asked of one step's answer.
    pub max_output_tokens: u32,
    /// A review with at most this many suggestions counts as passed.
    pub review_max_suggestions: usize,
    /// The dynamic planner does not choose agents whose measured success rate is below this.
    pub min_success_rate: f64,
    /// Calls an agent must have made before its success rate is trusted.
    pub min_success_samples: u64,
    /// A folder of prompt templates (`implement.md`, `review.md`, …) overriding the built-ins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompts_dir: Option<PathBuf>,
    /// The name of the environment variable holding the bearer token `troupe serve`
    /// requires (never the token itself); `--token` and `$TROUPE_API_TOKEN` win over it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_token_env: Option<String>,
    /// Names of further environment variables whose values are secrets, masked everywhere
    /// troupe writes text (logs, traces, the audit trail, run records, API answers). The
    /// variables named by `api_key_env`/`api_token_env`, the values of CLI agents' `env`
    /// entries with secret-sounding names, and variables named `*_API_KEY`, `*_TOKEN`,
    /// `*_SECRET`, `*_PASSWORD`, … are masked without being listed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secret_env: Vec<String>,
    /// Tokens one run may use (prompt + completion, over all its calls). A call that could
    /// cross it is not made and the run ends `budget_exceeded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_token_budget: Option<u64>,
    /// Cost one run may incur, in the unit of the agents' `price`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_cost_budget: Option<f64>,
    /// Tokens all runs of one project may use (within `project_budget_days`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_token_budget: Option<u64>,
    /// Cost all runs of one project may incur (within `project_budget_days`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_cost_budget: Option<f64>,
    /// The project budgets count the runs of the last this many days; all runs without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_budget_days: Option<u32>,
    /// What happens to a run's change when the run ends green: `ask` (in a terminal),
    /// `auto` or `never`.
    pub apply: ApplyMode,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: None,
            assets_dir: None,
            project_path: None,
            offline: false,
            default_workflow: "default".to_string(),
            planner_agent: None,
            max_concurrent_runs: 8,
            context_token_budget: 1500,
            max_output_tokens: 1024,
            review_max_suggestions: 3,
            min_success_rate: 0.6,
            min_success_samples: 5,
            prompts_dir: None,
            api_token_env: None,
            secret_env: Vec::new(),
            run_token_budget: None,
            run_cost_budget: None,
            project_token_budget: None,
            project_cost_budget: None,
            project_budget_days: None,
            apply: ApplyMode::Ask,
        }
    }
}

/// A `[workflows.NAME]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct WorkflowConfig {
    /// What the workflow is for, shown in listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The steps, run in order; each step's output is the next step's input.
    pub steps: Vec<StepConfig>,
    /// How many times the steps may repeat before the run ends; iteration stops early when
    /// every step succeeded and the review passed.
    #[serde(default = "default_max_iterations")]
    pub max_iterations: u32,
    /// Validators for this workflow: fields set here win over `[validate]`
    /// (see [`Config::validate_for`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<ValidateOverride>,
}

fn default_max_iterations() -> u32 {
    3
}

impl WorkflowConfig {
    /// A workflow of `steps`, repeated at most `max_iterations` times, with no description
    /// and no validator settings of its own.
    pub fn new(max_iterations: u32, steps: Vec<StepConfig>) -> WorkflowConfig {
        WorkflowConfig { description: None, steps, max_iterations, validate: None }
    }
}

/// One step of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct StepConfig {
    /// The agent that runs the step.
    pub agent: String,
    /// What the step does; picks the prompt template.
    pub role: Role,
    /// A prompt template file for this step (relative to the config file), overriding the
    /// role's template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PathBuf>,
    /// Agents tried in order when this step's agent (with its own fallback chain) fails
    /// transiently, is not installed or has its breaker open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<String>,
    /// When the step runs; always, without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<StepCondition>,
    /// Sampling temperature for this step, overriding the agent's (0 to 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Upper bound of completion tokens for this step, overriding the agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

/// When a step runs within an iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum StepCondition {
    /// Every iteration.
    Always,
    /// Only in the first iteration.
    FirstIteration,
    /// Only after the first iteration.
    LaterIterations,
    /// Only when the latest review in this run requested changes.
    ChangesRequested,
}

impl StepConfig {
    /// A step of `agent` in `role`, always run, with no overrides.
    pub fn new(agent: &str, role: Role) -> StepConfig {
        StepConfig {
            agent: agent.to_string(),
            role,
            prompt: None,
            fallback: Vec::new(),
            condition: None,
            temperature: None,
            max_tokens: None,
        }
    }

    /// This step's overrides on top of `options` (what the runtime built for the call):
    /// the step's `temperature` and `max_tokens` win when set.
    pub fn apply_overrides(
        &self,
        mut options: troupe_agent_config::GenerationOptions,
    ) -> troupe_agent_config::GenerationOptions {
        if let Some(t) = self.temperature {
            options.temperature = Some(t);
        }
        if let Some(n) = self.max_tokens {
            options.max_tokens = Some(n);
        }
        options
    }
}

impl Config {
    /// The built-in defaults: the agents `claude`, `codex`, `gemini`, `copilot` (CLI),
    /// `local-code` and `local-instruct` (the local llama.cpp server installed by
    /// `scripts/setup.sh`), and the seven built-in workflows.
    pub fn builtin() -> Config {
        builtin::config()
    }

    /// Every problem in this configuration (not counting parse errors, which
    /// [`Config::load`] reports), with locations from `spans` where it knows them.
    pub fn validate(&self) -> Problems {
        validate::validate(self, &validate::NoSpans)
    }

    /// The validators for `workflow`: `[validate]` with the workflow's `validate = { … }`
    /// laid over it.
    pub fn validate_for(&self, workflow: &WorkflowConfig) -> ValidateConfig {
        match &workflow.validate {
            Some(over) => over.over(&self.validate),
            None => self.validate.clone(),
        }
    }

    /// Whether `name` can be asked for: a configured workflow or `dynamic` (planned for each
    /// task). The one check submit, the API and the shell make before a run.
    pub fn check_workflow(&self, name: &str) -> crate::Result<()> {
        if name == DYNAMIC_WORKFLOW || self.workflows.contains_key(name) {
            return Ok(());
        }
        let mut known: Vec<String> = self.workflows.keys().cloned().collect();
        known.push(DYNAMIC_WORKFLOW.to_string());
        Err(crate::Error::UnknownWorkflow {
            name: name.to_string(),
            known,
            planned: DYNAMIC_WORKFLOW,
        })
    }

    /// The workflow named `name`.
    pub fn workflow(&self, name: &str) -> Option<&WorkflowConfig> {
        self.workflows.get(name)
    }

    /// The agent named `name`.
    pub fn agent(&self, name: &str) -> Option<&AgentConfig> {
        self.agents.get(name)
    }

    /// The secret masker for this configuration: the values of the environment variables it
    /// names as holding secrets (`api_key_env`, `api_token_env`, `secret_env`,
    /// `TROUPE_API_TOKEN`), of every variable whose name says it is a secret, and of CLI
    /// agents' `env` entries with secret-sounding names.
    pub fn redactor(&self) -> troupe_observability::redact::Redactor {
        use troupe_observability::redact::{Redactor, is_secret_name};
        let mut names: Vec<&str> = vec!["TROUPE_API_TOKEN"];
        names.extend(self.settings.api_token_env.as_deref());
        names.extend(self.settings.secret_env.iter().map(String::as_str));
        names.extend(self.agents.values().filter_map(|a| a.api_key_env.as_deref()));
        let inline = self
            .agents
            .values()
            .flat_map(|a| a.env.iter())
            .filter(|(k, _)| is_secret_name(k))
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>();
        Redactor::from_env(names, inline)
    }

    /// The data folder: `$TROUPE_HOME`, else `settings.data_dir`, else the platform's data
    /// folder (`~/.local/share/troupe` on Linux), else `./.troupe`.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(home) = std::env::var_os("TROUPE_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(home);
        }
        if let Some(dir) = &self.settings.data_dir {
            return dir.clone();
        }
        default_data_dir()
    }

    /// The offline assets folder (ONNX Runtime, the embedding model, the local model
    /// server and its model), as installed by `scripts/setup.sh`: `$TROUPE_ASSETS`, else
    /// `settings.assets_dir`, else [`default_assets_dir`]. The only place that decides it;
    /// independent of the data folder, so every `TROUPE_HOME` shares one install.
    pub fn assets_dir(&self) -> PathBuf {
        if let Some(dir) = std::env::var_os("TROUPE_ASSETS").filter(|v| !v.is_empty()) {
            return PathBuf::from(dir);
        }
        if let Some(dir) = &self.settings.assets_dir {
            return dir.clone();
        }
        default_assets_dir()
    }

    /// The project folder: `settings.project_path`, else the current directory.
    pub fn project_path(&self) -> PathBuf {
        self.settings
            .project_path
            .clone()
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// The agents a workflow uses (step agents and their fallbacks), in order, once each.
    pub fn agents_of(&self, workflow: &WorkflowConfig) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |name: &str| {
            if !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
        };
        for step in &workflow.steps {
            push(&step.agent);
            for f in &step.fallback {
                push(f);
            }
            if let Some(agent) = self.agents.get(&step.agent) {
                for f in &agent.fallback {
                    push(f);
                }
            }
        }
        out
    }
}

/// Where `scripts/setup.sh` installs the offline assets when neither `$TROUPE_ASSETS` nor
/// `settings.assets_dir` says otherwise: `assets` in the user's data folder
/// (`~/.local/share/troupe/assets` on Linux), not in `$TROUPE_HOME`.
pub fn default_assets_dir() -> PathBuf {
    default_data_dir().join("assets")
}

/// The platform data folder for troupe, without looking at the configuration.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir().map(|d| d.join("troupe")).unwrap_or_else(|| PathBuf::from(".troupe"))
}

/// The user's configuration file in the platform config folder
/// (`~/.config/troupe/troupe.toml` on Linux).
pub fn user_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("troupe").join("troupe.toml"))
}

/// Turn a byte offset into a 1-based line and column (in characters).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Whether `path` looks like a file a user could mean (used by `init` and errors).
pub fn display_path(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests;
