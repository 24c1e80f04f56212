//! Durable plans: one JSON document per plan (`plans/<id>`) in its own collection of the
//! store the runtime keeps runs in; every write is flushed before it returns.

use std::sync::Arc;

use troupe_runtime::Backend;

use crate::error::{Error, Result};
use crate::model::Plan;

/// The collection plans live in.
pub const PLANS_COLLECTION: &str = "plans";

/// Where plans are kept.
#[derive(Debug, Clone)]
pub struct PlanStore {
    backend: Arc<dyn Backend>,
}

impl PlanStore {
    /// Plans over `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> PlanStore {
        PlanStore { backend }
    }

    /// Plans in the `plans` collection of the store a runtime opened (`None` for a runtime
    /// without one, as in tests).
    pub fn of(store: &troupe_context::Store) -> Result<PlanStore> {
        let collection = store.collection(PLANS_COLLECTION).map_err(troupe_runtime::Error::from)?;
        Ok(PlanStore::new(Arc::new(troupe_runtime::CollectionBackend(collection))))
    }

    /// Write a plan.
    pub fn put(&self, plan: &Plan) -> Result<()> {
        self.backend.put(&format!("plans/{}", plan.id), &serde_json::to_value(plan)?)?;
        Ok(())
    }

    /// A plan by id or by a unique prefix of it.
    pub fn find(&self, id_or_prefix: &str) -> Result<Option<Plan>> {
        if let Some(v) = self.backend.get(&format!("plans/{id_or_prefix}"))? {
            return Ok(Some(serde_json::from_value(v)?));
        }
        if id_or_prefix.is_empty() {
            return Ok(None);
        }
        let matches = self.backend.scan(&format!("plans/{id_or_prefix}"))?;
        if matches.len() == 1 {
            return Ok(matches
                .into_iter()
                .next()
                .map(|(_, v)| serde_json::from_value(v))
                .transpose()?);
        }
        Ok(None)
    }

    /// A plan by id or prefix, or [`Error::NoSuchPlan`].
    pub fn get(&self, id_or_prefix: &str) -> Result<Plan> {
        self.find(id_or_prefix)?.ok_or_else(|| Error::NoSuchPlan(id_or_prefix.to_string()))
    }

    /// Every plan, oldest first.
    pub fn list(&self) -> Result<Vec<Plan>> {
        self.backend
            .scan("plans/")?
            .into_iter()
            .map(|(_, v)| serde_json::from_value(v).map_err(Error::from))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PlanSpec, TaskSpec};

    #[test]
    fn plans_are_found_by_id_and_prefix_and_survive_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let spec = PlanSpec {
            title: "t".into(),
            goal: "g".into(),
            tasks: vec![TaskSpec { id: "a".into(), description: "d".into(), ..Default::default() }],
        };
        let plan = Plan::new("spec", dir.path().into(), spec, "test");
        {
            let store = troupe_context::Store::open_in(
                dir.path(),
                troupe_context::StoreOptions::without_embeddings(),
            )
            .unwrap();
            PlanStore::of(&store).unwrap().put(&plan).unwrap();
        }
        let store = troupe_context::Store::open_in(
            dir.path(),
            troupe_context::StoreOptions::without_embeddings(),
        )
        .unwrap();
        let plans = PlanStore::of(&store).unwrap();
        assert_eq!(plans.get(&plan.id).unwrap(), plan);
        assert_eq!(plans.get(&plan.id[..8]).unwrap().id, plan.id);
        assert!(matches!(plans.get("nope"), Err(Error::NoSuchPlan(_))));
        assert_eq!(plans.list().unwrap().len(), 1);
    }
}
