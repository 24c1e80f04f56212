//! What a [`Plans`](crate::Plans) handle and the plans' schedulers share: the runtime, the
//! plan store, the plan events, the schedulers running in this process, and the one
//! read-modify-write of a plan record. A module of its own so the scheduler needs only this,
//! not the front-ends' handle that starts it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, broadcast, watch};
use troupe_runtime::Runtime;

use crate::error::{Error, Result};
use crate::model::{Plan, PlanEvent};
use crate::store::PlanStore;

/// How many plan events a slow subscriber may fall behind.
const EVENT_BUFFER: usize = 1024;

/// A plan's running scheduler in this process.
#[derive(Debug, Clone)]
pub(crate) struct Driver {
    /// Wakes the scheduler (pause, resume, retry, skip).
    pub wake: Arc<Notify>,
    /// Turns `true` when the scheduler stops.
    pub done: watch::Receiver<bool>,
}

/// The state every handle on the same plans shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub runtime: Runtime,
    pub store: PlanStore,
    pub events: broadcast::Sender<PlanEvent>,
    pub drivers: Mutex<HashMap<String, Driver>>,
    /// Serialises read-modify-write of plan records.
    pub write: Mutex<()>,
}

impl Shared {
    /// The state of plans over `runtime`, kept in `store`, with no scheduler running yet.
    pub(crate) fn new(runtime: Runtime, store: PlanStore) -> Shared {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Shared {
            runtime,
            store,
            events,
            drivers: Mutex::new(HashMap::new()),
            write: Mutex::new(()),
        }
    }

    /// A plan by id or prefix.
    pub(crate) fn get(&self, id: &str) -> Result<Plan> {
        self.store.get(id)
    }

    /// Read, change and write a plan under the write lock; announces what changed.
    pub(crate) fn update<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut Plan) -> Result<T>,
    ) -> Result<(Plan, T)> {
        let (before, plan, out) = {
            let _guard =
                self.write.lock().map_err(|_| Error::Refused("a plan writer died".into()))?;
            let mut plan = self.store.get(id)?;
            let before = plan.clone();
            let out = change(&mut plan)?;
            plan.updated_at = chrono::Utc::now();
            self.store.put(&plan)?;
            (before, plan, out)
        };
        if before.state != plan.state {
            self.announce_plan(&plan);
        }
        for (task, status) in &plan.tasks {
            let old = before.tasks.get(task);
            if old.map(|o| (o.state, &o.run_id)) != Some((status.state, &status.run_id)) {
                let _ = self.events.send(PlanEvent::TaskState {
                    plan_id: plan.id.clone(),
                    task: task.clone(),
                    state: status.state,
                    run_id: status.run_id.clone(),
                    reason: status.reason.clone(),
                });
            }
        }
        Ok((plan, out))
    }

    /// Announce a plan's state.
    pub(crate) fn announce_plan(&self, plan: &Plan) {
        let _ =
            self.events.send(PlanEvent::PlanState { plan_id: plan.id.clone(), state: plan.state });
    }

    /// Wake the plan's scheduler in this process, if one runs.
    pub(crate) fn wake(&self, id: &str) {
        if let Some(d) = self.drivers.lock().ok().and_then(|d| d.get(id).cloned()) {
            d.wake.notify_one();
        }
    }
}
