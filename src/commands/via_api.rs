//! `troupe run` and `troupe runs …` through the HTTP API of the `troupe serve` that holds
//! the store (found through its `serve.json`): the same output, JSON and exit codes as when
//! they open the store themselves.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use troupe_context::Store;
use troupe_runtime::{RunEvent, RunRecord};
use troupe_workflows::Config;

use super::change::{self, ApplyMode, Target};
use super::exit;
use super::run::{exit_code, print_cleanup_plan, print_run, print_runs, print_stats};
use crate::cli::{RunArgs, RunsArgs, RunsCommand};
use crate::client::{Client, ClientError};
use crate::render::{EventPrinter, short_id};
use crate::serve_file::{self, ServeFile, holder_command};

/// How many times a lost event stream is reopened before giving up.
const RECONNECTS: u32 = 6;
/// How long a server that has just opened the store gets to publish its `serve.json`.
const PUBLISH_WAIT: Duration = Duration::from_secs(3);

/// The `troupe serve` holding the store in `data_dir`, if one does. A server that holds
/// the store but has not written its `serve.json` yet (it does so once it listens) gets a
/// moment to do it.
pub fn find_server(data_dir: &Path) -> Option<ServeFile> {
    if let Some(server) = serve_file::running(data_dir) {
        return Some(server);
    }
    let holder = Store::holder(data_dir)?;
    if holder.alive == Some(false) || holder_command(&holder.command) != Some("serve") {
        return None;
    }
    let deadline = std::time::Instant::now() + PUBLISH_WAIT;
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(server) = serve_file::running(data_dir) {
            return Some(server);
        }
    }
    None
}

/// A client for `server` with the configured token; `None` (after saying why) when the
/// server needs a token and none is configured.
pub(crate) fn client(config: &Config, server: &ServeFile) -> Result<Option<Client>> {
    let token = crate::serve_file::resolve_token(None, config);
    if server.token_required && token.is_none() {
        let named = config
            .settings
            .api_token_env
            .as_deref()
            .map(|n| format!(" (settings.api_token_env names ${n}, which is not set)"))
            .unwrap_or_default();
        eprintln!(
            "troupe: the store is held by `troupe serve` (pid {}) at {}, which needs a bearer \
             token{named}: set $TROUPE_API_TOKEN to the token it was started with",
            server.pid,
            server.url()
        );
        return Ok(None);
    }
    tracing::info!(pid = server.pid, url = %server.url(), "going through troupe serve, which holds the store");
    Ok(Some(Client::new(server, token)?))
}

/// Print an error answer like the local path prints the runtime's error; `code` is the
/// exit code of an error answer (the one the local path has for the same refusal).
fn failed(e: ClientError, code: u8, client: &Client) -> u8 {
    eprintln!("troupe: {e}");
    match e {
        ClientError::Api { .. } => code,
        ClientError::Unreachable(_) => {
            eprintln!(
                "troupe: if the server is stuck, stop it (`kill {}`) and try again",
                client.pid()
            );
            exit::FAILED
        }
        ClientError::Protocol(_) => exit::FAILED,
    }
}

