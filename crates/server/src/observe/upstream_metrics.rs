//! The gateway's upstreams as metrics, read when the metrics are collected (a scrape of
//! `/metrics` or an OTLP export): `inferd.upstream.healthy` (1 or 0, absent until the first
//! probe answered or failed) and `inferd.upstream.retries` (calls sent again after a failure),
//! each by `inferd.upstream.name`. Their label sets are the configured upstreams.

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
