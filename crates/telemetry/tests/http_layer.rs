//! The HTTP layer end to end: a real axum server on 127.0.0.1 with the layer, real requests
//! with reqwest, spans exported to a real OTLP/HTTP receiver.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use inferd_telemetry::{
    build_with_writer, with_http_layer, PropagatorConfig, Propagators, TelemetryConfig,
};
use support::{env, http_receiver, Captured, Spans};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

struct Server {
    base: String,
    spans: Spans,
    logs: Captured,
    guard: inferd_telemetry::TelemetryGuard,
    _dispatch: tracing::dispatcher::DefaultGuard,
}

async fn start() -> Server {
    let (endpoint, spans) = http_receiver().await;
    let config = TelemetryConfig::from_env(&env(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "none"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("INFERD_BAGGAGE_SPAN_ATTRIBUTES", "tenant"),
        ("INFERD_LOG_FORMAT", "json"),
    ]))
    .unwrap();
    let logs = Captured::default();
    let (guard, dispatch) = build_with_writer(&config, logs.clone(), false).unwrap();
    // A current-thread runtime runs the server's tasks on this thread, so the thread's
    // default subscriber applies to them.
    let dispatch_guard = tracing::dispatcher::set_default(&dispatch);

    let app = Router::new()
        .route(
            "/v1/models/{id}",
            get(|| async {
                tracing::info!("listing model");
                "ok"
            }),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/outgoing",
            get(|| async {
                // What an outgoing call made from the handler would carry.
                let mut headers = HeaderMap::new();
                let cx = opentelemetry::Context::current();
                Propagators::new(&PropagatorConfig::default()).inject_headers(&cx, &mut headers);
                let text = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                format!(
                    "{}|{}|{}",
                    text("traceparent"),
                    text("tracestate"),
                    text("baggage")
                )
            }),
        );
    let app = with_http_layer(app, &guard);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Server {
        base: format!("http://{addr}"),
        spans,
        logs,
        guard,
        _dispatch: dispatch_guard,
    }
}

impl Server {
    async fn flush(&self) {
        let provider = self.guard.tracer_provider().cloned().unwrap();
        tokio::task::spawn_blocking(move || provider.force_flush())
            .await
            .unwrap()
            .unwrap();
    }
}

fn traceparent(flags: &str) -> String {
    format!("00-{TRACE_ID}-{PARENT_ID}-{flags}")
}

