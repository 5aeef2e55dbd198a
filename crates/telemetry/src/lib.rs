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
pub mod semconv;

pub use args::TelemetryArgs;
pub use config::{
    vars, BatchConfig, EnvSource, Exporter, LogFormat, Mode, OtlpProtocol, OtlpSignalConfig,
    ProcessEnv, PropagatorConfig, SamplerConfig, Signal, TelemetryConfig, TraceStoreConfig,
};
pub use error::Error;
