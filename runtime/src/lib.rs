//! The runtime: troupe's main job, `troupe run "task"`.
//!
//! A [`Supervisor`](supervisor::Supervisor) actor per run drives its workflow step by step
//! (the pure [`Engine`](troupe_workflows::engine::Engine) decides what runs next); an
//! [`AgentActor`](agents::AgentActor) per configured agent wraps its adapter stack and is
//! restarted if it panics. Every step is written to the store before the next starts, so a
//! crash loses nothing and [`Runtime::resume`] continues where the run stopped. Front-ends
//! subscribe to a run's [`RunEvent`]s.
//!
//! Runs, steps, plans and memory searches are `tracing` spans (`troupe.run` → `troupe.step`
//! → `troupe.call`, see `troupe_adapters::telemetry`); the binary decides where they go.
//!
//! Only this crate and the binary know actix.

pub mod agents;
mod apply;
mod ask;
pub mod audit;
pub mod backend;
mod budget;
mod call;
pub mod context_memory;
pub mod error;
pub mod events;
pub mod memory;
pub mod model;
mod open;
mod planner;
mod prompt;
mod runtime;
mod settings;
mod shared;
pub mod store;
pub mod supervisor;
mod telemetry;
pub mod usage;
mod work;
pub mod writer;

pub use ask::{Ask, Asked};
pub use budget::MIN_ANSWER_TOKENS;
pub use error::{Error, Result};
pub use memory::{ContextBlock, Memory, NoMemory, RunOutcome};
pub use model::{
    Budget, ChangeOptions, CheckRecord, RunEvent, RunRecord, RunRequest, RunState, RunStats,
    RunUsage, StepChange, StepRecord, StepState, Tokens, UsageReport, UsageTotals,
};
pub use open::{
    CollectionBackend, JOURNAL_FILE, RUNS_COLLECTION, agents_of, open, open_waiting, store_backend,
};
pub use runtime::{RunHandle, Runtime, RuntimeParts};
pub use store::{Backend, Journaled, MemoryBackend, RunStore};
pub use supervisor::{LaunchWatcher, Launched};
