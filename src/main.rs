//! The `troupe` binary: thin front-ends (CLI, shell, HTTP server) over the runtime.

mod cli;
mod client;
mod commands;
mod exit;
mod open;
mod render;
mod serve_file;
mod server;
mod shell;
mod time;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use troupe_observability::{LogFormat, LogOptions, TelemetryGuard, TelemetryPlan};
use troupe_workflows::Config;

use crate::cli::{Cli, Command, LogFormatArg};
use crate::exit::code;

fn main() -> ExitCode {
    quiet_broken_pipe();
    let cli = Cli::parse();
    let log = LogOptions {
        format: match cli.global.log_format {
            LogFormatArg::Human => LogFormat::Human,
            LogFormatArg::Json => LogFormat::Json,
        },
        verbosity: cli.global.verbose as i8 - cli.global.quiet as i8,
    };
    match run(cli, log) {
        Ok(c) => code(c),
        Err(e) => {
            eprintln!("troupe: {e:#}");
            code(exit::FAILED)
        }
    }
}

/// Install logging (and, when `telemetry` says so, trace export); on a bad `RUST_LOG`, the
/// exit code to leave with.
fn start_logging(log: LogOptions, telemetry: &TelemetryPlan) -> Result<TelemetryGuard, u8> {
    troupe_observability::init(log, telemetry).map_err(|e| {
        eprintln!("troupe: {e}");
        exit::USAGE
    })
}

fn run(cli: Cli, log: LogOptions) -> anyhow::Result<u8> {
    let global = &cli.global;
    let no_telemetry =
        TelemetryPlan::Disabled(troupe_observability::telemetry::DisabledReason::NotConfigured);
    // Commands that need no configuration: plain logs on standard error.
    match &cli.command {
        Command::Init(args) => {
            let _logs = match start_logging(log, &no_telemetry) {
                Ok(g) => g,
                Err(c) => return Ok(c),
            };
            return commands::config::init(&args.path, args.force);
        }
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "troupe", &mut std::io::stdout());
            return Ok(exit::OK);
        }
        _ => {}
    }
    let mut loaded = match Config::load(global.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            let _logs = start_logging(log, &no_telemetry);
            eprintln!("troupe: {e}");
            return Ok(exit::USAGE);
        }
    };
    if global.offline {
        loaded.config.settings.offline = true;
    }
    // From here on, no log line shows a configured secret (API keys, bearer tokens, values
    // of the variables named in settings.secret_env).
    troupe_observability::redact::install(loaded.config.redactor());
    let offline = loaded.config.settings.offline;
    // Telemetry follows the configuration (and the standard OTEL_* variables); a broken
    // configuration runs nothing worth tracing. The guard lives until the command returns,
    // then exports the last spans.
    let telemetry = if loaded.problems.has_errors() {
        no_telemetry
    } else {
        TelemetryPlan::from_env(&loaded.config.telemetry_options())
    };
    let _telemetry = match start_logging(log, &telemetry) {
        Ok(g) => g,
        Err(c) => return Ok(c),
    };
    match cli.command {
        Command::Validate(f) => commands::config::validate(&loaded, f.json),
        Command::Agents(f) => match commands::config::require_valid(loaded) {
            Ok((config, _)) => commands::config::agents(&config, offline, f.json),
            Err(c) => Ok(c),
        },
        Command::Doctor(f) => commands::doctor::doctor(&loaded, f.json),
        Command::Metrics => match commands::config::require_valid(loaded) {
            Ok((config, source)) => commands::run::metrics_command(config, source),
            Err(c) => Ok(c),
        },
        Command::Usage(args) => match commands::config::require_valid(loaded) {
            // Through a running `troupe serve` when there is one: it holds the store.
            Ok((config, source)) => match commands::via_api::find_server(&config.data_dir()) {
                Some(server) => commands::via_api::usage_command(&config, &server, &args),
                None => commands::usage::usage_command(config, source, args),
            },
            Err(c) => Ok(c),
        },
        Command::Workflows(f) => match commands::config::require_valid(loaded) {
            Ok((config, _)) => commands::config::workflows(&config, f.json),
            Err(c) => Ok(c),
        },
        Command::Run(args) => match commands::config::require_valid(loaded) {
            // Through a running `troupe serve` when there is one: it holds the store.
            Ok((config, source)) => match commands::via_api::find_server(&config.data_dir()) {
                Some(server) => commands::via_api::run_command(&config, &server, args),
                None => commands::run::run_command(config, source, args),
            },
            Err(c) => Ok(c),
        },
        Command::Runs(crate::cli::RunsArgs {
            command: Some(crate::cli::RunsCommand::Audit { id, json }),
            json: all_json,
        }) => commands::audit::audit_command(&loaded.config, &id, json || all_json),
        Command::Runs(args) => match commands::config::require_valid(loaded) {
            // Through a running `troupe serve` when there is one: it holds the store.
            Ok((config, source)) => match commands::via_api::find_server(&config.data_dir()) {
                Some(server) => commands::via_api::runs_command(&config, &server, args),
                None => commands::run::runs_command(config, source, args),
            },
            Err(c) => Ok(c),
        },
        Command::Plan(args) => match commands::config::require_valid(loaded) {
            Ok((config, source)) => commands::plan::plan_command(config, source, args),
            Err(c) => Ok(c),
        },
        Command::Models(args) => match commands::config::require_valid(loaded) {
            Ok((config, _)) => block_on(async move {
                use crate::cli::ModelsCommand as M;
                match args.command {
                    M::Status(f) => commands::models::status(&config, f.json).await,
                    M::List(f) => commands::models::list(&config, f.json).await,
                    M::Pull { name, agent, json } => {
                        commands::models::pull(&config, agent.as_deref(), &name, json).await
                    }
                    M::Remove { name, agent, json } => {
                        commands::models::remove(&config, agent.as_deref(), &name, json).await
                    }
                }
            }),
            Err(c) => Ok(c),
        },
        Command::TestAgent(args) => match commands::config::require_valid(loaded) {
            Ok((config, _)) => block_on(async move {
                let opts = commands::test_agent::TestAgentOptions {
                    max_tokens: args.max_tokens,
                    temperature: args.temperature,
                    system: args.system,
                    json: args.json,
                };
                commands::test_agent::test_agent(&config, &args.agent, &args.prompt, opts).await
            }),
            Err(c) => Ok(c),
        },
        Command::Serve(args) => match commands::config::require_valid(loaded) {
            Ok((config, source)) => server::serve(config, source, args),
            Err(c) => Ok(c),
        },
        Command::Shell(args) => match commands::config::require_valid(loaded) {
            Ok((config, source)) => shell::shell(config, source, args),
            Err(c) => Ok(c),
        },
        Command::Context(args) => match commands::config::require_valid(loaded) {
            Ok((config, _)) => commands::context::context_command(&config, args),
            Err(c) => Ok(c),
        },
        Command::Export(args) => match commands::config::require_valid(loaded) {
            Ok((config, _)) => commands::export::export_command(&config, args),
            Err(c) => Ok(c),
        },
        Command::Init(_) | Command::Completions { .. } => Ok(exit::OK),
    }
}

/// Run an async command on a tokio runtime of its own.
pub(crate) fn block_on(
    fut: impl std::future::Future<Output = anyhow::Result<u8>>,
) -> anyhow::Result<u8> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(fut)
}

/// `troupe runs | head` closes our stdout early: exit quietly (128 + SIGPIPE, as a shell
/// would report) instead of panicking. SIGPIPE itself stays ignored, because troupe writes
/// prompts into agent processes' standard input and must survive one exiting early.
fn quiet_broken_pipe() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
}
