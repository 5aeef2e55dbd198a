//! End-to-end: the server's telemetry wiring, with the real binary and model. Requests join
//! the caller's W3C trace, answer with `traceresponse`, show up in /debug/traces, and count
//! in /metrics; with telemetry off none of that exists.

mod common;

use std::time::Duration;

use common::Server;
use serde_json::{json, Value};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

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

    // The span ends when the body is sent; poll the store briefly.
    let mut trace = Value::Null;
    for _ in 0..50 {
        let r = client()
            .get(server.url(&format!("/debug/traces/{CALLER_TRACE}")))
            .send()
            .await
            .expect("send");
        if r.status() == 200 {
            trace = r.json().await.expect("json");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let spans = trace["spans"]
        .as_array()
        .expect("trace recorded in /debug/traces");
    let span = spans
        .iter()
        .find(|s| s["span_id"] == server_span_id.as_str())
        .expect("the server span named in traceresponse");
    assert_eq!(span["name"], "POST /v1/chat/completions");
    assert_eq!(span["kind"], "server");
    assert_eq!(span["parent_span_id"], CALLER_SPAN);
    assert_eq!(span["attributes"]["http.response.status_code"], 200);
    assert_eq!(span["attributes"]["http.route"], "/v1/chat/completions");

    let list: Value = client()
        .get(server.url("/debug/traces"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let traces = list["traces"].as_array().expect("traces");
    assert!(traces.iter().any(|t| t["trace_id"] == CALLER_TRACE));
    // Internal spans of the llama.cpp bindings (model load, chat template) must not show up
    // as traces of their own: every trace here starts at an HTTP request.
    for t in traces {
        let root = t["root_span_name"].as_str().unwrap_or_default();
        assert!(
            root.starts_with("GET ") || root.starts_with("POST "),
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
