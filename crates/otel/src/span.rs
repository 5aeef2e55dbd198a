//! inferd's one span API: every span inferd makes (the HTTP SERVER span, the generation, the
//! engine's queue and inference steps, model loads and unloads, artifact steps, CLIENT calls,
//! batch runs, the bench's requests) is an [`OtelSpan`]: started as a child of an explicit
//! parent context ([`OtelSpan::start`], [`OtelSpan::start_child_with`]), given attributes,
//! events and an error, and ended with [`OtelSpan::end`].
//!
//! An [`OtelSpan`] is an OpenTelemetry [`Context`] holding the span. A `tracing` span would go
//! through the registry, every layer's filter and tracing-opentelemetry on each creation,
//! field, enter and exit; a request entered its three spans about a dozen times, and that was
//! most of what `local` telemetry cost a proxied request. Context crosses into a task or a
//! thread as a value (a job carries its parent's); code runs "inside" a span by attaching its
//! context ([`OtelSpan::in_scope`], [`OtelSpan::run`] for a future): a thread-local push.
//! Everything that reads the current context sees it there:
//! - log lines take their trace and span ids from it, and their `span` label ([`span_label`]);
//! - an [`OtelSpan`] started in the current context ([`OtelSpan::start_in_current`], the
//!   CLIENT span of an outgoing call) takes it as parent, and the tracer of the outermost one;
//! - a library's `tracing` span, where the telemetry set-up bridges them, takes it as parent.
//!
//! With telemetry off there is no tracer: every span is [`OtelSpan::none`] and costs nothing.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Mutex;
use std::time::SystemTime;

use std::sync::Arc;

use opentelemetry::context::FutureExt as _;
use opentelemetry::global::{BoxedTracer, ObjectSafeTracer};
use opentelemetry::trace::{SpanBuilder, SpanId, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, ContextGuard, KeyValue};

use crate::semconv;

/// What the [`OtelSpan`]s of one context tree share, put in the context by the outermost one:
/// the tracer their children start with, and the label each one's log lines carry (`span`) by
/// span id (to tell whether it is still the innermost span of a context).
///
/// A child registers its label here instead of adding a value of its own to the context:
/// `Context::with_value` copies the context's whole map into a new allocation, and with the
/// value's own two, that was ~400 instructions per span.
#[derive(Debug)]
struct Origin {
    tracer: Tracer,
    labels: Mutex<Vec<(SpanId, &'static str)>>,
}

/// Most spans of one tree that get a label; the rest log without one (a request has three).
const MAX_LABELS: usize = 16;

impl Origin {
    fn new(tracer: Tracer, span_id: SpanId, label: &'static str) -> Self {
        let mut labels = Vec::with_capacity(4);
        labels.push((span_id, label));
        Self {
            tracer,
            labels: Mutex::new(labels),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(SpanId, &'static str)>> {
        // A panic while holding the lock leaves a whole Vec.
        self.labels.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, span_id: SpanId, label: &'static str) {
        let mut labels = self.lock();
        if labels.len() < MAX_LABELS {
            labels.push((span_id, label));
        }
    }

    fn label(&self, span_id: SpanId) -> Option<&'static str> {
        let labels = self.lock();
        labels
            .iter()
            .rev()
            .find(|(id, _)| *id == span_id)
            .map(|(_, label)| *label)
    }
}

/// A span held in an OpenTelemetry [`Context`]; see the module documentation. Cloning shares
/// the span. It ends on [`OtelSpan::end`] (a span left unended ends when the last clone of
/// its context is dropped, which a child's context can delay: end it).
#[derive(Debug, Clone, Default)]
pub struct OtelSpan {
    /// `None` when telemetry is off (no tracer).
    cx: Option<Context>,
}

/// inferd's tracer (from `inferd_telemetry::TelemetryGuard::tracer`): what starts the spans
/// that do not begin inside another [`OtelSpan`] of the current context, such as a generation
/// span or a batch run recorded after the fact. The SDK tracer inside is boxed behind the
/// OpenTelemetry API, so no SDK type reaches the code that records.
#[derive(Clone)]
pub struct Tracer(Arc<BoxedTracer>);

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracer")
    }
}

impl Tracer {
    /// Wraps an OpenTelemetry tracer (the SDK's, made by the telemetry set-up).
    pub fn new(tracer: impl ObjectSafeTracer + Send + Sync + 'static) -> Self {
        Self(Arc::new(BoxedTracer::new(Box::new(tracer))))
    }

    /// Records a span that already happened: `builder` (its `start_time` set), child of
    /// `parent`, ended at `end`. Nothing is recorded when the sampler drops it.
    pub fn record_finished(&self, builder: SpanBuilder, parent: &Context, end: SystemTime) {
        let mut span = self.0.build_with_context(builder, parent);
        opentelemetry::trace::Span::end_with_timestamp(&mut span, end);
    }
}

impl OtelSpan {
    /// No span: every method does nothing.
    pub fn none() -> Self {
        Self { cx: None }
    }

