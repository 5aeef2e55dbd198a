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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_requests_export_model_batch_spans_linked_to_both_generations() {
    let (endpoint, received) = support::grpc_receiver().await;
    let server = tokio::task::spawn_blocking(move || {
        Server::start_env(
            &["--telemetry", "otlp", "--parallel", "2"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
                ("OTEL_METRICS_EXPORTER", "none"),
                ("OTEL_LOGS_EXPORTER", "none"),
            ],
        )
    })
    .await
    .expect("server start");
    let traces = [
        "1af7651916cd43dd8448eb211c803101",
        "1af7651916cd43dd8448eb211c803102",
    ];
    let requests = traces.iter().map(|trace| {
        let request = reqwest::Client::new()
            .post(server.url("/v1/completions"))
            .header("traceparent", format!("00-{trace}-{CALLER_SPAN}-01"))
            .json(
                &json!({"model": "smollm2-135m", "prompt": format!("Story {trace}:"),
                          "max_tokens": 48, "temperature": 0, "ignore_eos": true}),
            )
            .timeout(Duration::from_secs(120));
        async move { request.send().await.expect("send").status() }
    });
    for status in futures::future::join_all(requests).await {
        assert_eq!(status, 200);
    }
    // Each request's generation span, then a batch span linking to both.
    let mut generations = Vec::new();
    let mut shared = None;
    for _ in 0..100 {
        let all = received.all();
        generations = traces
            .iter()
            .filter_map(|trace| {
                all.iter()
                    .find(|s| {
                        s.trace_id() == *trace && s.span.name == "text_completion smollm2-135m"
                    })
                    .map(|s| s.span_id())
            })
            .collect();
        shared = all
            .iter()
            .filter(|s| s.span.name == "model.batch")
            .find(|s| {
                let linked: Vec<String> = s
                    .span
                    .links
                    .iter()
                    .map(|l| support::hex(&l.span_id))
                    .collect();
                generations.len() == 2 && generations.iter().all(|g| linked.contains(g))
            })
            .cloned();
        if shared.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let batch = shared.unwrap_or_else(|| {
        panic!(
            "no model.batch span linked to both generations {generations:?}; got {:?}",
            received.names()
        )
    });
    let linked_traces: Vec<String> = batch
        .span
        .links
        .iter()
        .map(|l| support::hex(&l.trace_id))
        .collect();
    for trace in traces {
        assert!(
            linked_traces.iter().any(|t| t == trace),
            "{linked_traces:?}"
        );
    }
    assert_eq!(batch.attr("inferd.batch.size").as_deref(), Some("2"));
    assert!(batch
        .attr("inferd.batch.steps")
        .and_then(|s| s.parse::<u64>().ok())
        .is_some_and(|n| n >= 1));
    // A batch of several requests is a trace of its own, not a child of one of them.
    assert!(batch.parent_span_id().is_empty() || batch.parent_span_id() == "0000000000000000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_drained_at_sigterm_has_its_spans_exported_before_exit() {
    const DRAINED_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (endpoint, received) = support::grpc_receiver().await;
    let mut server = tokio::task::spawn_blocking(move || {
        Server::start_env(
            &["--telemetry", "otlp", "--shutdown-timeout", "20"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                // A long batch delay: only the flush at exit sends the spans in time.
                ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
                ("OTEL_METRICS_EXPORTER", "none"),
                ("OTEL_LOGS_EXPORTER", "none"),
            ],
        )
    })
    .await
    .expect("server start");
    let request = reqwest::Client::new()
        .post(server.url("/v1/chat/completions"))
        .header(
            "traceparent",
            format!("00-{DRAINED_TRACE}-{CALLER_SPAN}-01"),
        )
        .json(
            &json!({"model": "smollm2-135m", "max_tokens": 20, "ignore_eos": true,
                      "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .timeout(Duration::from_secs(60));
    let in_flight = tokio::spawn(async move { request.send().await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.signal("TERM");
    let response = in_flight.await.expect("join").expect("answered");
    assert_eq!(response.status(), 200, "drained, not cut");
    let code = tokio::task::spawn_blocking(move || server.wait_exit(Duration::from_secs(20)))
        .await
        .expect("join");
    assert_eq!(code, Some(Some(0)));
    let names: Vec<String> = received
        .all()
        .into_iter()
        .filter(|s| s.trace_id() == DRAINED_TRACE)
        .map(|s| s.span.name.clone())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("POST")) && names.iter().any(|n| n.starts_with("chat")),
        "the drained request's HTTP and generation spans were flushed at exit: {names:?}"
    );
}
