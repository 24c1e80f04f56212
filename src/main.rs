//! The `troupe` binary: thin front-ends (CLI, shell, HTTP server) over the runtime.

mod cli;
mod commands;
mod output;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use troupe_observability::{LogFormat, LogOptions};
use troupe_workflows::Config;

use crate::cli::{Cli, Command, LogFormatArg};
use crate::commands::{code, exit};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = LogOptions {
        format: match cli.global.log_format {
            LogFormatArg::Human => LogFormat::Human,
            LogFormatArg::Json => LogFormat::Json,
        },
        verbosity: cli.global.verbose as i8 - cli.global.quiet as i8,
    };
    if let Err(e) = troupe_observability::init(log) {
        eprintln!("troupe: {e}");
        return code(exit::USAGE);
    }
    match run(cli) {
        Ok(c) => code(c),
        Err(e) => {
            eprintln!("troupe: {e:#}");
            code(exit::FAILED)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let global = &cli.global;
    // Commands that need no configuration.
    match &cli.command {
        Command::Init(args) => return commands::config::init(&args.path, args.force),
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "troupe", &mut std::io::stdout());
            return Ok(exit::OK);
        }
        _ => {}
    }
    let mut loaded = match Config::load(global.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("troupe: {e}");
            return Ok(exit::USAGE);
        }
    };
    if global.offline {
        loaded.config.settings.offline = true;
    }
    let offline = loaded.config.settings.offline;
    match cli.command {
        Command::Validate(f) => commands::config::validate(&loaded, f.json),
        Command::Agents(f) => match commands::config::require_valid(loaded) {
            Ok((config, _)) => commands::config::agents(&config, offline, f.json),
            Err(c) => Ok(c),
        },
        Command::Workflows(f) => match commands::config::require_valid(loaded) {
            Ok((config, _)) => commands::config::workflows(&config, f.json),
            Err(c) => Ok(c),
        },
        Command::Init(_) | Command::Completions { .. } => Ok(exit::OK),
    }
}
