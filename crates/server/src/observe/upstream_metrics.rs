//! The gateway's upstreams as metrics, read when the metrics are collected (a scrape of
//! `/metrics` or an OTLP export): `inferd.upstream.healthy` (1 or 0, absent until the first
//! probe answered or failed) and `inferd.upstream.retries` (calls sent again after a failure),
//! each by `inferd.upstream.name`. Their label sets are the configured upstreams. The batch
//! worker's counts are read the same way (`observe_jobs`).

use std::sync::Arc;

use inferd_gateway::Gateway;
use inferd_otel::semconv as sc;
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
/// are off): `inferd.jobs.lines` by `inferd.jobs.outcome`, `inferd.jobs.running` and
/// `inferd.jobs.retried` (this process), `inferd.jobs.queued` and `inferd.jobs.oldest_age`
/// (the whole queue, as last read), read from `stats` when the metrics are collected.
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
    let running = Arc::clone(&stats);
    meter
        .u64_observable_gauge(sc::INFERD_JOBS_RUNNING)
        .with_unit("{line}")
        .with_description("Batch lines this process is running")
        .with_callback(move |observer| {
            observer.observe(running.running.load(Ordering::Relaxed), &[]);
        })
        .build();
    let retried = Arc::clone(&stats);
    meter
        .u64_observable_counter(sc::INFERD_JOBS_RETRIED)
        .with_unit("{line}")
        .with_description(
            "Batch lines this process took up again after a worker stopped without finishing them",
        )
        .with_callback(move |observer| {
            observer.observe(retried.retried.load(Ordering::Relaxed), &[]);
        })
        .build();
    let queued = Arc::clone(&stats);
    meter
        .u64_observable_gauge(sc::INFERD_JOBS_QUEUED)
        .with_unit("{line}")
        .with_description("Batch lines waiting in the queue, over every process sharing it")
        .with_callback(move |observer| {
            if let Some(depth) = queued.depth() {
                observer.observe(depth.waiting, &[]);
            }
        })
        .build();
    meter
        .f64_observable_gauge(sc::INFERD_JOBS_OLDEST_AGE)
        .with_unit("s")
        .with_description("Time since the oldest batch line not yet finished was queued")
        .with_callback(move |observer| {
            if let Some(depth) = stats.depth() {
                let age_ms = depth
                    .oldest_queued_ms
                    .map_or(0, |queued| unix_ms().saturating_sub(queued));
                observer.observe(age_ms as f64 / 1000.0, &[]);
            }
        })
        .build();
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
