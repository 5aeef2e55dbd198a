//! OpenTelemetry for inferd, the start-up side: configuration, the SDK's providers and
//! exporters, sampling, the propagators, the HTTP server layer, the recent-trace store,
//! Prometheus rendering, the GenAI metric set and the log formatter and writer. Complete when
//! on, free when off: in [`Mode::Off`] nothing but the log layer is installed. Code that only
//! records (spans, their names, context across the wire) uses `inferd-otel`, which depends on
//! the OpenTelemetry API alone.
//!
//! The server calls [`TelemetryArgs::into_config`] (or [`TelemetryConfig::from_env`]), then
//! [`init`], keeps the returned [`TelemetryGuard`] alive, wraps its router with [`with_http_layer`] and
//! calls [`TelemetryGuard::shutdown`] after draining requests.
#![warn(missing_docs)]

mod args;
mod bound;
/// Tests that build a dispatcher run one at a time: tracing's callsite interest is shared by
/// every dispatcher of the process, and a dispatcher registered (or an interest rebuilt) on
/// another test's thread can leave a stale interest behind for this one (a span built by a
/// dispatcher that builds none, a line past a filter that drops it).
#[cfg(test)]
pub(crate) fn serial_dispatch() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod client_tests;
mod config;
mod console;
mod error;
mod exemplars;
mod export_health;
mod handles;
mod http_layer;
mod instruments;
mod log_store;
mod log_writer;
mod logs;
#[cfg(test)]
#[path = "otel_span_tests.rs"]
mod otel_span_tests;
mod prometheus;
mod propagation;
mod providers;
mod resource;
mod sampler;
mod setup;
#[cfg(test)]
#[path = "spans_tests.rs"]
mod spans_tests;
mod store;

pub use args::TelemetryArgs;
pub use bound::BoundCache;
pub use config::{
    vars, BatchConfig, ClientIdentity, Exporter, LogFormat, Mode, OtlpProtocol, OtlpSignalConfig,
    PropagatorConfig, SamplerConfig, Signal, TelemetryConfig, TlsFile, TraceStoreConfig,
};
pub use console::{ConsoleMetricExporter, ConsoleSpanExporter};
pub use error::Error;
pub use exemplars::{Exemplar, Exemplars};
pub use export_health::{
    is_sdk_export_noise, ExportHealth, MonitoredLogExporter, MonitoredMetricExporter,
    MonitoredSpanExporter, EXPORT_HEALTH_TARGET,
};
pub use http_layer::{
    http_layer, with_http_layer, HttpTraceLayer, HttpTraceService, ResponseFuture,
    HTTP_SPAN_TARGET, X_FORCE_TRACE,
};
pub use instruments::InferdMetrics;
pub use log_store::{LogStore, LOG_STORE_MAX_BYTES, LOG_STORE_MAX_LINES};
pub use log_writer::{BatchedWriter, LineSink, LogFlushGuard, LOG_FLUSH_INTERVAL};
pub use logs::{current_trace_ids, AccessLine, CorrelatedFormat, ACCESS_LOG_TARGET};
pub use prometheus::{wants_openmetrics, PrometheusMetrics, OPENMETRICS_TEXT, PROMETHEUS_TEXT};
pub use propagation::{
    format_traceparent, BaggageLimitsPropagator, Propagators, TraceContextPropagator,
};
pub use resource::{build_resource, service_instance_id};
pub use sampler::{
    build_sampler, force_trace_requested, with_force_trace, ForceTrace, ForceTraceSampler,
};
pub use setup::{build_with_writer, init, init_with_writer, ShutdownError, TelemetryGuard, SCOPE};
pub use store::{
    EventRecord, InvalidStatusFilter, LinkRecord, SpanRecord, SpanStatus, StatusFilter,
    TraceDetail, TraceOrder, TraceQuery, TraceStore, TraceStoreProcessor, TraceSummary,
};
