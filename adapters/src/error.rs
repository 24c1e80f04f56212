//! The one error type of this crate, classified by what the caller must do next.
//!
//! Every failure of an agent call ends as an [`AdapterError`]. Its variant is the decision
//! the resilience wrappers and the runtime take: retry later ([`AdapterError::RateLimited`],
//! [`AdapterError::Transient`], [`AdapterError::Timeout`]), try another agent
//! ([`AdapterError::falls_back`]), or stop and tell the user ([`AdapterError::Auth`],
//! [`AdapterError::InvalidRequest`], …). The messages say what to do about it.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// `Result` with an [`AdapterError`].
pub type Result<T, E = AdapterError> = std::result::Result<T, E>;

/// Why an agent call failed, classified by what the caller must do next.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// The server (or the process-wide limiter) refused for now; wait `retry_after` and
    /// try again, or use another agent.
    #[error(
        "agent '{agent}' is rate-limited{}: {message}; wait and retry, or lower its \
         [agents.{agent}.rate_limit] (a fallback agent answers if one is configured)",
        fmt_after(*retry_after)
    )]
    RateLimited {
        /// The agent.
        agent: String,
        /// How long the server asked to wait, when it said.
        retry_after: Option<Duration>,
        /// What the server said.
        message: String,
        /// Whether troupe's own limiter refused (its wait would exceed `max_wait_secs`)
        /// rather than the server: not retried (that would only wait longer), but a
        /// fallback agent may answer.
        local: bool,
    },
    /// A failure that may pass: connection refused or reset, a 5xx answer, a cut stream.
    #[error("agent '{agent}' failed transiently: {message}; retrying may succeed")]
    Transient {
        /// The agent.
        agent: String,
        /// What happened.
        message: String,
        /// How long the server asked to wait (a 503 may say), when it said.
        retry_after: Option<Duration>,
    },
    /// The call (or one phase of it: connecting, the first byte, a silence in the middle of
    /// the answer) took longer than allowed. The message names the bound that fired.
    #[error("agent '{agent}' timed out: {}", fmt_timeout(agent, endpoint, *after, phase))]
    Timeout {
        /// The agent.
        agent: String,
        /// Where it was waiting: the server's URL or the CLI's command.
        endpoint: String,
        /// The limit that was hit.
        after: Duration,
        /// Which limit: `connect`, `first byte`, `idle` (between two pieces of the answer)
        /// or `total`.
        phase: &'static str,
    },
    /// The credentials were refused or are missing.
    #[error("agent '{agent}' refused the credentials: {message}")]
    Auth {
        /// The agent.
        agent: String,
        /// What was refused and how to fix it.
        message: String,
    },
    /// The prompt (with its context) does not fit the model's context window.
    #[error(
        "the prompt is too long for agent '{agent}': {message}; shorten the task or lower \
         settings.context_token_budget, or use an agent with a larger context"
    )]
    ContextTooLong {
        /// The agent.
        agent: String,
        /// What the server said.
        message: String,
    },
    /// The request itself is wrong (a bad parameter, a schema the server rejects).
    #[error("agent '{agent}' rejected the request: {message}")]
    InvalidRequest {
        /// The agent.
        agent: String,
        /// What the server said.
        message: String,
    },
    /// The model or endpoint does not exist on the server.
    #[error("agent '{agent}': not found: {message}")]
    NotFound {
        /// The agent.
        agent: String,
        /// What was missing and how to get it.
        message: String,
    },
    /// The CLI program is not installed (not on `PATH`).
    #[error("agent '{agent}': the program '{command}' is not installed or not on PATH; {hint}")]
    NotInstalled {
        /// The agent.
        agent: String,
        /// The program that was looked for.
        command: String,
        /// How to install it.
        hint: String,
    },
    /// The caller cancelled the call.
    #[error("the call to agent '{agent}' was cancelled")]
    Cancelled {
        /// The agent.
        agent: String,
    },
    /// Offline mode refused a non-local agent before any connection was opened.
    #[error(
        "agent '{agent}' is not on this machine ({endpoint}) and troupe is offline \
         ({reason}); use a local agent, or go online (drop --offline / settings.offline)"
    )]
    OfflineRefused {
        /// The agent.
        agent: String,
        /// Its endpoint (URL or command).
        endpoint: String,
        /// Why troupe is offline.
        reason: String,
    },
    /// The agent's circuit breaker is open after repeated failures.
    #[error(
        "agent '{agent}' is switched off for {} after {failures} failures in a row \
         (circuit breaker open); configure a fallback agent or wait",
        fmt_duration(*retry_in)
    )]
    BreakerOpen {
        /// The agent.
        agent: String,
        /// When the breaker lets a trial call through.
        retry_in: Duration,
        /// The consecutive failures that opened it.
        failures: u32,
    },
    /// The server answered something that is not the protocol (malformed JSON, no
    /// choices). Counted as transient: another attempt or agent may do better.
    #[error("agent '{agent}' sent a response troupe cannot read: {message}")]
    BadResponse {
        /// The agent.
        agent: String,
        /// What was wrong with it.
        message: String,
    },
    /// The agent ran and reported failure (a CLI's non-zero exit with no recognisable
    /// cause). Not retried: the same request would fail the same way.
    #[error("agent '{agent}' failed: {message}")]
    Failed {
        /// The agent.
        agent: String,
        /// What it said (a CLI's stderr tail).
        message: String,
    },
    /// The server does not offer this operation (e.g. pulling models on llama.cpp).
    #[error("{what} is not supported by this server ({endpoint}); {hint}")]
    Unsupported {
        /// The operation.
        what: String,
        /// The server.
        endpoint: String,
        /// What to do instead.
        hint: String,
    },
    /// The agent's configuration cannot be used (no `base_url`, unknown agent…).
    #[error("agent '{agent}' is misconfigured: {message}")]
    Config {
        /// The agent.
        agent: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The managed local model server could not be started or kept healthy.
    #[error("the local model server for agent '{agent}' is not available: {message}")]
    Server {
        /// The agent.
        agent: String,
        /// What happened, with the server's last output.
        message: String,
    },
    /// A local model file could not be installed, checked or removed.
    #[error("model '{model}': {message}")]
    Model {
        /// The model (or the package being fetched).
        model: String,
        /// What happened and what to do.
        message: String,
    },
    /// Every agent of a fallback chain failed; each error, in the order tried.
    #[error("{}", fmt_all(errors))]
    AllFailed {
        /// The agents tried and why each failed.
        errors: Vec<AgentFailure>,
    },
}

