//! End-to-end: the server's telemetry wiring, with the real binary and model. Requests join
//! the caller's W3C trace, answer with `traceresponse`, show up in /debug/traces, and count
//! in /metrics; with telemetry off none of that exists.

mod common;

use std::time::Duration;

use common::{client, get_json, metrics_text, wait_for_trace, Server};
use serde_json::{json, Value};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn chat_body() -> Value {
    json!({"model": "smollm2-135m", "messages": [{"role": "user", "content": "Hi"}],
           "max_tokens": 4, "temperature": 0})
}

#[tokio::test]
async fn request_joins_callers_trace_and_is_listed_in_debug_traces() {
    let server = Server::start(&["--telemetry", "local"]);
    let response = client()
        .post(server.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&chat_body())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let traceresponse = response.headers()["traceresponse"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        traceresponse.starts_with(&format!("00-{CALLER_TRACE}-")),
        "traceresponse {traceresponse} does not carry the caller's trace id"
    );
    let server_span_id = traceresponse.split('-').nth(2).expect("span id").to_owned();
    assert_ne!(server_span_id, CALLER_SPAN);
    response.text().await.expect("body");

    // Spans reach the store as they end (engine spans first, the server span when the body
    // is sent): wait for all four of this request.
    let spans = wait_for_trace(&server, CALLER_TRACE, 4).await;
    let span = spans
        .iter()
        .find(|s| s["span_id"] == server_span_id.as_str())
        .expect("the server span named in traceresponse");
    assert_eq!(span["name"], "POST /v1/chat/completions");
    assert_eq!(span["kind"], "server");
    assert_eq!(span["parent_span_id"], CALLER_SPAN);
    assert_eq!(span["attributes"]["http.response.status_code"], 200);
    assert_eq!(span["attributes"]["http.route"], "/v1/chat/completions");

    let list: Value = get_json(&server, "/debug/traces").await;
    let traces = list["traces"].as_array().expect("traces");
    assert!(traces.iter().any(|t| t["trace_id"] == CALLER_TRACE));
    // Internal spans of the llama.cpp bindings (chat template, their own load span) must not
    // show up as traces of their own: every trace starts at an HTTP request or a model load.
    for t in traces {
        let root = t["root_span_name"].as_str().unwrap_or_default();
        assert!(
            root.starts_with("GET ") || root.starts_with("POST ") || root == "model.load",
            "unexpected root span `{root}` in {list}"
        );
    }
}

#[tokio::test]
async fn unsampled_parent_is_respected_and_metrics_count_every_request() {
    let server = Server::start(&["--telemetry", "local"]);
    let unsampled = "11111111111111111111111111111111";
    let r = client()
        .get(server.url("/v1/models"))
        .header("traceparent", format!("00-{unsampled}-{CALLER_SPAN}-00"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = client()
        .get(server.url(&format!("/debug/traces/{unsampled}")))
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        404,
        "a trace the caller did not sample was stored"
    );

    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("send");
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/plain"));
    let text = metrics.text().await.expect("text");
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_server_request_duration_seconds_count")
                && l.contains("http_route=\"/v1/models\"")
        })
        .unwrap_or_else(|| panic!("no count for /v1/models in:\n{text}"));
    let count: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("count value");
    assert!(count >= 1.0, "{line}");
}

