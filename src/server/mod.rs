//! `troupe serve`: the HTTP API (actix-web) over the runtime.
//!
//! Every failure answers `{"error": {"code", "message"}}`. On a loopback address the API is
//! open; anywhere else a bearer token is required (from `--token`, `$TROUPE_API_TOKEN`, or
//! the variable `settings.api_token_env` names)
//! and every `/api` route and `/metrics` check it; `/health` and `/ready` stay open.
//! SIGINT/SIGTERM stop accepting connections, give running runs a grace period, cancel what
//! is still running, and stop the managed model servers.
//!
//! While it runs, `serve.json` in the data folder says where it listens ([`serve_file`]), so
//! `troupe runs` / `troupe run` in another terminal go through the API instead of failing
//! on the store this process holds.

mod agents;
mod change;
mod config;
mod context;
mod error;
mod events;
mod health;
mod openapi;
mod plans;
mod routes;
mod runs;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use anyhow::Result;
use troupe_runtime::Runtime;
use troupe_workflows::Config;
use troupe_workflows::config::ConfigSource;

use crate::cli::ServeArgs;
use crate::exit;
use crate::serve_file::{self, ServeFile, resolve_token};

pub use events::RunLogs;

/// Largest JSON request body.
const JSON_LIMIT: usize = 256 * 1024;
/// Largest configuration body (`PUT /api/config`).
const CONFIG_LIMIT: usize = 1024 * 1024;

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The runtime.
    pub runtime: Runtime,
    /// Plans, run by this server's queue.
    pub plans: troupe_plans::Plans,
    /// Where the configuration came from (the file `PUT /api/config` replaces).
    pub source: ConfigSource,
    /// When the server started.
    pub started: Instant,
    /// Event logs of the runs started here, for SSE from the start.
    pub logs: Arc<RunLogs>,
    /// The bearer token, when one is required.
    pub token: Option<String>,
    /// Set once `PUT /api/config` replaced the file: the running configuration is older.
    pub config_replaced: AtomicBool,
}

pub use error::ApiError;

/// Compare in constant time (for tokens of the same length).
fn same_token(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The bearer-token check in front of `/api` and `/metrics`.
async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let expected = req.app_data::<web::Data<AppState>>().and_then(|s| s.token.clone());
    if let Some(expected) = expected {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let ok = given.is_some_and(|g| same_token(g, &expected));
        if !ok {
            let message = if given.is_some() {
                "the bearer token is wrong"
            } else {
                "this server needs `Authorization: Bearer TOKEN` (the token troupe serve was started with)"
            };
            let resp =
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).error_response();
            return Ok(req.into_response(resp).map_into_right_body());
        }
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}

/// Register the routes, extractor error handlers and limits on an app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default().limit(JSON_LIMIT).content_type_required(false).error_handler(
            |err, _| {
                use actix_web::error::JsonPayloadError as J;
                let e = match &err {
                    J::Overflow { .. } | J::OverflowKnownLength { .. } => ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_large",
                        format!("the body is larger than {JSON_LIMIT} bytes"),
                    ),
                    _ => ApiError::bad_request("bad_json", format!("the body is not valid: {err}")),
                };
                e.into()
            },
        ),
    )
    .app_data(web::QueryConfig::default().error_handler(|err, _| {
        ApiError::bad_request("bad_query", format!("bad query string: {err}")).into()
    }))
    .app_data(web::PathConfig::default().error_handler(|err, _| {
        ApiError::bad_request("bad_path", format!("bad path: {err}")).into()
    }));
    routes::register(cfg);
}

/// Every socket address `addr` names (a host name may name several).
fn resolve(addr: &str) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("cannot use address {addr:?}: {e}"))?
        .collect();
    if addrs.is_empty() {
        anyhow::bail!("the address {addr:?} names no interface");
    }
    Ok(addrs)
}

