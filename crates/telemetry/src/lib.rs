//! OpenTelemetry for inferd: configuration, providers, sampling, propagation, the HTTP server
//! layer, the recent-trace store and log correlation. Complete when on, free when off: in
//! [`Mode::Off`] nothing but the log layer is installed.
//!
//! The server calls [`TelemetryArgs::into_config`] (or [`TelemetryConfig::from_env`]), then
//! [`init`], keeps the returned [`TelemetryGuard`] alive, wraps its router with [`with_http_layer`] and
//! calls [`TelemetryGuard::shutdown`] after draining requests.
#![warn(missing_docs)]

mod args;
mod client;
mod config;
mod console;
mod error;
mod exemplars;
mod export_health;
mod handles;
mod http_layer;
mod ids;
mod instruments;
mod log_store;
mod log_writer;
mod logs;
mod otel_span;
mod prometheus;
mod propagation;
mod providers;
mod resource;
mod sampler;
pub mod semconv;
mod setup;
mod spans;
mod store;

pub use args::TelemetryArgs;
pub use client::{
    http_client_span, http_client_span_to, inject_span_context, inject_tracing_span_context,
    record_http_response, sanitize_url, ClientTarget,
};
pub use config::{
    vars, BatchConfig, ClientIdentity, EnvSource, Exporter, LogFormat, Mode, OtlpProtocol,
    OtlpSignalConfig, ProcessEnv, PropagatorConfig, SamplerConfig, Signal, TelemetryConfig,
    TlsFile, TraceStoreConfig,
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
pub use logs::{
    current_trace_ids, rfc3339_seconds, AccessLine, CorrelatedFormat, ACCESS_LOG_TARGET,
};
pub use otel_span::{span_builder, OtelSpan, Tracer};
pub use prometheus::{wants_openmetrics, PrometheusMetrics, OPENMETRICS_TEXT, PROMETHEUS_TEXT};
pub use propagation::{
    extract_from_headers, extract_from_map, format_traceparent, inject_current_into_headers,
    inject_current_into_map, BaggageLimitsPropagator, Propagators, TraceContextPropagator, BAGGAGE,
    TRACEPARENT, TRACERESPONSE, TRACESTATE,
};
pub use resource::{build_resource, service_instance_id};
pub use sampler::{
    build_sampler, force_trace_requested, with_force_trace, ForceTrace, ForceTraceSampler,
};
pub use setup::{build_with_writer, init, init_with_writer, ShutdownError, TelemetryGuard, SCOPE};
pub use spans::{
    in_current_context, record_error, record_error_value, set_attribute, set_attributes,
    spawn_blocking_in_context, spawn_thread_in_context,
};
pub use store::{
    EventRecord, InvalidStatusFilter, LinkRecord, SpanRecord, SpanStatus, StatusFilter,
    TraceDetail, TraceOrder, TraceQuery, TraceStore, TraceStoreProcessor, TraceSummary,
};
