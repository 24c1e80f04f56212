//! The runtime's own overhead: per step with an instant agent, and many runs at once with an
//! agent that takes 10 ms.
//!
//! ```text
//! cargo bench -p troupe-runtime --bench runtime
//! ```
//! Prints a Markdown table for docs/BENCHMARKS.md. Each backend is measured: the in-memory
//! record backend (the runtime alone) and the real store (sled, every write on disk before
//! the step goes on; written by the record writer thread, which groups concurrent writes
//! under one flush). Then the cost of tracing: the same runs with and without the
//! OpenTelemetry layer (batch processor over an in-memory exporter), in interleaved rounds.
//!
//! Per-step overhead with the 10 ms agent is what a step takes beyond its agent call: for a
//! run, `(wall time − the time its calls took, as the agent measured them) / steps` — so it
//! includes the run's own start and end writes, spread over its steps.
//!
//! First, the disk itself: one durable write every 10 ms through the records' journal,
//! through a sled flush and as a plain append with `fdatasync`. `BENCH_STEPS_ONLY=1` runs only that and the 10 ms per-step figures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use troupe_adapters::agent::{Agent, AgentInfo, AgentRequest, AgentResponse, CallContext};
use troupe_adapters::config::{AgentConfig, AgentKind, Role};
use troupe_adapters::error::AdapterError;
use troupe_observability::redact::Redactor;
use troupe_runtime::agents::AgentSource;
use troupe_runtime::audit::AuditLog;
use troupe_runtime::{Backend, MemoryBackend, RunRequest, RunState, Runtime, RuntimeParts};
use troupe_workflows::config::{Config, StepConfig, WorkflowConfig};

/// An agent that answers after `delay` (at once without one), adding the time its calls
/// really took to `busy`.
#[derive(Debug)]
struct Timed {
    info: AgentInfo,
    delay: Duration,
    busy: Arc<AtomicU64>,
}

#[async_trait]
impl Agent for Timed {
    fn info(&self) -> &AgentInfo {
        &self.info
    }

