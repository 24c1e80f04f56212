//! Observability: logging set-up for the binary, OpenTelemetry trace export
//! ([`telemetry`]) and Prometheus metrics ([`metrics`]).
//!
//! Library crates only *emit* `tracing` events and spans; [`init`] is called once, by the
//! binary, to install the subscriber (and, when configured, the exporter).

use std::io::IsTerminal;

use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

pub mod metrics;
pub mod redact;
pub mod telemetry;
#[cfg(feature = "test-utils")]
pub mod testing;

pub use metrics::Metrics;
pub use telemetry::{TelemetryGuard, TelemetryOptions, TelemetryPlan};

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Short, coloured (on a terminal) lines for people.
    #[default]
    Human,
    /// One JSON object per line, for machines.
    Json,
}

/// Logging options, from the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOptions {
    /// The line format.
    pub format: LogFormat,
    /// `-v` count minus `-q` count: 0 shows warnings and errors, 1 info, 2 debug, 3 trace;
    /// -1 errors only. `RUST_LOG`, when set, wins.
    pub verbosity: i8,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `RUST_LOG` is not a valid filter.
    #[error("RUST_LOG is not a valid log filter: {0}")]
    BadFilter(String),
    /// A subscriber was installed already.
    #[error("logging was already initialised")]
    AlreadyInitialised,
}

/// The filter for a verbosity level (when `RUST_LOG` is unset).
pub fn default_filter(verbosity: i8) -> &'static str {
    match verbosity {
        i8::MIN..=-1 => "error",
        0 => "warn",
        1 => "info,troupe=info",
        2 => {
            "info,troupe=debug,troupe_runtime=debug,troupe_adapters=debug,troupe_context=debug,troupe_workflows=debug"
        }
        _ => {
            "debug,troupe=trace,troupe_runtime=trace,troupe_adapters=trace,troupe_context=trace,troupe_workflows=trace"
        }
    }
}

/// Install the process's tracing subscriber: logs to standard error in `opts.format`,
/// filtered by `RUST_LOG` when set, else by `opts.verbosity`; and, when `telemetry` is
/// [`TelemetryPlan::Enabled`], the OpenTelemetry layer exporting troupe's spans over
/// OTLP/HTTP. Call once, from the binary, and keep the guard until the command returns:
/// dropping it exports the last spans.
///
/// A refused plan (offline mode with an endpoint off this machine) logs a warning and
/// exports nothing; so does an exporter that cannot be built. Neither stops the command.
pub fn init(opts: LogOptions, telemetry: &TelemetryPlan) -> Result<TelemetryGuard, Error> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            EnvFilter::try_new(&spec).map_err(|e| Error::BadFilter(format!("`{spec}`: {e}")))?
        }
        _ => EnvFilter::new(default_filter(opts.verbosity)),
    };
    // Every line passes the process's redactor (see [`redact::install`]).
    let writer = BoxMakeWriter::new(|| redact::RedactingWriter::new(std::io::stderr()));
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match opts.format {
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(opts.verbosity >= 2)
            .without_time()
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(writer)
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
    };
    let (provider, build_error) = match telemetry {
        TelemetryPlan::Enabled(settings) => match telemetry::provider(settings) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        },
        _ => (None, None),
    };
    let spans = provider.as_ref().map(telemetry::layer);
    tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .map_err(|_| Error::AlreadyInitialised)?;
    match (telemetry, build_error) {
        (_, Some(e)) => tracing::warn!("{e}; no spans are exported"),
        (TelemetryPlan::Refused { reason, .. }, _) => tracing::warn!("telemetry: {reason}"),
        (TelemetryPlan::Enabled(s), None) => {
            tracing::debug!(endpoint = %s.endpoint, service = %s.service_name, "exporting traces")
        }
        _ => {}
    }
    Ok(provider.map(TelemetryGuard::new).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_maps_to_filters_that_parse() {
        for v in -3..=5 {
            let f = default_filter(v);
            assert!(EnvFilter::try_new(f).is_ok(), "{f}");
        }
        assert_eq!(default_filter(-1), "error");
        assert_eq!(default_filter(0), "warn");
        assert!(default_filter(2).contains("debug"));
    }
}