/// One agent of a fallback chain that did not answer, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentFailure {
    /// The agent.
    pub agent: String,
    /// The error's class ([`AdapterError::kind`]).
    pub kind: &'static str,
    /// The error, as text.
    pub message: String,
    /// The error itself.
    #[serde(skip)]
    pub error: Box<AdapterError>,
}

impl AgentFailure {
    /// The record of `agent` failing with `error`.
    pub fn new(agent: &str, error: AdapterError) -> AgentFailure {
        AgentFailure {
            agent: agent.to_string(),
            kind: error.kind(),
            message: error.to_string(),
            error: Box::new(error),
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        let s = d.as_secs_f64();
        if s.fract() == 0.0 { format!("{}s", d.as_secs()) } else { format!("{s:.1}s") }
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// What a timeout means and which setting moves it.
fn fmt_timeout(agent: &str, endpoint: &str, after: Duration, phase: &str) -> String {
    let d = fmt_duration(after);
    match phase {
        "connect" => format!(
            "could not connect to {endpoint} within {d}; check that the server is running and \
             reachable, or raise [agents.{agent}] connect_timeout_secs"
        ),
        "first byte" => format!(
            "no first byte from {endpoint} within {d}; check that the server is responsive, or \
             raise [agents.{agent}] first_byte_timeout_secs (a local model reading a long \
             prompt may need more)"
        ),
        "idle" => format!(
            "{endpoint} sent nothing for {d} in the middle of its answer; check that the \
             server is responsive, or raise [agents.{agent}] idle_timeout_secs"
        ),
        _ => format!(
            "{endpoint} did not finish within {d}; raise [agents.{agent}] timeout_secs or \
             check that the agent is responsive"
        ),
    }
}

fn fmt_after(d: Option<Duration>) -> String {
    d.map(|d| format!(" (retry after {})", fmt_duration(d))).unwrap_or_default()
}

fn fmt_all(errors: &[AgentFailure]) -> String {
    let mut s = format!("all {} agents failed:", errors.len());
    for e in errors {
        s.push_str(&format!("\n  - {}: {}", e.agent, e.message));
    }
    s
}

impl AdapterError {
    /// A short name of the class: `rate_limited`, `transient`, `timeout`, … (stable, for
    /// metrics and event streams).
    pub fn kind(&self) -> &'static str {
        match self {
            AdapterError::RateLimited { .. } => "rate_limited",
            AdapterError::Transient { .. } => "transient",
            AdapterError::Timeout { .. } => "timeout",
            AdapterError::Auth { .. } => "auth",
            AdapterError::ContextTooLong { .. } => "context_too_long",
            AdapterError::InvalidRequest { .. } => "invalid_request",
            AdapterError::NotFound { .. } => "not_found",
            AdapterError::NotInstalled { .. } => "not_installed",
            AdapterError::Cancelled { .. } => "cancelled",
            AdapterError::OfflineRefused { .. } => "offline_refused",
            AdapterError::BreakerOpen { .. } => "breaker_open",
            AdapterError::BadResponse { .. } => "bad_response",
            AdapterError::Failed { .. } => "failed",
            AdapterError::Unsupported { .. } => "unsupported",
            AdapterError::Config { .. } => "config",
            AdapterError::Server { .. } => "server",
            AdapterError::Model { .. } => "model",
            AdapterError::AllFailed { .. } => "all_failed",
        }
    }

    /// Whether the same request may succeed when tried again later: rate limits, transient
    /// failures, timeouts, unreadable responses and an unavailable local server.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AdapterError::RateLimited { .. }
                | AdapterError::Transient { .. }
                | AdapterError::Timeout { .. }
                | AdapterError::BadResponse { .. }
                | AdapterError::Server { .. }
        )
    }

