//! The context crate's integration tests: one binary, real sled and tantivy in temporary
//! folders, the deterministic [`HashEmbedder`] by default and the real embedding model
//! where the test is about it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Duration, Utc};
use serde_json::json;
use tempfile::TempDir;
use troupe_context::{
    Direction, EdgeType, Embedder, EmbeddingStatus, Error, HashEmbedder, NewNode, NoProgress,
    NodeId, NodeType, OnnxEmbedder, ProjectId, Scope, SearchMode, SearchQuery, Store, StoreOptions,
};

fn hash_store(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::with_embedder(Arc::new(HashEmbedder::new(64)))).unwrap()
}

fn project(name: &str) -> ProjectId {
    ProjectId::new(name).unwrap()
}

fn add(store: &Store, p: &ProjectId, t: NodeType, title: &str, body: &str) -> NodeId {
    store.upsert_node(NewNode::new(p, t, title, body)).unwrap().id
}

/// A store with the hashing embedder in a fresh folder, and project `p`.
fn hash_project() -> (TempDir, Store, ProjectId) {
    let dir = TempDir::new().unwrap();
    let store = hash_store(dir.path());
    (dir, store, project("p"))
}

/// Add a node last updated `days` days ago.
fn add_aged(
    store: &Store,
    p: &ProjectId,
    t: NodeType,
    title: &str,
    body: &str,
    days: i64,
) -> NodeId {
    let node = NewNode::new(p, t, title, body).at(Utc::now() - Duration::days(days));
    store.upsert_node(node).unwrap().id
}

fn ids(results: &troupe_context::SearchResults) -> Vec<NodeId> {
    results.hits.iter().map(|h| h.node.id.clone()).collect()
}

/// The installed assets folder (`$TROUPE_HOME/assets`, default
/// `~/.local/share/troupe/assets`), or a failure saying how to install it.
fn real_assets_dir() -> PathBuf {
    let home = std::env::var_os("TROUPE_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_DATA_HOME")
                .filter(|h| !h.is_empty())
                .map(|d| PathBuf::from(d).join("troupe"))
        })
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/troupe")))
        .expect("no HOME");
    let assets = home.join("assets");
    let missing = troupe_context::EmbeddingAssets::in_assets_dir(&assets).missing();
    assert!(
        missing.is_empty(),
        "the embedding model is not installed ({} missing under {}): run `scripts/setup.sh --assets-only`",
        missing.len(),
        assets.display()
    );
    assets
}

mod graph {
    use super::*;

    #[test]
    fn upsert_keeps_edges_and_created_at_and_rejects_a_project_change() {
        let (_dir, store, p) = hash_project();
        let a = store
            .upsert_node(NewNode::new(&p, NodeType::Task, "Add rate limiting", "first"))
            .unwrap();
        let b = add(&store, &p, NodeType::Decision, "Token bucket", "per agent");
        store.link(&b, &a.id, EdgeType::PartOf, 0.5, json!({"why": "made there"})).unwrap();

        let updated = store
            .upsert_node(
                NewNode::new(&p, NodeType::Task, "Add rate limiting", "second")
                    .with_id(a.id.clone())
                    .with_tags(["limits"]),
            )
            .unwrap();
        assert_eq!(updated.created_at, a.created_at);
        assert!(updated.updated_at >= a.updated_at);
        assert_eq!(updated.body, "second");
        assert_eq!(store.node(&a.id).unwrap().tags, ["limits"]);
        let edges = store.edges(&a.id, Direction::Incoming, None).unwrap();
        assert_eq!(edges.len(), 1);
        assert_eq!(edges[0].from, b);
        assert_eq!(edges[0].weight, 0.5);
        assert_eq!(edges[0].metadata, json!({"why": "made there"}));

        let other = project("q");
        let e = store
            .upsert_node(NewNode::new(&other, NodeType::Task, "t", "b").with_id(a.id.clone()))
            .unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{e}");
        assert_eq!(store.node(&a.id).unwrap().project, p);
    }

    #[test]
    fn changing_a_nodes_type_moves_it_between_type_listings() {
        let (_dir, store, p) = hash_project();
        let id = add(&store, &p, NodeType::Concept, "Idempotency", "same effect twice");
        store
            .upsert_node(
                NewNode::new(&p, NodeType::Pattern, "Idempotency", "same").with_id(id.clone()),
            )
            .unwrap();
        let scope = Scope::Project(p);
        assert!(store.list_nodes(&scope, Some(NodeType::Concept), 10).unwrap().is_empty());
        assert_eq!(store.list_nodes(&scope, Some(NodeType::Pattern), 10).unwrap().len(), 1);
        let hits = store
            .search(
                &SearchQuery::new("idempotency", scope.clone())
                    .mode(SearchMode::Bm25)
                    .types([NodeType::Concept]),
            )
            .unwrap();
        assert!(hits.hits.is_empty());
    }

    #[test]
    fn delete_removes_every_edge_touching_the_node_in_both_directions() {
        let (_dir, store, p) = hash_project();
        let a = add(&store, &p, NodeType::Task, "a", "");
        let b = add(&store, &p, NodeType::Mistake, "b", "");
        let c = add(&store, &p, NodeType::Pattern, "c", "");
        store.link(&b, &a, EdgeType::CausedBy, 1.0, json!(null)).unwrap();
        store.link(&a, &c, EdgeType::RelatedTo, 1.0, json!(null)).unwrap();
        store.link(&b, &c, EdgeType::DerivedFrom, 1.0, json!(null)).unwrap();

        assert!(store.delete_node(&a).unwrap());
        assert!(!store.delete_node(&a).unwrap());
        assert!(store.get_node(&a).unwrap().is_none());
        assert_eq!(store.edges(&a, Direction::Both, None).unwrap(), vec![]);
        // The other ends no longer see edges to the deleted node, in either tree.
        let b_edges = store.edges(&b, Direction::Both, None).unwrap();
        assert_eq!(b_edges.len(), 1);
        assert_eq!(b_edges[0].to, c);
        let c_edges = store.edges(&c, Direction::Incoming, None).unwrap();
        assert_eq!(c_edges.len(), 1);
        assert_eq!(c_edges[0].from, b);
        let stats = store.stats(&Scope::All).unwrap();
        assert_eq!(stats.total_nodes, 2);
        assert_eq!(stats.edges, 1);
    }

