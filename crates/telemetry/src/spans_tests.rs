use std::io::Write;
use std::sync::{Arc, Mutex};

use inferd_otel::{semconv, span_builder, OtelSpan};
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::{LogFormat, Mode, TelemetryConfig};
use crate::setup::build_with_writer;

/// A log writer the test can read back.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub(crate) fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn local(format: LogFormat) -> TelemetryConfig {
    TelemetryConfig {
        mode: Mode::Local,
        log_format: format,
        ..TelemetryConfig::default()
    }
}

#[test]
fn record_error_sets_status_type_and_exception_event() {
    let _serial = crate::serial_dispatch();
    let (guard, dispatch) =
        match build_with_writer(&local(LogFormat::Json), Captured::default(), false) {
            Ok(x) => x,
            Err(e) => panic!("{e}"),
        };
    let Some(tracer) = guard.tracer() else {
        panic!("no tracer")
    };
    let trace_id = tracing::dispatcher::with_default(&dispatch, || {
        let span = OtelSpan::start(
            &tracer,
            &Context::new(),
            "generation",
            span_builder("generation", SpanKind::Internal, Vec::new()),
        );
        span.record_error("model_not_found", "no model named x");
        span.set_attribute(KeyValue::new(semconv::GEN_AI_REQUEST_MODEL, "x"));
        span.end();
        let Some(cx) = span.context() else {
            panic!("no span")
        };
        cx.span().span_context().trace_id().to_string()
    });
    let store = guard.trace_store().cloned();
    let detail = store.and_then(|s| s.trace(&trace_id));
    let Some(detail) = detail else {
        panic!("trace not stored")
    };
    let span = &detail.spans[0];
    assert_eq!(span.status.code, "error");
    assert_eq!(span.status.message.as_deref(), Some("no model named x"));
    assert_eq!(span.attributes[semconv::ERROR_TYPE], "model_not_found");
    assert_eq!(span.attributes[semconv::GEN_AI_REQUEST_MODEL], "x");
    let event = &span.events[0];
    assert_eq!(event.name, "exception");
    assert_eq!(
        event.attributes[semconv::EXCEPTION_MESSAGE],
        "no model named x"
    );
}

#[test]
fn spans_are_no_ops_when_off() {
    let _serial = crate::serial_dispatch();
    let config = TelemetryConfig {
        mode: Mode::Off,
        ..TelemetryConfig::default()
    };
    let (guard, dispatch) = match build_with_writer(&config, Captured::default(), false) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    };
    assert!(guard.tracer_provider().is_none() && guard.trace_store().is_none());
    assert!(guard.tracer().is_none());
    assert!(crate::http_layer(&guard).is_none());
    tracing::dispatcher::with_default(&dispatch, || {
        let span = OtelSpan::start_in_current(
            "generation",
            span_builder("generation", SpanKind::Internal, Vec::new()),
        );
        span.record_error("x", "y");
        span.set_attribute(KeyValue::new("k", 1_i64));
        span.end();
        assert!(!span.is_some());
        assert!(!Context::current().span().span_context().is_valid());
    });
}

#[test]
fn log_line_in_a_span_carries_that_spans_ids() {
    let _serial = crate::serial_dispatch();
    let out = Captured::default();
    let (_guard, dispatch) = match build_with_writer(&local(LogFormat::Json), out.clone(), false) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    };
    let (trace_id, span_id) = tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!("outside any span");
        let span = tracing::info_span!("request");
        let _entered = span.enter();
        tracing::info!(tokens = 3, "inside the span");
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        (sc.trace_id().to_string(), sc.span_id().to_string())
    });
    let text = out.text();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].get("trace_id").is_none());
    assert_eq!(lines[1]["message"], "inside the span");
    assert_eq!(lines[1]["fields"]["tokens"], 3);
    assert_eq!(lines[1]["trace_id"], trace_id.as_str());
    assert_eq!(lines[1]["span_id"], span_id.as_str());
    assert_eq!(trace_id.len(), 32);
    assert_eq!(span_id.len(), 16);
    assert!(trace_id
        .chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
}

#[test]
fn pretty_log_line_in_a_span_carries_ids() {
    let _serial = crate::serial_dispatch();
    let out = Captured::default();
    let (_guard, dispatch) = match build_with_writer(&local(LogFormat::Pretty), out.clone(), false)
    {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    };
    let trace_id = tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("request");
        let _entered = span.enter();
        tracing::warn!("careful");
        span.context().span().span_context().trace_id().to_string()
    });
    let text = out.text();
    assert!(
        text.contains("careful") && text.contains(&format!("trace_id={trace_id}")),
        "{text}"
    );
}
