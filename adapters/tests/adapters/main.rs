//! The adapters crate's integration tests, one binary:
//!
//! - `conformance`: one suite run against every HTTP adapter, each against a real HTTP
//!   server on 127.0.0.1:0 that speaks its API and injects faults;
//! - `cli`: the CLI adapters against fixture scripts standing in for the vendor CLIs;
//! - `resilience`: rate limiter, retries, breaker, fallback and offline guard, under a
//!   paused clock;
//! - `registry`: the full stacks as the runtime builds them, against the fault server;
//! - `generation`: generation settings on the wire, context windows and token counts;
//! - `real_llama`: the real llama.cpp server installed by `scripts/setup.sh --assets-only`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod cli;
mod conformance;
mod generation;
mod real_llama;
mod registry;
mod resilience;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use troupe_adapters::{AgentEvent, CallContext, ChunkSink, EventSink};

/// Await `fut`, failing the test if it takes longer than `secs` (a hang is a bug).
pub async fn bounded<T>(secs: u64, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("the call did not end within {secs}s: it hangs"),
    }
}

/// What a call delivered to its sinks.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub chunks: Arc<Mutex<Vec<String>>>,
    pub events: Arc<Mutex<Vec<AgentEvent>>>,
}

impl Captured {
    /// A context streaming into this capture.
    pub fn context(&self) -> CallContext {
        let c = self.chunks.clone();
        let e = self.events.clone();
        CallContext::new()
            .with_chunks(ChunkSink::new(move |t| c.lock().unwrap().push(t.to_string())))
            .with_events(EventSink::new(move |ev| e.lock().unwrap().push(ev.clone())))
    }

    /// A context recording events only (no streaming).
    pub fn events_only(&self) -> CallContext {
        let e = self.events.clone();
        CallContext::new().with_events(EventSink::new(move |ev| e.lock().unwrap().push(ev.clone())))
    }

    pub fn chunks(&self) -> Vec<String> {
        self.chunks.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<AgentEvent> {
        self.events.lock().unwrap().clone()
    }
}