/// `troupe runs …` through the server.
pub fn runs_command(config: &Config, server: &ServeFile, args: RunsArgs) -> Result<u8> {
    let Some(client) = client(config, server)? else {
        return Ok(exit::USAGE);
    };
    crate::block_on(async move {
        // Each arm asks, then prints what it got exactly as the local path prints it.
        macro_rules! ask {
            ($request:expr) => {
                match $request.await {
                    Ok(answer) => answer,
                    Err(e) => return Ok(failed(e, exit::FAILED, &client)),
                }
            };
        }
        match args.command {
            None => print_runs(&ask!(client.runs()), args.json)?,
            Some(RunsCommand::List(f)) => print_runs(&ask!(client.runs()), f.json || args.json)?,
            Some(RunsCommand::Show { id, prompts, json }) => {
                let (r, steps) = ask!(client.run(&id));
                // The audit trail is in plain files beside the store: read here, as locally.
                let trail = if prompts {
                    let dir = troupe_runtime::audit::audit_dir(&config.data_dir());
                    troupe_runtime::audit::read(&dir, &r.id).ok()
                } else {
                    None
                };
                let checks = ask!(client.run_checks(&r.id));
                print_run(&r, &steps, &checks, trail.as_deref(), prompts, json || args.json)?;
            }
            Some(RunsCommand::Stats(f)) => print_stats(&ask!(client.stats()), f.json || args.json)?,
            Some(RunsCommand::Cancel { id }) => {
                println!("run {} cancelled", ask!(client.cancel(&id)))
            }
            Some(RunsCommand::Resume { id, budget_tokens, budget_cost, json }) => {
                let budget = troupe_runtime::Budget { tokens: budget_tokens, cost: budget_cost };
                let id = ask!(client.resume(&id, budget));
                let record = follow(&client, &id, json || args.json).await?;
                return Ok(exit_code(&record));
            }
            // Read from the audit files without the store, before this dispatch.
            Some(RunsCommand::Audit { .. }) => {}
            Some(
                c @ (RunsCommand::Diff { .. }
                | RunsCommand::Apply { .. }
                | RunsCommand::Revert { .. }
                | RunsCommand::Discard { .. }),
            ) => {
                let Some(cmd) = change::ChangeCommand::from_runs(&c, args.json) else {
                    return Ok(exit::USAGE);
                };
                return change::run(Target::Remote(&client), cmd).await;
            }
            // A dry run only reads: the server's records say what would go.
            Some(RunsCommand::Cleanup { older_than, dry_run: true }) => {
                let before = chrono::Utc::now() - chrono::Duration::days(i64::from(older_than));
                let mut runs = ask!(client.runs());
                runs.reverse();
                print_cleanup_plan(&super::run::ended_before(runs, before), older_than);
            }
            Some(RunsCommand::Cleanup { .. }) => {
                eprintln!(
                    "troupe: `runs cleanup` deletes records, which needs the store to itself, and \
                     `troupe serve` (pid {}) at {} holds it: stop the server (Ctrl-C, or `kill {}`) \
                     and run this again",
                    client.pid(),
                    client.base(),
                    client.pid()
                );
                return Ok(exit::FAILED);
            }
        }
        Ok(exit::OK)
    })
}

/// `troupe run "task"` through the server: submit, then follow its events.
pub fn run_command(config: &Config, server: &ServeFile, args: RunArgs) -> Result<u8> {
    let Some(client) = client(config, server)? else {
        return Ok(exit::USAGE);
    };
    // The run is for the project here (the server's working folder may be elsewhere).
    let project = args.project.clone().unwrap_or_else(|| config.project_path());
    let project = std::path::absolute(&project).unwrap_or(project);
    let mut body = json!({
        "task": args.task,
        "offline": config.settings.offline,
        "project": project,
    });
    if let Some(w) = &args.workflow {
        body["workflow"] = Value::from(w.as_str());
    }
    if let Some(n) = args.max_iterations {
        body["max_iterations"] = Value::from(n);
    }
    if let Some(n) = args.budget_tokens {
        body["budget_tokens"] = Value::from(n);
    }
    if let Some(c) = args.budget_cost {
        body["budget_cost"] = Value::from(c);
    }
    let mode = change::apply_mode(config);
    for (flag, on) in [
        ("in_place", args.in_place),
        ("no_validate", args.no_validate),
        ("apply", args.apply || mode == ApplyMode::Auto),
    ] {
        if on {
            body[flag] = Value::Bool(true);
        }
    }
    crate::block_on(async move {
        let id = match client.execute(&body).await {
            Ok(id) => id,
            // Like the local path: a request that cannot run is a usage error.
            Err(e) => return Ok(failed(e, exit::USAGE, &client)),
        };
        let record = follow(&client, &id, args.json).await?;
        // A green run's change, in a terminal: apply it now?
        if let Some(code) =
            change::offer_apply(Target::Remote(&client), mode, &record, args.json).await?
        {
            return Ok(code);
        }
        Ok(exit_code(&record))
    })
}

/// Print a run's events from the server as they arrive (reopening the stream after the last
/// event seen when it breaks), then its summary; returns the final record. Ctrl-C cancels
/// the run on the server; a second Ctrl-C exits at once.
pub async fn follow(client: &Client, id: &str, json: bool) -> Result<RunRecord> {
    let watcher = tokio::spawn(cancel_on_ctrl_c(CtrlC::listen()?, client.clone(), id.to_string()));
    let result = follow_events(client, id, json).await;
    watcher.abort();
    result
}