#[tokio::test]
async fn telemetry_off_serves_no_metrics_and_no_traceresponse() {
    let server = Server::start(&["--telemetry", "off"]);
    let r = client()
        .post(server.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&chat_body())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("traceresponse").is_none());
    let r = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "telemetry_off");
    let r = client()
        .get(server.url("/debug/traces"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn generation_span_carries_genai_attributes_and_usage_of_the_response() {
    let server = Server::start(&["--telemetry", "local"]);
    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4737";
    let response = client()
        .post(server.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{trace_id}-{CALLER_SPAN}-01"))
        .json(
            &json!({"model": "smollm2-135m", "messages": [{"role": "user", "content": "Hi"}],
                      "max_tokens": 6, "temperature": 0, "seed": 9, "stream": true,
                      "stream_options": {"include_usage": true}}),
        )
        .send()
        .await
        .expect("send");
    let body = response.text().await.expect("body");
    let usage: Value = common::sse_data(&body)
        .iter()
        .filter(|d| d.as_str() != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).expect("json"))
        .find(|c| c["usage"].is_object())
        .map(|c| c["usage"].clone())
        .expect("usage chunk");
    let spans = wait_for_trace(&server, trace_id, 4).await;
    let http = spans
        .iter()
        .find(|s| s["kind"] == "server")
        .expect("server span");
    let generation = spans
        .iter()
        .find(|s| s["name"] == "chat smollm2-135m")
        .expect("generation span");
    assert_eq!(generation["parent_span_id"], http["span_id"]);
    let a = &generation["attributes"];
    assert_eq!(a["gen_ai.operation.name"], "chat");
    assert_eq!(a["gen_ai.provider.name"], "inferd");
    assert_eq!(a["gen_ai.request.model"], "smollm2-135m");
    assert_eq!(a["gen_ai.request.max_tokens"], 6);
    assert_eq!(a["gen_ai.request.seed"], 9);
    assert_eq!(a["gen_ai.usage.input_tokens"], usage["prompt_tokens"]);
    assert_eq!(a["gen_ai.usage.output_tokens"], usage["completion_tokens"]);
    assert_eq!(a["gen_ai.request.stream"], true);
    assert!(a["gen_ai.response.id"]
        .as_str()
        .is_some_and(|id| id.starts_with("chatcmpl-")));
    assert!(a["inferd.generation.id"]
        .as_str()
        .is_some_and(|id| id.len() == 32));
    let ttft = a["gen_ai.response.time_to_first_chunk"]
        .as_f64()
        .unwrap_or_else(|| panic!("no ttft in {generation}"));
    let e2e = a["gen_ai.latency.e2e"].as_f64().expect("e2e");
    assert!(ttft > 0.0 && ttft <= e2e, "ttft {ttft} e2e {e2e}");
    assert!(a["inferd.time_per_output_token"]
        .as_f64()
        .is_some_and(|t| t > 0.0));
    let events: Vec<&str> = generation["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(events, vec!["first_token", "finished"]);
    let (start, end) = (
        generation["start_unix_nanos"].as_u64().expect("start"),
        generation["end_unix_nanos"].as_u64().expect("end"),
    );
    assert!(
        (end - start) as f64 / 1e9 >= e2e * 0.99,
        "span shorter than the generation"
    );
    for key in [
        "gen_ai.latency.time_in_queue",
        "gen_ai.latency.time_in_model_prefill",
        "gen_ai.latency.time_in_model_decode",
        "gen_ai.latency.time_to_first_token",
    ] {
        assert!(
            a[key].as_f64().is_some_and(|v| v >= 0.0),
            "{key} missing: {a}"
        );
    }

    // The engine's spans, made on its own thread, hang under the generation span (the wait
    // above was for all four spans: the engine may close its span after the response).
    let child = |name: &str| {
        spans
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} span in {spans:?}"))
    };
    let queue = child("model.queue");
    let infer = child("model.infer");
    assert_eq!(queue["parent_span_id"], generation["span_id"]);
    assert_eq!(infer["parent_span_id"], generation["span_id"]);
    assert!(queue["attributes"]["inferd.queue.position"].is_i64());
    let infer_events: Vec<&str> = infer["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(infer_events, vec!["first_token", "finished"]);
}

/// The SERVER span of a request answered with a 4xx: its status unset and no `error.type`, as
/// the HTTP conventions want for the client's errors.
fn client_error_server_span(spans: &[serde_json::Value]) -> &serde_json::Value {
    let server_span = spans
        .iter()
        .find(|s| s["kind"] == "server")
        .expect("server span");
    assert_eq!(server_span["status"]["code"], "unset", "{server_span}");
    assert!(server_span["attributes"]["error.type"].is_null());
    server_span
}

#[tokio::test]
async fn generation_errors_and_cancellations_are_recorded_and_counted() {
    let server = Server::start(&["--telemetry", "local"]);
    let unknown = "6bf92f3577b34da6a3ce929d0e0e4738";
    let r = client()
        .post(server.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{unknown}-{CALLER_SPAN}-01"))
        .json(&json!({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    let spans = wait_for_trace(&server, unknown, 2).await;
    // A name the client made up stays out of the span name (it is only an attribute) and out
    // of the metrics' labels (`_OTHER`), however many such names arrive.
    let generation = spans
        .iter()
        .find(|s| s["name"] == "chat")
        .expect("generation span for the unknown model");
    assert_eq!(generation["status"]["code"], "error");
    assert_eq!(generation["attributes"]["error.type"], "model_not_found");
    assert_eq!(
        generation["attributes"]["gen_ai.request.model"],
        "no-such-model"
    );
    // A 4xx is the client's error: the SERVER span's status stays unset, with no error.type
    // (HTTP conventions); the error is on the child.
    client_error_server_span(&spans);

    // A request refused by validation has no child: the reason is an `exception` event on the
    // SERVER span, whose status stays unset too.
    let invalid = "8bf92f3577b34da6a3ce929d0e0e4731";
    let r = client()
        .post(server.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{invalid}-{CALLER_SPAN}-01"))
        .json(&json!({"model": "smollm2-135m", "messages": [], "temperature": 9}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let spans = wait_for_trace(&server, invalid, 1).await;
    let server_span = client_error_server_span(&spans);
    assert_eq!(server_span["attributes"]["http.response.status_code"], 400);
    let exception = server_span["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["name"] == "exception")
        .unwrap_or_else(|| panic!("no exception event: {server_span}"));
    assert!(exception["attributes"]["exception.type"].is_string());
    let series_before = metrics_text(&server)
        .await
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    for i in 0..200 {
        let r = client()
            .post(server.url("/v1/chat/completions"))
            .json(&json!({"model": format!("made-up-{i}"),
                          "messages": [{"role": "user", "content": "x"}]}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 404);
    }
    let after = metrics_text(&server).await;
    assert!(
        !after.contains("made-up-"),
        "client-made names became labels"
    );
    assert!(after.contains("gen_ai_request_model=\"_OTHER\""), "{after}");
    let series_after = after.lines().filter(|l| !l.starts_with('#')).count();
    assert!(
        series_after <= series_before + 20,
        "200 unknown names added series: {series_before} -> {series_after}"
    );

    // A stream the client abandons ends its generation span as cancelled.
    let cancelled = "7bf92f3577b34da6a3ce929d0e0e4739";
    let response = client()
        .post(server.url("/v1/completions"))
        .header("traceparent", format!("00-{cancelled}-{CALLER_SPAN}-01"))
        .json(
            &json!({"model": "smollm2-135m", "prompt": "Tell a long story", "max_tokens": 1500,
                      "ignore_eos": true, "stream": true}),
        )
        .send()
        .await
        .expect("send");
    let mut body = response.bytes_stream();
    use futures::StreamExt;
    body.next().await.expect("a chunk").expect("bytes");
    drop(body);
    let spans = wait_for_trace(&server, cancelled, 4).await;
    let generation = spans
        .iter()
        .find(|s| s["name"] == "text_completion smollm2-135m")
        .expect("generation span");
    assert_eq!(generation["attributes"]["error.type"], "cancelled");
    // The engine notices at its next token and ends its own span as cancelled too.
    let infer = spans
        .iter()
        .find(|s| s["name"] == "model.infer")
        .expect("infer span");
    assert_eq!(infer["attributes"]["error.type"], "cancelled");
    assert_eq!(infer["status"]["code"], "error");

    let metrics = metrics_text(&server).await;
    for expected in [
        "inferd_errors_total{error_type=\"model_not_found\"",
        "inferd_errors_total{error_type=\"cancelled\"",
    ] {
        assert!(
            metrics.contains(expected),
            "`{expected}` missing from:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_client_that_leaves_while_queued_ends_its_queue_span_as_cancelled() {
    use futures::StreamExt;
    let server = Server::start(&["--telemetry", "local", "--parallel", "1"]);
    // A holds the only slot.
    let mut a = client()
        .post(server.url("/v1/completions"))
        .json(
            &json!({"model": "smollm2-135m", "prompt": "Tell a long story", "max_tokens": 4000,
                      "ignore_eos": true, "stream": true}),
        )
        .send()
        .await
        .expect("send a")
        .bytes_stream();
    a.next().await.expect("a chunk").expect("bytes");
    // B waits in the queue, and its client gives up.
    let queued = "9bf92f3577b34da6a3ce929d0e0e4732";
    let url = server.url("/v1/completions");
    let b = tokio::spawn(async move {
        client()
            .post(url)
            .header("traceparent", format!("00-{queued}-{CALLER_SPAN}-01"))
            .json(&json!({"model": "smollm2-135m", "prompt": "Hi", "max_tokens": 4}))
            .send()
            .await
    });
    let admin_waiting = || async {
        get_json(&server, "/admin/models").await["models"][0]["slots"]["waiting"].clone()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while admin_waiting().await != 1 {
        assert!(std::time::Instant::now() < deadline, "B never queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.abort();
    let _ = b.await;
    // The server sees B's connection close (socket readiness, not a timer); a margin so that
    // it has before A's slot frees.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A's end frees the slot; the engine finds B's client gone instead of admitting it.
    drop(a);
    let spans = wait_for_trace(&server, queued, 3).await;
    let queue = spans
        .iter()
        .find(|s| s["name"] == "model.queue")
        .unwrap_or_else(|| panic!("no model.queue span: {spans:?}"));
    assert_eq!(queue["status"]["code"], "error", "{queue}");
    assert_eq!(queue["attributes"]["error.type"], "cancelled", "{queue}");
    assert!(
        spans.iter().all(|s| s["name"] != "model.infer"),
        "B never ran: {spans:?}"
    );
}

#[tokio::test]
async fn genai_metrics_count_every_generation() {
    let server = Server::start(&["--telemetry", "local"]);
    for _ in 0..3 {
        let r = client()
            .post(server.url("/v1/completions"))
            .json(
                &json!({"model": "smollm2-135m", "prompt": "Hello", "max_tokens": 3,
                          "ignore_eos": true}),
            )
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
    }
    let text = metrics_text(&server).await;
    let count = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| {
                l.starts_with(prefix) && l.contains("gen_ai_operation_name=\"text_completion\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{text}"))
    };
    assert_eq!(count("gen_ai_server_request_duration_seconds_count"), 3.0);
    assert_eq!(
        count("gen_ai_server_time_to_first_token_seconds_count"),
        3.0
    );
    assert_eq!(
        count("gen_ai_server_time_per_output_token_seconds_count"),
        3.0
    );
    // The process that runs the model counts its tokens under inferd.*; the GenAI client
    // metric is for calls to upstreams only (so a gateway hop does not count them twice).
    let generated = text
        .lines()
        .find(|l| l.starts_with("inferd_generation_tokens_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no generation tokens in:\n{text}"));
    assert_eq!(generated, 9.0);
    assert!(
        !text.contains("gen_ai_client_token_usage_count{"),
        "a local generation recorded the client token metric:\n{text}"
    );
    // The conventions' required attributes: provider on the server metrics.
    for prefix in [
        "gen_ai_server_request_duration_seconds_count",
        "gen_ai_server_time_to_first_token_seconds_count",
        "gen_ai_server_time_per_output_token_seconds_count",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in:\n{text}"));
        for required in [
            "gen_ai_provider_name=\"inferd\"",
            "gen_ai_operation_name=\"text_completion\"",
        ] {
            assert!(line.contains(required), "{required} missing: {line}");
        }
    }
    assert!(text.contains("inferd_requests_active"), "{text}");
    // Every request went through the queue and left it: the gauge is back at 0.
    assert!(
        text.lines()
            .any(|l| l == "inferd_queue_size{gen_ai_request_model=\"smollm2-135m\"} 0"),
        "{text}"
    );
    promtool_accepts(&text);
}

/// `promtool check metrics` (Debian's prometheus package, installed by scripts/install-deps.sh)
/// lints the exposition. Required in CI; elsewhere a missing promtool is reported and skipped.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            assert!(
                std::env::var("CI").is_err(),
                "promtool is required in CI (scripts/install-deps.sh installs it): {e}"
            );
            eprintln!("promtool not found ({e}); skipping the exposition lint");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool rejected /metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn stored(server: &Server, trace_id: &str) -> bool {
    // Give the span time to end and reach the store before deciding it is absent.
    for _ in 0..10 {
        let r = client()
            .get(server.url(&format!("/debug/traces/{trace_id}")))
            .send()
            .await
            .expect("send");
        if r.status() == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn force_trace_header_samples_at_ratio_zero_but_never_overrides_a_parent() {
    let server = Server::start_env(
        &["--telemetry", "local"],
        &[("OTEL_TRACES_SAMPLER_ARG", "0")],
    );
    let send = |headers: Vec<(&'static str, String)>| {
        let mut request = client().get(server.url("/v1/models"));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let forced = send(vec![("x-force-trace", "true".into())])
        .await
        .expect("send");
    let forced_trace = forced.headers()["traceresponse"]
        .to_str()
        .expect("ascii")
        .split('-')
        .nth(1)
        .expect("trace id")
        .to_owned();
    // Sampled, and random: the trace started here (W3C Level 2).
    assert!(forced.headers()["traceresponse"]
        .to_str()
        .unwrap_or_default()
        .ends_with("-03"));
    assert!(
        stored(&server, &forced_trace).await,
        "forced request not sampled"
    );
    let spans = wait_for_trace(&server, &forced_trace, 1).await;
    assert_eq!(spans[0]["attributes"]["inferd.sampling.forced"], true);

    let plain = send(vec![]).await.expect("send");
    let plain_trace = plain.headers()["traceresponse"]
        .to_str()
        .expect("ascii")
        .split('-')
        .nth(1)
        .expect("trace id")
        .to_owned();
    assert!(
        !stored(&server, &plain_trace).await,
        "ratio 0 sampled a request"
    );

    let parent_unsampled = "8bf92f3577b34da6a3ce929d0e0e4730";
    let r = send(vec![
        ("x-force-trace", "true".into()),
        (
            "traceparent",
            format!("00-{parent_unsampled}-{CALLER_SPAN}-00"),
        ),
    ])
    .await
    .expect("send");
    assert_eq!(r.status(), 200);
    assert!(
        !stored(&server, parent_unsampled).await,
        "force-trace overrode an unsampled parent"
    );
}

#[tokio::test]
async fn log_lines_written_during_a_request_carry_its_trace_id() {
    let server = Server::start(&["--telemetry", "local"]);
    let trace_id = "9bf92f3577b34da6a3ce929d0e0e4731";
    let r = client()
        .post(server.url("/v1/completions"))
        .header("traceparent", format!("00-{trace_id}-{CALLER_SPAN}-01"))
        .json(&json!({"model": "smollm2-135m", "prompt": "Hi", "max_tokens": 2}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    r.text().await.expect("body");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines: Vec<Value> = server
        .logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l.to_string().contains("finished"))
        .collect();
    assert!(
        !lines.is_empty(),
        "no `finished` log line in {:?}",
        server.logs()
    );
    let access: Vec<Value> = server
        .logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["http.route"] == "/v1/completions")
        .collect();
    assert_eq!(
        access.len(),
        1,
        "one access line per request: {:?}",
        server.logs()
    );
    assert_eq!(access[0]["trace_id"], trace_id);
    assert_eq!(access[0]["fields"]["http.response.status_code"], 200);
    assert_eq!(access[0]["fields"]["gen_ai.request.model"], "smollm2-135m");
    assert_eq!(access[0]["fields"]["gen_ai.usage.output_tokens"], 2);
    assert_eq!(access[0]["fields"]["inferd.request.outcome"], "complete");
    // The engine's line, written on its own thread inside `model.infer`.
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["completion_tokens"] == 2 && l["span"] == "infer"),
        "{lines:?}"
    );
    for line in &lines {
        assert_eq!(line["trace_id"], trace_id, "{line}");
        let span_id = line["span_id"].as_str().unwrap_or_default();
        assert_eq!(span_id.len(), 16, "{line}");
        assert!(span_id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}

#[tokio::test]
async fn start_up_load_is_traced_with_its_artifacts_step_and_counted() {
    let server = Server::start(&["--telemetry", "local"]);
    let list: Value = get_json(&server, "/debug/traces").await;
    let load = list["traces"]
        .as_array()
        .expect("traces")
        .iter()
        .find(|t| t["root_span_name"] == "model.load")
        .unwrap_or_else(|| panic!("no model.load trace in {list}"));
    let spans = wait_for_trace(&server, load["trace_id"].as_str().expect("id"), 2).await;
    let root = spans
        .iter()
        .find(|s| s["name"] == "model.load")
        .expect("load");
    let artifacts = spans
        .iter()
        .find(|s| s["name"] == "model.artifacts.load")
        .expect("artifacts");
    assert!(root["parent_span_id"].is_null());
    assert_eq!(artifacts["parent_span_id"], root["span_id"]);
    assert_eq!(root["attributes"]["inferd.model.id"], "smollm2-135m");
    assert!(root["attributes"]["inferd.model.load.duration"]
        .as_f64()
        .is_some_and(|t| t > 0.0));
    assert_eq!(
        artifacts["attributes"]["inferd.model.artifacts.source"],
        "local_cache"
    );
    let size = std::fs::metadata(common::model_path())
        .expect("model file")
        .len();
    assert_eq!(
        artifacts["attributes"]["inferd.model.artifacts.bytes"],
        size
    );
    // llama.cpp's own log lines (a hundred at each load) are not span events; inferd's are.
    let events: Vec<&str> = root["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(
        events.len() < 10,
        "llama.cpp lines became events: {events:?}"
    );
    assert!(events.contains(&"model ready"), "{events:?}");
    // The lines written for the load carry its trace id.
    let trace_id = load["trace_id"].as_str().expect("id");
    let ready = server
        .logs()
        .into_iter()
        .find(|l| l.contains("\"model ready\""))
        .expect("a `model ready` line");
    let ready: Value = serde_json::from_str(&ready).expect("json log line");
    assert_eq!(ready["trace_id"], trace_id, "{ready}");

    let metrics = metrics_text(&server).await;
    assert!(
        metrics.lines().any(|l| l == "inferd_models_loaded 1"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "inferd_model_loads_total{inferd_model_artifacts_source=\"local_cache\",inferd_model_id=\"smollm2-135m\"} 1"
    ));
}

#[tokio::test]
async fn rejected_requests_are_counted_by_error_type() {
    let server = Server::start(&["--telemetry", "local"]);
    for body in [r#"{"model": "#, r#"{"model":"smollm2-135m","messages":[]}"#] {
        let r = client()
            .post(server.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400);
    }
    let metrics = metrics_text(&server).await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("inferd_errors_total{error_type=\"invalid_request_error\""))
        .unwrap_or_else(|| panic!("no rejected-request count in:\n{metrics}"));
    assert!(line.ends_with(" 2"), "{line}");
}

#[tokio::test]
async fn content_is_captured_only_when_enabled_and_truncated() {
    let body = json!({"model": "smollm2-135m", "max_tokens": 4, "temperature": 0,
        "messages": [{"role": "system", "content": "Answer briefly."},
                     {"role": "user", "content": "Please tell me what the capital of France is."}]});
    let send = |server: &Server, trace_id: &'static str| {
        client()
            .post(server.url("/v1/chat/completions"))
            .header("traceparent", format!("00-{trace_id}-{CALLER_SPAN}-01"))
            .json(&body)
            .send()
    };

    let plain = Server::start(&["--telemetry", "local"]);
    let trace_plain = "a1f92f3577b34da6a3ce929d0e0e4731";
    send(&plain, trace_plain)
        .await
        .expect("send")
        .text()
        .await
        .expect("body");
    let spans = wait_for_trace(&plain, trace_plain, 4).await;
    let generation = spans
        .iter()
        .find(|s| s["name"] == "chat smollm2-135m")
        .expect("span");
    assert!(generation["attributes"]
        .get("gen_ai.input.messages")
        .is_none());
    assert!(generation["attributes"]
        .get("gen_ai.output.messages")
        .is_none());

    let capturing = Server::start_env(
        &[
            "--telemetry",
            "local",
            "--genai-capture-max-bytes",
            "16",
            "--genai-redact",
            "Answer|brief",
        ],
        &[("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")],
    );
    let trace_capture = "a2f92f3577b34da6a3ce929d0e0e4732";
    let answer: Value = send(&capturing, trace_capture)
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let spans = wait_for_trace(&capturing, trace_capture, 4).await;
    let a = &spans
        .iter()
        .find(|s| s["name"] == "chat smollm2-135m")
        .expect("span")["attributes"];
    let parse = |key: &str| -> Value {
        serde_json::from_str(
            a[key]
                .as_str()
                .unwrap_or_else(|| panic!("{key} missing: {a}")),
        )
        .expect("attribute is JSON")
    };
    // Redacted before it is cut.
    assert_eq!(
        parse("gen_ai.system_instructions"),
        json!([{"type": "text", "content": "[REDACTED] [REDA…"}])
    );
    let input = parse("gen_ai.input.messages");
    assert_eq!(input[0]["role"], "user");
    assert_eq!(input[0]["parts"][0]["content"], "Please tell me w…");
    let output = parse("gen_ai.output.messages");
    let text = answer["choices"][0]["message"]["content"]
        .as_str()
        .expect("text");
    let recorded = output[0]["parts"][0]["content"].as_str().expect("content");
    assert!(
        text.starts_with(recorded.trim_end_matches('…')),
        "`{recorded}` is not the start of `{text}`"
    );
    assert_eq!(
        output[0]["finish_reason"],
        answer["choices"][0]["finish_reason"]
    );
    // Content never reaches the logs.
    assert!(!capturing
        .logs()
        .iter()
        .any(|l| l.contains("capital of France")));
}

/// The access line of a stream is written when the stream ends, with its token counts, in the
/// request's own (new) trace; an abandoned stream's line says the client closed it.
#[tokio::test]
async fn streamed_requests_get_an_access_line_with_tokens_when_the_stream_ends() {
    let server = Server::start(&["--telemetry", "local"]);
    let r = client()
        .post(server.url("/v1/chat/completions"))
        .json(
            &json!({"model": "smollm2-135m", "messages": [{"role": "user", "content": "Hi"}],
                      "max_tokens": 5, "ignore_eos": true, "stream": true}),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let traceresponse = r.headers()["traceresponse"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let trace_id = traceresponse
        .split('-')
        .nth(1)
        .expect("trace id")
        .to_owned();
    r.text().await.expect("body");
    // Abandon a second, long stream after its first chunk.
    let mut r = client()
        .post(server.url("/v1/chat/completions"))
        .json(
            &json!({"model": "smollm2-135m", "messages": [{"role": "user", "content": "Hi"}],
                      "max_tokens": 400, "ignore_eos": true, "stream": true}),
        )
        .send()
        .await
        .expect("send");
    r.chunk().await.expect("first chunk");
    drop(r);
    // Abandon a third, not streamed, before its answer: it gets a line too.
    let gave_up = client()
        .post(server.url("/v1/completions"))
        .timeout(Duration::from_millis(300))
        .json(
            &json!({"model": "smollm2-135m", "prompt": "Hi", "max_tokens": 400,
                      "ignore_eos": true}),
        )
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let gave_up_line = loop {
        let line = server
            .logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["fields"]["http.route"] == "/v1/completions");
        if let Some(line) = line {
            break line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access line for the abandoned request: {:?}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(gave_up_line["fields"]["http.response.status_code"], 499);
    assert_eq!(
        gave_up_line["fields"]["inferd.request.outcome"],
        "client_closed"
    );
    assert!(gave_up_line["trace_id"].is_string(), "{gave_up_line}");
    let access = |server: &Server| -> Vec<Value> {
        server
            .logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["fields"]["http.route"] == "/v1/chat/completions")
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while access(&server).len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = access(&server);
    assert_eq!(lines.len(), 2, "{:?}", server.logs());
    let done = &lines[0];
    assert_eq!(done["trace_id"], trace_id.as_str(), "{done}");
    assert_eq!(done["fields"]["gen_ai.usage.output_tokens"], 5, "{done}");
    assert!(
        done["fields"]["gen_ai.usage.input_tokens"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{done}"
    );
    assert_eq!(
        done["fields"]["inferd.request.outcome"], "complete",
        "{done}"
    );
    let abandoned = &lines[1];
    assert_eq!(
        abandoned["fields"]["inferd.request.outcome"], "client_closed",
        "{abandoned}"
    );
    assert!(
        abandoned["fields"]["gen_ai.usage.output_tokens"].is_null(),
        "{abandoned}"
    );
}

/// Checks that `path` answers 401 `code` without `token` and with a wrong one, and the
/// response with it; serving routes stay open. Returns the authorized response.
async fn needs_bearer(server: &Server, path: &str, token: &str, code: &str) -> reqwest::Response {
    let url = server.url(path);
    let r = client().get(&url).send().await.expect("send");
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], code, "{body}");
    let r = client()
        .get(&url)
        .bearer_auth("not-the-token-at-all")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    // Serving routes are not behind the token.
    let r = client()
        .get(server.url("/v1/models"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = client()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    r
}

#[tokio::test]
async fn debug_traces_need_the_admin_token_when_one_is_set() {
    let token = "a-long-enough-admin-token";
    let server = Server::start(&["--telemetry", "local", "--admin-token", token]);
    let r = needs_bearer(&server, "/debug/traces", token, "invalid_admin_token").await;
    let body: Value = r.json().await.expect("json");
    assert!(body["traces"].is_array(), "{body}");
}

#[tokio::test]
async fn metrics_need_the_metrics_token_when_one_is_set() {
    let token = "a-long-enough-scrape-token";
    let server = Server::start(&["--telemetry", "local", "--metrics-token", token]);
    let r = needs_bearer(&server, "/metrics", token, "invalid_metrics_token").await;
    assert!(r
        .text()
        .await
        .expect("text")
        .contains("http_server_request_duration"));
}