#[tokio::test(flavor = "current_thread")]
async fn server_span_continues_the_remote_trace_and_answers_traceresponse() {
    let server = start().await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/v1/models/smollm2?x=1", server.base))
        .header("traceparent", traceparent("01"))
        .header("baggage", "tenant=acme,secret=s3")
        .header("user-agent", "inferd-test/1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let traceresponse = response
        .headers()
        .get("traceresponse")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "ok");
    server.flush().await;

    let span = server.spans.wait_for("GET /v1/models/{id}").await;
    assert_eq!(span.span.kind, 2, "SERVER");
    assert_eq!(span.trace_id(), TRACE_ID);
    assert_eq!(span.parent_span_id(), PARENT_ID);
    assert_eq!(
        traceresponse,
        format!("00-{TRACE_ID}-{}-01", span.span_id())
    );
    assert_eq!(span.attr("http.request.method").as_deref(), Some("GET"));
    assert_eq!(span.attr("http.route").as_deref(), Some("/v1/models/{id}"));
    assert_eq!(span.attr("url.path").as_deref(), Some("/v1/models/smollm2"));
    assert_eq!(span.attr("url.scheme").as_deref(), Some("http"));
    assert_eq!(
        span.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(span.attr("server.address").as_deref(), Some("127.0.0.1"));
    assert!(span.attr("server.port").is_some());
    assert_eq!(span.attr("client.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        span.attr("user_agent.original").as_deref(),
        Some("inferd-test/1")
    );
    assert_eq!(
        span.attr("tenant").as_deref(),
        Some("acme"),
        "allow-listed baggage"
    );
    assert_eq!(span.attr("secret"), None, "baggage not allow-listed");
    assert_eq!(span.attr("error.type"), None);

    // The handler's log line carries the server span's ids.
    let logs = server.logs.text();
    let line: serde_json::Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "listing model")
        .unwrap();
    assert_eq!(line["trace_id"], TRACE_ID);
    assert_eq!(line["span_id"], span.span_id().as_str());
}

#[tokio::test(flavor = "current_thread")]
async fn incoming_context_reaches_outgoing_calls_with_only_the_parent_changed() {
    let server = start().await;
    let body = reqwest::Client::new()
        .get(format!("{}/outgoing", server.base))
        .header("traceparent", traceparent("03"))
        .header("tracestate", "vendor=abc")
        .header("tracestate", "other@sys=1")
        .header("baggage", "tenant=acme")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    server.flush().await;
    let span = server.spans.wait_for("GET /outgoing").await;
    assert_eq!(
        body,
        format!(
            "00-{TRACE_ID}-{}-03|vendor=abc,other@sys=1|tenant=acme",
            span.span_id()
        )
    );
}

#[tokio::test(flavor = "current_thread")]
async fn force_trace_header_samples_one_request_only() {
    let server = start().await;
    let client = reqwest::Client::new();
    let forced = client
        .get(format!("{}/v1/models/a", server.base))
        .header("x-force-trace", "TRUE")
        .send()
        .await
        .unwrap();
    let forced_tr = forced.headers()["traceresponse"]
        .to_str()
        .unwrap()
        .to_owned();
    // Sampled, and random: the trace started here (W3C Level 2).
    assert!(forced_tr.ends_with("-03"), "{forced_tr}");
    for value in [None, Some("false"), Some("garbage")] {
        let mut request = client.get(format!("{}/v1/models/b", server.base));
        if let Some(v) = value {
            request = request.header("x-force-trace", v);
        }
        let response = request.send().await.unwrap();
        let tr = response.headers()["traceresponse"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(tr.ends_with("-02"), "{value:?}: {tr}");
    }
    // A forced header never overrides an unsampled parent.
    let response = client
        .get(format!("{}/v1/models/c", server.base))
        .header("traceparent", traceparent("00"))
        .header("x-force-trace", "true")
        .send()
        .await
        .unwrap();
    let tr = response.headers()["traceresponse"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        tr.starts_with(&format!("00-{TRACE_ID}-")) && tr.ends_with("-00"),
        "{tr}"
    );

    server.flush().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let forced_span = server.spans.wait_for("GET /v1/models/{id}").await;
    assert_eq!(
        forced_span.attr("inferd.sampling.forced").as_deref(),
        Some("true")
    );
    assert_eq!(
        server.spans.all().len(),
        1,
        "only the forced request is exported"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn server_errors_set_error_type_and_status() {
    let server = start().await;
    let response = reqwest::Client::new()
        .get(format!("{}/fail", server.base))
        .header("traceparent", traceparent("01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    server.flush().await;
    let span = server.spans.wait_for("GET /fail").await;
    assert_eq!(span.attr("error.type").as_deref(), Some("500"));
    assert_eq!(
        span.attr("http.response.status_code").as_deref(),
        Some("500")
    );
    assert_eq!(
        span.span.status.as_ref().map(|s| s.code),
        Some(2),
        "STATUS_CODE_ERROR"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn malformed_traceparent_starts_a_new_trace() {
    let server = start().await;
    let response = reqwest::Client::new()
        .get(format!("{}/v1/models/a", server.base))
        .header(
            "traceparent",
            format!("00-{}-{PARENT_ID}-01", TRACE_ID.to_uppercase()),
        )
        .header("x-force-trace", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tr = response.headers()["traceresponse"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!tr.contains(TRACE_ID), "{tr}");
    server.flush().await;
    let span = server.spans.wait_for("GET /v1/models/{id}").await;
    assert_eq!(span.parent_span_id(), "");
}
