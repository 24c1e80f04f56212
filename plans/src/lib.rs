//! Plans: a spec becomes approved tasks with dependencies, run by a durable queue.
//!
//! A planner model turns a spec (with the project's memory and files) into a [`PlanSpec`] —
//! a title, a goal and tasks with ids, descriptions, acceptance criteria, likely files,
//! dependencies (`after`) and a suggested workflow — checked with exact errors
//! ([`validate`]). A person reads it ([`render::markdown`]), edits it ([`render::toml`]),
//! has it revised (versions are kept), approves or rejects it; nothing runs before
//! approval. The `scheduler` runs the tasks of an approved plan as runs of the runtime in
//! dependency order, up to a concurrency limit, each in a workspace branched from the
//! plan's integration branch `troupe/plan-<id>`, merging each green task there before the
//! tasks after it start. Plans and task states live in the store ([`store`]), so a
//! restarted process goes on where the last one stopped ([`Plans::recover`]).
//!
//! Not to be confused with the runtime's dynamic *step* planner, which picks the steps of
//! one run.

pub mod cover;
pub mod error;
pub mod memory;
pub mod model;
pub mod planner;
pub mod render;
mod scheduler;
mod service;
pub mod store;
pub mod validate;

pub use error::{Error, Result};
pub use model::{Plan, PlanEvent, PlanSpec, PlanState, Revision, TaskSpec, TaskState, TaskStatus};
pub use service::{NewPlan, Plans};
pub use store::PlanStore;