/// `troupe serve`.
pub fn serve(config: Config, source: ConfigSource, args: ServeArgs) -> Result<u8> {
    let addrs = match resolve(&args.addr) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("troupe: {e:#}");
            return Ok(exit::USAGE);
        }
    };
    let setting = config.settings.api_token_env.clone();
    let token = resolve_token(args.token, &config);
    if let Some(t) = &token {
        // A token given with --token is a secret like the others: no log line shows it.
        use troupe_observability::redact::{Redactor, global, install};
        install(global().merged(&Redactor::new([t.as_str()])));
    }
    if token.is_none() && addrs.iter().any(|a| !a.ip().is_loopback()) {
        let named = setting
            .map(|n| format!(" (settings.api_token_env names ${n}, which is not set)"))
            .unwrap_or_default();
        eprintln!(
            "troupe: {} is reachable from other machines, so the API needs a token{named}: \
             pass --token TOKEN, set $TROUPE_API_TOKEN, or name a variable in settings.api_token_env \
             (clients send `Authorization: Bearer TOKEN`)",
            args.addr
        );
        return Ok(exit::USAGE);
    }
    let offline = config.settings.offline;
    let grace = Duration::from_secs(args.grace_secs);
    actix_rt::System::new().block_on(async move {
        let Some(runtime) = crate::open::open_runtime(config, &source, offline) else {
            return Ok(exit::FAILED);
        };
        crate::open::note_interrupted(&runtime);
        // Every run launched here keeps its events for SSE from its first one — those the
        // API starts and those a plan's queue starts alike.
        let logs = Arc::new(RunLogs::default());
        runtime.watch_launches({
            let logs = logs.clone();
            move |launched| logs.collect(launched)
        });
        let plans = match troupe_plans::Plans::open(runtime.clone()) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("troupe: {e}");
                runtime.shutdown().await;
                return Ok(exit::FAILED);
            }
        };
        // The durable queue: plans a previous server left running go on, approved ones start
        // (now, and whenever one is approved while the server runs).
        match plans.serve_queue() {
            Ok(ids) if !ids.is_empty() => {
                eprintln!("troupe: running {} plan(s) (left running or approved)", ids.len());
            }
            Ok(_) => {}
            Err(e) => eprintln!("troupe: cannot read the stored plans: {e}"),
        }
        let state = web::Data::new(AppState {
            runtime: runtime.clone(),
            plans,
            source,
            started: Instant::now(),
            logs,
            token,
            config_replaced: AtomicBool::new(false),
        });
        let app_state = state.clone();
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(app_state.clone())
                .wrap(actix_web::middleware::Logger::new("%r %s %Dms").log_target("troupe::http"))
                .configure(configure)
        })
        .disable_signals()
        .shutdown_timeout(3)
        .workers(std::thread::available_parallelism().map(|n| n.get().min(4)).unwrap_or(2));
        let server = match server.bind(&addrs[..]) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("troupe: cannot listen on {}: {e}", args.addr);
                runtime.shutdown().await;
                return Ok(exit::FAILED);
            }
        };
        let bound: Vec<String> = server.addrs().iter().map(|a| format!("http://{a}")).collect();
        // Tell the other troupe commands on this machine where we are.
        let data_dir = runtime.config().data_dir();
        let published = match ServeFile::new(&server.addrs(), state.token.is_some())
            .publish(&data_dir)
        {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!(
                    "troupe: cannot write {}: {e}; `troupe runs` in another terminal will not find this server",
                    data_dir.join(serve_file::FILE_NAME).display()
                );
                None
            }
        };
        {
            // Whoever started us may have stopped reading standard output: not an error.
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "troupe: listening on {}", bound.join(", "));
            let _ = writeln!(
                out,
                "troupe: API description at {}/api/openapi.json",
                bound.first().cloned().unwrap_or_default()
            );
            let _ = out.flush();
        }
        let server = server.run();
        let handle = server.handle();
        let serving = actix_rt::spawn(server);
        shutdown_signal().await;
        eprintln!("troupe: shutting down: no new connections");
        drop(published);
        handle.pause().await;
        drain(&runtime, grace).await;
        handle.stop(true).await;
        let _ = serving.await;
        runtime.shutdown().await;
        eprintln!("troupe: stopped");
        Ok(exit::OK)
    })
}

/// Give running runs `grace` to finish, then cancel the rest and wait briefly for them to
/// record their end.
async fn drain(runtime: &Runtime, grace: Duration) {
    let deadline = Instant::now() + grace;
    while !runtime.live_runs().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let live = runtime.live_runs();
    if live.is_empty() {
        return;
    }
    eprintln!("troupe: cancelling {} running run(s)", live.len());
    for id in &live {
        let _ = runtime.cancel(id).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !runtime.live_runs().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            _ => tracing::warn!("cannot watch SIGTERM; stopping on Ctrl-C only"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("s3cret", "s3cret"));
        assert!(!same_token("s3cre", "s3cret"));
        assert!(!same_token("s3cret!", "s3cret"));
        assert!(!same_token("", "s3cret"));
    }

    #[test]
    fn loopback_addresses_resolve() {
        assert!(resolve("127.0.0.1:0").unwrap().iter().all(|a| a.ip().is_loopback()));
        assert!(resolve("0.0.0.0:0").unwrap().iter().all(|a| !a.ip().is_loopback()));
        assert!(resolve("not an address").is_err());
    }
}