    #[test]
    fn neighbours_by_type_and_direction() {
        let (_dir, store, p) = hash_project();
        let task = add(&store, &p, NodeType::Task, "task", "");
        let m = add(&store, &p, NodeType::Mistake, "mistake", "");
        let fix = add(&store, &p, NodeType::Task, "fix", "");
        let d = add(&store, &p, NodeType::Decision, "decision", "");
        store.link(&m, &task, EdgeType::CausedBy, 1.0, json!(null)).unwrap();
        store.link(&m, &fix, EdgeType::FixedBy, 1.0, json!(null)).unwrap();
        store.link(&d, &task, EdgeType::PartOf, 1.0, json!(null)).unwrap();

        let out: Vec<String> = store
            .neighbours(&m, Direction::Outgoing, None)
            .unwrap()
            .into_iter()
            .map(|(_, n)| n.title)
            .collect();
        assert_eq!(out.len(), 2);
        assert!(out.contains(&"task".into()) && out.contains(&"fix".into()));
        let fixed: Vec<NodeId> = store
            .neighbours(&m, Direction::Outgoing, Some(EdgeType::FixedBy))
            .unwrap()
            .into_iter()
            .map(|(_, n)| n.id)
            .collect();
        assert_eq!(fixed, vec![fix.clone()]);
        let into_task = store.neighbours(&task, Direction::Incoming, None).unwrap();
        assert_eq!(into_task.len(), 2);
        assert!(store.neighbours(&task, Direction::Outgoing, None).unwrap().is_empty());
        let part_of = store.neighbours(&task, Direction::Incoming, Some(EdgeType::PartOf)).unwrap();
        assert_eq!(part_of.len(), 1);
        assert_eq!(part_of[0].1.id, d);
        assert_eq!(store.neighbours(&m, Direction::Both, None).unwrap().len(), 2);
        // Linking again replaces the edge instead of adding one.
        store.link(&m, &fix, EdgeType::FixedBy, 0.25, json!(null)).unwrap();
        let edges = store.edges(&m, Direction::Outgoing, Some(EdgeType::FixedBy)).unwrap();
        assert_eq!(edges.len(), 1);
        assert_eq!(edges[0].weight, 0.25);
        assert!(store.unlink(&m, &fix, EdgeType::FixedBy).unwrap());
        assert!(!store.unlink(&m, &fix, EdgeType::FixedBy).unwrap());
        assert!(store.neighbours(&fix, Direction::Incoming, None).unwrap().is_empty());
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let (_dir, store, p) = hash_project();
        let a = add(&store, &p, NodeType::Task, "a", "");
        let missing = NodeId::new("nope").unwrap();
        assert!(matches!(
            store.link(&a, &missing, EdgeType::RelatedTo, 1.0, json!(null)),
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            store.link(&a, &a, EdgeType::RelatedTo, 1.0, json!(null)),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            store.link(&a, &missing, EdgeType::RelatedTo, f32::NAN, json!(null)),
            Err(Error::InvalidInput(_))
        ));
        assert!(store.edges(&a, Direction::Both, None).unwrap().is_empty());
        assert!(matches!(
            store.upsert_node(NewNode::new(&p, NodeType::Task, "  ", "body")),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            store.search(&SearchQuery::new("x", &p).rrf_k(-1.0)),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(store.node(&missing), Err(Error::NotFound { .. })));
        assert!(store.collection("bad name").is_err());
        assert!(store.collection("").is_err());
        assert!("nonsense".parse::<NodeType>().is_err());
    }

    #[test]
    fn ids_resolve_from_unique_prefixes() {
        let (_dir, store, p) = hash_project();
        for id in ["abc-1", "abc-2", "xyz-1"] {
            store
                .upsert_node(
                    NewNode::new(&p, NodeType::Concept, id, "").with_id(NodeId::new(id).unwrap()),
                )
                .unwrap();
        }
        assert_eq!(store.resolve_id("xyz").unwrap().as_str(), "xyz-1");
        assert_eq!(store.resolve_id("abc-2").unwrap().as_str(), "abc-2");
        let e = store.resolve_id("abc").unwrap_err().to_string();
        assert!(e.contains("several"), "{e}");
        assert!(matches!(store.resolve_id("q"), Err(Error::NotFound { .. })));
    }

    #[test]
    fn bulk_deletes_remove_exactly_their_nodes() {
        let dir = TempDir::new().unwrap();
        let store = hash_store(dir.path());
        let (a, b) = (project("a"), project("b"));
        let old = Utc::now() - Duration::days(90);
        let mut a_ids = Vec::new();
        for i in 0..20 {
            let n = NewNode::new(&a, NodeType::Conversation, format!("turn {i}"), "hello rate");
            let n = if i % 2 == 0 { n.at(old) } else { n };
            a_ids.push(store.upsert_node(n).unwrap().id);
        }
        let a_task = add(&store, &a, NodeType::Task, "a task", "rate");
        let b_task = add(&store, &b, NodeType::Task, "b task", "rate");
        let b_old = store
            .upsert_node(NewNode::new(&b, NodeType::Conversation, "b turn", "rate").at(old))
            .unwrap()
            .id;
        // An edge across projects must go with the deleted project.
        store.link(&b_task, &a_task, EdgeType::RelatedTo, 1.0, json!(null)).unwrap();

        let cutoff = Utc::now() - Duration::days(30);
        let n = store
            .delete_older_than(&Scope::Project(a.clone()), NodeType::Conversation, cutoff)
            .unwrap();
        assert_eq!(n, 10);
        assert_eq!(
            store
                .list_nodes(&Scope::Project(a.clone()), Some(NodeType::Conversation), 100)
                .unwrap()
                .len(),
            10
        );
        assert!(store.get_node(&b_old).unwrap().is_some(), "other project untouched");

        let n = store.delete_project(&a).unwrap();
        assert_eq!(n, 11);
        assert!(store.list_nodes(&Scope::Project(a.clone()), None, 100).unwrap().is_empty());
        assert!(store.edges(&b_task, Direction::Both, None).unwrap().is_empty());
        for mode in [SearchMode::Bm25, SearchMode::Vector, SearchMode::Hybrid] {
            let r = store.search(&SearchQuery::new("rate", &a).mode(mode)).unwrap();
            assert!(r.hits.is_empty(), "{mode:?} still finds deleted nodes");
        }
        let stats = store.stats(&Scope::All).unwrap();
        assert_eq!(stats.total_nodes, 2);
        assert_eq!(stats.index_docs, 2);
        assert_eq!(stats.embedded, 2);
        assert_eq!(stats.projects, 1);

        let n = store.delete_older_than(&Scope::All, NodeType::Conversation, cutoff).unwrap();
        assert_eq!(n, 1);
        assert!(store.get_node(&b_task).unwrap().is_some());
    }

    #[test]
    fn everything_survives_a_reopen() {
        let dir = TempDir::new().unwrap();
        let p = project("p");
        let (a, b) = {
            let store = hash_store(dir.path());
            let a = add(&store, &p, NodeType::Decision, "Use sled", "embedded database");
            let b = add(&store, &p, NodeType::Task, "Persist runs", "in a collection");
            store.link(&a, &b, EdgeType::PartOf, 1.0, json!(null)).unwrap();
            let runs = store.collection("runs").unwrap();
            runs.put("r1", &json!({"state": "done"})).unwrap();
            (a, b)
        };
        let store = hash_store(dir.path());
        assert_eq!(store.node(&a).unwrap().title, "Use sled");
        assert_eq!(store.edges(&a, Direction::Outgoing, None).unwrap()[0].to, b);
        let runs = store.collection("runs").unwrap();
        assert_eq!(runs.get::<serde_json::Value>("r1").unwrap(), Some(json!({"state": "done"})));
        for mode in [SearchMode::Bm25, SearchMode::Vector, SearchMode::Hybrid] {
            let r =
                store.search(&SearchQuery::new("embedded database sled", &p).mode(mode)).unwrap();
            assert_eq!(r.hits.first().map(|h| &h.node.id), Some(&a), "{mode:?}");
        }
    }
}

mod isolation {
    use super::*;

    #[test]
    fn nothing_of_one_project_is_ever_returned_for_another() {
        let dir = TempDir::new().unwrap();
        let store = hash_store(dir.path());
        let (a, b) = (project("aaaa"), project("bbbb"));
        let mut b_ids = Vec::new();
        for (title, body) in [
            ("Rate limiting with a token bucket", "429 too many requests, backoff"),
            ("Circuit breaker", "open after failures, rate of errors"),
            ("Pagination", "cursor based, rate of pages"),
        ] {
            add(&store, &a, NodeType::Decision, title, body);
            b_ids.push(add(&store, &b, NodeType::Decision, title, body));
        }
        // B has extra nodes matching better than anything in A.
        b_ids.push(add(&store, &b, NodeType::Task, "rate rate rate limit", "rate limit rate"));
        let a_only = add(&store, &a, NodeType::Task, "Unrelated A task", "nothing in common");
        // Edges across projects: graph expansion must not follow them out of the project.
        for id in &b_ids {
            store.link(&a_only, id, EdgeType::RelatedTo, 1.0, json!(null)).unwrap();
        }
        let top_a =
            store.search(&SearchQuery::new("rate limit", &a).mode(SearchMode::Bm25)).unwrap();
        store
            .link(&top_a.hits[0].node.id, &b_ids[3], EdgeType::Mentions, 1.0, json!(null))
            .unwrap();

        for mode in [SearchMode::Bm25, SearchMode::Vector, SearchMode::Hybrid] {
            for text in ["rate limit", "circuit breaker", "pagination cursor", "Unrelated"] {
                for expand in [true, false] {
                    let q = SearchQuery::new(text, &a).mode(mode).expand(expand).limit(50);
                    let r = store.search(&q).unwrap();
                    assert!(!r.hits.is_empty(), "{mode:?} {text}");
                    for h in &r.hits {
                        assert_eq!(h.node.project, a, "{mode:?} {text:?} returned {}", h.node.id);
                        assert!(!b_ids.contains(&h.node.id));
                    }
                }
            }
        }
        let block = store.relevant_context(&a, "rate limit", 4000).unwrap();
        assert!(!block.used.is_empty());
        for u in &block.used {
            assert!(!b_ids.contains(&u.id));
            assert!(!block.text.contains(u.id.as_str()) || store.node(&u.id).unwrap().project == a);
        }
        for id in &b_ids {
            assert!(!block.text.contains(id.as_str()));
        }
        // Asking for all projects does see both.
        let all = store.search(&SearchQuery::new("rate limit", Scope::All).limit(50)).unwrap();
        assert!(all.hits.iter().any(|h| h.node.project == a));
        assert!(all.hits.iter().any(|h| h.node.project == b));
    }
}

mod crash {
    use super::*;

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }

    /// The graph changes of the second session, and what must be found after them.
    struct Scenario {
        kept: NodeId,
        changed: NodeId,
        deleted: NodeId,
    }

    fn first_session(dir: &Path, p: &ProjectId) -> Scenario {
        let store = hash_store(dir);
        Scenario {
            kept: add(&store, p, NodeType::Decision, "Keep me", "stable alpha"),
            changed: add(&store, p, NodeType::Decision, "Change me", "old words bravo"),
            deleted: add(&store, p, NodeType::Decision, "Delete me", "charlie"),
        }
    }

    fn second_session(store: &Store, p: &ProjectId, s: &Scenario) -> NodeId {
        store
            .upsert_node(
                NewNode::new(p, NodeType::Decision, "Change me", "new words delta")
                    .with_id(s.changed.clone()),
            )
            .unwrap();
        store.delete_node(&s.deleted).unwrap();
        add(store, p, NodeType::Pattern, "Added later", "echo")
    }

    fn assert_index_matches_graph(store: &Store, p: &ProjectId, s: &Scenario, added: &NodeId) {
        let bm25 =
            |q: &str| ids(&store.search(&SearchQuery::new(q, p).mode(SearchMode::Bm25)).unwrap());
        assert_eq!(bm25("alpha"), vec![s.kept.clone()]);
        assert_eq!(bm25("delta"), vec![s.changed.clone()]);
        assert!(bm25("bravo").is_empty(), "the old text of a changed node is gone");
        assert!(bm25("charlie").is_empty(), "a deleted node is gone");
        assert_eq!(bm25("echo"), vec![added.clone()]);
        let stats = store.stats(&Scope::All).unwrap();
        assert_eq!(stats.index_docs, 3, "no stale documents left in the index");
        assert_eq!(stats.index_pending, 0);
    }

