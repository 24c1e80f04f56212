//! Retrieval quality on real text nobody here wrote: nDCG@10, MRR@10 and recall@10 per
//! search mode (bm25, vector, hybrid), for all queries and the hard (paraphrase-like)
//! subset, on two corpora built by `scripts/retrieval-corpora.py` (Debian package
//! descriptions; Python standard library pydoc pages). Needs the embedding model
//! (`scripts/setup.sh --assets-only`) and python3 (and apt-get for the Debian corpus).
//!
//!     cargo bench -p troupe-context --bench retrieval
//!     RETRIEVAL_CORPORA=/tmp/corpora cargo bench -p troupe-context --bench retrieval
//!
//! Each corpus folder is scanned with `Store::scan_project` (what `troupe context scan`
//! runs, so files are chunked and embedded exactly as in use) into a fresh store, and every
//! query goes through `Store::search` with the CLI's defaults, once per mode.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use common::{Known, KnownVectors, assets_dir, load};
use troupe_context::{
    Fusion, NoProgress, NodeType, OnnxEmbedder, ProjectId, Scope, SearchMode, SearchQuery, Store,
    StoreOptions,
};

/// The ranked file names (other nodes by id) of `query` in `mode` with `fusion`.
fn ranked(
    store: &Store,
    project: &ProjectId,
    text: &str,
    mode: SearchMode,
    fusion: Option<Fusion>,
) -> Vec<String> {
    let mut q = SearchQuery::new(text, Scope::Project(project.clone())).mode(mode).limit(10);
    if let Some(f) = fusion {
        q = q.fusion(f);
    }
    store
        .search(&q)
        .unwrap()
        .hits
        .iter()
        .map(|h| {
            if h.node.node_type == NodeType::File {
                h.node.title.clone()
            } else {
                h.node.id.to_string()
            }
        })
        .collect()
}

/// Fusions tried by `RETRIEVAL_CANDIDATES=1`.
fn candidates() -> Vec<Fusion> {
    let mut out = Vec::new();
    for k in [10.0, 30.0, 60.0, 100.0] {
        for w in [0.3, 0.5, 0.7] {
            out.push(Fusion::Rrf { k, bm25_weight: w });
        }
    }
    for i in 0..=10 {
        out.push(Fusion::Convex { bm25_weight: f64::from(i) / 10.0 });
    }
    for (short, long) in [(0.8, 0.4), (0.7, 0.3), (0.7, 0.5), (0.6, 0.4), (0.5, 0.3), (0.6, 0.2)] {
        out.push(Fusion::Adaptive { short, long });
    }
    out
}

/// One known-item query.
#[derive(Debug, Clone)]
struct Query {
    text: String,
    /// Relevant file (path relative to the corpus's docs folder) → grade.
    relevant: HashMap<String, u32>,
    hard: bool,
}

fn load_queries(path: &Path) -> Vec<Query> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Query {
                text: v["query"].as_str().unwrap().to_string(),
                relevant: v["relevant"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, g)| (k.clone(), g.as_u64().unwrap() as u32))
                    .collect(),
                hard: v["hard"].as_bool().unwrap_or(false),
            }
        })
        .collect()
}

/// nDCG@10, reciprocal rank (within the top 10) and recall@10 of one ranking.
fn metrics(ranked: &[String], relevant: &HashMap<String, u32>) -> (f64, f64, f64) {
    let gain = |g: u32| f64::from((1u32 << g) - 1);
    let dcg: f64 = ranked
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, id)| gain(relevant.get(id).copied().unwrap_or(0)) / ((i + 2) as f64).log2())
        .sum();
    let mut grades: Vec<u32> = relevant.values().copied().collect();
    grades.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 =
        grades.iter().take(10).enumerate().map(|(i, g)| gain(*g) / ((i + 2) as f64).log2()).sum();
    let rr = ranked
        .iter()
        .take(10)
        .position(|id| relevant.get(id).is_some_and(|g| *g > 0))
        .map_or(0.0, |p| 1.0 / (p + 1) as f64);
    let found = ranked.iter().take(10).filter(|id| relevant.get(*id).is_some_and(|g| *g > 0));
    let n_rel = relevant.values().filter(|g| **g > 0).count().max(1);
    (if idcg > 0.0 { dcg / idcg } else { 0.0 }, rr, found.count() as f64 / n_rel as f64)
}

#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    n: usize,
    ndcg: f64,
    mrr: f64,
    recall: f64,
}

impl Sums {
    fn add(&mut self, (ndcg, rr, recall): (f64, f64, f64)) {
        self.n += 1;
        self.ndcg += ndcg;
        self.mrr += rr;
        self.recall += recall;
    }

    fn cells(&self) -> String {
        let n = self.n.max(1) as f64;
        format!("{:.3} | {:.3} | {:.3}", self.ndcg / n, self.mrr / n, self.recall / n)
    }
}

