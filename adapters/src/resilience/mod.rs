//! Resilience as wrappers around an `Arc<dyn Agent>`, not code inside each adapter.
//!
//! Each wrapper is an [`crate::Agent`] itself. [`crate::registry::AgentRegistry`] stacks
//! them for every configured agent, outermost first:
//!
//! ```text
//! Fallback ─┬─ Traced → OfflineGuard → Breaker → Retry → RateLimit → [ManagedServer] → adapter
//!           └─ (the same stack for each fallback agent, without its own fallbacks)
//! ```
//!
//! [`crate::telemetry::Traced`] makes each agent's call a `troupe.call` span; [`Retry`] puts
//! each attempt in a `troupe.attempt` span and [`Fallback`] the next agent's call in a
//! `troupe.fallback` span.
//!
//! - [`OfflineGuard`] refuses a non-local agent in offline mode before anything else runs.
//! - [`Breaker`] refuses calls while the agent keeps failing; one logical call (with its
//!   retries) counts once.
//! - [`Retry`] retries transient failures with backoff, honouring Retry-After.
//! - [`RateLimit`] waits for request and token capacity before every attempt.
//! - [`Fallback`] moves to the next agent when one fails in a way another may not.

mod breaker;
mod fallback;
mod offline;
mod ratelimit;
mod retry;

pub use breaker::{Breaker, BreakerState, CircuitBreaker};
pub use fallback::Fallback;
pub use offline::{OfflineGuard, OfflineMode, has_route_beyond_loopback};
pub use ratelimit::{AgentLimiter, LimiterRegistry, RateLimit};
pub use retry::Retry;
