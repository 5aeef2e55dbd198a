//! Small helpers for code that records telemetry. They act on `tracing` spans and are no-ops
//! when telemetry is off (no OpenTelemetry layer is installed, so there is nothing to update).

use std::borrow::Cow;

use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, KeyValue, Value};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::semconv;

/// Records an error on `span`: status ERROR with the message, `error.type`, and an `exception`
/// event carrying `exception.type` and `exception.message`.
pub fn record_error(span: &Span, error_type: impl Into<Cow<'static, str>>, message: &str) {
    if span.is_disabled() {
        return;
    }
    let error_type = error_type.into();
    span.set_status(Status::error(message.to_owned()));
    span.set_attribute(semconv::ERROR_TYPE, error_type.clone());
    span.add_event(
        semconv::EXCEPTION_EVENT,
        exception_attributes(error_type, message),
    );
}

/// The attributes of the `exception` event an error adds to its span.
pub fn exception_attributes(error_type: Cow<'static, str>, message: &str) -> Vec<KeyValue> {
    vec![
        KeyValue::new(semconv::EXCEPTION_TYPE, error_type),
        KeyValue::new(semconv::EXCEPTION_MESSAGE, message.to_owned()),
    ]
}

/// Records an error value on `span`, its Rust type name as `error.type`.
pub fn record_error_value<E: std::error::Error>(span: &Span, error: &E) {
    let type_name = std::any::type_name::<E>();
    let short = type_name.rsplit("::").next().unwrap_or(type_name);
    record_error(span, short.to_owned(), &error.to_string());
}

/// Sets one attribute on `span` (works before and after the span started).
pub fn set_attribute(span: &Span, key: &'static str, value: impl Into<Value>) {
    if !span.is_disabled() {
        span.set_attribute(key, value);
    }
}

/// Sets several attributes on `span` with one lookup of its OpenTelemetry span (one
/// [`set_attribute`] call costs a lookup each). The span is started if it was not yet, so a
/// sampler does not see these: give the attributes a sampler needs as the span's fields.
pub fn set_attributes(span: &Span, attributes: Vec<KeyValue>) {
    if !span.is_disabled() && !attributes.is_empty() {
        span.context().span().set_attributes(attributes);
    }
}

/// Captures the current span and OpenTelemetry context so `f` can run on another thread as
/// part of the same trace. The context is attached on entry and detached on exit, also when `f`
/// panics, so a pooled thread never keeps a stale context.
pub fn in_current_context<F, R>(f: F) -> impl FnOnce() -> R + Send + 'static
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = Span::current();
    let cx = Context::current();
    move || {
        let _attached = cx.attach();
        span.in_scope(f)
    }
}

/// `std::thread::spawn` whose closure joins the caller's trace.
pub fn spawn_thread_in_context<F, R>(f: F) -> std::thread::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    std::thread::spawn(in_current_context(f))
}

/// `tokio::task::spawn_blocking` whose closure joins the caller's trace.
pub fn spawn_blocking_in_context<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(in_current_context(f))
}