/// The corpora folder, generated on first use.
fn corpora(repo: &Path) -> PathBuf {
    let dir = std::env::var_os("RETRIEVAL_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("troupe-retrieval-corpora"));
    let complete = ["debian", "pydoc"].iter().all(|c| dir.join(c).join("queries.jsonl").is_file());
    if !complete {
        println!("generating the corpora in {} …", dir.display());
        let status = std::process::Command::new("python3")
            .arg(repo.join("scripts/retrieval-corpora.py"))
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "scripts/retrieval-corpora.py failed");
    }
    dir
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "retrieval quality: run it with `cargo bench -p troupe-context --bench retrieval`"
        );
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let root = corpora(&repo);
    let only: Option<String> = std::env::var("RETRIEVAL_ONLY").ok();
    let real = Arc::new(OnnxEmbedder::from_assets_dir(&assets_dir()).unwrap());
    let embedder = Arc::new(KnownVectors::new(real, HashMap::new(), Known::Queries));
    let try_candidates = std::env::var_os("RETRIEVAL_CANDIDATES").is_some();
    println!("# Retrieval quality (troupe-context)");
    println!("load average at start: {}", load());
    for corpus in ["debian", "pydoc"] {
        if only.as_deref().is_some_and(|o| o != corpus) {
            continue;
        }
        let dir = root.join(corpus);
        let queries = load_queries(&dir.join("queries.jsonl"));
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("MANIFEST.json")).unwrap())
                .unwrap();
        let data = tempfile::tempdir().unwrap();
        let store =
            Store::open(data.path(), StoreOptions::with_embedder(embedder.clone())).unwrap();
        let start = Instant::now();
        let report = store.scan_project(&dir.join("docs"), &NoProgress).unwrap();
        let scan = start.elapsed();
        let project = report.project.id.clone();
        let stats = store.stats(&Scope::Project(project.clone())).unwrap();
        println!(
            "\n## {corpus}: {} documents ({:.1} MB), {} queries ({} hard); scanned in {:.1} s ({} nodes embedded)",
            manifest["documents"],
            manifest["document_bytes"].as_f64().unwrap_or(0.0) / 1e6,
            queries.len(),
            queries.iter().filter(|q| q.hard).count(),
            scan.as_secs_f64(),
            stats.embedded,
        );
        println!("source: {}", manifest["source"].as_str().unwrap_or(""));
        let modes = [SearchMode::Bm25, SearchMode::Vector, SearchMode::Hybrid];
        let runs: Vec<Vec<Vec<String>>> = modes
            .iter()
            .map(|m| queries.iter().map(|q| ranked(&store, &project, &q.text, *m, None)).collect())
            .collect();
        // Where the single retrievers disagree: their first hits differ.
        let disagree: Vec<bool> =
            (0..queries.len()).map(|i| runs[0][i].first() != runs[1][i].first()).collect();
        println!(
            "\n| mode | nDCG@10 all | MRR@10 all | recall@10 all | nDCG@10 hard | MRR@10 hard | recall@10 hard | nDCG@10 disagree ({}) |",
            disagree.iter().filter(|d| **d).count()
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for (m, run) in modes.iter().zip(&runs) {
            let (mut all, mut hard, mut dis) = (Sums::default(), Sums::default(), Sums::default());
            for (i, q) in queries.iter().enumerate() {
                let m = metrics(&run[i], &q.relevant);
                all.add(m);
                if q.hard {
                    hard.add(m);
                }
                if disagree[i] {
                    dis.add(m);
                }
            }
            println!(
                "| {} | {} | {} | {:.3} |",
                m.as_str(),
                all.cells(),
                hard.cells(),
                dis.ndcg / dis.n.max(1) as f64
            );
        }
        if try_candidates {
            println!("\n### {corpus}: hybrid with other fusions (nDCG@10)");
            println!("| fusion | all | hard | disagree |");
            println!("|---|---:|---:|---:|");
            for f in candidates() {
                let (mut all, mut hard, mut dis) =
                    (Sums::default(), Sums::default(), Sums::default());
                for (i, q) in queries.iter().enumerate() {
                    let r = ranked(&store, &project, &q.text, SearchMode::Hybrid, Some(f));
                    let m = metrics(&r, &q.relevant);
                    all.add(m);
                    if q.hard {
                        hard.add(m);
                    }
                    if disagree[i] {
                        dis.add(m);
                    }
                }
                let n = |s: &Sums| s.ndcg / s.n.max(1) as f64;
                println!(
                    "| {} | {:.3} | {:.3} | {:.3} |",
                    f.describe(),
                    n(&all),
                    n(&hard),
                    n(&dis)
                );
            }
        }
    }
    println!("\nload average at end: {}", load());
}
