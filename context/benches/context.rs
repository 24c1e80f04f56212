//! Context benchmarks: ingest throughput (with and without embeddings, against raw
//! fastembed in the same run), search latency (BM25, vector, hybrid) at 10k and 100k nodes,
//! and disk use. Needs the embedding model (`scripts/setup.sh --assets-only`).
//!
//!     cargo bench -p troupe-context --bench context            # full run
//!     cargo bench -p troupe-context --bench context -- --quick # small sizes, a smoke test
//!
//! The 100k-node store embeds 10k distinct texts with the real model and gives the other
//! nodes a perturbed copy of one of those vectors (brute-force search costs the same for any
//! vector content); every query is embedded by the real model, inside the timed section.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Known, KnownVectors, assets_dir, load};
use troupe_context::{
    Embedder, NewNode, NodeType, OnnxEmbedder, ProjectId, Scope, SearchMode, SearchQuery, Store,
    StoreOptions,
};

/// Deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Words of this repository's text, most frequent first: a realistic technical vocabulary.
fn vocabulary(repo: &Path) -> Vec<String> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut stack = vec![repo.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name == "target" {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(".md") || name.ends_with(".rs") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                for w in text.split(|c: char| !c.is_alphabetic()) {
                    if (3..=14).contains(&w.len()) {
                        *counts.entry(w.to_lowercase()).or_default() += 1;
                    }
                }
            }
        }
    }
    let mut words: Vec<(String, usize)> = counts.into_iter().collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    words.into_iter().map(|w| w.0).take(5000).collect()
}

/// Zipf-distributed words.
struct Words {
    vocab: Vec<String>,
    cumulative: Vec<f64>,
}

impl Words {
    fn new(vocab: Vec<String>) -> Words {
        let mut acc = 0.0;
        let cumulative = (1..=vocab.len())
            .map(|r| {
                acc += 1.0 / r as f64;
                acc
            })
            .collect();
        Words { vocab, cumulative }
    }

    fn sentence(&self, rng: &mut Rng, n: usize) -> String {
        let total = *self.cumulative.last().unwrap();
        (0..n)
            .map(|_| {
                let x = f64::from(rng.unit()) * total;
                let i = self.cumulative.partition_point(|c| *c < x).min(self.vocab.len() - 1);
                self.vocab[i].as_str()
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

const TYPES: [NodeType; 6] = [
    NodeType::Task,
    NodeType::Decision,
    NodeType::Mistake,
    NodeType::Pattern,
    NodeType::Conversation,
    NodeType::File,
];

fn corpus(words: &Words, seed: u64, n: usize) -> Vec<(NodeType, String, String)> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let t = TYPES[i % TYPES.len()];
            let n = 4 + rng.below(6);
            let title = words.sentence(&mut rng, n);
            let n = 20 + rng.below(40);
            let body = words.sentence(&mut rng, n);
            (t, title, body)
        })
        .collect()
}

/// The text the store embeds for a node of one passage (title, newline, body: see
/// `chunk::passages`; these bodies are far shorter than the model's window).
fn embed_text(title: &str, body: &str) -> String {
    format!("{title}\n{body}")
}

/// CPU time this process used so far, all threads (the model's included), from
/// `/proc/self/stat` (in clock ticks of 10 ms: divide a long run's total, not one query's).
/// Unlike wall-clock latency it hardly depends on what else the machine runs.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last `)`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    Duration::from_millis(ticks * 10)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn ingest(
    store: &Store,
    p: &ProjectId,
    docs: &[(NodeType, String, String)],
    batch: usize,
) -> Duration {
    let start = Instant::now();
    for chunk in docs.chunks(batch) {
        let nodes = chunk.iter().map(|(t, title, body)| NewNode::new(p, *t, title, body)).collect();
        store.upsert_nodes(nodes).unwrap();
    }
    start.elapsed()
}

fn main() {
    // `cargo bench` passes `--bench`. Under `cargo test --all-targets` (a debug build, no
    // `--bench`) the full measurement would take many minutes and measure nothing useful.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "troupe-context benchmarks: run them with `cargo bench -p troupe-context --bench context`"
        );
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    // BENCH_VOCABULARY=<folder> reads the words elsewhere: two builds compared side by
    // side then search the same corpus with the same queries.
    let repo = std::env::var_os("BENCH_VOCABULARY")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf());
    let words = Words::new(vocabulary(&repo));
    let assets = assets_dir();
    let real = Arc::new(OnnxEmbedder::from_assets_dir(&assets).unwrap());
    let p = ProjectId::new("bench").unwrap();
    println!("# troupe-context benchmarks{}", if quick { " (quick)" } else { "" });
    println!("load average at start: {}", load());
    println!("vocabulary: {} words from this repository, Zipf-distributed", words.vocab.len());

    if std::env::var_os("BENCH_SKIP_INGEST").is_none() {
        ingest_section(&words, &real, &p, quick);
    }
    if std::env::var_os("BENCH_SKIP_SEARCH").is_none() {
        search_section(&words, &real, &p, quick);
    }
}

