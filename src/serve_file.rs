//! `serve.json` in the data folder: where a running `troupe serve` listens, so the other
//! troupe commands on this machine can go through its API while it holds the store. It
//! never holds the token (clients resolve that from their own configuration, see
//! [`resolve_token`]).
//!
//! Written atomically once the server listens, removed when it shuts down. A reader trusts
//! it only when its process is alive and is the one holding the store (the store's own
//! `owner.json`), so a file left behind by a killed server is ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use troupe_context::Store;

/// The file's name in the data folder.
pub const FILE_NAME: &str = "serve.json";

/// What a running `troupe serve` publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServeFile {
    /// The server's process id.
    pub pid: u32,
    /// `http` (the server speaks nothing else yet).
    pub scheme: String,
    /// The address clients on this machine connect to (an unspecified bound address such
    /// as `0.0.0.0` is replaced by loopback).
    pub addr: String,
    /// Every address the server is bound to.
    pub bound: Vec<String>,
    /// Whether every `/api` route needs `Authorization: Bearer TOKEN`.
    pub token_required: bool,
    /// When the server started listening (RFC 3339).
    pub since: String,
    /// The server's version.
    pub version: String,
}

impl ServeFile {
    /// The description of a server bound to `bound` (not empty).
    pub fn new(bound: &[SocketAddr], token_required: bool) -> ServeFile {
        let connect = bound
            .iter()
            .find(|a| a.ip().is_loopback())
            .or_else(|| bound.first())
            .map(|a| {
                let ip = match a.ip() {
                    IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                    ip => ip,
                };
                SocketAddr::new(ip, a.port()).to_string()
            })
            .unwrap_or_default();
        ServeFile {
            pid: std::process::id(),
            scheme: "http".into(),
            addr: connect,
            bound: bound.iter().map(ToString::to_string).collect(),
            token_required,
            since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    /// The base URL clients use, e.g. `http://127.0.0.1:5001`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Write it into `data_dir` (a temporary sibling, then a rename, so a reader never sees
    /// half a file). The returned guard removes it when dropped.
    pub fn publish(&self, data_dir: &Path) -> std::io::Result<Published> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(FILE_NAME);
        let tmp = data_dir.join(format!(".{FILE_NAME}.{}.tmp", self.pid));
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        if let Err(e) = std::fs::write(&tmp, json).and_then(|_| std::fs::rename(&tmp, &path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(Published { path, pid: self.pid })
    }

    /// The file in `data_dir` as it is, whoever wrote it (`None` when there is none or it
    /// cannot be read).
    pub fn read(data_dir: &Path) -> Option<ServeFile> {
        let text = std::fs::read_to_string(data_dir.join(FILE_NAME)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// The published file; removed on drop if it is still this process's.
#[derive(Debug)]
pub struct Published {
    path: PathBuf,
    pid: u32,
}

impl Drop for Published {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| serde_json::from_str::<ServeFile>(&t).ok())
            .is_some_and(|f| f.pid == self.pid);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The `troupe serve` that holds the store in `data_dir`, if one does: its `serve.json`
/// names a process that is running and is the store's recorded holder. A stale file (its
/// process exited, or someone else holds the store) is ignored.
pub fn running(data_dir: &Path) -> Option<ServeFile> {
    let file = ServeFile::read(data_dir)?;
    let holder = Store::holder(data_dir)?;
    let live = holder.pid == file.pid && holder.alive != Some(false);
    if !live {
        tracing::debug!(pid = file.pid, holder = holder.pid, "ignoring a stale serve.json");
    }
    live.then_some(file)
}

/// Which kind of troupe process a store holder is, from its recorded command line.
pub fn holder_command(command: &str) -> Option<&'static str> {
    command.split_whitespace().find_map(|arg| match arg {
        "serve" => Some("serve"),
        "shell" => Some("shell"),
        _ => None,
    })
}

/// The API's bearer token: `explicit` (serve's `--token`), else `$TROUPE_API_TOKEN`, else
/// the variable `settings.api_token_env` names; blank counts as unset. The one place both
/// the server (which requires it) and troupe's own client (which sends it) get it from.
pub fn resolve_token(
    explicit: Option<String>,
    config: &troupe_workflows::Config,
) -> Option<String> {
    let nonblank = |t: &String| !t.trim().is_empty();
    explicit
        .filter(nonblank)
        .or_else(|| std::env::var("TROUPE_API_TOKEN").ok().filter(nonblank))
        .or_else(|| {
            let name = config.settings.api_token_env.as_deref()?;
            std::env::var(name).ok().filter(nonblank)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_connect_over_loopback_when_bound_everywhere() {
        let any: SocketAddr = "0.0.0.0:5001".parse().unwrap();
        assert_eq!(ServeFile::new(&[any], true).url(), "http://127.0.0.1:5001");
        let any6: SocketAddr = "[::]:5002".parse().unwrap();
        assert_eq!(ServeFile::new(&[any6], true).url(), "http://[::1]:5002");
        let lan: SocketAddr = "192.168.1.5:80".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:81".parse().unwrap();
        let f = ServeFile::new(&[lan, lo], false);
        assert_eq!(f.url(), "http://127.0.0.1:81");
        assert_eq!(f.bound, ["192.168.1.5:80", "127.0.0.1:81"]);
    }

    #[test]
    fn published_file_is_read_back_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let f = ServeFile::new(&["127.0.0.1:9".parse().unwrap()], false);
        let guard = f.publish(dir.path()).unwrap();
        assert_eq!(ServeFile::read(dir.path()), Some(f));
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(!text.contains("token\":"), "{text}");
        // No store holder recorded: not trusted.
        assert!(running(dir.path()).is_none());
        drop(guard);
        assert!(!dir.path().join(FILE_NAME).exists());
    }

    #[test]
    fn holder_kinds_come_from_the_command_line() {
        assert_eq!(holder_command("/usr/bin/troupe --config a.toml serve --addr x"), Some("serve"));
        assert_eq!(holder_command("troupe shell"), Some("shell"));
        assert_eq!(holder_command("troupe --config /tmp/serve.toml run task"), None);
    }
}
