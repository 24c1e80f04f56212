//! OpenTelemetry trace export: what to export where ([`TelemetryPlan`]), and the layer that
//! turns troupe's `tracing` spans into OpenTelemetry spans.
//!
//! Export happens only when an endpoint is configured — `[telemetry] endpoint` in
//! `troupe.toml` (or `$TROUPE_TELEMETRY_ENDPOINT`), else the standard
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` variables. Without
//! one no exporter is created and no connection is opened. In offline mode an endpoint off
//! this machine is refused with a warning, and nothing is exported.
//!
//! Spans go out over OTLP/HTTP with protobuf bodies, in batches from a background thread;
//! the [`TelemetryGuard`] that [`crate::init`] returns flushes the last batch when it is
//! dropped, so a short command's spans are not lost.
//!
//! Only troupe's own spans at INFO and above are exported (never events: their messages are
//! free text), whatever `-v` or `RUST_LOG` say about the logs on standard error.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::{Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterFn, Filtered};
use tracing_subscriber::registry::LookupSpan;

/// The service name spans carry when none is configured.
pub const DEFAULT_SERVICE_NAME: &str = "troupe";

/// How long one export may take before it is abandoned (also bounds the flush at exit).
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The standard variable naming the OTLP base URL (`/v1/traces` is appended).
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The standard variable naming the full OTLP traces URL (used as it is).
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// The standard variable of extra request headers, `key1=value1,key2=value2`.
pub const OTEL_EXPORTER_OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
/// The traces-only variant of [`OTEL_EXPORTER_OTLP_HEADERS`] (wins over it per key).
pub const OTEL_EXPORTER_OTLP_TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
/// The standard variable naming the service.
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// The standard switch that turns the SDK off (`true`).
pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";

/// What the configuration says about telemetry (the `[telemetry]` table, with the offline
/// switch); the standard `OTEL_*` variables are read by [`TelemetryPlan::resolve`].
#[derive(Clone, Default, PartialEq)]
pub struct TelemetryOptions {
    /// The OTLP/HTTP endpoint: a base URL (`http://127.0.0.1:4318`, `/v1/traces` is
    /// appended) or the full traces URL (ending in `/v1/traces`).
    pub endpoint: Option<String>,
    /// Extra request headers (often an API key: secrets, never logged).
    pub headers: BTreeMap<String, String>,
    /// The `service.name` resource attribute.
    pub service_name: Option<String>,
    /// The fraction of runs traced, 0 to 1 (default 1).
    pub sample_ratio: Option<f64>,
    /// Offline mode: only an endpoint on this machine may be used.
    pub offline: bool,
}

impl fmt::Debug for TelemetryOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryOptions")
            .field("endpoint", &self.endpoint)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("service_name", &self.service_name)
            .field("sample_ratio", &self.sample_ratio)
            .field("offline", &self.offline)
            .finish()
    }
}

/// Header names with their values hidden.
struct RedactedHeaders<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.keys().map(|k| (k, "<redacted>"))).finish()
    }
}

/// Where the endpoint in use was configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointSource {
    /// `[telemetry] endpoint` (or `$TROUPE_TELEMETRY_ENDPOINT`).
    Config,
    /// `$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    TracesEnv,
    /// `$OTEL_EXPORTER_OTLP_ENDPOINT`.
    Env,
}

impl fmt::Display for EndpointSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndpointSource::Config => "[telemetry] endpoint",
            EndpointSource::TracesEnv => "$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            EndpointSource::Env => "$OTEL_EXPORTER_OTLP_ENDPOINT",
        })
    }
}

/// Everything the exporter needs.
#[derive(Clone, PartialEq)]
pub struct ExportSettings {
    /// The full URL spans are POSTed to (ending in `/v1/traces` unless given in full).
    pub endpoint: String,
    /// Where it was configured.
    pub source: EndpointSource,
    /// Request headers (secrets: never logged; [`fmt::Debug`] hides the values).
    pub headers: BTreeMap<String, String>,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// The fraction of traces kept, 0 to 1.
    pub sample_ratio: f64,
}

impl fmt::Debug for ExportSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportSettings")
            .field("endpoint", &self.endpoint)
            .field("source", &self.source)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("service_name", &self.service_name)
            .field("sample_ratio", &self.sample_ratio)
            .finish()
    }
}

/// Why nothing is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisabledReason {
    /// No endpoint is configured anywhere.
    NotConfigured,
    /// `OTEL_SDK_DISABLED=true`.
    SdkDisabled,
}