fn ingest_section(words: &Words, real: &Arc<OnnxEmbedder>, p: &ProjectId, quick: bool) {
    // --- Ingest: raw fastembed vs the store on the same texts, interleaved in rounds so
    // that load from other processes hits both alike.
    let (rounds, per_round) = if quick { (2, 64) } else { (6, 200) };
    let docs = corpus(words, 7, per_round);
    let texts: Vec<String> = docs.iter().map(|(_, t, b)| embed_text(t, b)).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    real.embed_raw(&refs[..32.min(refs.len())], 32).unwrap(); // warm-up
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::with_embedder(real.clone())).unwrap();
    let (mut raw, mut sorted, mut with) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut ratios = Vec::new();
    for round in 0..rounds {
        // Alternate the order so that neither side is always measured first.
        let mut r = Duration::ZERO;
        let mut w = Duration::ZERO;
        for step in 0..3 {
            let step = if round % 2 == 0 { step } else { 2 - step };
            match step {
                0 => {
                    let start = Instant::now();
                    real.embed_raw(&refs, 32).unwrap();
                    r = start.elapsed();
                }
                1 => {
                    let start = Instant::now();
                    real.embed(&refs).unwrap();
                    sorted += start.elapsed();
                }
                _ => {
                    // Same texts, new nodes: one batch, as a scan stores them.
                    w = ingest(&store, p, &docs, per_round);
                }
            }
        }
        ratios.push(r.as_secs_f64() / w.as_secs_f64());
        raw += r;
        with += w;
    }
    drop(store);
    ratios.sort_by(f64::total_cmp);
    let n_embed = rounds * per_round;
    let n_plain = if quick { 2000 } else { 10_000 };
    let plain_docs = corpus(words, 11, n_plain);
    let dir2 = tempfile::tempdir().unwrap();
    let store = Store::open(dir2.path(), StoreOptions::without_embeddings()).unwrap();
    let without = ingest(&store, p, &plain_docs, 256);
    let plain_disk = store.stats(&Scope::All).unwrap().disk_bytes;
    drop(store);
    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "\n## Ingest ({rounds} interleaved rounds of {per_round} texts of 25–70 words; the store writes each round as one batch: one transaction, one index commit, one flush)"
    );
    println!("| what | items | time (s) | items/s |");
    println!("|---|---:|---:|---:|");
    println!(
        "| raw fastembed `embed` (batch 32) | {n_embed} | {:.2} | {:.0} |",
        raw.as_secs_f64(),
        rate(n_embed, raw)
    );
    println!(
        "| troupe embedder (length-sorted batches of 32) | {n_embed} | {:.2} | {:.0} |",
        sorted.as_secs_f64(),
        rate(n_embed, sorted)
    );
    println!(
        "| store ingest with embeddings | {n_embed} | {:.2} | {:.0} |",
        with.as_secs_f64(),
        rate(n_embed, with)
    );
    println!(
        "| store ingest without embeddings (batches of 256) | {n_plain} | {:.2} | {:.0} |",
        without.as_secs_f64(),
        rate(n_plain, without)
    );
    println!(
        "\ningest with embeddings = {:.0}% of raw fastembed throughput over the run (median round {:.0}%; goal ≥ 80%)",
        100.0 * rate(n_embed, with) / rate(n_embed, raw),
        100.0 * ratios[ratios.len() / 2]
    );
    println!("disk, {n_plain} nodes without vectors: {:.1} MiB", plain_disk as f64 / 1048576.0);
}

