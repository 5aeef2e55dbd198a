//! A collector that is down, then comes up: exactly one WARN naming the endpoint and the reason,
//! silence while failing, one INFO on recovery, and the spans arrive. Installs the global
//! subscriber (export runs on the SDK's own thread), hence its own test binary.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use inferd_telemetry::{init_with_writer, TelemetryConfig};
use support::{env, http_receiver_on, Captured};

fn lines_with(logs: &str, level: &str, target: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["level"] == level && l["target"] == target)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_collector_warns_once_then_recovers_with_one_info() {
    // Reserve a free port, then close it: nothing listens there yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}/v1/traces");
    let config = TelemetryConfig::from_env(&env(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "none"),
        ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
        ("INFERD_LOG_FORMAT", "json"),
    ]))
    .unwrap();
    let logs = Captured::default();
    let guard = init_with_writer(&config, logs.clone()).unwrap();
    let provider = guard.tracer_provider().cloned().unwrap();
    let flush = |provider: opentelemetry_sdk::trace::SdkTracerProvider| async move {
        tokio::task::spawn_blocking(move || provider.force_flush())
            .await
            .unwrap()
    };

    const FAILED_EXPORTS: usize = 4;
    for i in 0..FAILED_EXPORTS {
        tracing::info_span!("while down", i).in_scope(|| {});
        assert!(
            flush(provider.clone()).await.is_err(),
            "export {i} should fail"
        );
    }
    let text = logs.text();
    let warns = lines_with(&text, "WARN", inferd_telemetry::EXPORT_HEALTH_TARGET);
    assert_eq!(warns.len(), 1, "{text}");
    assert_eq!(warns[0]["fields"]["endpoint"], endpoint.as_str());
    assert_eq!(warns[0]["fields"]["signal"], "traces");
    assert!(warns[0]["fields"]["reason"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    // The SDK's own per-failure error lines are kept out of the log.
    assert!(
        !text.contains("BatchSpanProcessor.ExportError") && !text.contains("\"level\":\"ERROR\""),
        "{text}"
    );
    assert!(lines_with(&text, "INFO", inferd_telemetry::EXPORT_HEALTH_TARGET).is_empty());
    // Every span lost while failing is counted, by signal.
    let metrics = guard.prometheus_metrics().unwrap().render().unwrap();
    assert!(
        metrics.contains(&format!(
            "inferd_telemetry_dropped_total{{signal=\"spans\"}} {FAILED_EXPORTS}"
        )),
        "{metrics}"
    );

    // The collector comes up on the same port.
    let (_, spans) = http_receiver_on(format!("127.0.0.1:{port}").parse().unwrap()).await;
    tracing::info_span!("after recovery").in_scope(|| {});
    flush(provider.clone()).await.unwrap();
    spans.wait_for("after recovery").await;
    tracing::info_span!("still fine").in_scope(|| {});
    flush(provider.clone()).await.unwrap();
    spans.wait_for("still fine").await;

    let text = logs.text();
    assert_eq!(
        lines_with(&text, "WARN", inferd_telemetry::EXPORT_HEALTH_TARGET).len(),
        1
    );
    let infos = lines_with(&text, "INFO", inferd_telemetry::EXPORT_HEALTH_TARGET);
    assert_eq!(infos.len(), 1, "{text}");
    assert_eq!(infos[0]["fields"]["endpoint"], endpoint.as_str());

    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || guard.shutdown(Duration::from_secs(2)))
        .await
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
}
