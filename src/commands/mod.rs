//! One module per command group; each returns the process exit code.

pub mod audit;
pub mod change;
pub mod config;
pub mod context;
pub mod doctor;
pub mod export;
pub mod models;
pub mod run;
pub mod test_agent;
pub mod usage;
pub mod via_api;

use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use troupe_runtime::Runtime;
use troupe_workflows::Config;
use troupe_workflows::config::ConfigSource;

/// Exit codes shared by every command.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The work failed (a failed run, a failed check).
    pub const FAILED: u8 = 1;
    /// Bad usage or configuration.
    pub const USAGE: u8 = 2;
}

/// Turn one of [`exit`]'s codes into an [`ExitCode`].
pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}

/// `2025-01-31`, an RFC 3339 time, or an age like `30d` / `12h` / `90m`.
pub fn parse_time(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = num.parse().map_err(|_| {
        format!("{s:?} is not a date (2025-01-31), an RFC 3339 time, or an age (30d, 12h)")
    })?;
    let age = match unit {
        "d" => chrono::Duration::days(n),
        "h" => chrono::Duration::hours(n),
        "m" => chrono::Duration::minutes(n),
        _ => return Err(format!("unknown unit in {s:?}: use d, h or m")),
    };
    Ok(Utc::now() - age)
}

/// Open the runtime (store, agents) for a front-end; on failure print why and return `None`.
/// Call inside an actix system.
pub fn open_runtime(config: Config, source: &ConfigSource, offline: bool) -> Option<Runtime> {
    let data_dir = config.data_dir();
    match troupe_runtime::open(config, source.path().map(|p| p.to_path_buf()), offline) {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("troupe: {e}");
            if let Some(hint) = held_hint(&e, &data_dir) {
                eprintln!("troupe: {hint}");
            }
            None
        }
    }
}

/// What to do instead, when the store is held by a running `troupe serve` or `troupe shell`.
fn held_hint(e: &troupe_runtime::Error, data_dir: &std::path::Path) -> Option<String> {
    let troupe_runtime::Error::Context(troupe_context::Error::Locked {
        owner: Some(owner), ..
    }) = e
    else {
        return None;
    };
    if owner.alive == Some(false) {
        return None;
    }
    match crate::server::serve_file::holder_command(&owner.command)? {
        "shell" => Some(format!(
            "pid {} is an interactive `troupe shell`: use its /runs there (and type tasks into \
             it), or leave it (Ctrl-D) and run this again",
            owner.pid
        )),
        _ => Some(match crate::server::serve_file::running(data_dir) {
            Some(server) => format!(
                "pid {} is `troupe serve`: use its HTTP API at {} (`troupe runs` and `troupe run` \
                 go through it by themselves), or stop it and run this again",
                owner.pid,
                server.url()
            ),
            None => format!(
                "pid {} is `troupe serve`, but it left no {} in {}: use its HTTP API, or stop it \
                 and run this again",
                owner.pid,
                crate::server::serve_file::FILE_NAME,
                data_dir.display()
            ),
        }),
    }
}