    async fn call(
        &self,
        _: &AgentRequest,
        ctx: &CallContext,
    ) -> Result<AgentResponse, AdapterError> {
        if !self.delay.is_zero() {
            let start = Instant::now();
            tokio::time::sleep(self.delay).await;
            self.busy.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        ctx.chunk("ok");
        Ok(AgentResponse::new(&self.info.name, "ok"))
    }
}

fn runtime(backend: Arc<dyn Backend>, steps: usize, max_concurrent: usize) -> Runtime {
    runtime_audited(backend, steps, max_concurrent, AuditLog::default(), Duration::ZERO).0
}

/// A runtime whose agent takes `delay`; with the counter of the time its calls took.
fn runtime_audited(
    backend: Arc<dyn Backend>,
    steps: usize,
    max_concurrent: usize,
    audit: AuditLog,
    delay: Duration,
) -> (Runtime, Arc<AtomicU64>) {
    let redactor = audit.redactor().clone();
    let mut config = Config::builtin();
    let mut a = AgentConfig::new(AgentKind::Llamacpp);
    a.base_url = Some("http://127.0.0.1:1/v1".into());
    config.agents.insert("instant".into(), a);
    config.settings.max_concurrent_runs = max_concurrent;
    config.workflows.insert(
        "bench".into(),
        WorkflowConfig::new(
            1,
            (0..steps).map(|_| StepConfig::new("instant", Role::Implement)).collect(),
        ),
    );
    // Traced as the registry traces every agent: a `troupe.call` span per call.
    let busy = Arc::new(AtomicU64::new(0));
    let agent: Arc<dyn Agent> =
        Arc::new(troupe_adapters::telemetry::Traced::new(Arc::new(Timed {
            info: AgentInfo {
                name: "instant".into(),
                kind: "test".into(),
                model: None,
                endpoint: String::new(),
                local: true,
            },
            delay,
            busy: busy.clone(),
        })));
    let agents = BTreeMap::from([("instant".to_string(), AgentSource::shared(agent))]);
    let rt = Runtime::new(RuntimeParts {
        max_tokens: 64,
        audit,
        redactor,
        ..RuntimeParts::new(config, agents, backend).unwrap()
    })
    .unwrap();
    (rt, busy)
}

fn request(project: &Path) -> RunRequest {
    RunRequest {
        task: "t".into(),
        workflow: Some("bench".into()),
        project: Some(project.into()),
        ..Default::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn per_step(
    name: &str,
    backend: Arc<dyn Backend>,
    audit: AuditLog,
    project: &Path,
    scale: usize,
) {
    const STEPS: usize = 10;
    let runs = 200 / scale;
    let (rt, _) = runtime_audited(backend, STEPS, 8, audit, Duration::ZERO);
    // Warm up.
    rt.submit(request(project)).await.unwrap().wait().await.unwrap();
    let mut per_step = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let r = rt.submit(request(project)).await.unwrap().wait().await.unwrap();
        assert_eq!(r.state, RunState::Completed);
        per_step.push(start.elapsed() / STEPS as u32);
    }
    per_step.sort();
    println!(
        "| per-step overhead, {name} | {runs} runs × {STEPS} steps | p50 {:.1} µs | p99 {:.1} µs |",
        percentile(&per_step, 0.5).as_secs_f64() * 1e6,
        percentile(&per_step, 0.99).as_secs_f64() * 1e6
    );
}

/// The agent every step of the 10 ms benchmarks calls.
const AGENT_TIME: Duration = Duration::from_millis(10);

/// Runs of 3 steps with the 10 ms agent, one at a time: per-step overhead (p50, p99).
async fn step_overhead(name: &str, backend: Arc<dyn Backend>, project: &Path, scale: usize) {
    const STEPS: u32 = 3;
    let runs = 200 / scale;
    let (rt, busy) = runtime_audited(backend, 3, 8, AuditLog::default(), AGENT_TIME);
    rt.submit(request(project)).await.unwrap().wait().await.unwrap();
    let mut per_step = Vec::with_capacity(runs);
    for _ in 0..runs {
        let before = busy.load(Ordering::Relaxed);
        let start = Instant::now();
        let r = rt.submit(request(project)).await.unwrap().wait().await.unwrap();
        let wall = start.elapsed();
        assert_eq!(r.state, RunState::Completed);
        let agent = Duration::from_nanos(busy.load(Ordering::Relaxed) - before);
        per_step.push(wall.saturating_sub(agent) / STEPS);
    }
    per_step.sort();
    println!(
        "| per-step overhead, 10 ms agent, one run at a time, {name} | {runs} runs × {STEPS} steps | p50 {:.1} µs | p99 {:.1} µs |",
        percentile(&per_step, 0.5).as_secs_f64() * 1e6,
        percentile(&per_step, 0.99).as_secs_f64() * 1e6
    );
}

/// 1,000 runs of 3 steps submitted at once (no cap) with the 10 ms agent: runs per second,
/// and each run's per-step overhead (its wall time from submission, less its three calls'
/// 10 ms and the timer's slack as measured on average, over 3). Returns runs per second.
async fn concurrent(name: &str, backend: Arc<dyn Backend>, project: &Path, scale: usize) -> f64 {
    let runs = 1000 / scale;
    let (rt, busy) = runtime_audited(backend, 3, runs, AuditLog::default(), AGENT_TIME);
    let start = Instant::now();
    let mut handles = Vec::with_capacity(runs);
    for _ in 0..runs {
        let submitted = Instant::now();
        handles.push((submitted, rt.submit(request(project)).await.unwrap()));
    }
    let mut walls = Vec::with_capacity(runs);
    let waits = handles.into_iter().map(|(submitted, h)| async move {
        let r = h.wait().await.unwrap();
        (submitted.elapsed(), r.state)
    });
    for (wall, state) in futures::future::join_all(waits).await {
        assert_eq!(state, RunState::Completed);
        walls.push(wall);
    }
    let took = start.elapsed();
    let call = Duration::from_nanos(busy.load(Ordering::Relaxed) / (runs as u64 * 3));
    let mut per_step: Vec<Duration> =
        walls.iter().map(|w| w.saturating_sub(call * 3) / 3).collect();
    per_step.sort();
    let rate = runs as f64 / took.as_secs_f64();
    println!(
        "| {runs} concurrent runs × 3 steps, 10 ms agent, {name} | all submitted at once | {:.2} s total | {rate:.0} runs/s |",
        took.as_secs_f64(),
    );
    println!(
        "| per-step overhead in those runs, {name} | (wall − 3 × {:.2} ms) / 3 | p50 {:.1} µs | p99 {:.1} µs |",
        call.as_secs_f64() * 1e3,
        percentile(&per_step, 0.5).as_secs_f64() * 1e6,
        percentile(&per_step, 0.99).as_secs_f64() * 1e6
    );
    rate
}

/// Per-step time with and without the OpenTelemetry layer, in interleaved rounds (so load
/// from other processes hits both sides alike).
async fn otel_overhead(project: &Path, scale: usize) {
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing_subscriber::layer::SubscriberExt;

    const STEPS: usize = 10;
    let rounds = 10;
    let runs = (40 / scale).max(1);
    let rt = runtime(Arc::new(MemoryBackend::default()), STEPS, 8);
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter.clone()).build();
    rt.submit(request(project)).await.unwrap().wait().await.unwrap();
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for traced in [round % 2 == 0, round % 2 == 1] {
            let _subscriber = traced.then(|| {
                tracing::subscriber::set_default(
                    tracing_subscriber::registry()
                        .with(troupe_observability::telemetry::layer(&provider)),
                )
            });
            for _ in 0..runs {
                let start = Instant::now();
                let r = rt.submit(request(project)).await.unwrap().wait().await.unwrap();
                assert_eq!(r.state, RunState::Completed);
                let per_step = start.elapsed() / STEPS as u32;
                if traced { on.push(per_step) } else { off.push(per_step) }
            }
        }
    }
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap().len();
    // run + context (the memory search, once a run) + per step (step, call) = 22 spans a
    // run; the run span may end a moment after the record is handed over.
    assert!(spans >= on.len() * 21, "only {spans} spans for {} traced runs", on.len());
    off.sort();
    on.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    for (name, v) in [("no subscriber", &off), ("OTel layer (batch, in-memory exporter)", &on)] {
        println!(
            "| per-step, {name} | {rounds}×{runs} runs × {STEPS} steps, interleaved | p50 {:.1} µs | p99 {:.1} µs |",
            us(percentile(v, 0.5)),
            us(percentile(v, 0.99))
        );
    }
    println!(
        "| tracing overhead per step (p50 difference) | {spans} spans exported | **{:.1} µs** | |",
        us(percentile(&on, 0.5)) - us(percentile(&off, 0.5))
    );
    let _ = provider.shutdown();
}