/// Whether and where spans are exported, decided once at start-up.
#[derive(Debug, Clone, PartialEq)]
pub enum TelemetryPlan {
    /// Nothing is exported and no exporter exists.
    Disabled(DisabledReason),
    /// Spans are exported as described.
    Enabled(ExportSettings),
    /// An endpoint is configured but cannot be used (offline mode and the endpoint is off
    /// this machine, or it is not an http(s) URL): nothing is exported, with a warning.
    Refused {
        /// The endpoint as configured.
        endpoint: String,
        /// Where it was configured.
        source: EndpointSource,
        /// Why it is refused, for people.
        reason: String,
    },
}

impl TelemetryPlan {
    /// The plan for `options` with the process environment.
    pub fn from_env(options: &TelemetryOptions) -> TelemetryPlan {
        TelemetryPlan::resolve(options, |var| std::env::var(var).ok())
    }

    /// The plan for `options` with the environment `env` (a variable's value, if set).
    ///
    /// The endpoint is the configured one, else `$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as it
    /// is), else `$OTEL_EXPORTER_OTLP_ENDPOINT` (with `/v1/traces` appended). Headers are
    /// the configured ones with `$OTEL_EXPORTER_OTLP_HEADERS` and then
    /// `$OTEL_EXPORTER_OTLP_TRACES_HEADERS` laid over them per key. The service name is the
    /// configured one, else `$OTEL_SERVICE_NAME`, else `troupe`. `OTEL_SDK_DISABLED=true`
    /// turns everything off.
    pub fn resolve(
        options: &TelemetryOptions,
        env: impl Fn(&str) -> Option<String>,
    ) -> TelemetryPlan {
        let env = |var: &str| env(var).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if env(OTEL_SDK_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return TelemetryPlan::Disabled(DisabledReason::SdkDisabled);
        }
        let configured = options
            .endpoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| (traces_url(e), EndpointSource::Config))
            .or_else(|| {
                env(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).map(|e| (e, EndpointSource::TracesEnv))
            })
            .or_else(|| {
                env(OTEL_EXPORTER_OTLP_ENDPOINT).map(|e| (traces_url(&e), EndpointSource::Env))
            });
        let Some((endpoint, source)) = configured else {
            return TelemetryPlan::Disabled(DisabledReason::NotConfigured);
        };
        if let Err(reason) = check_endpoint(&endpoint) {
            return TelemetryPlan::Refused { endpoint, source, reason };
        }
        if options.offline && !is_loopback(&endpoint) {
            return TelemetryPlan::Refused {
                reason: format!(
                    "offline mode is on and the OTLP endpoint {endpoint} (from {source}) is not \
                     on this machine; no spans are exported (use a collector on 127.0.0.1, or \
                     run without --offline)"
                ),
                endpoint,
                source,
            };
        }
        let mut headers = options.headers.clone();
        for var in [OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TRACES_HEADERS] {
            if let Some(list) = env(var) {
                headers.extend(parse_headers(&list));
            }
        }
        let service_name = options
            .service_name
            .clone()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| env(OTEL_SERVICE_NAME))
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
        let sample_ratio = options.sample_ratio.unwrap_or(1.0).clamp(0.0, 1.0);
        TelemetryPlan::Enabled(ExportSettings {
            endpoint,
            source,
            headers,
            service_name,
            sample_ratio,
        })
    }

    /// Whether spans will be exported.
    pub fn is_enabled(&self) -> bool {
        matches!(self, TelemetryPlan::Enabled(_))
    }

    /// One line for people: where spans go, or why they do not.
    pub fn describe(&self) -> String {
        match self {
            TelemetryPlan::Disabled(DisabledReason::NotConfigured) => {
                "not configured; nothing is exported (set [telemetry] endpoint or \
                 $OTEL_EXPORTER_OTLP_ENDPOINT to export traces)"
                    .to_string()
            }
            TelemetryPlan::Disabled(DisabledReason::SdkDisabled) => {
                "disabled by OTEL_SDK_DISABLED=true; nothing is exported".to_string()
            }
            TelemetryPlan::Enabled(s) => format!(
                "exporting traces over OTLP/HTTP to {} (from {}, service {}, sampling {})",
                s.endpoint, s.source, s.service_name, s.sample_ratio
            ),
            TelemetryPlan::Refused { reason, .. } => reason.clone(),
        }
    }
}

/// The traces URL for an endpoint given as a base URL (`/v1/traces` appended) or in full.
pub fn traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim().trim_end_matches('/');
    if trimmed.ends_with("/v1/traces") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/v1/traces")
    }
}

