//! End-to-end: W3C Trace Context Level 2 through the real server. A client calls inferd, which
//! routes the model to a stand-in upstream on 127.0.0.1; the upstream records the
//! `traceparent` and `tracestate` it receives. The random flag reaches the upstream whether
//! the trace is sampled or not, a trace inferd starts has it set, a tracestate key that only
//! the Level 2 grammar allows arrives unchanged, and a malformed tracestate is not passed on.

mod common;

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use common::{client, serve_on_loopback, Server, TempDir};
use serde_json::{json, Value};

const CALLER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

/// The headers of every chat request the upstream received, in order.
type Received = Arc<Mutex<Vec<HeaderMap>>>;

/// A stand-in upstream serving `tool-model`: answers every chat request with a short answer
/// and records its headers. Returns its `/v1` base URL.
async fn start_upstream(received: Received) -> String {
    use axum::routing::{get, post};
    let answer = move |headers: HeaderMap| {
        let received = received.clone();
        async move {
            received.lock().expect("lock").push(headers);
            axum::Json(
                json!({"id": "up-1", "object": "chat.completion", "created": 1,
                "model": "tool-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Red."},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
            )
        }
    };
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(answer))
        .route(
            "/v1/models",
            get(|| async { r#"{"data":[{"id":"tool-model"}]}"# }),
        );
    format!("http://{}/v1", serve_on_loopback(app).await)
}

/// inferd (telemetry `local`, with `env`) routing `colour` to a fresh stand-in upstream.
async fn start(name: &str, env: &[(&str, &str)]) -> (Server, Received) {
    let received = Received::default();
    let upstream = start_upstream(received.clone()).await;
    let toml = format!(
        "[[upstreams]]\nname = \"up\"\nurl = \"{upstream}\"\nmodels = [\"colour=tool-model\"]\n"
    );
    let dir = TempDir::new(&format!("w3c-{name}"));
    let server = Server::start_with_config(&dir, &toml, &[], env, false).keep(dir);
    (server, received)
}

/// Sends one chat request with `headers` (name, value; a name may repeat) and returns the
/// `traceparent` and `tracestate` values the upstream received for it.
async fn call(
    server: &Server,
    received: &Received,
    headers: &[(&str, &str)],
) -> (String, Vec<String>) {
    let mut request = client()
        .post(server.url("/v1/chat/completions"))
        .json(&json!({
        "model": "colour", "messages": [{"role": "user", "content": "Name a colour."}]}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("send");
    assert_eq!(response.status(), 200, "{:?}", server.logs());
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["choices"][0]["message"]["content"], "Red.");
    let Some(sent) = received.lock().expect("lock").pop() else {
        panic!("the upstream was not called")
    };
    let values = |name: &str| -> Vec<String> {
        sent.get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect()
    };
    let traceparent = values("traceparent");
    assert_eq!(traceparent.len(), 1, "one traceparent upstream: {sent:?}");
    (traceparent[0].clone(), values("tracestate"))
}

/// The trace id, parent id and flags of a version 00 traceparent.
fn fields(traceparent: &str) -> (String, String, u8) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    let [version, trace_id, parent_id, flags] = parts.as_slice() else {
        panic!("traceparent {traceparent:?} is not four fields")
    };
    assert_eq!(*version, "00", "{traceparent}");
    let flags = u8::from_str_radix(flags, 16).expect("hex flags");
    ((*trace_id).to_owned(), (*parent_id).to_owned(), flags)
}

#[tokio::test]
async fn unsampled_parent_with_the_random_flag_reaches_the_upstream_with_it() {
    let (server, received) = start("random", &[]).await;
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-02");
    let (traceparent, _) = call(&server, &received, &[("traceparent", &caller)]).await;
    let (trace_id, parent_id, flags) = fields(&traceparent);
    assert_eq!(trace_id, CALLER_TRACE);
    assert_ne!(parent_id, CALLER_SPAN, "the parent is inferd's CLIENT span");
    assert_eq!(flags, 0x02, "random kept, not sampled: {traceparent}");

    // Sampled and random: both kept; sampled without random: random not added.
    for (sent, expected) in [("03", 0x03), ("01", 0x01)] {
        let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-{sent}");
        let (traceparent, _) = call(&server, &received, &[("traceparent", &caller)]).await;
        assert_eq!(fields(&traceparent).2, expected, "{sent}: {traceparent}");
    }
}

#[tokio::test]
async fn a_trace_inferd_starts_reaches_the_upstream_with_the_random_flag() {
    let (server, received) = start("root", &[]).await;
    let (traceparent, tracestate) = call(&server, &received, &[("x-force-trace", "true")]).await;
    let (trace_id, _, flags) = fields(&traceparent);
    assert_ne!(trace_id, CALLER_TRACE);
    assert_eq!(flags, 0x03, "sampled and random: {traceparent}");
    assert!(tracestate.is_empty(), "{tracestate:?}");

    // Two traceparent headers: no parent, so a trace of inferd's own.
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let (traceparent, _) = call(
        &server,
        &received,
        &[("traceparent", &caller), ("traceparent", &caller)],
    )
    .await;
    let (trace_id, _, flags) = fields(&traceparent);
    assert_ne!(trace_id, CALLER_TRACE);
    assert_eq!(flags & 0x02, 0x02, "{traceparent}");
}

#[tokio::test]
async fn an_unsampled_trace_inferd_starts_reaches_the_upstream_with_the_random_flag() {
    let (server, received) = start("unsampled-root", &[("OTEL_TRACES_SAMPLER_ARG", "0")]).await;
    let (traceparent, _) = call(&server, &received, &[]).await;
    assert_eq!(
        fields(&traceparent).2,
        0x02,
        "random, not sampled: {traceparent}"
    );
}

#[tokio::test]
async fn level_2_tracestate_keys_reach_the_upstream_unchanged() {
    let (server, received) = start("tracestate", &[]).await;
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    // `@` as an ordinary key character: twice, trailing, after a long tenant part, before a
    // part of 15 characters. opentelemetry's own TraceState rejects all but `vendor`.
    let list = "foo@@bar=1,foo@=2,t@vvvvvvvvvvvvvvv=3,vendor=abc";
    for traceparent_flags in ["01", "00"] {
        let caller = format!("{}{traceparent_flags}", &caller[..53]);
        let (traceparent, tracestate) = call(
            &server,
            &received,
            &[("traceparent", &caller), ("tracestate", list)],
        )
        .await;
        assert_eq!(fields(&traceparent).0, CALLER_TRACE);
        assert_eq!(tracestate, [list], "flags {traceparent_flags}");
    }
    // Two header lines with OWS and an empty member are one list.
    let (_, tracestate) = call(
        &server,
        &received,
        &[
            ("traceparent", &caller),
            ("tracestate", "foo@@bar=1 ,, "),
            ("tracestate", "\tvendor=abc"),
        ],
    )
    .await;
    assert_eq!(tracestate, ["foo@@bar=1,vendor=abc"]);
}

#[tokio::test]
async fn a_malformed_tracestate_member_means_no_tracestate_upstream() {
    let (server, received) = start("bad-tracestate", &[]).await;
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let too_many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    let too_many = too_many.join(",");
    for bad in [
        &["foo=1,bar=,baz=3"][..],
        &["foo=1", "Upper=2"],
        &["@foo=1,bar=2"],
        &[too_many.as_str()],
    ] {
        let mut headers = vec![("traceparent", caller.as_str())];
        headers.extend(bad.iter().map(|v| ("tracestate", *v)));
        let (traceparent, tracestate) = call(&server, &received, &headers).await;
        assert_eq!(fields(&traceparent).0, CALLER_TRACE, "the parent is kept");
        assert!(tracestate.is_empty(), "{bad:?} sent on as {tracestate:?}");
    }
}
