//! Spans made straight with the OpenTelemetry SDK, for the spans every request opens: the
//! HTTP SERVER span, the generation span and the HTTP CLIENT span of an upstream call.
//!
//! A `tracing` span goes through the registry, every layer's filter and tracing-opentelemetry
//! on each creation, field, enter and exit; a request entered its three spans about a dozen
//! times, and that was most of what `local` telemetry cost a proxied request. An [`OtelSpan`]
//! is an OpenTelemetry [`Context`] holding the SDK span. Code runs "inside" it by attaching the
//! context ([`OtelSpan::attach`], or `FutureExt::with_context` for a future): a thread-local
//! push. Everything that reads the current context sees it there:
//! - `tracing` spans created inside (the local engine's queue and inference spans, model loads)
//!   take it as their parent: tracing-opentelemetry parents a contextual span on the current
//!   OpenTelemetry context when context activation is on;
//! - log lines take their trace and span ids from it, and their `span` label
//!   ([`current_label`]);
//! - an [`OtelSpan`] started inside takes it as parent, and the tracer it was started with.
//!
//! With telemetry off there is no tracer: every span is [`OtelSpan::none`] and costs nothing.

use std::borrow::Cow;

use opentelemetry::trace::{SpanBuilder, SpanId, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, ContextGuard, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

use crate::handles::dispatch_tracer;
use crate::semconv;
use crate::spans::exception_attributes;

/// What an [`OtelSpan`] adds to its context besides the span: the label its log lines carry
/// (`span`), its id (to tell whether it is still the innermost span of a context), and the
/// tracer its children start with.
#[derive(Debug, Clone)]
struct Origin {
    label: &'static str,
    span_id: SpanId,
    tracer: SdkTracer,
}

/// A span held in an OpenTelemetry [`Context`]; see the module documentation. Cloning shares
/// the span. It ends on [`OtelSpan::end`] (a span left unended ends when the last clone of
/// its context is dropped, which a child's context can delay: end it).
#[derive(Debug, Clone, Default)]
pub struct OtelSpan {
    /// `None` when telemetry is off (no tracer).
    cx: Option<Context>,
}

impl OtelSpan {
    /// No span: every method does nothing.
    pub fn none() -> Self {
        Self { cx: None }
    }

    /// Starts `builder` with `tracer`, child of `parent`. `label` names the span in log lines
    /// written inside it (the OpenTelemetry name may be built per request).
    pub fn start(
        tracer: &SdkTracer,
        parent: &Context,
        label: &'static str,
        builder: SpanBuilder,
    ) -> Self {
        let span = tracer.build_with_context(builder, parent);
        let origin = Origin {
            label,
            span_id: opentelemetry::trace::Span::span_context(&span).span_id(),
            tracer: tracer.clone(),
        };
        Self {
            cx: Some(parent.with_value(origin).with_span(span)),
        }
    }

    /// Starts `builder` as a child of the current context, with the tracer of the innermost
    /// [`OtelSpan`] there, else the current subscriber's; no span when telemetry is off.
    pub fn start_in_current(label: &'static str, builder: SpanBuilder) -> Self {
        Self::start_in_current_with(label, || builder)
    }

    /// [`OtelSpan::start_in_current`] with the builder made only when there is a span to
    /// start (nothing is built when telemetry is off).
    pub fn start_in_current_with(
        label: &'static str,
        builder: impl FnOnce() -> SpanBuilder,
    ) -> Self {
        let parent = Context::current();
        let tracer = match parent.get::<Origin>() {
            Some(origin) => origin.tracer.clone(),
            None => match dispatch_tracer() {
                Some(tracer) => tracer,
                None => return Self::none(),
            },
        };
        Self::start(&tracer, &parent, label, builder())
    }

    /// The span of the current context, whichever kind made it (an [`OtelSpan`] or a
    /// `tracing` span through tracing-opentelemetry); none outside a sampled or unsampled
    /// span.
    pub fn current() -> Self {
        Self {
            cx: Context::map_current(|cx| cx.has_active_span().then(|| cx.clone())),
        }
    }

    /// Whether there is a span (telemetry is on).
    pub fn is_some(&self) -> bool {
        self.cx.is_some()
    }

    /// The context holding the span: the parent to give children, or what to inject.
    pub fn context(&self) -> Option<&Context> {
        self.cx.as_ref()
    }

    /// Makes the span current on this thread until the guard drops.
    #[must_use = "the span is current only while the guard lives"]
    pub fn attach(&self) -> Option<ContextGuard> {
        self.cx.clone().map(Context::attach)
    }

    /// Runs `f` with the span current.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _attached = self.attach();
        f()
    }

    /// Sets one attribute.
    pub fn set_attribute(&self, attribute: KeyValue) {
        if let Some(cx) = &self.cx {
            cx.span().set_attribute(attribute);
        }
    }

    /// Sets several attributes at once.
    pub fn set_attributes(&self, attributes: Vec<KeyValue>) {
        if let Some(cx) = &self.cx {
            if !attributes.is_empty() {
                cx.span().set_attributes(attributes);
            }
        }
    }

    /// Sets the status.
    pub fn set_status(&self, status: Status) {
        if let Some(cx) = &self.cx {
            cx.span().set_status(status);
        }
    }

    /// Adds an event (a point in time with attributes) to the span.
    pub fn add_event(&self, name: &'static str, attributes: Vec<KeyValue>) {
        if let Some(cx) = &self.cx {
            cx.span().add_event(name, attributes);
        }
    }

    /// Records an error as [`crate::record_error`] does on a `tracing` span: status ERROR with
    /// the message, `error.type`, and an `exception` event.
    pub fn record_error(&self, error_type: impl Into<Cow<'static, str>>, message: &str) {
        let Some(cx) = &self.cx else { return };
        let span = cx.span();
        if !span.is_recording() {
            return;
        }
        let error_type = error_type.into();
        span.set_status(Status::error(message.to_owned()));
        span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, error_type.clone()));
        span.add_event(
            semconv::EXCEPTION_EVENT,
            exception_attributes(error_type, message),
        );
    }

    /// Ends the span now (later calls do nothing).
    pub fn end(&self) {
        if let Some(cx) = &self.cx {
            cx.span().end();
        }
    }
}

/// The label of the innermost span of the current context when an [`OtelSpan`] made it;
/// `None` when there is none or a `tracing` span is innermost (its own name then applies).
pub(crate) fn current_label(cx: &Context) -> Option<&'static str> {
    let origin = cx.get::<Origin>()?;
    (origin.span_id == cx.span().span_context().span_id()).then_some(origin.label)
}

/// A builder for a span named `name` of `kind` with `attributes` (no duplicate keys).
pub fn span_builder(
    name: impl Into<Cow<'static, str>>,
    kind: SpanKind,
    attributes: Vec<KeyValue>,
) -> SpanBuilder {
    SpanBuilder {
        span_kind: Some(kind),
        attributes: Some(attributes),
        ..SpanBuilder::from_name(name)
    }
}

#[cfg(test)]
#[path = "otel_span_tests.rs"]
mod tests;