/// The disk under the store, one durable write every 10 ms (a step's pace), in the same
/// run as the step figures: a step-sized record written through the records' journal, the
/// same record written to sled with its flush (the store before the journal), and its
/// bytes appended to a file with `fdatasync`. Interleaved, so load from elsewhere hits all
/// alike.
fn disk_floor(scale: usize) {
    use troupe_runtime::{CollectionBackend, Journaled};
    let samples = 200 / scale;
    let record = serde_json::json!({"state": "completed", "prompt": "p".repeat(800)});
    let dir = tempfile::tempdir().unwrap();
    let journal =
        Journaled::open(Arc::new(MemoryBackend::default()), &dir.path().join("floor.journal"))
            .unwrap();
    let store = troupe_context::Store::open_in(
        &dir.path().join("store"),
        troupe_context::StoreOptions::without_embeddings(),
    )
    .unwrap();
    let sled = CollectionBackend(store.collection("floor").unwrap());
    // The same bytes appended to a plain file and `fdatasync`ed: the device's cache flushed
    // too (a stronger guarantee than either store gives; what it would cost).
    let mut plain = std::fs::File::create(dir.path().join("plain")).unwrap();
    let bytes = serde_json::to_vec(&record).unwrap();
    let (mut journaled, mut flushed, mut synced) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..samples {
        for (backend, times) in
            [(&journal as &dyn Backend, &mut journaled), (&sled as &dyn Backend, &mut flushed)]
        {
            std::thread::sleep(Duration::from_millis(10));
            let start = Instant::now();
            backend.write(&[(format!("steps/{i:06}"), Some(record.clone()))]).unwrap();
            times.push(start.elapsed());
            backend.settle().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
        let start = Instant::now();
        std::io::Write::write_all(&mut plain, &bytes).unwrap();
        plain.sync_data().unwrap();
        synced.push(start.elapsed());
    }
    // The same journal writes with shorter gaps: how much of a write's time is the virtual
    // disk waking up after the 10 ms of quiet an agent call gives it.
    for gap in [Duration::from_millis(1), Duration::ZERO] {
        let mut times = Vec::with_capacity(samples);
        for i in 0..samples {
            std::thread::sleep(gap);
            let start = Instant::now();
            journal.write(&[(format!("steps/gap/{i:06}"), Some(record.clone()))]).unwrap();
            times.push(start.elapsed());
            journal.settle().unwrap();
        }
        times.sort();
        println!(
            "| one durable write of a step record, records' journal, {} | {samples} writes | p50 {:.1} µs | p99 {:.1} µs |",
            if gap.is_zero() {
                "back to back".to_string()
            } else {
                format!("one per {} ms", gap.as_millis())
            },
            percentile(&times, 0.5).as_secs_f64() * 1e6,
            percentile(&times, 0.99).as_secs_f64() * 1e6
        );
    }
    for (name, times) in [
        ("records' journal (direct write)", &mut journaled),
        ("sled write + flush", &mut flushed),
        ("plain file append + fdatasync", &mut synced),
    ] {
        times.sort();
        println!(
            "| one durable write of a step record, {name} | {samples} writes, one per 10 ms | p50 {:.1} µs | p99 {:.1} µs |",
            percentile(times, 0.5).as_secs_f64() * 1e6,
            percentile(times, 0.99).as_secs_f64() * 1e6
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` it runs as a quick
    // smoke test (a fiftieth of the load).
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let scale = if std::env::args().any(|a| a == "--bench") { 1 } else { 50 };
    let project = tempfile::tempdir().unwrap();
    let path = project.path().to_path_buf();
    actix_rt::System::new().block_on(async move {
        println!("| measurement | load | result | |");
        println!("|---|---|---|---|");
        disk_floor(scale);
        if std::env::var_os("BENCH_STEPS_ONLY").is_some() {
            // Only the disk and the per-step figures (for quick repeated runs).
            let store_dir = tempfile::tempdir().unwrap();
            let sled = troupe_runtime::store_backend(store_dir.path()).unwrap();
            step_overhead("in-memory records", Arc::new(MemoryBackend::default()), &path, scale)
                .await;
            step_overhead("sled records", sled, &path, scale).await;
            return;
        }
        per_step(
            "in-memory records",
            Arc::new(MemoryBackend::default()),
            AuditLog::default(),
            &path,
            scale,
        )
        .await;
        // The same, writing the audit trail (prompt, response, two files each) through a
        // masker with a few secrets, as `troupe run` does.
        let audit_dir = tempfile::tempdir().unwrap();
        let audit = AuditLog::new(
            Some(audit_dir.path().to_path_buf()),
            Redactor::new(["sk-secret-one-123456", "tok-secret-two-abcdef", "pass-three-987654"]),
        );
        per_step(
            "in-memory records + audit trail",
            Arc::new(MemoryBackend::default()),
            audit,
            &path,
            scale,
        )
        .await;
        let store_dir = tempfile::tempdir().unwrap();
        let sled = troupe_runtime::store_backend(store_dir.path()).unwrap();
        per_step("sled records", sled.clone(), AuditLog::default(), &path, scale).await;
        let memory = Arc::new(MemoryBackend::default());
        step_overhead("in-memory records", memory, &path, scale).await;
        step_overhead("sled records", sled.clone(), &path, scale).await;
        let memory_rate =
            concurrent("in-memory records", Arc::new(MemoryBackend::default()), &path, scale).await;
        let store_dir2 = tempfile::tempdir().unwrap();
        let sled2 = troupe_runtime::store_backend(store_dir2.path()).unwrap();
        let sled_rate = concurrent("sled records", sled2, &path, scale).await;
        println!(
            "| sled throughput / in-memory throughput | 1,000 runs, 10 ms agent | **{:.0}%** | |",
            100.0 * sled_rate / memory_rate
        );
        otel_overhead(&path, scale).await;
    });
}
