use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use serde_json::Value;

use crate::config::{LogFormat, Mode, TelemetryConfig};
use crate::setup::build_with_writer;
use crate::spans_tests::Captured;
use crate::store::TraceDetail;
use inferd_otel::*;

/// Runs `f` with local telemetry whose JSON log lines are captured; returns what `f` returned,
/// the lines and the stored trace `f`'s result names.
fn run<F>(f: F) -> (Vec<Value>, TraceDetail)
where
    F: FnOnce(&Tracer) -> String,
{
    let _serial = crate::serial_dispatch();
    let config = TelemetryConfig {
        mode: Mode::Local,
        log_format: LogFormat::Json,
        ..TelemetryConfig::default()
    };
    let captured = Captured::default();
    let (guard, dispatch) = match build_with_writer(&config, captured.clone(), false) {
        Ok(built) => built,
        Err(e) => panic!("{e}"),
    };
    let Some(tracer) = guard.tracer() else {
        panic!("no tracer in local mode")
    };
    let trace_id = tracing::dispatcher::with_default(&dispatch, || f(&tracer));
    let lines = captured
        .text()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or(Value::Null))
        .collect();
    let Some(detail) = guard.trace_store().and_then(|s| s.trace(&trace_id)) else {
        panic!("trace {trace_id} not stored")
    };
    (lines, detail)
}

fn server_span(tracer: &Tracer, attributes: Vec<KeyValue>) -> OtelSpan {
    OtelSpan::start(
        tracer,
        &Context::new(),
        "HTTP request",
        span_builder("GET /x", SpanKind::Server, attributes),
    )
}

/// The captured log line whose message is `message` (Null when there is none).
fn line(lines: &[Value], message: &str) -> Value {
    lines
        .iter()
        .find(|l| l["message"] == message)
        .cloned()
        .unwrap_or(Value::Null)
}

fn trace_id(span: &OtelSpan) -> String {
    match span.context() {
        Some(cx) => cx.span().span_context().trace_id().to_string(),
        None => panic!("no span"),
    }
}

#[test]
fn log_lines_inside_carry_the_label_and_ids_and_tracing_children_nest() {
    let (lines, detail) = run(|tracer| {
        let request = server_span(tracer, vec![KeyValue::new("http.route", "/x")]);
        request.in_scope(|| {
            tracing::info!("in the request");
            let child = tracing::info_span!("queue");
            child.in_scope(|| tracing::info!("in the child"));
        });
        // Outside: the context is detached again.
        tracing::info!("outside");
        request.end();
        trace_id(&request)
    });
    let request = detail.spans.iter().find(|s| s.name == "GET /x");
    let child = detail.spans.iter().find(|s| s.name == "queue");
    let (Some(request), Some(child)) = (request, child) else {
        panic!("spans: {detail:?}")
    };
    assert_eq!(request.kind, "server");
    assert_eq!(request.attributes["http.route"], "/x");
    assert_eq!(
        child.parent_span_id.as_deref(),
        Some(request.span_id.as_str())
    );
    let inside = line(&lines, "in the request");
    assert_eq!(inside["span"], "HTTP request", "{inside}");
    assert_eq!(inside["span_id"], request.span_id.as_str());
    assert_eq!(inside["trace_id"], detail.trace_id.as_str());
    let nested = line(&lines, "in the child");
    assert_eq!(nested["span"], "queue", "{nested}");
    assert_eq!(nested["span_id"], child.span_id.as_str());
    let outside = line(&lines, "outside");
    assert!(outside.get("span").is_none() && outside.get("trace_id").is_none());
}

#[test]
fn children_started_in_current_take_the_parent_and_its_tracer() {
    let (_, detail) = run(|tracer| {
        let request = server_span(tracer, Vec::new());
        let child = request.in_scope(|| {
            OtelSpan::start_in_current(
                "generation",
                span_builder("chat m", SpanKind::Client, Vec::new()),
            )
        });
        assert!(child.is_some());
        child.record_error("upstream_unavailable", "no route");
        child.end();
        // After the end nothing more is recorded.
        child.set_attribute(KeyValue::new("late", true));
        request.end();
        trace_id(&request)
    });
    let request = detail.spans.iter().find(|s| s.kind == "server");
    let child = detail.spans.iter().find(|s| s.name == "chat m");
    let (Some(request), Some(child)) = (request, child) else {
        panic!("spans: {detail:?}")
    };
    assert_eq!(
        child.parent_span_id.as_deref(),
        Some(request.span_id.as_str())
    );
    assert_eq!(child.status.code, "error");
    assert_eq!(child.attributes["error.type"], "upstream_unavailable");
    assert!(!child.attributes.contains_key("late"));
    assert_eq!(child.events[0].name, "exception");
}

