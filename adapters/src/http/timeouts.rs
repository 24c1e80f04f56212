//! The time bounds of one HTTP call and the pooled clients they are enforced with.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::chain;
use crate::config::AgentConfig;
use crate::error::{AdapterError, Result};

/// The first-byte bound when `first_byte_timeout_secs` is not set, for a remote server.
pub const DEFAULT_FIRST_BYTE: Duration = Duration::from_secs(30);
/// The same for a server on this machine, before the prompt's share: longer, because the
/// first call after a local server starts pages its model in from disk (measured here: a
/// 1.1 GB model on a loaded 2-core machine took over 30 s to its first byte, 17 s warm).
pub const DEFAULT_LOCAL_FIRST_BYTE: Duration = Duration::from_secs(60);
/// How fast a local server is assumed to read a prompt when the first-byte bound grows with
/// the prompt: measured, Qwen2.5-Coder-1.5B reads ~60 tokens/s on one idle core here but
/// dropped below 15 tokens/s on the same machine under a parallel build, so a slow local
/// model reading a long prompt is not cut off.
pub const LOCAL_PROMPT_TOKENS_PER_SEC: u32 = 8;

/// The time bounds of one HTTP call. With the defaults a dead server fails an attempt
/// within 30 s (10 s to connect, 30 s to the first byte — 45 s plus the prompt's share for
/// a local server —, 30 s of silence mid-answer); the total bound caps a call that keeps
/// trickling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP connection.
    pub connect: Duration,
    /// From sending the request to the first byte of the answer (for a stream, its first
    /// chunk), for an empty prompt.
    pub first_byte: Duration,
    /// Added to `first_byte` per prompt token: set for a local server whose first-byte
    /// bound is the default, because it reads the prompt before answering.
    pub first_byte_per_token: Duration,
    /// The longest silence between two pieces of an answer once it started.
    pub idle: Duration,
    /// The whole call, body included.
    pub total: Duration,
}

impl Timeouts {
    /// The bounds an agent's configuration sets.
    pub fn from_config(cfg: &AgentConfig) -> Timeouts {
        let (first_byte, first_byte_per_token) = match cfg.first_byte_timeout_secs {
            Some(s) => (Duration::from_secs(s.max(1)), Duration::ZERO),
            None if cfg.is_local() => {
                (DEFAULT_LOCAL_FIRST_BYTE, Duration::from_secs(1) / LOCAL_PROMPT_TOKENS_PER_SEC)
            }
            None => (DEFAULT_FIRST_BYTE, Duration::ZERO),
        };
        Timeouts {
            connect: Duration::from_secs(cfg.connect_timeout_secs.max(1)),
            first_byte,
            first_byte_per_token,
            idle: Duration::from_secs(cfg.idle_timeout_secs.max(1)),
            total: Duration::from_secs(cfg.timeout_secs.max(1)),
        }
    }

    /// The first-byte bound for a prompt of `prompt_tokens` tokens.
    pub fn first_byte_for(&self, prompt_tokens: u64) -> Duration {
        let tokens = u32::try_from(prompt_tokens).unwrap_or(u32::MAX);
        self.first_byte.saturating_add(self.first_byte_per_token.saturating_mul(tokens))
    }
}

/// One reqwest client per (connect timeout, local) pair, shared by every agent in the
/// process so connections are pooled. Local clients ignore proxy settings: a proxy must
/// never see loopback traffic (nor could it reach it).
pub(crate) fn shared_client(connect: Duration, local: bool) -> Result<reqwest::Client> {
    static CLIENTS: OnceLock<Mutex<HashMap<(u128, bool), reqwest::Client>>> = OnceLock::new();
    let map = CLIENTS.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (connect.as_millis(), local);
    let mut guard = map.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = guard.get(&key) {
        return Ok(c.clone());
    }
    let mut b = reqwest::Client::builder()
        .connect_timeout(connect)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .user_agent(concat!("troupe/", env!("CARGO_PKG_VERSION")));
    if local {
        b = b.no_proxy();
    }
    let client = b.build().map_err(|e| AdapterError::Config {
        agent: String::new(),
        message: format!("cannot build the HTTP client: {}", chain(&e)),
    })?;
    guard.insert(key, client.clone());
    Ok(client)
}
