//! What the observe plugins' unit tests share: a telemetry pipeline in `local` mode and its
//! Prometheus page.

use inferd_telemetry::{build_with_writer, Mode, TelemetryConfig, TelemetryGuard};

/// Telemetry in `local` mode (spans to the in-memory store, metrics for Prometheus), logs
/// discarded.
pub(crate) fn local() -> TelemetryGuard {
    let config = TelemetryConfig {
        mode: Mode::Local,
        ..TelemetryConfig::default()
    };
    match build_with_writer(&config, std::io::sink, false) {
        Ok((guard, _)) => guard,
        Err(e) => panic!("{e}"),
    }
}

/// The Prometheus text of `guard`'s metrics (empty when there are none).
pub(crate) fn rendered(guard: &TelemetryGuard) -> String {
    guard
        .prometheus_metrics()
        .map(|p| p.render())
        .and_then(Result::ok)
        .unwrap_or_default()
}
