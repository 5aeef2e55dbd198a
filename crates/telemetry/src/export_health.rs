//! Export failures, reported once: the first failure logs one WARN naming the endpoint and the
//! reason, later failures only count dropped items in `inferd.telemetry.dropped`, and the first
//! success afterwards logs one INFO. The exporters are wrapped so this does not depend on the
//! SDK's internal log messages; those are kept out of the user's log (see
//! [`is_sdk_export_noise`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::Counter;
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

use crate::config::Signal;
use inferd_otel::semconv;

/// Target of inferd's own export-health log lines.
pub const EXPORT_HEALTH_TARGET: &str = "inferd_telemetry::export";

/// Failure state of one signal's exporter.
#[derive(Debug)]
pub struct ExportHealth {
    signal: Signal,
    endpoint: String,
    failing: AtomicBool,
    dropped: Option<Counter<u64>>,
}

impl ExportHealth {
    /// Health tracking for `signal` exporting to `endpoint`; dropped items are counted in
    /// `dropped` when given.
    pub fn new(signal: Signal, endpoint: &str, dropped: Option<Counter<u64>>) -> Arc<Self> {
        Arc::new(ExportHealth {
            signal,
            endpoint: endpoint.to_owned(),
            failing: AtomicBool::new(false),
            dropped,
        })
    }

    /// Records the outcome of one export of `items` items.
    pub fn record(&self, result: &OTelSdkResult, items: usize) {
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::AcqRel) {
                    tracing::info!(
                        target: EXPORT_HEALTH_TARGET,
                        signal = self.signal.as_str(),
                        endpoint = %self.endpoint,
                        "telemetry export recovered"
                    );
                }
            }
            Err(error) => {
                if let Some(counter) = &self.dropped {
                    counter.add(
                        items as u64,
                        &[KeyValue::new(semconv::SIGNAL, signal_label(self.signal))],
                    );
                }
                if !self.failing.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        target: EXPORT_HEALTH_TARGET,
                        signal = self.signal.as_str(),
                        endpoint = %self.endpoint,
                        reason = %error,
                        "telemetry export failed; further failures are counted in inferd.telemetry.dropped until export recovers"
                    );
                }
            }
        }
    }

    /// Whether the last export failed.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }
}

/// The `signal` attribute values of `inferd.telemetry.dropped`.
fn signal_label(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "spans",
        Signal::Metrics => "metrics",
        Signal::Logs => "logs",
    }
}

/// Whether an event is one of the SDK's own export-failure messages, which the health tracking
/// replaces (they would otherwise repeat on every failed export).
pub fn is_sdk_export_noise(meta: &tracing::Metadata<'_>) -> bool {
    let target = meta.target();
    (target.starts_with("opentelemetry"))
        && *meta.level() <= tracing::Level::WARN
        && (meta.name().contains("Export") || meta.name().contains("export"))
}

/// A span exporter that reports its failures through [`ExportHealth`].
#[derive(Debug)]
pub struct MonitoredSpanExporter<E> {
    inner: E,
    health: Arc<ExportHealth>,
}

impl<E> MonitoredSpanExporter<E> {
    /// Wraps `inner`.
    pub fn new(inner: E, health: Arc<ExportHealth>) -> Self {
        MonitoredSpanExporter { inner, health }
    }
}

impl<E: SpanExporter> SpanExporter for MonitoredSpanExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let items = batch.len();
        let result = self.inner.export(batch).await;
        self.health.record(&result, items);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A log exporter that reports its failures through [`ExportHealth`].
#[derive(Debug)]
pub struct MonitoredLogExporter<E> {
    inner: E,
    health: Arc<ExportHealth>,
}

impl<E> MonitoredLogExporter<E> {
    /// Wraps `inner`.
    pub fn new(inner: E, health: Arc<ExportHealth>) -> Self {
        MonitoredLogExporter { inner, health }
    }
}

impl<E: LogExporter> LogExporter for MonitoredLogExporter<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let items = batch.iter().count();
        let result = self.inner.export(batch).await;
        self.health.record(&result, items);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A metric exporter that reports its failures through [`ExportHealth`].
#[derive(Debug)]
pub struct MonitoredMetricExporter<E> {
    inner: E,
    health: Arc<ExportHealth>,
}

impl<E> MonitoredMetricExporter<E> {
    /// Wraps `inner`.
    pub fn new(inner: E, health: Arc<ExportHealth>) -> Self {
        MonitoredMetricExporter { inner, health }
    }
}

impl<E: PushMetricExporter> PushMetricExporter for MonitoredMetricExporter<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let items = metrics.scope_metrics().map(|s| s.metrics().count()).sum();
        let result = self.inner.export(metrics).await;
        self.health.record(&result, items);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