    /// Starts `builder` with `tracer`, child of `parent`. `label` names the span in log lines
    /// written inside it (the OpenTelemetry name may be built per request). Inside another
    /// [`OtelSpan`], the span's own children keep starting with that one's tracer.
    pub fn start(
        tracer: &Tracer,
        parent: &Context,
        label: &'static str,
        builder: SpanBuilder,
    ) -> Self {
        let span = tracer.0.build_with_context(builder, parent);
        let span_id = opentelemetry::trace::Span::span_context(&span).span_id();
        let cx = match parent.get::<Origin>() {
            Some(origin) => {
                origin.add(span_id, label);
                parent.with_span(span)
            }
            None => parent
                .with_value(Origin::new(tracer.clone(), span_id, label))
                .with_span(span),
        };
        Self { cx: Some(cx) }
    }

    /// Starts `builder` with `tracer` (none: no span, and nothing is built), child of `parent`:
    /// for spans that may begin outside any other [`OtelSpan`], such as a model load at
    /// start-up or a batch line continuing the context its request stored.
    pub fn start_opt(
        tracer: Option<&Tracer>,
        parent: &Context,
        label: &'static str,
        builder: impl FnOnce() -> SpanBuilder,
    ) -> Self {
        match tracer {
            Some(tracer) => Self::start(tracer, parent, label, builder()),
            None => Self::none(),
        }
    }

    /// Starts `builder` as a child of the current context, with the tracer of the outermost
    /// [`OtelSpan`] there; no span outside one (nor when telemetry is off).
    pub fn start_in_current(label: &'static str, builder: SpanBuilder) -> Self {
        Self::start_in_current_with(label, || builder)
    }

    /// [`OtelSpan::start_in_current`] with the builder made only when there is a span to
    /// start (nothing is built when telemetry is off).
    pub fn start_in_current_with(
        label: &'static str,
        builder: impl FnOnce() -> SpanBuilder,
    ) -> Self {
        Self::start_child_with(&Context::current(), label, builder)
    }

    /// Starts a child of `parent`, a context handed over explicitly (to another thread or
    /// task), with the tracer of the outermost [`OtelSpan`] there; the builder is made only
    /// when there is a span to start (none when `parent` holds no [`OtelSpan`], as with
    /// telemetry off).
    pub fn start_child_with(
        parent: &Context,
        label: &'static str,
        builder: impl FnOnce() -> SpanBuilder,
    ) -> Self {
        let Some(origin) = parent.get::<Origin>() else {
            return Self::none();
        };
        let tracer = origin.tracer.clone();
        Self::start(&tracer, parent, label, builder())
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

    /// Runs `future` with the span current while it is polled (as is, with no span).
    pub async fn run<F: Future>(&self, future: F) -> F::Output {
        match &self.cx {
            Some(cx) => future.with_context(cx.clone()).await,
            None => future.await,
        }
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

    /// Adds an event whose attributes `fields` pushes, only when the span records (nothing is
    /// built for an unsampled span, nor with telemetry off).
    pub fn add_event_with(&self, name: &'static str, fields: impl FnOnce(&mut Vec<KeyValue>)) {
        let Some(cx) = &self.cx else { return };
        let span = cx.span();
        if !span.is_recording() {
            return;
        }
        let mut attributes = Vec::with_capacity(8);
        fields(&mut attributes);
        span.add_event(name, attributes);
    }

    /// Adds a log line written inside this span as an event, as tracing-opentelemetry records
    /// a line written inside a `tracing` span: named by the line's message, with its `level`,
    /// its `target` and its fields (`fields` pushes them, only when the span records).
    pub fn add_log_event(
        &self,
        level: tracing::Level,
        target: &'static str,
        message: &'static str,
        fields: impl FnOnce(&mut Vec<KeyValue>),
    ) {
        self.add_event_with(message, |attributes| {
            attributes.extend([
                KeyValue::new("level", level.as_str()),
                KeyValue::new("target", target),
            ]);
            fields(attributes);
        });
    }

    /// Records why the client's request was refused (a 4xx) on a SERVER span: an `exception`
    /// event only. The HTTP conventions leave a SERVER span's status unset, and `error.type`
    /// off it, for a 4xx: the server did not fail.
    pub fn record_client_error(&self, error_type: impl Into<Cow<'static, str>>, message: &str) {
        let Some(cx) = &self.cx else { return };
        let span = cx.span();
        if !span.is_recording() {
            return;
        }
        span.add_event(
            semconv::EXCEPTION_EVENT,
            exception_attributes(error_type.into(), message),
        );
    }

    /// Records an error: status ERROR with the message, `error.type`, and an `exception` event
    /// carrying `exception.type` and `exception.message`.
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

/// The label of the innermost span of `cx` when an [`OtelSpan`] made it (the `span` of log
/// lines written there); `None` when there is none or a `tracing` span is innermost (its own
/// name then applies).
pub fn span_label(cx: &Context) -> Option<&'static str> {
    cx.get::<Origin>()?
        .label(cx.span().span_context().span_id())
}

/// The attributes of the `exception` event an error adds to its span.
pub(crate) fn exception_attributes(error_type: Cow<'static, str>, message: &str) -> Vec<KeyValue> {
    vec![
        KeyValue::new(semconv::EXCEPTION_TYPE, error_type),
        KeyValue::new(semconv::EXCEPTION_MESSAGE, message.to_owned()),
    ]
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
