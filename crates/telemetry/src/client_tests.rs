//! The CLIENT span of `inferd_otel`, recorded through a real telemetry set-up.

use opentelemetry::trace::TraceContextExt;

use http::{HeaderMap, Method};
use inferd_otel::propagate::TRACEPARENT;
use inferd_otel::{http_client_span, record_http_response, semconv, span_builder, OtelSpan};
use opentelemetry::trace::SpanKind;

use crate::config::Mode;
use crate::setup::build_for_test;

/// The trace and span id of the current context.
fn current_ids() -> (String, String) {
    let cx = opentelemetry::Context::current();
    let sc = cx.span().span_context().clone();
    (sc.trace_id().to_string(), sc.span_id().to_string())
}

#[test]
fn client_span_is_a_child_with_client_attributes() {
    let _serial = crate::serial_dispatch();
    let (guard, dispatch) = build_for_test(Mode::Local);
    let Some(tracer) = guard.tracer() else {
        panic!("no tracer")
    };
    let (trace_id, parent_id, traceparent) = tracing::dispatcher::with_default(&dispatch, || {
        let parent = OtelSpan::start(
            &tracer,
            &opentelemetry::Context::new(),
            "generation",
            span_builder("chat m", SpanKind::Client, Vec::new()),
        );
        let _attached = parent.attach();
        let client = http_client_span(&Method::POST, "http://up:8000/v1/chat?sig=s");
        record_http_response(&client, http::StatusCode::BAD_GATEWAY);
        let mut headers = HeaderMap::new();
        let Some(cx) = client.context() else {
            panic!("no client span")
        };
        guard.propagators().inject_headers(cx, &mut headers);
        client.end();
        parent.end();
        let (trace_id, span_id) = current_ids();
        (
            trace_id,
            span_id,
            headers
                .get(TRACEPARENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        )
    });
    let detail = guard.trace_store().and_then(|s| s.trace(&trace_id));
    let Some(detail) = detail else {
        panic!("no trace")
    };
    let client = detail
        .spans
        .iter()
        .find(|s| s.kind == "client" && s.name == "POST");
    let Some(client) = client else {
        panic!("no client span")
    };
    assert_eq!(client.parent_span_id.as_deref(), Some(parent_id.as_str()));
    assert_eq!(
        client.attributes[semconv::URL_FULL],
        "http://up:8000/v1/chat?sig=REDACTED"
    );
    assert_eq!(client.attributes[semconv::SERVER_ADDRESS], "up");
    assert_eq!(client.attributes[semconv::SERVER_PORT], 8000);
    assert_eq!(client.attributes[semconv::ERROR_TYPE], "502");
    assert_eq!(client.status.code, "error");
    // Sampled, and random: the trace started here, with an id drawn at random.
    let expected = format!("00-{trace_id}-{}-03", client.span_id);
    assert_eq!(traceparent.as_deref(), Some(expected.as_str()));
}

#[test]
fn client_span_inside_a_tracing_span_inside_a_request_joins_both() {
    let _serial = crate::serial_dispatch();
    let (guard, dispatch) = build_for_test(Mode::Local);
    let Some(tracer) = guard.tracer() else {
        panic!("no tracer")
    };
    let (trace_id, load_id) = tracing::dispatcher::with_default(&dispatch, || {
        let request = OtelSpan::start(
            &tracer,
            &opentelemetry::Context::new(),
            "HTTP request",
            span_builder("POST /admin", SpanKind::Server, Vec::new()),
        );
        let _attached = request.attach();
        let load = tracing::info_span!("model load");
        let ids = load.in_scope(|| {
            let client = http_client_span(&Method::GET, "http://hub/m.gguf");
            client.end();
            current_ids()
        });
        drop(load);
        request.end();
        ids
    });
    let detail = guard.trace_store().and_then(|s| s.trace(&trace_id));
    let Some(detail) = detail else {
        panic!("no trace")
    };
    let client = detail.spans.iter().find(|s| s.kind == "client");
    let Some(client) = client else {
        panic!("no client span in {detail:?}")
    };
    assert_eq!(client.parent_span_id.as_deref(), Some(load_id.as_str()));
    assert_eq!(detail.spans.len(), 3, "{detail:?}");
}