    #[test]
    fn graph_writes_whose_index_commit_never_happened_are_replayed_on_open() {
        let dir = TempDir::new().unwrap();
        let p = project("p");
        let s = first_session(dir.path(), &p);
        let added = {
            // Every graph write lands; every index commit is "lost in the crash".
            let store = Store::open(
                dir.path(),
                StoreOptions::with_embedder(Arc::new(HashEmbedder::new(64)))
                    .crash_before_index_commits(),
            )
            .unwrap();
            let added = second_session(&store, &p, &s);
            let stale = store.stats(&Scope::All).unwrap();
            assert_eq!(stale.index_docs, 3, "the index really is behind");
            assert_eq!(stale.index_pending, 3);
            let r = store.search(&SearchQuery::new("echo", &p).mode(SearchMode::Bm25)).unwrap();
            assert!(r.hits.is_empty());
            added
        };
        let store = hash_store(dir.path());
        assert_index_matches_graph(&store, &p, &s, &added);
    }

    #[test]
    fn an_index_older_than_the_change_log_is_rebuilt_on_open() {
        let dir = TempDir::new().unwrap();
        let p = project("p");
        let index = dir.path().join("store").join("index");
        let snapshot = dir.path().join("index-before");
        let s = first_session(dir.path(), &p);
        // An old copy of the index (a backup, a file system rolled back) put back after
        // later writes were indexed and their log entries pruned.
        copy_dir(&index, &snapshot);
        let added = second_session(&hash_store(dir.path()), &p, &s);
        std::fs::remove_dir_all(&index).unwrap();
        copy_dir(&snapshot, &index);
        let store = hash_store(dir.path());
        assert_index_matches_graph(&store, &p, &s, &added);
    }

    #[test]
    fn a_missing_or_damaged_index_is_rebuilt_from_the_graph() {
        let dir = TempDir::new().unwrap();
        let p = project("p");
        let index = dir.path().join("store").join("index");
        let id = {
            let store = hash_store(dir.path());
            add(&store, &p, NodeType::Concept, "Reciprocal rank fusion", "sum of 1/(k+rank)")
        };
        std::fs::remove_dir_all(&index).unwrap();
        {
            let store = hash_store(dir.path());
            let r = store.search(&SearchQuery::new("fusion", &p).mode(SearchMode::Bm25)).unwrap();
            assert_eq!(ids(&r), vec![id.clone()]);
        }
        std::fs::write(index.join("meta.json"), b"garbage").unwrap();
        let store = hash_store(dir.path());
        let r = store.search(&SearchQuery::new("fusion", &p).mode(SearchMode::Bm25)).unwrap();
        assert_eq!(ids(&r), vec![id]);
    }

    #[test]
    fn an_index_copied_from_another_store_is_rebuilt() {
        let (one, two) = (TempDir::new().unwrap(), TempDir::new().unwrap());
        let p = project("p");
        {
            let s1 = hash_store(one.path());
            add(&s1, &p, NodeType::Concept, "Only in store one", "zulu");
            let s2 = hash_store(two.path());
            add(&s2, &p, NodeType::Concept, "Only in store two", "yankee");
        }
        let index_one = one.path().join("store").join("index");
        let index_two = two.path().join("store").join("index");
        std::fs::remove_dir_all(&index_two).unwrap();
        copy_dir(&index_one, &index_two);
        let s2 = hash_store(two.path());
        let q = |t: &str| {
            s2.search(&SearchQuery::new(t, &p).mode(SearchMode::Bm25)).unwrap().hits.len()
        };
        assert_eq!(q("zulu"), 0);
        assert_eq!(q("yankee"), 1);
    }
}

mod collections {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Run {
        state: String,
        steps: u32,
    }

    #[test]
    fn put_get_cas_update_remove_scan() {
        let dir = TempDir::new().unwrap();
        let store = Store::open(dir.path(), StoreOptions::without_embeddings()).unwrap();
        let runs = store.collection("runs").unwrap();
        let r = Run { state: "running".into(), steps: 0 };
        assert!(runs.insert_new("run/1", &r).unwrap());
        assert!(!runs.insert_new("run/1", &r).unwrap());
        runs.put("run/2", &Run { state: "done".into(), steps: 3 }).unwrap();
        runs.put("step/1", &Run { state: "x".into(), steps: 1 }).unwrap();
        assert_eq!(runs.get::<Run>("run/1").unwrap(), Some(r.clone()));
        assert_eq!(runs.get::<Run>("run/9").unwrap(), None);

        let next = Run { state: "done".into(), steps: 1 };
        let wrong = Run { state: "queued".into(), steps: 0 };
        let conflict =
            runs.compare_and_swap("run/1", Some(&wrong), Some(&next)).unwrap().unwrap_err();
        assert_eq!(conflict.current, Some(serde_json::to_value(&r).unwrap()));
        runs.compare_and_swap("run/1", Some(&r), Some(&next)).unwrap().unwrap();
        assert_eq!(runs.get::<Run>("run/1").unwrap(), Some(next.clone()));
        runs.compare_and_swap::<Run>("run/3", None, Some(&r)).unwrap().unwrap();
        runs.compare_and_swap("run/3", Some(&r), None).unwrap().unwrap();
        assert_eq!(runs.get::<Run>("run/3").unwrap(), None);

        let after = runs
            .update("run/2", |old: Option<Run>| {
                old.map(|mut r| {
                    r.steps += 1;
                    r
                })
            })
            .unwrap();
        assert_eq!(after.map(|r| r.steps), Some(4));
        assert_eq!(runs.update("step/1", |_: Option<Run>| None).unwrap(), None);
        assert_eq!(runs.get::<Run>("step/1").unwrap(), None, "update to None removes");
        runs.put("step/1", &Run { state: "x".into(), steps: 1 }).unwrap();

        let scanned: Vec<String> =
            runs.scan_prefix::<Run>("run/").unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(scanned, ["run/1", "run/2"]);
        assert_eq!(runs.keys("step/").unwrap(), ["step/1"]);
        assert_eq!(runs.range::<Run>("run/2", None, 10).unwrap().len(), 2);
        assert_eq!(runs.range::<Run>("run/", Some("run/2"), 10).unwrap().len(), 1);
        assert_eq!(runs.remove::<Run>("run/1").unwrap(), Some(next));
        assert_eq!(runs.remove::<Run>("run/1").unwrap(), None);
        assert_eq!(runs.len(), 2);
        // A value of another shape is an error naming the record, not a panic.
        runs.put("odd", &json!([1, 2])).unwrap();
        let e = runs.get::<Run>("odd").unwrap_err().to_string();
        assert!(e.contains("runs/odd"), "{e}");
        assert!(runs.put("", &r).is_err());
    }

    #[test]
    fn appends_are_ordered_and_everything_is_durable_across_reopen() {
        let dir = TempDir::new().unwrap();
        let keys: Vec<String> = {
            let store = Store::open(dir.path(), StoreOptions::without_embeddings()).unwrap();
            let audit = store.collection("audit").unwrap();
            let keys = (0..50).map(|i| audit.append(&json!({"event": i})).unwrap()).collect();
            store.collection("runs").unwrap().put("a", &json!(1)).unwrap();
            keys
        };
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "append keys sort in append order");
        let store = Store::open(dir.path(), StoreOptions::without_embeddings()).unwrap();
        let audit = store.collection("audit").unwrap();
        let events: Vec<i64> = audit
            .scan_prefix::<serde_json::Value>("")
            .unwrap()
            .into_iter()
            .map(|(_, v)| v["event"].as_i64().unwrap())
            .collect();
        assert_eq!(events, (0..50).collect::<Vec<_>>());
        let later = audit.append(&json!({"event": 50})).unwrap();
        assert!(later > *keys.last().unwrap(), "keys keep growing after a reopen");
        assert_eq!(audit.last::<serde_json::Value>().unwrap().unwrap().0, later);
        assert_eq!(store.collection("runs").unwrap().get::<i64>("a").unwrap(), Some(1));
        // Collections are separate namespaces.
        assert!(store.collection("other").unwrap().is_empty());
    }
}

mod lock {
    use super::*;
    use std::process::{Command, Stdio};
    use troupe_context::LockWait;

    const DIR_VAR: &str = "TROUPE_CONTEXT_LOCK_TEST_DIR";