fn search_section(words: &Words, real: &Arc<OnnxEmbedder>, p: &ProjectId, quick: bool) {
    // --- Search latency.
    // BENCH_SIZES=100000 BENCH_DISTINCT=1000 BENCH_SKIP_INGEST=1 BENCH_SKIP_SEARCH=1 narrow a
    // run down.
    let env_num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    let sizes: Vec<usize> = match std::env::var("BENCH_SIZES") {
        Ok(v) => v.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) if quick => vec![2000],
        Err(_) => vec![10_000, 100_000],
    };
    let distinct = env_num("BENCH_DISTINCT").unwrap_or(if quick { 500 } else { 10_000 });
    let base = corpus(words, 13, distinct);
    let base_texts: Vec<String> = base.iter().map(|(_, t, b)| embed_text(t, b)).collect();
    let base_refs: Vec<&str> = base_texts.iter().map(String::as_str).collect();
    let start = Instant::now();
    let base_vectors = real.embed(&base_refs).unwrap();
    println!(
        "\n(embedded {distinct} distinct texts for the search stores in {:.1} s)",
        start.elapsed().as_secs_f64()
    );
    let queries: Vec<String> = {
        let mut rng = Rng(99);
        (0..if quick { 50 } else { 300 })
            .map(|_| {
                let n = 3 + rng.below(5);
                words.sentence(&mut rng, n)
            })
            .collect()
    };
    println!(
        "\n## Search latency ({} queries per mode, limit 10, after 20 warm-up queries; vector and hybrid include embedding the query)",
        queries.len()
    );
    println!(
        "| nodes | mode | p50 (ms) | p99 (ms) | mean (ms) | CPU per query (ms, all threads) |"
    );
    println!("|---:|---|---:|---:|---:|---:|");
    let mut disk_lines = Vec::new();
    for &n in &sizes {
        let mut rng = Rng(n as u64);
        let mut vectors: HashMap<String, Vec<f32>> = HashMap::with_capacity(n);
        let mut docs = Vec::with_capacity(n);
        for i in 0..n {
            let k = i % distinct;
            let (t, title, body) = &base[k];
            let (title, mut v) = if i < distinct {
                (title.clone(), base_vectors[k].clone())
            } else {
                // A variant: other title words, the vector nudged and renormalised.
                let v: Vec<f32> =
                    base_vectors[k].iter().map(|x| x + (rng.unit() - 0.5) * 0.02).collect();
                (format!("{title} {}", words.sentence(&mut rng, 2)), v)
            };
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            vectors.insert(embed_text(&title, body), v);
            docs.push((*t, title, body.clone()));
        }
        let embedder = Arc::new(KnownVectors::new(real.clone(), vectors, Known::Given));
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::with_embedder(embedder)).unwrap();
        let took = ingest(&store, p, &docs, 1000);
        let disk = store.stats(&Scope::All).unwrap().disk_bytes;
        disk_lines.push(format!(
            "| {n} | {:.1} | {:.1} | {:.0} |",
            disk as f64 / 1048576.0,
            disk as f64 / 1048576.0 / (n as f64 / 10_000.0),
            n as f64 / took.as_secs_f64()
        ));
        for mode in [SearchMode::Bm25, SearchMode::Vector, SearchMode::Hybrid] {
            if std::env::var("BENCH_MODES").is_ok_and(|m| !m.split(',').any(|x| x == mode.as_str()))
            {
                continue;
            }
            let run = |q: &str| {
                store
                    .search(&SearchQuery::new(q, Scope::Project(p.clone())).mode(mode).limit(10))
                    .unwrap()
            };
            for q in queries.iter().take(20) {
                run(q);
            }
            let cpu_before = process_cpu();
            let mut times: Vec<Duration> = queries
                .iter()
                .map(|q| {
                    let start = Instant::now();
                    let r = run(q);
                    let t = start.elapsed();
                    assert!(r.hits.len() <= 10);
                    t
                })
                .collect();
            let cpu = process_cpu().saturating_sub(cpu_before) / queries.len() as u32;
            times.sort();
            let mean = times.iter().sum::<Duration>() / times.len() as u32;
            println!(
                "| {n} | {} | {} | {} | {} | {} |",
                mode.as_str(),
                ms(percentile(&times, 0.5)),
                ms(percentile(&times, 0.99)),
                ms(mean),
                ms(cpu)
            );
        }
    }
    let mut qtimes: Vec<Duration> = queries
        .iter()
        .map(|q| {
            let start = Instant::now();
            real.embed(&[q.as_str()]).unwrap();
            start.elapsed()
        })
        .collect();
    qtimes.sort();
    println!(
        "| – | query embedding alone | {} | {} | |",
        ms(percentile(&qtimes, 0.5)),
        ms(percentile(&qtimes, 0.99))
    );
    println!("\nload average at end: {}", load());
    println!("\n## Disk use (sled graph + tantivy index, vectors of 384 f32 included)");
    println!(
        "| nodes | MiB | MiB per 10k nodes | ingest nodes/s (precomputed vectors, batches of 1000) |"
    );
    println!("|---:|---:|---:|---:|");
    for l in disk_lines {
        println!("{l}");
    }
}