/// `Ok` when `endpoint` is an absolute http or https URL with a host; else why not.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let url = url::Url::parse(endpoint)
        .map_err(|e| format!("the OTLP endpoint `{endpoint}` is not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the OTLP endpoint `{endpoint}` must be an http:// or https:// URL (OTLP/HTTP); \
             found scheme `{}`",
            url.scheme()
        ));
    }
    if url.host().is_none() {
        return Err(format!("the OTLP endpoint `{endpoint}` has no host"));
    }
    Ok(())
}

/// Whether a URL's host is `localhost` or a loopback address.
pub fn is_loopback(endpoint: &str) -> bool {
    let Ok(url) = url::Url::parse(endpoint) else { return false };
    match url.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `key1=value1,key2=value2` as the OTLP specification writes headers (values may be
/// percent-encoded); malformed entries are skipped.
pub fn parse_headers(list: &str) -> Vec<(String, String)> {
    list.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            if k.is_empty() {
                return None;
            }
            Some((k.to_string(), percent_decode(v.trim())))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a span's target is one of troupe's crates (`troupe`, `troupe_runtime`, …).
pub fn is_troupe_target(target: &str) -> bool {
    target == "troupe" || target.starts_with("troupe::") || target.starts_with("troupe_")
}

/// The filter of the OpenTelemetry layer: see [`exported`].
pub type SpanFilter = FilterFn<fn(&tracing::Metadata<'_>) -> bool>;

/// What the OpenTelemetry layer sees: troupe's spans at INFO and above, never events.
pub fn exported(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_span() && *meta.level() <= Level::INFO && is_troupe_target(meta.target())
}

/// The OpenTelemetry layer over any subscriber `S`.
pub type OtelLayer<S> = Filtered<
    tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>,
    SpanFilter,
    S,
>;

/// The layer that turns troupe's spans into OpenTelemetry spans of `provider`'s tracer,
/// filtered by [`exported`]. [`crate::init`] installs it over the OTLP exporter; tests
/// install it over an in-memory exporter.
pub fn layer<S>(provider: &SdkTracerProvider) -> OtelLayer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("troupe"))
        .with_threads(false)
        .with_location(false)
        .with_filter(FilterFn::new(exported as fn(&tracing::Metadata<'_>) -> bool))
}

/// Why the exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP exporter for {endpoint}: {message}")]
pub struct ExporterError {
    /// The endpoint.
    pub endpoint: String,
    /// What went wrong.
    pub message: String,
}

/// A tracer provider exporting to `settings` over OTLP/HTTP (protobuf) in batches.
pub fn provider(settings: &ExportSettings) -> Result<SdkTracerProvider, ExporterError> {
    let headers: std::collections::HashMap<String, String> =
        settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(settings.endpoint.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .with_headers(headers)
        .build()
        .map_err(|e| ExporterError {
            endpoint: settings.endpoint.clone(),
            message: e.to_string(),
        })?;
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio)));
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(Resource::builder().with_service_name(settings.service_name.clone()).build())
        .build())
}

/// Keeps the exporter running; dropping it exports the spans still queued and shuts the
/// exporter down (within [`EXPORT_TIMEOUT`] per batch). Hold it until the command returns.
#[must_use = "dropping the guard stops exporting spans"]
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// A guard over `provider` (shut down on drop).
    pub fn new(provider: SdkTracerProvider) -> TelemetryGuard {
        TelemetryGuard { provider: Some(provider) }
    }

    /// A guard with nothing to flush.
    pub fn disabled() -> TelemetryGuard {
        TelemetryGuard { provider: None }
    }

    /// Whether spans are being exported.
    pub fn is_exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Export the queued spans and stop the exporter now (also done on drop).
    pub fn shutdown(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "could not export the last spans");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn no_endpoint_means_disabled() {
        let plan = TelemetryPlan::resolve(&TelemetryOptions::default(), env(&[]));
        assert_eq!(plan, TelemetryPlan::Disabled(DisabledReason::NotConfigured));
        // Headers or a service name alone export nothing.
        let opts = TelemetryOptions {
            headers: BTreeMap::from([("x-key".into(), "secret".into())]),
            service_name: Some("svc".into()),
            ..Default::default()
        };
        let plan = TelemetryPlan::resolve(&opts, env(&[(OTEL_SERVICE_NAME, "x")]));
        assert!(!plan.is_enabled());
    }

    #[test]
    fn the_configured_endpoint_wins_and_gets_the_traces_path() {
        let opts = TelemetryOptions {
            endpoint: Some("http://127.0.0.1:4318/".into()),
            ..Default::default()
        };
        let plan = TelemetryPlan::resolve(
            &opts,
            env(&[(OTEL_EXPORTER_OTLP_ENDPOINT, "http://collector.example:4318")]),
        );
        let TelemetryPlan::Enabled(s) = plan else { panic!("{plan:?}") };
        assert_eq!(s.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(s.source, EndpointSource::Config);
        assert_eq!(s.service_name, "troupe");
        assert!((s.sample_ratio - 1.0).abs() < f64::EPSILON);
    }

    #[test]
    fn standard_variables_are_read() {
        let vars = [
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://localhost:4318"),
            (OTEL_EXPORTER_OTLP_HEADERS, "authorization=Bearer%20abc, x-team=core"),
            (OTEL_EXPORTER_OTLP_TRACES_HEADERS, "x-team=traces"),
            (OTEL_SERVICE_NAME, "troupe-ci"),
        ];
        let opts = TelemetryOptions {
            headers: BTreeMap::from([("x-team".into(), "config".into())]),
            ..Default::default()
        };
        let TelemetryPlan::Enabled(s) = TelemetryPlan::resolve(&opts, env(&vars)) else { panic!() };
        assert_eq!(s.endpoint, "http://localhost:4318/v1/traces");
        assert_eq!(s.source, EndpointSource::Env);
        assert_eq!(s.headers["authorization"], "Bearer abc");
        assert_eq!(s.headers["x-team"], "traces");
        assert_eq!(s.service_name, "troupe-ci");
        // The traces-specific endpoint is used as it is.
        let vars = [
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://localhost:4318"),
            (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "http://127.0.0.1:9999/custom"),
        ];
        let TelemetryPlan::Enabled(s) =
            TelemetryPlan::resolve(&TelemetryOptions::default(), env(&vars))
        else {
            panic!()
        };
        assert_eq!(s.endpoint, "http://127.0.0.1:9999/custom");
        assert_eq!(s.source, EndpointSource::TracesEnv);
    }

    #[test]
    fn sdk_disabled_turns_everything_off() {
        let opts = TelemetryOptions {
            endpoint: Some("http://127.0.0.1:4318".into()),
            ..Default::default()
        };
        let plan = TelemetryPlan::resolve(&opts, env(&[(OTEL_SDK_DISABLED, "TRUE")]));
        assert_eq!(plan, TelemetryPlan::Disabled(DisabledReason::SdkDisabled));
    }

    #[test]
    fn offline_refuses_remote_endpoints_only() {
        let remote = TelemetryOptions {
            endpoint: Some("https://otel.example.com".into()),
            offline: true,
            ..Default::default()
        };
        let plan = TelemetryPlan::resolve(&remote, env(&[]));
        let TelemetryPlan::Refused { reason, .. } = &plan else { panic!("{plan:?}") };
        assert!(reason.contains("offline"), "{reason}");
        for local in ["http://127.0.0.1:4318", "http://localhost:4318", "http://[::1]:4318"] {
            let opts = TelemetryOptions {
                endpoint: Some(local.into()),
                offline: true,
                ..Default::default()
            };
            assert!(TelemetryPlan::resolve(&opts, env(&[])).is_enabled(), "{local}");
        }
        // From the environment too.
        let opts = TelemetryOptions { offline: true, ..Default::default() };
        let plan = TelemetryPlan::resolve(
            &opts,
            env(&[(OTEL_EXPORTER_OTLP_ENDPOINT, "http://10.0.0.5:4318")]),
        );
        assert!(matches!(plan, TelemetryPlan::Refused { source: EndpointSource::Env, .. }));
    }

    #[test]
    fn a_bad_endpoint_is_refused_with_the_reason() {
        let plan = TelemetryPlan::resolve(
            &TelemetryOptions::default(),
            env(&[(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "grpc://x:4317")]),
        );
        let TelemetryPlan::Refused { reason, .. } = plan else { panic!() };
        assert!(reason.contains("http://"), "{reason}");
    }

    #[test]
    fn headers_never_show_in_debug_output() {
        let opts = TelemetryOptions {
            endpoint: Some("http://127.0.0.1:4318".into()),
            headers: BTreeMap::from([("api-key".into(), "s3cr3t".into())]),
            ..Default::default()
        };
        assert!(!format!("{opts:?}").contains("s3cr3t"));
        let plan = TelemetryPlan::resolve(&opts, env(&[]));
        assert!(!format!("{plan:?}").contains("s3cr3t"));
        assert!(!plan.describe().contains("s3cr3t"));
    }

    #[test]
    fn troupe_targets() {
        for t in ["troupe", "troupe::commands", "troupe_runtime::telemetry", "troupe_adapters"] {
            assert!(is_troupe_target(t), "{t}");
        }
        for t in ["troupes", "reqwest::connect", "opentelemetry_sdk", "h2"] {
            assert!(!is_troupe_target(t), "{t}");
        }
    }
}