    fn wait_for(path: &Path, child: &mut std::process::Child) {
        for _ in 0..3000 {
            if path.exists() {
                return;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the lock-holding child exited early: {status}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("the lock-holding child never got ready");
    }

    /// Run by `a_second_process_is_told_who_holds_the_store` in a child process.
    #[test]
    #[ignore = "helper: runs in a child process of the lock test"]
    fn holder() {
        let Some(dir) = std::env::var_os(DIR_VAR) else { return };
        let dir = PathBuf::from(dir);
        let _store = Store::open(&dir, StoreOptions::without_embeddings()).unwrap();
        std::fs::write(dir.join("ready"), b"").unwrap();
        for _ in 0..3000 {
            if dir.join("release").exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Another process (this test binary running `lock::holder`) holding a store in a new
    /// folder, once it says it is ready.
    fn holder_process() -> (TempDir, std::process::Child) {
        let dir = TempDir::new().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "lock::holder", "--ignored", "--nocapture", "--test-threads=1"])
            .env(DIR_VAR, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        wait_for(&dir.path().join("ready"), &mut child);
        (dir, child)
    }

    #[test]
    fn a_second_process_is_told_who_holds_the_store() {
        let (dir, mut child) = holder_process();

        let err = Store::open(dir.path(), StoreOptions::without_embeddings()).unwrap_err();
        let text = err.to_string();
        match &err {
            Error::Locked { owner: Some(owner), .. } => {
                assert_eq!(owner.pid, child.id());
                assert_eq!(owner.alive, Some(true));
            }
            other => panic!("expected Locked with an owner, got {other:?}"),
        }
        assert!(text.contains("in use by another troupe process"), "{text}");
        assert!(text.contains(&format!("pid {}", child.id())), "{text}");
        assert!(text.contains("wait for it to finish or stop it"), "{text}");
        // Without trying the lock: the same holder.
        let holder = Store::holder(dir.path()).unwrap();
        assert_eq!((holder.pid, holder.alive), (child.id(), Some(true)));

        std::fs::write(dir.path().join("release"), b"").unwrap();
        assert!(child.wait().unwrap().success());
        assert!(Store::holder(dir.path()).is_none(), "the holder removes its mark when it closes");
        // Free again, and the owner file now names this process.
        let store = Store::open(dir.path(), StoreOptions::without_embeddings()).unwrap();
        let owner: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.root().join("owner.json")).unwrap())
                .unwrap();
        assert_eq!(owner["pid"], json!(std::process::id()));
    }

    #[test]
    fn a_waiting_open_names_the_holder_then_gets_the_store_once_it_closes() {
        let (dir, mut child) = holder_process();

        // A short bound: gives up, naming the holder and how long it waited.
        let short = LockWait {
            limit: std::time::Duration::from_millis(300),
            notice_after: std::time::Duration::from_millis(100),
        };
        let mut told = Vec::new();
        let err = Store::open_waiting(dir.path(), StoreOptions::without_embeddings(), short, |o| {
            told.push(o.map(|o| o.pid))
        })
        .unwrap_err();
        assert_eq!(told, vec![Some(child.id())], "told once, with the holder");
        match &err {
            Error::Locked { owner: Some(owner), waited: Some(_), .. } => {
                assert_eq!(owner.pid, child.id())
            }
            other => panic!("expected Locked after waiting, got {other:?}"),
        }
        assert!(err.to_string().contains("still after waiting"), "{err}");

        // Not waiting at all: no notice, the plain refusal.
        let err = Store::open_waiting(
            dir.path(),
            StoreOptions::without_embeddings(),
            LockWait::NONE,
            |_| panic!("no notice without a wait"),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Locked { waited: None, .. }), "{err:?}");

        // A long bound: the holder closes meanwhile and the store opens.
        let release = dir.path().join("release");
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            std::fs::write(release, b"").unwrap();
        });
        let long = LockWait {
            limit: std::time::Duration::from_secs(60),
            notice_after: std::time::Duration::from_millis(50),
        };
        let store =
            Store::open_waiting(dir.path(), StoreOptions::without_embeddings(), long, |_| {})
                .unwrap();
        releaser.join().unwrap();
        assert!(child.wait().unwrap().success());
        drop(store);
    }
}

mod degraded {
    use super::*;

    #[test]
    fn without_a_model_hybrid_is_bm25_with_a_warning_and_vector_is_an_error() {
        let dir = TempDir::new().unwrap();
        let no_assets = dir.path().join("no-assets");
        let store = Store::open(dir.path(), StoreOptions::with_assets(&no_assets)).unwrap();
        let p = project("p");
        let id = add(&store, &p, NodeType::Decision, "Rate limits", "token bucket");
        let r = store.search(&SearchQuery::new("rate limit", &p)).unwrap();
        assert_eq!(r.mode, SearchMode::Bm25);
        assert_eq!(ids(&r), vec![id.clone()]);
        let warning = r.warning.unwrap();
        assert!(warning.contains("BM25 only") && warning.contains("setup.sh"), "{warning}");
        assert!(r.hits[0].found_by.bm25.is_some() && r.hits[0].found_by.vector.is_none());
        let e = store.search(&SearchQuery::new("rate", &p).mode(SearchMode::Vector)).unwrap_err();
        assert!(matches!(e, Error::EmbeddingUnavailable { .. }), "{e}");
        match store.embedding_status() {
            EmbeddingStatus::Unavailable { reason } => {
                assert!(reason.contains("model.onnx"), "{reason}")
            }
            other => panic!("unexpected {other:?}"),
        }
        let stats = store.stats(&Scope::All).unwrap();
        assert_eq!(stats.embedded, 0);
        // Relevant context still works, counted with the conservative estimate.
        let block = store.relevant_context(&p, "rate limit", 200).unwrap();
        assert_eq!(block.counting, troupe_context::TokenCounting::Estimate);
        assert_eq!(block.used.len(), 1);
    }

    #[test]
    fn a_model_change_drops_old_vectors_until_a_reindex() {
        let dir = TempDir::new().unwrap();
        let p = project("p");
        {
            let store = Store::open(
                dir.path(),
                StoreOptions::with_embedder(Arc::new(HashEmbedder::new(32))),
            )
            .unwrap();
            for i in 0..5 {
                add(&store, &p, NodeType::Concept, &format!("concept {i}"), "vectors");
            }
            assert_eq!(store.stats(&Scope::All).unwrap().embedded, 5);
        }
        let store =
            Store::open(dir.path(), StoreOptions::with_embedder(Arc::new(HashEmbedder::new(48))))
                .unwrap();
        let r = store.search(&SearchQuery::new("vectors", &p).mode(SearchMode::Vector)).unwrap();
        assert!(r.hits.is_empty(), "vectors of another model are not compared");
        assert_eq!(store.stats(&Scope::All).unwrap().embedded, 0);
        let report = store.reindex(&NoProgress).unwrap();
        assert_eq!(report.indexed, 5);
        assert_eq!(report.embedded, 5);
        let r = store.search(&SearchQuery::new("vectors", &p).mode(SearchMode::Vector)).unwrap();
        assert_eq!(r.hits.len(), 5);
    }
}

mod real_model {
    use super::*;

    #[test]
    fn the_installed_model_embeds_384_normalised_dimensions_with_meaning() {
        let assets = real_assets_dir();
        let e = OnnxEmbedder::from_assets_dir(&assets).unwrap();
        assert_eq!(e.dims(), 384);
        let v = e
            .embed(&[
                "The cat sat on the mat.",
                "A kitten is resting on a rug.",
                "Quarterly revenue grew by four percent.",
                "",
            ])
            .unwrap();
        assert_eq!(v.len(), 4);
        for x in &v {
            assert_eq!(x.len(), 384);
            let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
        }
        let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let similar = cos(&v[0], &v[1]);
        let unrelated = cos(&v[0], &v[2]);
        assert!(similar > unrelated + 0.2, "similar {similar} vs unrelated {unrelated}");
        // Batching by length returns vectors in input order: same as one at a time.
        let single = e.embed(&["A kitten is resting on a rug."]).unwrap();
        assert!(cos(&single[0], &v[1]) > 0.999);
        let raw = e.embed_raw(&["The cat sat on the mat."], 1).unwrap();
        assert!(cos(&raw[0], &v[0]) > 0.999);
        // Tokens: WordPiece, without truncation at the model's 256.
        assert_eq!(e.count_tokens("hello world"), Some(2));
        let long = "word ".repeat(1000);
        assert_eq!(e.count_tokens(&long), Some(1000));
        assert!(e.model_id().starts_with("all-MiniLM-L6-v2/"));
    }

    #[test]
    fn a_store_with_the_real_model_reports_ready_and_counts_with_the_tokenizer() {
        let assets = real_assets_dir();
        let dir = TempDir::new().unwrap();
        let store = Store::open(dir.path(), StoreOptions::with_assets(&assets)).unwrap();
        match store.embedding_status() {
            EmbeddingStatus::Ready { dims, .. } => assert_eq!(dims, 384),
            other => panic!("unexpected {other:?}"),
        }
        let p = project("p");
        let id = add(
            &store,
            &p,
            NodeType::Mistake,
            "Retry storm",
            "everyone retried at once after the outage",
        );
        let r = store
            .search(
                &SearchQuery::new("all clients reconnecting simultaneously", &p)
                    .mode(SearchMode::Vector),
            )
            .unwrap();
        assert_eq!(ids(&r), vec![id]);
        let (n, how) = store.count_tokens("hello world");
        assert_eq!((n, how), (3, troupe_context::TokenCounting::Tokenizer));
        let block = store.relevant_context(&p, "clients retrying together", 60).unwrap();
        assert_eq!(block.counting, troupe_context::TokenCounting::Tokenizer);
        assert!(block.tokens <= 60 && block.tokens > 0, "{} tokens", block.tokens);
        assert_eq!(store.count_tokens(&block.text).0, block.tokens);
    }
}

mod scan {
    use super::*;

