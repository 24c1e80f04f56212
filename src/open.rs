//! Opening the runtime and the context store for a front-end (a command, the shell, the
//! server): waiting for a store another troupe process holds, and saying who holds it.

use troupe_runtime::Runtime;
use troupe_workflows::Config;
use troupe_workflows::config::ConfigSource;

use crate::render::short_id;

/// Open the runtime (store, agents) for a front-end; on failure print why and return `None`.
/// Waits for a store another troupe process holds, as [`store_wait`] says. Call inside an
/// actix system, before anything else runs on it.
pub fn open_runtime(config: Config, source: &ConfigSource, offline: bool) -> Option<Runtime> {
    let data_dir = config.data_dir();
    let path = source.path().map(|p| p.to_path_buf());
    match troupe_runtime::open_waiting(config, path, offline, store_wait(), &mut say_waiting) {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("troupe: {e}");
            if let troupe_runtime::Error::Context(e) = &e
                && let Some(hint) = held_hint(e, &data_dir)
            {
                eprintln!("troupe: {hint}");
            }
            None
        }
    }
}

/// The variable that sets how long a command waits for the store.
pub const STORE_WAIT_VAR: &str = "TROUPE_STORE_WAIT_SECS";
/// How long a command waits for the store by default.
const STORE_WAIT_DEFAULT_SECS: u64 = 30;

/// How long a command waits for a context store another troupe process holds:
/// `$TROUPE_STORE_WAIT_SECS` (default 30 s; 0 fails at once), saying whom it waits for after
/// a second. Short commands hold the store for a fraction of a second, so two at once just
/// take turns; a long holder (`troupe serve`, `troupe shell`) is named when the wait ends.
pub fn store_wait() -> troupe_context::LockWait {
    let secs = match std::env::var(STORE_WAIT_VAR) {
        Err(_) => STORE_WAIT_DEFAULT_SECS,
        Ok(v) => v.trim().parse().unwrap_or_else(|_| {
            eprintln!(
                "troupe: warning: {STORE_WAIT_VAR}={v:?} is not a whole number of seconds; \
                 waiting {STORE_WAIT_DEFAULT_SECS} s"
            );
            STORE_WAIT_DEFAULT_SECS
        }),
    };
    troupe_context::LockWait {
        limit: std::time::Duration::from_secs(secs),
        notice_after: std::time::Duration::from_secs(1),
    }
}

/// The one line said while waiting for the store: whom for.
pub fn say_waiting(owner: Option<&troupe_context::Owner>) {
    let who = match owner {
        Some(o) => {
            // The program's name and its arguments, without the folder it lives in.
            let command = o.command.split_once(' ').map_or(o.command.as_str(), |(p, _)| p);
            let program = command.rsplit('/').next().unwrap_or(command);
            let args = o.command.split_once(' ').map_or("", |(_, a)| a);
            format!("pid {} ({program} {args})", o.pid).replace(" )", ")")
        }
        None => "another troupe process".to_string(),
    };
    eprintln!("troupe: the context store is in use; waiting for {who}…");
}

/// Open the context store for a short command, waiting for it as [`store_wait`] says; when
/// it stays held, the error says by whom and what to do.
pub fn open_store(
    config: &Config,
    options: troupe_context::StoreOptions,
) -> anyhow::Result<troupe_context::Store> {
    let data_dir = config.data_dir();
    troupe_context::Store::open_waiting(&data_dir, options, store_wait(), say_waiting).map_err(
        |e| {
            let hint = held_hint(&e, &data_dir).map(|h| format!("\n{h}")).unwrap_or_default();
            anyhow::anyhow!("cannot open the context store in {}: {e}{hint}", data_dir.display())
        },
    )
}

/// What to do instead, when the store is held by a running `troupe serve` or `troupe shell`.
fn held_hint(e: &troupe_context::Error, data_dir: &std::path::Path) -> Option<String> {
    let troupe_context::Error::Locked { owner: Some(owner), .. } = e else {
        return None;
    };
    if owner.alive == Some(false) {
        return None;
    }
    match crate::serve_file::holder_command(&owner.command)? {
        "shell" => Some(format!(
            "pid {} is an interactive `troupe shell`: use its /runs there (and type tasks into \
             it), or leave it (Ctrl-D) and run this again",
            owner.pid
        )),
        _ => Some(match crate::serve_file::running(data_dir) {
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
                crate::serve_file::FILE_NAME,
                data_dir.display()
            ),
        }),
    }
}

/// Tell the user about runs an earlier process left unfinished.
pub fn note_interrupted(runtime: &Runtime) {
    if let Ok(runs) = runtime.interrupted()
        && !runs.is_empty()
    {
        eprintln!("troupe: {} run(s) did not finish in an earlier process:", runs.len());
        for r in runs.iter().take(5) {
            eprintln!(
                "  {}  {}  (resume with `troupe runs resume {}`)",
                short_id(&r.id),
                r.task,
                r.id
            );
        }
    }
}
