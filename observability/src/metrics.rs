//! Prometheus metrics: one registry per process (or per test), typed recording methods, and
//! the readings the dynamic planner's routing uses — one source of truth.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The outcome label of a successful call.
pub const SUCCESS: &str = "success";

/// The states a circuit breaker reports, as the gauge's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerGauge {
    /// Calls flow (0).
    Closed = 0,
    /// One trial call is allowed (1).
    HalfOpen = 1,
    /// Calls are rejected (2).
    Open = 2,
}

/// Reads agents' breaker states for the `troupe_breaker_state` gauge.
type BreakerSource = dyn Fn() -> Vec<(String, BreakerGauge)> + Send + Sync;

/// The breaker gauge: set by hand, or read from the breakers at each collection.
#[derive(Clone)]
struct BreakerStates {
    gauge: IntGaugeVec,
    source: Arc<std::sync::RwLock<Option<Arc<BreakerSource>>>>,
}

impl std::fmt::Debug for BreakerStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerStates").finish_non_exhaustive()
    }
}

impl prometheus::core::Collector for BreakerStates {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let source = self.source.read().ok().and_then(|s| s.clone());
        if let Some(source) = source {
            self.gauge.reset();
            for (agent, state) in source() {
                self.gauge.with_label_values(&[agent.as_str()]).set(state as i64);
            }
        }
        self.gauge.collect()
    }
}

/// Why metrics could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("metrics registry: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// Every metric troupe records.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    agent_calls: IntCounterVec,
    agent_latency: HistogramVec,
    agent_tokens: IntCounterVec,
    agent_cost: CounterVec,
    retries: IntCounterVec,
    fallbacks: IntCounterVec,
    breaker_state: BreakerStates,
    rate_limit_wait: CounterVec,
    runs_finished: IntCounterVec,
    runs_active: IntGaugeVec,
    step_duration: HistogramVec,
    context_search: HistogramVec,
    store_size: GaugeVec,
    outside_calls: IntCounterVec,
}

fn latency_buckets() -> Vec<f64> {
    // 5 ms … ~10 min.
    vec![
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
        600.0,
    ]
}

fn fast_buckets() -> Vec<f64> {
    // 0.1 ms … 1 s, for in-process work like searches.
    vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]
}