    fn write(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    fn fixture() -> TempDir {
        let dir = TempDir::new().unwrap();
        let r = dir.path();
        write(r, ".gitignore", "ignored/\n*.log\n");
        write(
            r,
            "Cargo.toml",
            "[package]\nname = \"demo\"\n\n[dependencies]\ntokio = \"1\"\nserde = \"1\"\n",
        );
        write(r, "Cargo.lock", "# generated\n");
        write(
            r,
            "package.json",
            r#"{"dependencies": {"react": "18"}, "devDependencies": {"jest": "29"}}"#,
        );
        write(r, "src/main.rs", "//! Entry point.\nfn main() {\n    limiter::acquire();\n}\n");
        let mut limiter = String::from(
            "//! Token bucket rate limiter for agent calls.\n\npub struct RateLimiter {\n    tokens: u32,\n}\n\nimpl RateLimiter {\n    pub fn acquire(&mut self) {}\n}\n",
        );
        for i in 0..40 {
            limiter.push_str(&format!("// filler line {i}\n"));
        }
        limiter.push_str("// the zebracorn lives only down here\n");
        write(r, "src/limiter.rs", limiter);
        write(r, "web/app.js", "export function render() { return 1 }\n");
        write(r, "README.md", "# Demo\n\nA demo project for scanning.\n");
        write(r, "ignored/secret.rs", "fn hidden() {}\n");
        write(r, "debug.log", "noise\n");
        write(r, "data/weird.json", b"{\"a\": \"\x00\x01\"}");
        write(r, "src/big.rs", "x".repeat(1024 * 1024 + 10));
        dir
    }

    fn file_titles(store: &Store, p: &ProjectId) -> Vec<String> {
        let mut t: Vec<String> = store
            .list_nodes(&Scope::Project(p.clone()), Some(NodeType::File), 1000)
            .unwrap()
            .into_iter()
            .map(|n| n.title)
            .collect();
        t.sort();
        t
    }

    #[test]
    fn a_scan_finds_languages_frameworks_structure_and_source_files() {
        let project_dir = fixture();
        let dir = TempDir::new().unwrap();
        let store = hash_store(dir.path());
        let report = store.scan_project(project_dir.path(), &NoProgress).unwrap();
        let p = report.project.id.clone();
        assert_eq!(p, troupe_context::project_id_for(project_dir.path()).unwrap().0);
        assert_eq!(
            file_titles(&store, &p),
            [
                "Cargo.toml",
                "README.md",
                "package.json",
                "src/limiter.rs",
                "src/main.rs",
                "web/app.js"
            ]
        );
        assert_eq!(report.added, 6);
        assert_eq!(report.skipped, 2, "the binary JSON and the 1 MiB file");
        let info = &report.project;
        assert_eq!(info.languages[0].language, "Rust");
        assert!(info.languages[0].share > 0.5);
        assert!(info.languages.iter().any(|l| l.language == "JavaScript"));
        assert!(info.languages.iter().all(|l| l.language != "Markdown"), "only code counts");
        let total: f64 = info.languages.iter().map(|l| l.share).sum();
        assert!((total - 1.0).abs() < 1e-9);
        for f in ["Tokio", "serde", "React", "Jest"] {
            assert!(info.frameworks.contains(&f.to_string()), "{f} in {:?}", info.frameworks);
        }
        for t in ["Cargo", "npm"] {
            assert!(info.build_tools.contains(&t.to_string()), "{t} in {:?}", info.build_tools);
        }
        let structure = info.structure.join("\n");
        assert!(structure.contains("src/ (3 files, Rust)"), "{structure}");
        assert!(structure.contains("Entry points: src/main.rs"), "{structure}");
        assert_eq!(store.project(&p).unwrap().unwrap().frameworks, info.frameworks);
        assert_eq!(store.projects().unwrap().len(), 1);

        // File nodes carry path, language, size, hash; the body summarises.
        let limiter = store.node(&troupe_context::file_node_id(&p, "src/limiter.rs")).unwrap();
        assert_eq!(limiter.metadata["language"], "Rust");
        assert_eq!(limiter.metadata["path"], "src/limiter.rs");
        assert!(limiter.metadata["hash"].as_str().unwrap().len() >= 16);
        assert!(limiter.body.contains("Token bucket rate limiter"), "{}", limiter.body);
        assert!(limiter.body.contains("Defines: RateLimiter"), "{}", limiter.body);
        assert!(!limiter.body.contains("zebracorn"), "the body is a summary");
        // ...while BM25 searches the whole content.
        let r = store.search(&SearchQuery::new("zebracorn", &p).mode(SearchMode::Bm25)).unwrap();
        assert_eq!(ids(&r), vec![limiter.id.clone()]);
        let r = store.search(&SearchQuery::new("rate limiter", &p)).unwrap();
        assert_eq!(r.hits[0].node.id, limiter.id);
    }

    #[test]
    fn a_rescan_updates_only_what_changed_and_keeps_edges() {
        let project_dir = fixture();
        let root = project_dir.path();
        let dir = TempDir::new().unwrap();
        let store = hash_store(dir.path());
        let first = store.scan_project(root, &NoProgress).unwrap();
        let p = first.project.id.clone();
        let again = store.scan_project(root, &NoProgress).unwrap();
        assert_eq!((again.added, again.updated, again.removed, again.unchanged), (0, 0, 0, 6));

        let limiter = troupe_context::file_node_id(&p, "src/limiter.rs");
        let before = store.node(&limiter).unwrap();
        let task = add(&store, &p, NodeType::Task, "Tune the limiter", "");
        store.link(&task, &limiter, EdgeType::References, 1.0, json!(null)).unwrap();

        write(root, "src/limiter.rs", "//! Leaky bucket now.\npub struct LeakyBucket;\n");
        std::fs::remove_file(root.join("web/app.js")).unwrap();
        write(root, "src/new.rs", "pub fn fresh() {}\n");
        // Same size, new content: found by the hash, not the size.
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        write(root, "README.md", readme.replace("demo", "omed"));

        let third = store.scan_project(root, &NoProgress).unwrap();
        assert_eq!((third.added, third.updated, third.removed, third.unchanged), (1, 2, 1, 3));
        assert!(file_titles(&store, &p).contains(&"src/new.rs".to_string()));
        assert!(!file_titles(&store, &p).contains(&"web/app.js".to_string()));
        let after = store.node(&limiter).unwrap();
        assert_eq!(after.created_at, before.created_at);
        assert!(after.body.contains("Leaky bucket"));
        assert_eq!(store.edges(&limiter, Direction::Incoming, None).unwrap().len(), 1, "edge kept");
        let r = store.search(&SearchQuery::new("zebracorn", &p).mode(SearchMode::Bm25)).unwrap();
        assert!(r.hits.is_empty(), "old content is gone from the index");
        assert!(!third.project.languages.iter().any(|l| l.language == "JavaScript"));
    }

    #[test]
    fn a_data_folder_inside_the_project_is_not_scanned() {
        let project_dir = fixture();
        let root = project_dir.path();
        // troupe's data folder (store, audit trail) kept inside the project.
        let data = root.join("troupe-data");
        let store = hash_store(&data);
        write(&data, "audit/run.log", "PROMPT → coder\n");
        let report = store.scan_project(root, &NoProgress).unwrap();
        let titles = file_titles(&store, &report.project.id);
        assert!(titles.iter().all(|t| !t.starts_with("troupe-data")), "{titles:?}");
        assert_eq!(titles.len(), 6, "the project's own files are all there: {titles:?}");
    }

    #[test]
    fn scanning_a_missing_folder_is_an_error() {
        let dir = TempDir::new().unwrap();
        let store = hash_store(dir.path());
        let e = store.scan_project(&dir.path().join("nope"), &NoProgress).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }

    /// The done-when of issue 5 at library level: scan this repository, search "rate limit".
    #[test]
    fn scanning_this_repository_finds_rate_limit_material() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let dir = TempDir::new().unwrap();
        let store = hash_store(dir.path());
        let report = store.scan_project(repo, &NoProgress).unwrap();
        assert!(report.project.languages[0].language == "Rust", "{:?}", report.project.languages);
        assert!(report.project.build_tools.contains(&"Cargo workspace".to_string()));
        let titles = file_titles(&store, &report.project.id);
        assert!(titles.contains(&"context/src/search/mod.rs".to_string()));
        assert!(!titles.iter().any(|t| t.starts_with("target/")), "build output is not scanned");
        let r = store.search(&SearchQuery::new("rate limit", &report.project.id)).unwrap();
        assert_eq!(r.mode, SearchMode::Hybrid);
        assert!(!r.hits.is_empty());
        // The test store's vectors are 64-dimensional hashes: noise that may put any passage of
        // the repository first (a test helper's did). What the search must keep is the keyword
        // side's best hit, among the hits and about rate limits.
        let top = r
            .hits
            .iter()
            .find(|h| h.found_by.bm25.is_some_and(|b| b.rank == 1))
            .unwrap_or_else(|| panic!("BM25's best hit fell out of the results: {:?}", r.hits));
        let text = format!(
            "{} {}",
            top.node.body,
            store.node_content(&top.node.id).unwrap().unwrap_or_default()
        )
        .to_lowercase();
        assert!(
            text.contains("rate limit")
                || text.contains("rate_limit")
                || text.contains("ratelimit"),
            "{}",
            top.node.title
        );
    }
}

mod memory {
    use super::*;
    use troupe_context::{
        DecisionRecord, MistakeRecord, PatternRecord, TaskRecord, TokenCounting, TurnRecord,
    };

