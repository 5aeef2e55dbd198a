//! Metrics exported over OTLP/HTTP to a real receiver: the HTTP layer's duration histogram
//! arrives with its semantic-convention attributes.
#![allow(clippy::unwrap_used)]

mod support;

use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use inferd_telemetry::{build_with_writer, with_http_layer, TelemetryConfig};
use support::{attr, env, http_metrics_receiver, Captured};
use tower::ServiceExt;

#[tokio::test(flavor = "current_thread")]
async fn http_duration_histogram_reaches_the_collector() {
    let (endpoint, metrics) = http_metrics_receiver().await;
    let config = TelemetryConfig::from_env(&env(&[
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "none"),
    ]))
    .unwrap();
    let (guard, dispatch) = build_with_writer(&config, Captured::default(), false).unwrap();
    let _default = tracing::dispatcher::set_default(&dispatch);
    let app = with_http_layer(
        Router::new().route("/v1/models/{id}", get(|| async { "ok" })),
        &guard,
    );
    let response = app
        .oneshot(Request::get("/v1/models/x").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let _ = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();

    let flushed = std::sync::Arc::new(guard);
    let g = flushed.clone();
    tokio::task::spawn_blocking(move || g.force_flush())
        .await
        .unwrap()
        .unwrap();
    let (_, unit, attributes) = metrics.wait_for("http.server.request.duration").await;
    assert_eq!(unit, "s");
    assert_eq!(
        attr(&attributes, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attr(&attributes, "http.route").as_deref(),
        Some("/v1/models/{id}")
    );
    assert_eq!(
        attr(&attributes, "http.response.status_code").as_deref(),
        Some("200")
    );

    // The same histogram is readable for /metrics.
    let text = flushed.prometheus_metrics().unwrap().render().unwrap();
    assert!(
        text.contains("http_server_request_duration_seconds_count{http_request_method=\"GET\",http_response_status_code=\"200\",http_route=\"/v1/models/{id}\",url_scheme=\"http\"} 1"),
        "{text}"
    );
    // Shut down off this runtime's only thread: the in-process receiver must keep running.
    let guard = std::sync::Arc::try_unwrap(flushed).unwrap();
    tokio::task::spawn_blocking(move || guard.shutdown(std::time::Duration::from_secs(2)))
        .await
        .unwrap()
        .unwrap();
}
