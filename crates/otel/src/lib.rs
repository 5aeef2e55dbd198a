//! The recording side of inferd's telemetry, for every crate that records: [`OtelSpan`]s
//! started as children of an explicit parent and ended explicitly, the names and attributes
//! they carry ([`semconv`]), CLIENT spans of outgoing HTTP calls, and context carried across
//! the wire ([`propagate`]). It depends on the OpenTelemetry API only: the SDK, the exporters,
//! the sampler, the log formatter and writer and the trace store are start-up concerns of
//! `inferd-telemetry`, which hands the server an opaque [`Tracer`]. With telemetry off there is
//! no tracer and every span here is [`OtelSpan::none`].
#![warn(missing_docs)]

mod client;
mod env;
pub mod event;
pub mod ids;
pub mod propagate;
pub mod semconv;
mod span;
mod time;

pub use client::{
    http_client_span, http_client_span_to, inject_span_context, record_http_response,
    record_status_code, sanitize_url, ClientTarget,
};
pub use env::{EnvSource, ProcessEnv};
pub use propagate::{
    extract_from_headers, extract_from_map, inject_current_into_headers, inject_current_into_map,
};
pub use span::{span_builder, span_label, OtelSpan, Tracer};
pub use time::{put_digits, rfc3339_seconds, timestamp_prefix};

/// What [`log_event!`] expands to needs; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use tracing;
}