    fn task(store: &Store, p: &ProjectId, text: &str, outcome: &str) -> NodeId {
        store
            .store_task(
                p,
                &TaskRecord {
                    task: text.into(),
                    outcome: outcome.into(),
                    success: true,
                    agent: Some("codex".into()),
                    ..TaskRecord::default()
                },
            )
            .unwrap()
    }

    #[test]
    fn records_are_linked_with_the_right_edges() {
        let (_dir, store, p) = hash_project();
        let t = task(&store, &p, "Add rate limiting", "token bucket per agent");
        let node = store.node(&t).unwrap();
        assert_eq!(node.node_type, NodeType::Task);
        assert!(node.body.contains("Outcome (succeeded): token bucket per agent"));
        assert_eq!(node.metadata["agent"], "codex");
        assert!(node.tags.contains(&"success".to_string()));

        let fix = task(&store, &p, "Fix the retry storm", "jitter");
        let m = store
            .store_mistake(
                &p,
                &MistakeRecord {
                    title: "Retry storm".into(),
                    what_happened: "all runs retried at once".into(),
                    fix: "jittered backoff".into(),
                    prevention: "cap concurrent retries".into(),
                    task: Some(t.clone()),
                    fixed_by: Some(fix.clone()),
                },
            )
            .unwrap();
        let out = store.edges(&m, Direction::Outgoing, None).unwrap();
        assert!(out.iter().any(|e| e.edge_type == EdgeType::CausedBy && e.to == t));
        assert!(out.iter().any(|e| e.edge_type == EdgeType::FixedBy && e.to == fix));
        let body = store.node(&m).unwrap().body;
        assert!(
            body.contains("Fix: jittered backoff") && body.contains("Prevention: cap"),
            "{body}"
        );

        let d1 = store
            .store_decision(
                &p,
                &DecisionRecord {
                    title: "Token bucket".into(),
                    decision: "governor token bucket".into(),
                    rationale: "smooth bursts".into(),
                    alternatives: vec!["leaky bucket".into()],
                    task: Some(t.clone()),
                    supersedes: None,
                },
            )
            .unwrap();
        let d2 = store
            .store_decision(
                &p,
                &DecisionRecord {
                    title: "Sliding window".into(),
                    decision: "sliding window counter".into(),
                    rationale: "fairer".into(),
                    supersedes: Some(d1.clone()),
                    ..DecisionRecord::default()
                },
            )
            .unwrap();
        assert_eq!(store.edges(&d1, Direction::Outgoing, Some(EdgeType::PartOf)).unwrap()[0].to, t);
        assert_eq!(
            store.edges(&d2, Direction::Outgoing, Some(EdgeType::Supersedes)).unwrap()[0].to,
            d1
        );

        let pat = store
            .store_pattern(
                &p,
                &PatternRecord {
                    title: "Backoff with jitter".into(),
                    description: "retry after random delays".into(),
                    example: Some("sleep(base * 2^n * rand())".into()),
                    derived_from: vec![m.clone(), fix.clone()],
                },
            )
            .unwrap();
        assert_eq!(
            store.edges(&pat, Direction::Outgoing, Some(EdgeType::DerivedFrom)).unwrap().len(),
            2
        );

        let turn = |role: &str, text: &str| {
            store
                .store_conversation_turn(
                    &p,
                    &TurnRecord {
                        conversation: "c1".into(),
                        role: role.into(),
                        text: text.into(),
                        task: Some(t.clone()),
                    },
                )
                .unwrap()
        };
        let u = turn("user", "please add rate limiting");
        let a = turn("assistant", "done, with a token bucket");
        let follows = store.edges(&a, Direction::Outgoing, Some(EdgeType::Follows)).unwrap();
        assert_eq!(follows.len(), 1);
        assert_eq!(follows[0].to, u);
        assert!(store.edges(&u, Direction::Outgoing, Some(EdgeType::Follows)).unwrap().is_empty());
        assert_eq!(store.edges(&a, Direction::Outgoing, Some(EdgeType::PartOf)).unwrap()[0].to, t);
    }

    #[test]
    fn a_record_pointing_at_a_missing_node_stores_nothing() {
        let (_dir, store, p) = hash_project();
        let e = store
            .store_mistake(
                &p,
                &MistakeRecord {
                    title: "x".into(),
                    task: Some(NodeId::new("missing").unwrap()),
                    ..MistakeRecord::default()
                },
            )
            .unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "{e}");
        assert_eq!(store.stats(&Scope::All).unwrap().total_nodes, 0);
        let e = store
            .store_conversation_turn(&p, &TurnRecord { text: "hi".into(), ..TurnRecord::default() })
            .unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{e}");
    }

    #[test]
    fn relevant_context_fits_every_budget_and_names_its_nodes() {
        let (_dir, store, p) = hash_project();
        for i in 0..12 {
            task(
                &store,
                &p,
                &format!("Rate limit change number {i}"),
                &"The rate limit for agents was tuned with care and measured. ".repeat(i + 1),
            );
        }
        task(&store, &p, "Unrelated docs typo", "fixed a typo in the README");
        for budget in [0usize, 10, 40, 80, 150, 400, 1000, 5000] {
            let block = store.relevant_context(&p, "rate limit for agents", budget).unwrap();
            let (counted, how) = store.count_tokens(&block.text);
            assert_eq!(how, TokenCounting::Estimate);
            assert!(counted <= budget, "budget {budget}: {counted} tokens");
            assert_eq!(block.tokens, if block.text.is_empty() { 0 } else { counted });
            assert_eq!(block.budget, budget);
            for u in &block.used {
                assert!(block.text.contains(u.id.as_str()), "used node {} is in the text", u.id);
            }
            let listed = block.text.matches("(id ").count();
            assert_eq!(listed, block.used.len());
            if budget >= 400 {
                assert!(block.used.len() >= 2, "budget {budget}: {} used", block.used.len());
                assert!(block.used[0].title.contains("Rate limit"));
            }
            if budget == 0 {
                assert!(block.text.is_empty() && block.used.is_empty());
            }
        }
        let big = store.relevant_context(&p, "rate limit for agents", 100_000).unwrap();
        let small = store.relevant_context(&p, "rate limit for agents", 150).unwrap();
        assert!(big.used.len() > small.used.len());
        assert!(small.left_out > 0);
    }

    #[test]
    fn relevant_context_drops_duplicates_and_superseded_decisions() {
        let (_dir, store, p) = hash_project();
        let a = task(&store, &p, "Cache the embeddings", "kept vectors in memory");
        let b = task(&store, &p, "Cache the embeddings", "kept vectors in memory");
        let old = store
            .store_decision(
                &p,
                &DecisionRecord {
                    title: "Cache embeddings on disk".into(),
                    decision: "write vectors to files".into(),
                    rationale: "cache survives restarts".into(),
                    ..DecisionRecord::default()
                },
            )
            .unwrap();
        let new = store
            .store_decision(
                &p,
                &DecisionRecord {
                    title: "Cache embeddings in sled".into(),
                    decision: "vectors stored with the node".into(),
                    rationale: "one store, cache survives restarts".into(),
                    supersedes: Some(old.clone()),
                    ..DecisionRecord::default()
                },
            )
            .unwrap();
        let block = store.relevant_context(&p, "cache embeddings", 5000).unwrap();
        let used: Vec<&NodeId> = block.used.iter().map(|u| &u.id).collect();
        assert!(used.contains(&&new));
        assert!(!used.contains(&&old), "superseded decision left out");
        assert_eq!(
            used.iter().filter(|id| ***id == a || ***id == b).count(),
            1,
            "duplicate left out"
        );
        assert!(block.left_out >= 2);
        assert!(block.text.starts_with("# Project memory"));
    }
}

mod quality {
    use super::*;
    use std::collections::HashMap;

