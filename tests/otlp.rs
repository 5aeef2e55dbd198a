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

/// What the conventions ask, checked where a collector sees it: every GenAI and HTTP metric
/// data point carries its required attributes, made-up model names stay one `_OTHER` series,
/// a local model's tokens are not client token usage, a 4xx leaves the SERVER span's status
/// unset (the error on the child), and a model load carries none of llama.cpp's log lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_telemetry_follows_the_conventions() {
    const NOT_FOUND_TRACE: &str = "5bf92f3577b34da6a3ce929d0e0e4701";
    const INVALID_TRACE: &str = "5bf92f3577b34da6a3ce929d0e0e4702";
    let (traces_endpoint, received) = support::grpc_receiver().await;
    let (metrics_endpoint, metrics) = support::http_metrics_receiver().await;
    let server = tokio::task::spawn_blocking(move || {
        Server::start_env(
            &["--telemetry", "otlp"],
            &[
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    traces_endpoint.as_str(),
                ),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
                (
                    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                    metrics_endpoint.as_str(),
                ),
                ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
                ("OTEL_LOGS_EXPORTER", "none"),
            ],
        )
    })
    .await
    .expect("server start");
    let client = reqwest::Client::new();
    let send = |body: serde_json::Value, trace: Option<&str>| {
        let mut request = client
            .post(server.url("/v1/chat/completions"))
            .json(&body)
            .timeout(Duration::from_secs(120));
        if let Some(trace) = trace {
            request = request.header("traceparent", format!("00-{trace}-{CALLER_SPAN}-01"));
        }
        async move { request.send().await.expect("send").status().as_u16() }
    };
    let chat = |model: &str| {
        json!({"model": model, "max_tokens": 3, "ignore_eos": true,
               "messages": [{"role": "user", "content": "Hi"}]})
    };
    assert_eq!(send(chat("smollm2-135m"), None).await, 200);
    assert_eq!(
        send(chat("no-such-model"), Some(NOT_FOUND_TRACE)).await,
        404
    );
    let invalid = json!({"model": "smollm2-135m", "messages": [], "temperature": 9});
    assert_eq!(send(invalid, Some(INVALID_TRACE)).await, 400);
    for i in 0..1000 {
        assert_eq!(send(chat(&format!("made-up-{i}")), None).await, 404);
    }

    // Metrics: wait for an export that holds the successful generation.
    metrics.wait_for("gen_ai.server.time_to_first_token").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let points = metrics.all();
    let keys = |attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue]| -> Vec<String> {
        attributes.iter().map(|kv| kv.key.clone()).collect()
    };
    let required: [(&str, &[&str]); 5] = [
        (
            "gen_ai.server.request.duration",
            &[
                "gen_ai.operation.name",
                "gen_ai.provider.name",
                "gen_ai.request.model",
            ],
        ),
        (
            "gen_ai.server.time_to_first_token",
            &[
                "gen_ai.operation.name",
                "gen_ai.provider.name",
                "gen_ai.request.model",
            ],
        ),
        (
            "gen_ai.server.time_per_output_token",
            &[
                "gen_ai.operation.name",
                "gen_ai.provider.name",
                "gen_ai.request.model",
            ],
        ),
        (
            "http.server.request.duration",
            &[
                "http.request.method",
                "http.response.status_code",
                "url.scheme",
            ],
        ),
        ("inferd.requests.active", &["gen_ai.request.model"]),
    ];
    for (metric, attributes) in required {
        let of_metric: Vec<&support::MetricPoint> =
            points.iter().filter(|p| p.0 == metric).collect();
        assert!(!of_metric.is_empty(), "no {metric} point");
        for point in of_metric {
            let have = keys(&point.2);
            for attribute in attributes {
                assert!(
                    have.iter().any(|k| k == attribute),
                    "{metric} lacks {attribute}: {have:?}"
                );
            }
        }
    }
    for point in &points {
        if let Some(model) = support::attr(&point.2, "gen_ai.request.model") {
            assert!(
                model == "smollm2-135m" || model == "_OTHER",
                "{} has model {model}",
                point.0
            );
        }
    }
    assert!(
        points.iter().all(|p| p.0 != "gen_ai.client.token.usage"),
        "a local model's tokens were recorded as client token usage"
    );

    // Spans: the 4xx's SERVER span has status unset (0), the 404's error is on its generation
    // span (2); the refused request's reason is an exception event.
    let trace = |id: &str, wanted: usize| {
        let received = received.clone();
        let id = id.to_owned();
        async move {
            for _ in 0..100 {
                let spans: Vec<support::Received> = received
                    .all()
                    .into_iter()
                    .filter(|s| s.trace_id() == id)
                    .collect();
                if spans.len() >= wanted {
                    return spans;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!(
                "trace {id} never had {wanted} spans: {:?}",
                received.names()
            );
        }
    };
    let status = |s: &support::Received| s.span.status.as_ref().map_or(0, |st| st.code);
    let not_found = trace(NOT_FOUND_TRACE, 2).await;
    for span in &not_found {
        match span.span.kind {
            2 => assert_eq!(status(span), 0, "SERVER span of a 404: {:?}", span.span),
            _ => assert_eq!(status(span), 2, "generation span of a 404: {:?}", span.span),
        }
    }
    let invalid = trace(INVALID_TRACE, 1).await;
    assert_eq!(invalid[0].span.kind, 2);
    assert_eq!(status(&invalid[0]), 0, "{:?}", invalid[0].span);
    assert!(invalid[0].span.events.iter().any(|e| e.name == "exception"));

    let load = received
        .all()
        .into_iter()
        .find(|s| s.span.name == "model.load")
        .expect("the start-up model.load span");
    assert!(
        load.span.events.len() < 10,
        "model.load carries llama.cpp's log lines: {} events",
        load.span.events.len()
    );
}
