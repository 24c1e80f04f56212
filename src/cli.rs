//! The command line: every command, flag and its help text.

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
    /// Write a commented troupe.toml to start from
    Init(InitArgs),
    /// Check the configuration and print every problem with its file, line and column
    Validate(JsonFlag),
    /// List the configured agents
    Agents(JsonFlag),
    /// List the configured workflows and their steps
    Workflows(JsonFlag),
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
