//! Search's vector side: the nodes whose best passage is most similar to the query, by a
//! quantised scan of each project's matrix and exact cosines from the stored vectors; and
//! the exact cosine of the BM25 hits the vector list did not reach.

use std::sync::{Arc, PoisonError, RwLock};

use crate::chunk::Passage;
use crate::error::Result;
use crate::keys::{project_prefix, vector_key};
use crate::model::{NodeId, NodeType, ProjectId, Scope};
use crate::store::Store;
use crate::vectors::{self, ProjectVectors};

use super::fusion::Candidate;

/// A node found by vector search: its best passage's cosine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VectorHit {
    pub id: NodeId,
    pub score: f32,
    /// Where its best passage lies (none for vectors stored before passages).
    pub passage: Option<Passage>,
}

impl Store {
    /// The `k` nodes whose best passage is most similar to `query` in `scope`, best first.
    pub(crate) fn vector_search(
        &self,
        query: &[f32],
        scope: &Scope,
        types: &[NodeType],
        k: usize,
    ) -> Result<Vec<VectorHit>> {
        let projects: Vec<ProjectId> = match scope {
            Scope::Project(p) => vec![p.clone()],
            Scope::All => self.project_ids()?,
        };
        // Candidates by the quantised scan, a few more than asked, then exact cosine from the
        // stored f32 vectors decides the order.
        let oversampled = k * 2 + 16;
        let mut all = Vec::new();
        let mut scratch = Vec::new();
        for p in &projects {
            let matrix = self.project_vectors(p)?;
            let candidates = {
                let matrix = matrix.read().unwrap_or_else(PoisonError::into_inner);
                matrix.top_k(query, types, oversampled)
            };
            for (id, approx, _) in candidates {
                let (passage, score) = match self.graph().vectors.get(vector_key(p, &id))? {
                    Some(bytes) => match vectors::best_stored(&bytes, query, &mut scratch) {
                        Some((_, passage, score)) => (passage, score),
                        None => (None, approx),
                    },
                    // Deleted since the scan.
                    None => continue,
                };
                all.push(VectorHit { id, score, passage });
            }
        }
        all.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        all.truncate(k);
        Ok(all)
    }

    /// The project's vector matrix, loading it from the graph on first use.
    pub(crate) fn project_vectors(
        &self,
        project: &ProjectId,
    ) -> Result<Arc<RwLock<ProjectVectors>>> {
        if let Some(m) = self.inner.vectors.get(project) {
            return Ok(m);
        }
        let dims = self.embedder().map(|e| e.dims()).unwrap_or(0);
        // Load under the write guard: no write can slip between the read and the insert.
        let _guard = self.write_guard();
        if let Some(m) = self.inner.vectors.get(project) {
            return Ok(m);
        }
        let prefix = project_prefix(project);
        let mut matrix = ProjectVectors::new(dims);
        for item in self.graph().vectors.scan_prefix(&prefix) {
            let (k, v) = item?;
            let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            match vectors::decode(&v) {
                Some(stored) => {
                    matrix.upsert(&NodeId::from_trusted(id), stored.node_type, &stored.vectors)
                }
                None => tracing::warn!("skipping an undecodable vector of node {id}"),
            }
        }
        Ok(self.inner.vectors.insert(project.clone(), matrix))
    }

    /// Complete the cosine and passage of the candidates the vector list did not reach
    /// (BM25's hits) from their stored vectors, against `query_vector`.
    pub(crate) fn complete_cosines(
        &self,
        candidates: &mut [Candidate],
        scope: &Scope,
        query_vector: &[f32],
    ) -> Result<()> {
        let mut scratch = Vec::new();
        for c in candidates.iter_mut().filter(|c| c.found_by.cosine.is_none()) {
            let project = match scope {
                Scope::Project(p) => p.clone(),
                Scope::All => match self.get_node(&c.id)? {
                    Some(n) => n.project,
                    None => continue,
                },
            };
            let stored = self.graph().vectors.get(vector_key(&project, &c.id))?;
            if let Some((_, passage, cosine)) =
                stored.and_then(|bytes| vectors::best_stored(&bytes, query_vector, &mut scratch))
            {
                c.found_by.cosine = Some(cosine);
                c.passage = passage;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SearchMode, SearchQuery};
    use super::*;

    #[test]
    fn reindex_upgrades_vectors_from_before_passages() {
        use crate::StoreOptions;
        use crate::embed::{Embedder, HashEmbedder};
        use crate::keys::vector_key;
        use crate::model::NewNode;

        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::open(dir.path(), StoreOptions::with_embedder(Arc::new(HashEmbedder::new(64))))
                .unwrap();
        let p = ProjectId::new("p").unwrap();
        let head = "lantern meadow orchard ".repeat(150);
        let body = format!("{head}\nzebra quagga okapi giraffe");
        let node = store.upsert_node(NewNode::new(&p, NodeType::Concept, "Notes", &body)).unwrap();
        let key = vector_key(&p, &node.id);
        let stored = |store: &Store| {
            vectors::decode(&store.graph().vectors.get(&key).unwrap().unwrap()).unwrap()
        };
        let fresh = stored(&store);
        assert_eq!(fresh.scheme, vectors::SCHEME);
        assert!(fresh.passages.len() > 1, "{:?}", fresh.passages);

        // Make it a store written before passages: one vector of the title and the head.
        let embedder = HashEmbedder::new(64);
        let old = embedder.embed(&[&format!("Notes\n{}", &body[..2000])]).unwrap().remove(0);
        store.graph().vectors.insert(&key, vectors::encode_v1(NodeType::Concept, &old)).unwrap();
        store.inner.vectors.clear();
        let q = SearchQuery::new("zebra quagga okapi", &p).mode(SearchMode::Vector);
        let before = store.search(&q).unwrap();
        // Old vectors still search, without a passage to show.
        assert_eq!(before.hits[0].node.id, node.id);
        assert_eq!(before.hits[0].passage, None);

        let report = store.reindex(&crate::progress::NoProgress).unwrap();
        assert_eq!(report.embedded, 1);
        let upgraded = stored(&store);
        assert_eq!(upgraded.scheme, vectors::SCHEME);
        assert_eq!(upgraded.passages, fresh.passages);
        let after = store.search(&q).unwrap();
        assert!(after.hits[0].found_by.cosine > before.hits[0].found_by.cosine);
        assert_eq!(after.hits[0].passage.map(|p| p.end), Some(body.len()));
        assert!(after.hits[0].snippet.ends_with("zebra quagga okapi giraffe"));
        // Nothing is left to upgrade.
        assert_eq!(store.reindex(&crate::progress::NoProgress).unwrap().embedded, 0);
    }
}