#[test]
fn outside_any_span_only_a_tracer_handed_over_starts_a_root() {
    let (_, detail) = run(|tracer| {
        // The subscriber carries no tracer: a span with no OtelSpan ancestor is given one.
        let orphan = OtelSpan::start_in_current(
            "HTTP client request",
            span_builder("GET", SpanKind::Client, Vec::new()),
        );
        assert!(!orphan.is_some());
        let root = OtelSpan::start_opt(Some(tracer), &Context::current(), "load", || {
            span_builder("GET", SpanKind::Client, Vec::new())
        });
        root.end();
        trace_id(&root)
    });
    assert_eq!(detail.spans.len(), 1);
    assert_eq!(detail.spans[0].parent_span_id, None);
}

#[test]
fn without_a_tracer_spans_are_none_and_inert() {
    // No OtelSpan ancestor and no telemetry subscriber: nothing to start with.
    let span = OtelSpan::start_in_current("x", span_builder("x", SpanKind::Internal, vec![]));
    assert!(!span.is_some() && span.context().is_none() && span.attach().is_none());
    span.record_error("e", "m");
    span.end();
    assert_eq!(span.in_scope(|| 7), 7);
    assert!(!OtelSpan::current().is_some());
}

#[test]
fn nested_otel_spans_each_label_their_own_log_lines() {
    let (lines, detail) = run(|tracer| {
        let request = server_span(tracer, Vec::new());
        request.in_scope(|| {
            let generation = OtelSpan::start_in_current(
                "generation",
                span_builder("chat m", SpanKind::Client, Vec::new()),
            );
            generation.in_scope(|| {
                let call = OtelSpan::start_in_current(
                    "HTTP client request",
                    span_builder("POST", SpanKind::Client, Vec::new()),
                );
                call.in_scope(|| tracing::info!("in the call"));
                tracing::info!("in the generation");
                call.end();
            });
            tracing::info!("back in the request");
            generation.end();
        });
        request.end();
        trace_id(&request)
    });
    assert_eq!(detail.spans.len(), 3);
    let span_of = |name: &str| {
        detail
            .spans
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.span_id.clone())
            .unwrap_or_default()
    };
    for (message, label, span) in [
        ("in the call", "HTTP client request", "POST"),
        ("in the generation", "generation", "chat m"),
        ("back in the request", "HTTP request", "GET /x"),
    ] {
        let line = line(&lines, message);
        assert_eq!(line["span"], label, "{line}");
        assert_eq!(line["span_id"], span_of(span).as_str(), "{line}");
    }
}

#[test]
fn a_log_event_is_one_line_and_one_span_event_with_the_same_fields() {
    let (lines, detail) = run(|tracer| {
        let span = server_span(tracer, Vec::new());
        let absent: Option<&str> = None;
        inferd_otel::log_event!(
            span,
            INFO,
            "model ready",
            model = "m".to_owned(),
            seconds = 1.5,
            tokens = 7u32,
            reason = absent,
        );
        // Below the log filter: no line, but the span still records the event.
        inferd_otel::log_event!(span, TRACE, "step", n = 1u32);
        span.end();
        trace_id(&span)
    });
    let ready = line(&lines, "model ready");
    assert_eq!(ready["level"], "INFO", "{ready}");
    assert_eq!(ready["span"], "HTTP request");
    assert_eq!(ready["fields"]["model"], "m");
    assert_eq!(ready["fields"]["seconds"], 1.5);
    assert_eq!(ready["fields"]["tokens"], 7);
    assert!(ready["fields"].get("reason").is_none(), "{ready}");
    assert_eq!(line(&lines, "step"), Value::Null);
    let Some(span) = detail.spans.iter().find(|s| s.name == "GET /x") else {
        panic!("spans: {detail:?}")
    };
    let names: Vec<&str> = span.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["model ready", "step"]);
    let event = &span.events[0].attributes;
    assert_eq!(event["level"], "INFO");
    assert_eq!(event["target"], module_path!());
    assert_eq!(event["model"], "m");
    assert_eq!(event["seconds"], 1.5);
    assert_eq!(event["tokens"], 7);
    assert!(!event.contains_key("reason"), "{event:?}");
}
