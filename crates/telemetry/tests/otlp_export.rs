//! Spans exported over the wire to real OTLP receivers (gRPC and HTTP/protobuf) on 127.0.0.1.
#![allow(clippy::unwrap_used)]

mod support;

use inferd_telemetry::{build_with_writer, service_instance_id, TelemetryConfig};
use opentelemetry::trace::TraceContextExt;
use support::{env, grpc_receiver, http_receiver, Captured};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Creates a server span with a child, flushes, and checks what the receiver got.
async fn export_and_check(endpoint_vars: &[(&str, &str)], spans: support::Spans) {
    let mut vars = vec![
        ("OTEL_SERVICE_NAME", "inferd-test"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team=ml"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ];
    vars.extend_from_slice(endpoint_vars);
    let config = TelemetryConfig::from_env(&env(&vars)).unwrap();
    assert_eq!(config.mode, inferd_telemetry::Mode::Otlp);
    let (guard, dispatch) = build_with_writer(&config, Captured::default(), false).unwrap();

    let (trace_id, root_id, child_id) = tracing::dispatcher::with_default(&dispatch, || {
        let root = tracing::info_span!(
            "request",
            otel.name = "POST /v1/chat/completions",
            otel.kind = "server",
            http.request.method = "POST",
            http.response.status_code = 200_i64,
        );
        let root_sc = root.context().span().span_context().clone();
        let child_id = {
            let _entered = root.enter();
            let child = tracing::info_span!("model.infer", gen_ai.request.stream = true);
            let id = child.context().span().span_context().span_id().to_string();
            drop(child);
            id
        };
        drop(root);
        (
            root_sc.trace_id().to_string(),
            root_sc.span_id().to_string(),
            child_id,
        )
    });
    let provider = guard.tracer_provider().cloned().unwrap();
    tokio::task::spawn_blocking(move || provider.force_flush())
        .await
        .unwrap()
        .unwrap();

    let root = spans.wait_for("POST /v1/chat/completions").await;
    let child = spans.wait_for("model.infer").await;
    assert_eq!(root.trace_id(), trace_id);
    assert_eq!(root.span_id(), root_id);
    assert_eq!(root.parent_span_id(), "");
    assert_eq!(root.span.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(root.attr("http.request.method").as_deref(), Some("POST"));
    assert_eq!(
        root.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(child.trace_id(), trace_id);
    assert_eq!(child.span_id(), child_id);
    assert_eq!(child.parent_span_id(), root_id);
    assert_eq!(child.span.kind, 1, "SPAN_KIND_INTERNAL");
    assert_eq!(child.attr("gen_ai.request.stream").as_deref(), Some("true"));
    assert_eq!(
        root.resource_attr("service.name").as_deref(),
        Some("inferd-test")
    );
    assert_eq!(
        root.resource_attr("service.instance.id").as_deref(),
        Some(service_instance_id())
    );
    assert_eq!(root.resource_attr("team").as_deref(), Some("ml"));
    assert!(root.resource_attr("host.name").is_some());
    // The same spans are in the local store too.
    let store = guard.trace_store().unwrap();
    assert_eq!(store.trace(&trace_id).map(|t| t.spans.len()), Some(2));
    tokio::task::spawn_blocking(move || guard.shutdown(std::time::Duration::from_secs(2)))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_grpc_receiver() {
    let (endpoint, spans) = grpc_receiver().await;
    export_and_check(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ],
        spans,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_http_protobuf_receiver() {
    let (endpoint, spans) = http_receiver().await;
    export_and_check(
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ],
        spans,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_dead_collector_respects_the_deadline() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let config = TelemetryConfig::from_env(&env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10000"),
    ]))
    .unwrap();
    let (guard, dispatch) = build_with_writer(&config, Captured::default(), false).unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..100 {
            tracing::info_span!("pending", i).in_scope(|| tracing::info!("log"));
        }
    });
    let started = std::time::Instant::now();
    let deadline = std::time::Duration::from_millis(500);
    let _ = tokio::task::spawn_blocking(move || guard.shutdown(deadline))
        .await
        .unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1500),
        "shutdown took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_reach_the_collector_with_the_spans_ids() {
    let (endpoint, spans, logs) = support::grpc_traces_and_logs_receiver().await;
    let config = TelemetryConfig::from_env(&env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_METRICS_EXPORTER", "none"),
    ]))
    .unwrap();
    let config = TelemetryConfig {
        log_filter: "info,chatty_library=warn".into(),
        ..config
    };
    let (guard, dispatch) = build_with_writer(&config, Captured::default(), false).unwrap();
    let (trace_id, span_id) = tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("request");
        let _entered = span.enter();
        tracing::info!(target: "chatty_library", "below the log filter: not exported");
        tracing::info!("model loaded");
        tracing::debug!("below the level: not exported");
        let sc = span.context().span().span_context().clone();
        (sc.trace_id().to_string(), sc.span_id().to_string())
    });
    tokio::task::spawn_blocking(move || guard.force_flush())
        .await
        .unwrap()
        .unwrap();
    let (_, log_trace_id, log_span_id, resource) = logs.wait_for("model loaded").await;
    assert_eq!(log_trace_id, trace_id);
    assert_eq!(log_span_id, span_id);
    assert_eq!(
        support::attr(&resource, "service.instance.id").as_deref(),
        Some(service_instance_id())
    );
    spans.wait_for("request").await;
    assert!(logs.all().iter().all(|l| !l.0.contains("below the")));
}