impl Metrics {
    /// A fresh registry with every troupe metric registered.
    pub fn new() -> Result<Arc<Metrics>, MetricsError> {
        let registry = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m;
                registry.register(Box::new(m.clone()))?;
                m
            }};
        }
        let m = Metrics {
            agent_calls: reg!(IntCounterVec::new(
                Opts::new(
                    "troupe_agent_calls_total",
                    "Calls to each agent by outcome (success or error class)"
                ),
                &["agent", "outcome"]
            )?),
            agent_latency: reg!(HistogramVec::new(
                HistogramOpts::new(
                    "troupe_agent_call_duration_seconds",
                    "Latency of agent calls, retries included"
                )
                .buckets(latency_buckets()),
                &["agent"]
            )?),
            agent_tokens: reg!(IntCounterVec::new(
                Opts::new(
                    "troupe_agent_tokens_total",
                    "Tokens per agent and direction (prompt or completion)"
                ),
                &["agent", "direction"]
            )?),
            agent_cost: reg!(CounterVec::new(
                Opts::new(
                    "troupe_agent_cost_total",
                    "Cost per agent, in the configured price unit"
                ),
                &["agent"]
            )?),
            retries: reg!(IntCounterVec::new(
                Opts::new("troupe_agent_retries_total", "Retries of transient failures per agent"),
                &["agent"]
            )?),
            fallbacks: reg!(IntCounterVec::new(
                Opts::new(
                    "troupe_fallbacks_total",
                    "Fallbacks taken, from the failing agent to the one that ran"
                ),
                &["from", "to"]
            )?),
            breaker_state: reg!(BreakerStates {
                gauge: IntGaugeVec::new(
                    Opts::new(
                        "troupe_breaker_state",
                        "Circuit breaker per agent: 0 closed, 1 half-open, 2 open"
                    ),
                    &["agent"]
                )?,
                source: Arc::default(),
            }),
            rate_limit_wait: reg!(CounterVec::new(
                Opts::new(
                    "troupe_rate_limit_wait_seconds_total",
                    "Time callers waited for an agent's rate limit"
                ),
                &["agent"]
            )?),
            runs_finished: reg!(IntCounterVec::new(
                Opts::new("troupe_runs_total", "Runs that ended, by final state"),
                &["state"]
            )?),
            runs_active: reg!(IntGaugeVec::new(
                Opts::new("troupe_runs", "Runs by current state (pending, in_progress)"),
                &["state"]
            )?),
            step_duration: reg!(HistogramVec::new(
                HistogramOpts::new(
                    "troupe_step_duration_seconds",
                    "Duration of workflow steps by role"
                )
                .buckets(latency_buckets()),
                &["role"]
            )?),
            context_search: reg!(HistogramVec::new(
                HistogramOpts::new(
                    "troupe_context_search_duration_seconds",
                    "Latency of project-memory searches by mode"
                )
                .buckets(fast_buckets()),
                &["mode"]
            )?),
            store_size: reg!(GaugeVec::new(
                Opts::new("troupe_store_size_bytes", "Size on disk of the store"),
                &["part"]
            )?),
            outside_calls: reg!(IntCounterVec::new(
                Opts::new(
                    "troupe_calls_outside_runs_total",
                    "Agent calls made outside runs (troupe test-agent), by source; also counted \
                     in troupe_agent_calls_total"
                ),
                &["source", "agent", "outcome"]
            )?),
            registry,
        };
        Ok(Arc::new(m))
    }

    /// Record one finished agent call (retries included in `latency`).
    pub fn record_call(&self, agent: &str, outcome: &str, latency: Duration) {
        self.agent_calls.with_label_values(&[agent, outcome]).inc();
        self.agent_latency.with_label_values(&[agent]).observe(latency.as_secs_f64());
    }

    /// Record that a call was made outside a run, by `source` (`test-agent`).
    pub fn record_outside_call(&self, source: &str, agent: &str, outcome: &str) {
        self.outside_calls.with_label_values(&[source, agent, outcome]).inc();
    }

    /// Record tokens used by a call.
    pub fn record_tokens(&self, agent: &str, prompt: u64, completion: u64) {
        self.agent_tokens.with_label_values(&[agent, "prompt"]).inc_by(prompt);
        self.agent_tokens.with_label_values(&[agent, "completion"]).inc_by(completion);
    }

    /// Record the cost of a call.
    pub fn record_cost(&self, agent: &str, cost: f64) {
        if cost > 0.0 {
            self.agent_cost.with_label_values(&[agent]).inc_by(cost);
        }
    }

    /// Record a retry.
    pub fn record_retry(&self, agent: &str) {
        self.retries.with_label_values(&[agent]).inc();
    }

    /// Record a fallback from `from` to `to`.
    pub fn record_fallback(&self, from: &str, to: &str) {
        self.fallbacks.with_label_values(&[from, to]).inc();
    }

    /// Set an agent's breaker state (when no source is read, see
    /// [`Metrics::read_breakers_from`]).
    pub fn set_breaker(&self, agent: &str, state: BreakerGauge) {
        self.breaker_state.gauge.with_label_values(&[agent]).set(state as i64);
    }

    /// Read the breakers' states from `source` whenever the metrics are collected: the
    /// breakers stay the one home of their state, and the gauge says what they say now
    /// (an open breaker whose recovery time has passed reads half-open without a call).
    pub fn read_breakers_from(
        &self,
        source: impl Fn() -> Vec<(String, BreakerGauge)> + Send + Sync + 'static,
    ) {
        if let Ok(mut s) = self.breaker_state.source.write() {
            *s = Some(Arc::new(source));
        }
    }

    /// Record time spent waiting for a rate limit.
    pub fn record_rate_limit_wait(&self, agent: &str, waited: Duration) {
        self.rate_limit_wait.with_label_values(&[agent]).inc_by(waited.as_secs_f64());
    }

    /// A run entered `state` (`pending` or `in_progress`) — or left it, with `delta` -1.
    pub fn add_active_run(&self, state: &str, delta: i64) {
        self.runs_active.with_label_values(&[state]).add(delta);
    }

    /// A run ended in `state` (`completed`, `failed`, `cancelled`, `budget_exceeded`).
    pub fn record_run_finished(&self, state: &str) {
        self.runs_finished.with_label_values(&[state]).inc();
    }

    /// Record a step's duration.
    pub fn record_step(&self, role: &str, duration: Duration) {
        self.step_duration.with_label_values(&[role]).observe(duration.as_secs_f64());
    }

    /// Record a context search's latency.
    pub fn record_context_search(&self, mode: &str, latency: Duration) {
        self.context_search.with_label_values(&[mode]).observe(latency.as_secs_f64());
    }

    /// Set the store's size on disk.
    pub fn set_store_size(&self, part: &str, bytes: u64) {
        self.store_size.with_label_values(&[part]).set(bytes as f64);
    }

    /// `(calls, successes)` of an agent, from the same counters `/metrics` shows.
    pub fn agent_stats(&self, agent: &str) -> (u64, u64) {
        let mut calls = 0;
        let mut successes = 0;
        for family in self.agent_calls_families() {
            for m in family.get_metric() {
                let labels = m.get_label();
                let is_agent = labels.iter().any(|l| l.name() == "agent" && l.value() == agent);
                if !is_agent {
                    continue;
                }
                let n = m.get_counter().value() as u64;
                calls += n;
                if labels.iter().any(|l| l.name() == "outcome" && l.value() == SUCCESS) {
                    successes += n;
                }
            }
        }
        (calls, successes)
    }

    fn agent_calls_families(&self) -> Vec<prometheus::proto::MetricFamily> {
        use prometheus::core::Collector;
        self.agent_calls.collect()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        // Encoding into a Vec cannot fail for well-formed families.
        if encoder.encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// The underlying registry, for exporters.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_and_stats_read_back() {
        let m = Metrics::new().unwrap();
        assert_eq!(m.agent_stats("a"), (0, 0));
        m.record_call("a", SUCCESS, Duration::from_millis(20));
        m.record_call("a", SUCCESS, Duration::from_millis(20));
        m.record_call("a", "transient", Duration::from_millis(20));
        m.record_call("b", SUCCESS, Duration::from_millis(20));
        assert_eq!(m.agent_stats("a"), (3, 2));
        assert_eq!(m.agent_stats("b"), (1, 1));
    }

    #[test]
    fn exposition_has_every_family_with_labels() {
        let m = Metrics::new().unwrap();
        m.record_call("local-code", SUCCESS, Duration::from_millis(5));
        m.record_tokens("local-code", 10, 20);
        m.record_retry("local-code");
        m.record_fallback("claude", "local-code");
        m.set_breaker("claude", BreakerGauge::Open);
        m.record_rate_limit_wait("claude", Duration::from_millis(250));
        m.record_run_finished("completed");
        m.add_active_run("in_progress", 1);
        m.record_step("implement", Duration::from_secs(1));
        m.record_context_search("hybrid", Duration::from_micros(800));
        m.set_store_size("graph", 4096);
        m.record_cost("claude", 0.5);
        let text = m.render();
        for needle in [
            "troupe_agent_calls_total{agent=\"local-code\",outcome=\"success\"} 1",
            "troupe_agent_tokens_total{agent=\"local-code\",direction=\"completion\"} 20",
            "troupe_agent_retries_total{agent=\"local-code\"} 1",
            "troupe_fallbacks_total{from=\"claude\",to=\"local-code\"} 1",
            "troupe_breaker_state{agent=\"claude\"} 2",
            "troupe_rate_limit_wait_seconds_total{agent=\"claude\"} 0.25",
            "troupe_runs_total{state=\"completed\"} 1",
            "troupe_runs{state=\"in_progress\"} 1",
            "troupe_step_duration_seconds_count{role=\"implement\"} 1",
            "troupe_context_search_duration_seconds_bucket{mode=\"hybrid\",le=\"0.001\"} 1",
            "troupe_store_size_bytes{part=\"graph\"} 4096",
            "troupe_agent_cost_total{agent=\"claude\"} 0.5",
            "# TYPE troupe_agent_call_duration_seconds histogram",
        ] {
            assert!(text.contains(needle), "missing {needle}\n{text}");
        }
    }

    #[test]
    fn the_breaker_gauge_reads_its_source_at_each_collection() {
        let m = Metrics::new().unwrap();
        let state = Arc::new(std::sync::Mutex::new(BreakerGauge::Closed));
        let s = state.clone();
        m.read_breakers_from(move || vec![("local".to_string(), *s.lock().unwrap())]);
        assert!(m.render().contains("troupe_breaker_state{agent=\"local\"} 0"));
        *state.lock().unwrap() = BreakerGauge::Open;
        assert!(m.render().contains("troupe_breaker_state{agent=\"local\"} 2"));
    }

    #[test]
    fn registries_are_independent() {
        let a = Metrics::new().unwrap();
        let b = Metrics::new().unwrap();
        a.record_call("x", SUCCESS, Duration::ZERO);
        assert_eq!(a.agent_stats("x"), (1, 1), "the call counts where it was recorded");
        assert_eq!(b.agent_stats("x"), (0, 0), "and nowhere else");
    }
}
