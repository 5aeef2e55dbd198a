//! OpenTelemetry for inferd: configuration, providers, sampling, propagation, the HTTP server
//! layer, the recent-trace store and log correlation. Complete when on, free when off: in
//! [`Mode::Off`] nothing but the log layer is installed.
//!
//! The server calls [`TelemetryArgs::into_config`] (or [`TelemetryConfig::from_env`]), then
//! [`init`], keeps the returned [`TelemetryGuard`] alive, adds [`http_layer`] to its router and
//! calls [`TelemetryGuard::shutdown`] after draining requests.

mod args;
mod config;
mod error;
mod propagation;
mod sampler;
pub mod semconv;
mod store;

pub use args::TelemetryArgs;
pub use config::{
    vars, BatchConfig, EnvSource, Exporter, LogFormat, Mode, OtlpProtocol, OtlpSignalConfig,
    ProcessEnv, PropagatorConfig, SamplerConfig, Signal, TelemetryConfig, TraceStoreConfig,
};
pub use error::Error;
pub use propagation::{
    extract_from_headers, extract_from_map, format_traceparent, inject_current_into_headers,
    inject_current_into_map, BaggageLimitsPropagator, Propagators, TraceContextPropagator, BAGGAGE,
    TRACEPARENT, TRACERESPONSE, TRACESTATE,
};
pub use sampler::{
    build_sampler, force_trace_requested, with_force_trace, ForceTrace, ForceTraceSampler,
};
pub use store::{
    EventRecord, LinkRecord, SpanRecord, SpanStatus, TraceDetail, TraceStore, TraceStoreProcessor,
    TraceSummary,
};