    /// Whether a fallback agent should get the same request: the error is transient, the
    /// breaker is open, offline mode refused the agent, or its program is not installed.
    pub fn falls_back(&self) -> bool {
        self.is_transient()
            || matches!(
                self,
                AdapterError::BreakerOpen { .. }
                    | AdapterError::OfflineRefused { .. }
                    | AdapterError::NotInstalled { .. }
            )
    }

    /// Whether this failure says something about the agent's health, so it counts towards
    /// opening its circuit breaker. Mistakes of the caller (invalid request, context too
    /// long), cancellation and offline refusals do not.
    pub fn counts_against_breaker(&self) -> bool {
        (self.is_transient() && !self.is_local_limit())
            || matches!(self, AdapterError::Failed { .. })
    }

    /// Whether troupe's own rate limiter refused the call (no server was asked).
    pub fn is_local_limit(&self) -> bool {
        matches!(self, AdapterError::RateLimited { local: true, .. })
    }

    /// Whether the retry wrapper should try again: transient, and not a refusal of
    /// troupe's own rate limiter (which already waited as long as allowed).
    pub fn is_retryable(&self) -> bool {
        self.is_transient() && !self.is_local_limit()
    }

    /// How long the server asked to wait before the next attempt, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AdapterError::RateLimited { retry_after, .. }
            | AdapterError::Transient { retry_after, .. } => *retry_after,
            AdapterError::BreakerOpen { retry_in, .. } => Some(*retry_in),
            _ => None,
        }
    }

    /// The agent the error is about (the first one for [`AdapterError::AllFailed`]).
    pub fn agent(&self) -> Option<&str> {
        match self {
            AdapterError::RateLimited { agent, .. }
            | AdapterError::Transient { agent, .. }
            | AdapterError::Timeout { agent, .. }
            | AdapterError::Auth { agent, .. }
            | AdapterError::ContextTooLong { agent, .. }
            | AdapterError::InvalidRequest { agent, .. }
            | AdapterError::NotFound { agent, .. }
            | AdapterError::NotInstalled { agent, .. }
            | AdapterError::Cancelled { agent }
            | AdapterError::OfflineRefused { agent, .. }
            | AdapterError::BreakerOpen { agent, .. }
            | AdapterError::BadResponse { agent, .. }
            | AdapterError::Failed { agent, .. }
            | AdapterError::Config { agent, .. }
            | AdapterError::Server { agent, .. } => Some(agent),
            AdapterError::AllFailed { errors } => errors.first().map(|e| e.agent.as_str()),
            AdapterError::Unsupported { .. } | AdapterError::Model { .. } => None,
        }
    }

    /// A transient error of `agent`.
    pub fn transient(agent: &str, message: impl fmt::Display) -> AdapterError {
        AdapterError::Transient {
            agent: agent.to_string(),
            message: message.to_string(),
            retry_after: None,
        }
    }

    /// An unreadable response of `agent`.
    pub fn bad_response(agent: &str, message: impl fmt::Display) -> AdapterError {
        AdapterError::BadResponse { agent: agent.to_string(), message: message.to_string() }
    }

    /// An answer with no text: the same class (unreadable response, so retried and then
    /// handed to a fallback) for every adapter.
    pub fn empty_answer(agent: &str) -> AdapterError {
        AdapterError::bad_response(
            agent,
            "the answer was empty (no text); the model produced nothing",
        )
    }

    /// The cancellation of a call to `agent`.
    pub fn cancelled(agent: &str) -> AdapterError {
        AdapterError::Cancelled { agent: agent.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_decide_retry_and_fallback() {
        let rl = AdapterError::RateLimited {
            agent: "a".into(),
            retry_after: Some(Duration::from_secs(3)),
            message: "slow down".into(),
            local: false,
        };
        assert!(rl.is_transient() && rl.falls_back());
        assert_eq!(rl.retry_after(), Some(Duration::from_secs(3)));
        assert!(rl.to_string().contains("retry after 3s"), "{rl}");

        let auth = AdapterError::Auth { agent: "a".into(), message: "bad key".into() };
        assert!(!auth.is_transient() && !auth.falls_back() && !auth.counts_against_breaker());

        let open = AdapterError::BreakerOpen {
            agent: "a".into(),
            retry_in: Duration::from_millis(1500),
            failures: 5,
        };
        assert!(!open.is_transient() && open.falls_back());
        assert!(open.to_string().contains("1.5s"), "{open}");

        let cancelled = AdapterError::cancelled("a");
        assert!(!cancelled.falls_back() && !cancelled.counts_against_breaker());
        assert_eq!(cancelled.agent(), Some("a"));
    }

    #[test]
    fn timeouts_name_the_bound_that_fired() {
        let t = |phase| AdapterError::Timeout {
            agent: "a".into(),
            endpoint: "http://127.0.0.1:9/v1".into(),
            after: Duration::from_secs(45),
            phase,
        };
        let first = t("first byte").to_string();
        assert!(first.contains("no first byte from http://127.0.0.1:9/v1 within 45s"), "{first}");
        assert!(first.contains("first_byte_timeout_secs"), "{first}");
        assert!(t("idle").to_string().contains("sent nothing for 45s"));
        assert!(t("idle").to_string().contains("idle_timeout_secs"));
        assert!(t("connect").to_string().contains("connect_timeout_secs"));
        assert!(t("total").to_string().contains("[agents.a] timeout_secs"));
        assert!(t("idle").is_transient());
        assert!(AdapterError::empty_answer("a").falls_back());
    }

    #[test]
    fn all_failed_lists_every_agent() {
        let e = AdapterError::AllFailed {
            errors: vec![
                AgentFailure::new("one", AdapterError::transient("one", "503")),
                AgentFailure::new("two", AdapterError::transient("two", "reset")),
            ],
        };
        let s = e.to_string();
        assert!(s.contains("all 2 agents failed") && s.contains("one") && s.contains("two"));
        assert_eq!(e.agent(), Some("one"));
    }
}
