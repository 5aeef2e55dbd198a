//! End-to-end over the wire: the real binary in `otlp` mode exports a request's whole span tree
//! to a real OTLP/gRPC receiver on 127.0.0.1 (the telemetry crate's test receiver, built on
//! opentelemetry-proto and tonic).

mod common;
#[path = "../crates/telemetry/tests/support/mod.rs"]
mod support;

use std::time::Duration;

use common::Server;
use serde_json::json;

const CALLER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_span_tree_arrives_at_a_real_otlp_receiver() {
    let (endpoint, received) = support::grpc_receiver().await;
    let server = tokio::task::spawn_blocking(move || {
        Server::start_env(
            &["--telemetry", "otlp"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
                // The receiver takes traces only.
                ("OTEL_METRICS_EXPORTER", "none"),
                ("OTEL_LOGS_EXPORTER", "none"),
                ("OTEL_SERVICE_NAME", "inferd-e2e"),
            ],
        )
    })
    .await
    .expect("server start");
    let response = reqwest::Client::new()
        .post(server.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(
            &json!({"model": "smollm2-135m", "messages": [{"role": "user", "content": "Hi"}],
                      "max_tokens": 3, "temperature": 0}),
        )
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");

    let mut tree = Vec::new();
    for _ in 0..100 {
        tree = received
            .all()
            .into_iter()
            .filter(|s| s.trace_id() == CALLER_TRACE)
            .collect();
        if tree.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let find = |name: &str| {
        tree.iter()
            .find(|s| s.span.name == name)
            .unwrap_or_else(|| panic!("no `{name}` span; got {:?}", received.names()))
    };
    let http = find("POST /v1/chat/completions");
    let generation = find("chat smollm2-135m");
    let queue = find("model.queue");
    let infer = find("model.infer");
    assert_eq!(http.parent_span_id(), CALLER_SPAN);
    assert_eq!(generation.parent_span_id(), http.span_id());
    assert_eq!(queue.parent_span_id(), generation.span_id());
    assert_eq!(infer.parent_span_id(), generation.span_id());
    // SpanKind: SERVER = 2, INTERNAL = 1.
    assert_eq!(http.span.kind, 2);
    assert_eq!(generation.span.kind, 1);
    assert_eq!(
        generation.attr("gen_ai.operation.name").as_deref(),
        Some("chat")
    );
    assert_eq!(
        generation.attr("gen_ai.request.model").as_deref(),
        Some("smollm2-135m")
    );
    assert_eq!(
        generation.attr("gen_ai.usage.output_tokens"),
        body["usage"]["completion_tokens"]
            .as_u64()
            .map(|n| n.to_string())
    );
    assert_eq!(
        generation.attr("gen_ai.response.id").as_deref(),
        body["id"].as_str()
    );
    assert_eq!(
        http.resource_attr("service.name").as_deref(),
        Some("inferd-e2e")
    );
    assert!(http.resource_attr("service.instance.id").is_some());
}
