//! The gateway's upstreams as metrics, read when the metrics are collected (a scrape of
//! `/metrics` or an OTLP export): `inferd.upstream.healthy` (1 or 0, absent until the first
//! probe answered or failed) and `inferd.upstream.retries` (calls sent again after a failure),
//! each by `inferd.upstream.name`. Their label sets are the configured upstreams. The batch
//! worker's counts are read the same way (`observe_jobs`).

use std::sync::Arc;

use inferd_engine::remote::Gateway;
use inferd_telemetry::semconv as sc;
use inferd_telemetry::TelemetryGuard;
use opentelemetry::KeyValue;

/// Registers the upstream instruments of `gateway` with `telemetry`'s meter (nothing when
/// metrics are off or there is no upstream). The callbacks live as long as the meter.
pub fn observe_upstreams(telemetry: &TelemetryGuard, gateway: Arc<Gateway>) {
    let Some(meter) = telemetry.meter() else {
        return;
    };
    if gateway.is_empty() {
        return;
    }
    let name = |upstream: &str| [KeyValue::new(sc::INFERD_UPSTREAM_NAME, upstream.to_owned())];
    let health = Arc::clone(&gateway);
    meter
        .u64_observable_gauge(sc::INFERD_UPSTREAM_HEALTHY)
        .with_description("Whether the upstream answered its last probe or call")
        .with_callback(move |observer| {
            for status in health.statuses() {
                if let Some(healthy) = status.healthy {
                    observer.observe(u64::from(healthy), &name(&status.name));
                }
            }
        })
        .build();
    meter
        .u64_observable_counter(sc::INFERD_UPSTREAM_RETRIES)
        .with_unit("{retry}")
        .with_description("Calls sent to the upstream again after a failure")
        .with_callback(move |observer| {
            for status in gateway.statuses() {
                observer.observe(status.retries, &name(&status.name));
            }
        })
        .build();
}

/// Registers the batch worker's instruments with `telemetry`'s meter (nothing when metrics
/// are off): `inferd.jobs.lines` by `inferd.jobs.outcome` and `inferd.jobs.running`, read
/// from `stats` when the metrics are collected.
pub fn observe_jobs(telemetry: &TelemetryGuard, stats: Arc<crate::batch_worker::JobStats>) {
    use std::sync::atomic::Ordering;
    let Some(meter) = telemetry.meter() else {
        return;
    };
    let lines = Arc::clone(&stats);
    meter
        .u64_observable_counter(sc::INFERD_JOBS_LINES)
        .with_unit("{line}")
        .with_description("Batch lines this process ran and recorded")
        .with_callback(move |observer| {
            for (outcome, count) in [("completed", &lines.completed), ("failed", &lines.failed)] {
                observer.observe(
                    count.load(Ordering::Relaxed),
                    &[KeyValue::new(sc::INFERD_JOBS_OUTCOME, outcome)],
                );
            }
        })
        .build();
    meter
        .u64_observable_gauge(sc::INFERD_JOBS_RUNNING)
        .with_unit("{line}")
        .with_description("Batch lines this process is running")
        .with_callback(move |observer| {
            observer.observe(stats.running.load(Ordering::Relaxed), &[]);
        })
        .build();
}