    /// A small project memory: (key, type, title, body).
    const CORPUS: &[(&str, NodeType, &str, &str)] = &[
        (
            "rate-decision",
            NodeType::Decision,
            "Use token bucket rate limiting per agent",
            "Each agent gets a governor token bucket so bursts are smoothed; HTTP 429 responses trigger backoff.",
        ),
        (
            "retry-storm",
            NodeType::Mistake,
            "Retry storm after provider outage",
            "All runs retried at once when the API came back, tripping 429 errors. Fix: jittered exponential backoff. Prevention: cap concurrent retries.",
        ),
        (
            "breaker",
            NodeType::File,
            "adapters/src/resilience/breaker.rs",
            "Circuit breaker: opens after five consecutive failures, half-open after the recovery timeout.",
        ),
        (
            "pagination-task",
            NodeType::Task,
            "Add pagination to the users endpoint",
            "Implemented cursor-based pagination for GET /users with a limit parameter.",
        ),
        (
            "cursor-pattern",
            NodeType::Pattern,
            "Cursor pagination",
            "Return an opaque next_cursor token instead of page numbers so inserts do not shift pages.",
        ),
        (
            "sled-decision",
            NodeType::Decision,
            "Store run records in sled",
            "Chose sled as the embedded database; one process holds the lock; every write is flushed.",
        ),
        (
            "lock-mistake",
            NodeType::Mistake,
            "Database lock error when two processes start",
            "A second troupe process failed with 'could not acquire lock'. Fix: report the owning pid.",
        ),
        (
            "vectors-file",
            NodeType::File,
            "context/src/vectors.rs",
            "Brute-force cosine similarity over a contiguous f32 matrix per project.",
        ),
        (
            "rrf",
            NodeType::Concept,
            "Reciprocal Rank Fusion",
            "Combines ranked lists by summing 1/(k + rank) across retrievers.",
        ),
        (
            "flaky-task",
            NodeType::Task,
            "Fix flaky test in scheduler",
            "The test depended on wall-clock time; switched to a paused tokio clock.",
        ),
        (
            "paused-clock",
            NodeType::Pattern,
            "Use a paused clock in time-dependent tests",
            "tokio::time::pause makes timers deterministic; advance the clock manually.",
        ),
        (
            "small-commits",
            NodeType::Preference,
            "Prefer small commits",
            "The team wants each commit to build and pass tests on its own.",
        ),
        (
            "ort-mistake",
            NodeType::Mistake,
            "ORT_DYLIB_PATH unset causes a crash",
            "ONNX Runtime panicked when the library path was missing; now ort::init_from returns an error.",
        ),
        (
            "model-decision",
            NodeType::Decision,
            "Embed with all-MiniLM-L6-v2",
            "384-dimension sentence embeddings, fast on CPU, loaded from local files.",
        ),
        (
            "config-file",
            NodeType::File,
            "src/commands/config.rs",
            "init, validate, agents and workflows commands; writes the troupe.toml template.",
        ),
        (
            "offline",
            NodeType::Concept,
            "Offline mode",
            "Only agents on loopback are allowed; no connection leaves the machine.",
        ),
        (
            "translate-task",
            NodeType::Task,
            "Translate the README into German",
            "Docs translated and reviewed by a native speaker.",
        ),
        (
            "leak-mistake",
            NodeType::Mistake,
            "Memory leak in websocket handler",
            "Connections were never removed from the map after disconnect; the process grew until it was OOM-killed. Fix: remove on close.",
        ),
        (
            "shutdown",
            NodeType::Pattern,
            "Graceful shutdown",
            "Broadcast a shutdown signal, stop accepting connections, wait for in-flight requests to drain.",
        ),
        (
            "json-logs",
            NodeType::Decision,
            "Use JSON logs in production",
            "Structured one-object-per-line logs for ingestion by the log pipeline.",
        ),
        (
            "setup-file",
            NodeType::File,
            "scripts/setup.sh",
            "Installs ONNX Runtime, the embedding model and llama-server from PyPI into the assets folder.",
        ),
        (
            "bm25",
            NodeType::Concept,
            "BM25",
            "Term-frequency ranking with document length normalisation; good at exact identifiers.",
        ),
        (
            "ci-task",
            NodeType::Task,
            "Speed up CI",
            "Cached the cargo registry and target folder; build time dropped from 9 to 3 minutes.",
        ),
        (
            "secrets-mistake",
            NodeType::Mistake,
            "Secrets printed in debug logs",
            "API keys appeared in request dumps at debug level. Fix: redact Authorization headers.",
        ),
        (
            "spelling",
            NodeType::Preference,
            "British spelling in docs",
            "Use colour, behaviour, normalise.",
        ),
        (
            "validate-file",
            NodeType::File,
            "workflows/src/config/validate.rs",
            "Validation of agents and workflows, reporting problems with file:line:col.",
        ),
        (
            "dark-mode",
            NodeType::Task,
            "Add dark mode to the web UI",
            "CSS variables for themes; the toggle is persisted in local storage.",
        ),
        (
            "cosine",
            NodeType::Concept,
            "Cosine similarity",
            "Angle-based similarity between vectors: the dot product of normalised vectors.",
        ),
        (
            "off-by-one",
            NodeType::Mistake,
            "Off-by-one in pagination cursor",
            "The last item of each page was repeated on the next page. Fix: exclusive lower bound.",
        ),
        (
            "cap-runs",
            NodeType::Decision,
            "Cap concurrent runs at eight",
            "More runs wait in a queue to bound memory and API usage.",
        ),
    ];

    /// Queries with graded relevance (2: the answer, 1: related). Some are keyword-shaped
    /// (identifiers, error text) where BM25 shines, others paraphrase where vectors do.
    const QUERIES: &[(&str, &[(&str, u32)])] = &[
        ("too many requests from the API", &[("rate-decision", 2), ("retry-storm", 2)]),
        ("429", &[("rate-decision", 2), ("retry-storm", 2)]),
        (
            "how do we page through large result sets",
            &[("cursor-pattern", 2), ("pagination-task", 2), ("off-by-one", 1)],
        ),
        ("next_cursor", &[("cursor-pattern", 2)]),
        ("two troupe processes at the same time", &[("lock-mistake", 2), ("sled-decision", 1)]),
        ("could not acquire lock", &[("lock-mistake", 2)]),
        ("tests that depend on time are unreliable", &[("paused-clock", 2), ("flaky-task", 2)]),
        ("tokio::time::pause", &[("paused-clock", 2), ("flaky-task", 1)]),
        ("combine keyword and semantic rankings", &[("rrf", 2), ("bm25", 1), ("cosine", 1)]),
        ("ORT_DYLIB_PATH", &[("ort-mistake", 2)]),
        ("process keeps using more RAM until it is killed", &[("leak-mistake", 2)]),
        ("stop the server without dropping requests", &[("shutdown", 2)]),
        ("keep API keys out of the logs", &[("secrets-mistake", 2), ("json-logs", 1)]),
        ("make the build pipeline faster", &[("ci-task", 2)]),
        ("stop calling a failing service for a while", &[("breaker", 2)]),
        ("which sentence embedding model do we use", &[("model-decision", 2)]),
        ("no network access allowed", &[("offline", 2)]),
        ("where is file:line:col reported", &[("validate-file", 2)]),
    ];

    fn ndcg_at_10(ranked: &[String], relevant: &[(&str, u32)]) -> f64 {
        let gain = |g: u32| f64::from((1u32 << g) - 1);
        let grades: HashMap<&str, u32> = relevant.iter().copied().collect();
        let dcg: f64 = ranked
            .iter()
            .take(10)
            .enumerate()
            .map(|(i, k)| gain(*grades.get(k.as_str()).unwrap_or(&0)) / ((i + 2) as f64).log2())
            .sum();
        let mut ideal: Vec<u32> = relevant.iter().map(|r| r.1).collect();
        ideal.sort_unstable_by(|a, b| b.cmp(a));
        let idcg: f64 = ideal
            .iter()
            .take(10)
            .enumerate()
            .map(|(i, g)| gain(*g) / ((i + 2) as f64).log2())
            .sum();
        dcg / idcg
    }

    #[test]
    fn hybrid_is_at_least_as_good_as_the_better_retriever() {
        let assets = real_assets_dir();
        let dir = TempDir::new().unwrap();
        let store = Store::open(dir.path(), StoreOptions::with_assets(&assets)).unwrap();
        let p = project("quality");
        let nodes: Vec<NewNode> =
            CORPUS.iter().map(|(_, t, title, body)| NewNode::new(&p, *t, *title, *body)).collect();
        let stored = store.upsert_nodes(nodes).unwrap();
        let key_of: HashMap<NodeId, String> =
            stored.iter().zip(CORPUS).map(|(n, c)| (n.id.clone(), c.0.to_string())).collect();
        assert_eq!(store.stats(&Scope::All).unwrap().embedded, CORPUS.len() as u64);

        let mut means = Vec::new();
        for mode in [SearchMode::Bm25, SearchMode::Vector, SearchMode::Hybrid] {
            let mut total = 0.0;
            for (q, relevant) in QUERIES {
                let r = store.search(&SearchQuery::new(*q, &p).mode(mode).limit(10)).unwrap();
                assert_eq!(r.mode, mode);
                let ranked: Vec<String> =
                    r.hits.iter().map(|h| key_of[&h.node.id].clone()).collect();
                let n = ndcg_at_10(&ranked, relevant);
                if std::env::var_os("NDCG_DEBUG").is_some() {
                    println!(
                        "  {:<6} {n:.3} {q:?} {:?}",
                        mode.as_str(),
                        &ranked[..ranked.len().min(5)]
                    );
                }
                total += n;
            }
            let mean = total / QUERIES.len() as f64;
            println!(
                "nDCG@10 {:<6} {mean:.3}  ({} queries, {} nodes)",
                mode.as_str(),
                QUERIES.len(),
                CORPUS.len()
            );
            means.push(mean);
        }
        let (bm25, vector, hybrid) = (means[0], means[1], means[2]);
        assert!(
            hybrid + 1e-9 >= bm25.max(vector),
            "hybrid {hybrid:.3} < max(bm25 {bm25:.3}, vector {vector:.3})"
        );
        // Each retriever is useful on its own here: the corpus is not rigged for one.
        assert!(bm25 > 0.4 && vector > 0.4, "bm25 {bm25:.3}, vector {vector:.3}");
    }

    #[test]
    fn ndcg_is_one_for_the_ideal_ranking_and_lower_otherwise() {
        let rel = &[("a", 2), ("b", 1)];
        assert!((ndcg_at_10(&["a".into(), "b".into()], rel) - 1.0).abs() < 1e-12);
        assert!(ndcg_at_10(&["b".into(), "a".into()], rel) < 1.0);
        assert_eq!(ndcg_at_10(&["x".into()], rel), 0.0);
    }
}