async fn follow_events(client: &Client, id: &str, json: bool) -> Result<RunRecord> {
    let mut printer = EventPrinter::new(json);
    let mut last: Option<u64> = None;
    let mut attempt = 0u32;
    'follow: loop {
        let lost = match client.events(id, last).await {
            Ok(mut stream) => loop {
                match stream.next().await {
                    Ok(Some(e)) => {
                        attempt = 0;
                        last = e.id.or(last);
                        let event: RunEvent = match serde_json::from_str(&e.data) {
                            Ok(event) => event,
                            Err(err) => {
                                tracing::debug!(event = %e.event, error = %err, "skipping an event this troupe does not know");
                                continue;
                            }
                        };
                        if printer.event(&event)? {
                            break 'follow;
                        }
                    }
                    Ok(None) => {
                        break ClientError::Unreachable(format!(
                            "`troupe serve` at {} ended the event stream before the run finished",
                            client.base()
                        ));
                    }
                    Err(e) => break e,
                }
            },
            Err(e) if e.is_unreachable() => e,
            Err(e) => return Err(e.into()),
        };
        // The run may have ended while the stream was down.
        if let Ok((record, _)) = client.run(id).await
            && record.state.is_final()
        {
            printer.finish(&record)?;
            return Ok(record);
        }
        attempt += 1;
        if attempt > RECONNECTS {
            anyhow::bail!(
                "lost the server while following run {id}: {lost}. The run is stored: \
                 `troupe runs show {id}` shows it, and if the server died it was interrupted and \
                 `troupe runs resume {id}` continues it"
            );
        }
        tracing::debug!(attempt, error = %lost, "event stream lost; reconnecting");
        tokio::time::sleep(Duration::from_millis((125u64 << attempt.min(5)).min(2000))).await;
    }
    let record = final_record(client, id).await?;
    printer.finish(&record)?;
    Ok(record)
}

/// The run's record once the server has stored its end (it does before it sends the last
/// event; a few tries cover a slow disk).
async fn final_record(client: &Client, id: &str) -> Result<RunRecord> {
    let mut tries = 0;
    loop {
        let (record, _) = client.run(id).await?;
        tries += 1;
        if record.state.is_final() || tries >= 10 {
            return Ok(record);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Ctrl-C presses, counted from when it was created (a press while nobody waits is kept).
struct CtrlC {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl CtrlC {
    fn listen() -> Result<CtrlC> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(CtrlC { signal: signal(SignalKind::interrupt())? })
        }
        #[cfg(not(unix))]
        Ok(CtrlC {})
    }

    /// The next press; false when no more can be seen.
    async fn pressed(&mut self) -> bool {
        #[cfg(unix)]
        {
            self.signal.recv().await.is_some()
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await.is_ok()
    }
}

/// First Ctrl-C: cancel the run on the server; second: exit now.
async fn cancel_on_ctrl_c(mut ctrl_c: CtrlC, client: Client, id: String) {
    if !ctrl_c.pressed().await {
        return;
    }
    eprintln!("\ntroupe: cancelling run {} (Ctrl-C again to exit now)", short_id(&id));
    let exit_now = |id: &str| -> ! {
        eprintln!("troupe: exiting; resume with `troupe runs resume {id}`");
        std::process::exit(130);
    };
    tokio::select! {
        r = client.cancel(&id) => {
            if let Err(e) = r {
                eprintln!("troupe: cannot cancel run {}: {e}", short_id(&id));
            }
        }
        again = ctrl_c.pressed() => if again { exit_now(&id) },
    }
    if ctrl_c.pressed().await {
        exit_now(&id);
    }
}

/// `troupe usage` through the server.
pub fn usage_command(
    config: &Config,
    server: &ServeFile,
    args: &crate::cli::UsageArgs,
) -> Result<u8> {
    let Some(client) = client(config, server)? else {
        return Ok(exit::USAGE);
    };
    // The project is a folder here; the server needs it absolute.
    let project = args.project.as_ref().map(|p| std::path::absolute(p).unwrap_or(p.clone()));
    crate::block_on(async move {
        match client.usage(project.as_deref(), args.since).await {
            Ok(report) => {
                super::usage::print_report(&report, args.json)?;
                Ok(exit::OK)
            }
            Err(e) => Ok(failed(e, exit::USAGE, &client)),
        }
    })
}