mod api {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn the_store_and_collections_can_be_shared_across_threads() {
        assert_send_sync::<Store>();
        assert_send_sync::<troupe_context::Collection>();
        let (_dir, store, p) = hash_project();
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                let p = p.clone();
                std::thread::spawn(move || {
                    let log = store.collection("log").unwrap();
                    for i in 0..10 {
                        add(&store, &p, NodeType::Task, &format!("thread {t} task {i}"), "shared");
                        log.append(&json!({"t": t, "i": i})).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let stats = store.stats(&Scope::All).unwrap();
        assert_eq!((stats.total_nodes, stats.index_docs, stats.embedded), (40, 40, 40));
        assert_eq!(store.collection("log").unwrap().len(), 40);
        let r = store
            .search(&SearchQuery::new("shared", &p).mode(SearchMode::Bm25).limit(100))
            .unwrap();
        assert_eq!(r.hits.len(), 40);
    }

    #[test]
    fn opening_the_same_store_twice_in_one_process_says_to_share_it() {
        let dir = TempDir::new().unwrap();
        let _first = hash_store(dir.path());
        let e = Store::open(dir.path(), StoreOptions::without_embeddings()).unwrap_err();
        assert!(matches!(e, Error::AlreadyOpen { .. }), "{e}");
        assert!(e.to_string().contains("share the open Store"), "{e}");
    }
}

mod ranking {
    use super::*;
    use troupe_context::Recency;

    #[test]
    fn graph_expansion_adds_neighbours_of_top_hits_in_hybrid_mode_only() {
        let (_dir, store, p) = hash_project();
        let hit = add(&store, &p, NodeType::Mistake, "Retry storm", "everyone retried at once");
        let fix = add(&store, &p, NodeType::Task, "Jittered backoff", "spread the reconnects");
        let unrelated = add(&store, &p, NodeType::Concept, "Colour scheme", "teal and orange");
        store.link(&hit, &fix, EdgeType::FixedBy, 1.0, json!(null)).unwrap();

        let q = SearchQuery::new("retry storm", &p).limit(5);
        // Hybrid expands by default (the fake embedder may find the neighbour by itself too).
        let r = store.search(&q.clone().mode(SearchMode::Hybrid)).unwrap();
        assert_eq!(r.hits[0].node.id, hit);
        assert!(r.hits.iter().any(|h| h.node.id == fix));
        // BM25 alone stays pure: no neighbours, so nothing without the words.
        let r = store.search(&q.clone().mode(SearchMode::Bm25)).unwrap();
        assert_eq!(ids(&r), vec![hit.clone()]);
        let r = store.search(&q.clone().mode(SearchMode::Bm25).expand(true)).unwrap();
        assert_eq!(ids(&r), vec![hit.clone(), fix.clone()]);
        assert_eq!(r.hits[1].found_by.label(), "graph");
        // Type filters apply to neighbours too.
        let r = store
            .search(
                &q.mode(SearchMode::Bm25)
                    .expand(true)
                    .types([NodeType::Mistake, NodeType::Concept]),
            )
            .unwrap();
        assert_eq!(ids(&r), vec![hit]);
        assert!(!ids(&r).contains(&unrelated));
    }

    #[test]
    fn recency_weighting_prefers_the_newer_of_two_equal_memories() {
        let (_dir, store, p) = hash_project();
        let old =
            add_aged(&store, &p, NodeType::Decision, "Cache policy", "evict after an hour", 200);
        let new = store
            .upsert_node(NewNode::new(
                &p,
                NodeType::Decision,
                "Cache policy",
                "evict after an hour",
            ))
            .unwrap()
            .id;
        let q = SearchQuery::new("cache policy evict", &p).mode(SearchMode::Bm25);
        let plain = store.search(&q.clone()).unwrap();
        assert_eq!(plain.hits.len(), 2);
        assert!((plain.hits[0].score - plain.hits[1].score).abs() < 1e-6, "equal without recency");
        let weighted =
            store.search(&q.recency(Recency { half_life_days: 30.0, weight: 0.5 })).unwrap();
        assert_eq!(ids(&weighted), vec![new, old]);
        assert!(weighted.hits[0].score > weighted.hits[1].score * 1.5);
        let bad = SearchQuery::new("x", &p).recency(Recency { half_life_days: 0.0, weight: 0.5 });
        assert!(matches!(store.search(&bad), Err(Error::InvalidInput(_))));
    }

    /// Words that say nothing about circuit breakers, `n` of them.
    fn filler(n: usize) -> String {
        const WORDS: [&str; 12] = [
            "garden", "teapot", "violin", "harbour", "pebble", "lantern", "meadow", "orchard",
            "saddle", "quilt", "compass", "thimble",
        ];
        (0..n).map(|i| WORDS[(i * 7 + i / 12) % WORDS.len()]).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn a_long_node_is_found_by_its_matching_passage_which_is_the_snippet() {
        let (_dir, store, p) = hash_project();
        // The subject is only in the last of several passages: a vector of the head alone
        // (what was embedded before passages) would look like the distractors'.
        let ending = "The circuit breaker opens after five failures and probes again later.";
        let body = format!("{}\n\n{ending}", filler(700));
        let long = add(&store, &p, NodeType::Concept, "Notes", &body);
        for i in 0..5 {
            add(&store, &p, NodeType::Concept, &format!("Notes {i}"), &filler(150 + i));
        }
        let r = store
            .search(
                &SearchQuery::new("circuit breaker opens after failures", &p)
                    .mode(SearchMode::Vector)
                    .limit(3),
            )
            .unwrap();
        let hit = &r.hits[0];
        assert_eq!(hit.node.id, long);
        let passage = hit.passage.expect("a passage");
        assert!(passage.start > 0, "not the head: {passage:?}");
        assert_eq!(passage.end, body.len());
        assert!(hit.snippet.contains("circuit breaker opens"), "{}", hit.snippet);
        // The node's score is its best passage's.
        assert_eq!(hit.found_by.cosine, hit.found_by.vector.map(|v| v.score));
        // Hybrid names the same passage; BM25 alone has none, and shows the body's start.
        let r = store.search(&SearchQuery::new("circuit breaker", &p).limit(3)).unwrap();
        assert_eq!(r.hits[0].node.id, long);
        assert!(r.hits[0].snippet.contains("circuit breaker"), "{}", r.hits[0].snippet);
        let r = store
            .search(&SearchQuery::new("circuit breaker", &p).mode(SearchMode::Bm25).limit(3))
            .unwrap();
        assert_eq!(r.hits[0].passage, None);
        assert!(r.hits[0].snippet.starts_with("garden"), "{}", r.hits[0].snippet);
    }

    #[test]
    fn an_exact_title_match_stays_first_through_recency_and_graph_expansion() {
        let (_dir, store, p) = hash_project();
        let exact = add_aged(&store, &p, NodeType::Concept, "Rate limiter", "Token bucket.", 400);
        let mut others = Vec::new();
        for i in 0..6 {
            others.push(add(
                &store,
                &p,
                NodeType::Task,
                &format!("Rate limiter rate limiter tuning {i}"),
                "rate limiter limits the rate; the limiter of rates, rate limiting limiter",
            ));
        }
        // The top other hits have many neighbours for expansion to add.
        for (i, o) in others.iter().enumerate() {
            let n = add(&store, &p, NodeType::Pattern, &format!("Neighbour {i}"), "backoff");
            store.link(o, &n, EdgeType::RelatedTo, 1.0, json!(null)).unwrap();
        }
        let q = SearchQuery::new("rate limiter", &p).limit(5);
        // Recency alone would sink a 400-day-old node below everything.
        let r =
            store.search(&q.clone().recency(Recency { half_life_days: 1.0, weight: 1.0 })).unwrap();
        assert_eq!(r.hits[0].node.id, exact);
        assert!(r.hits[0].found_by.exact_title);
        assert!(r.hits[0].score < r.hits[1].score, "it is first by the rule, not the score");
        assert!(!r.hits[1..].iter().any(|h| h.found_by.exact_title));
        for fusion in ["rrf", "convex:0.9", "convex:0.0", "adaptive"] {
            let r = store.search(&q.clone().fusion(fusion.parse().unwrap())).unwrap();
            assert_eq!(r.hits[0].node.id, exact, "{fusion}");
        }
        // Single retrievers stay pure: no rule applies there.
        let r = store
            .search(
                &q.clone()
                    .mode(SearchMode::Bm25)
                    .recency(Recency { half_life_days: 1.0, weight: 1.0 }),
            )
            .unwrap();
        assert_ne!(r.hits[0].node.id, exact);
    }

    #[test]
    fn ensure_project_scans_once() {
        let project_dir = TempDir::new().unwrap();
        std::fs::write(project_dir.path().join("main.py"), "def main():\n    pass\n").unwrap();
        let dir = TempDir::new().unwrap();
        let store = hash_store(dir.path());
        let id = store.ensure_project(project_dir.path()).unwrap();
        let first = store.project(&id).unwrap().unwrap();
        assert_eq!(first.languages[0].language, "Python");
        std::fs::write(project_dir.path().join("extra.py"), "x = 1\n").unwrap();
        assert_eq!(store.ensure_project(project_dir.path()).unwrap(), id);
        assert_eq!(store.project(&id).unwrap().unwrap().scanned_at, first.scanned_at, "no rescan");
        assert_eq!(store.register_project(project_dir.path()).unwrap(), id);
        assert_eq!(store.project(&id).unwrap().unwrap().files, 2, "an explicit scan does rescan");
    }
}
