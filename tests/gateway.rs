//! End-to-end: inferd as a gateway. A front inferd routes the default model to a back inferd
//! (the real binary serving the real model) over 127.0.0.1: one trace across both processes,
//! streaming and non-stream answers with equal usage on both hops, upstream errors passed
//! through, and the faults: a back killed mid-stream, absent at start, restarted.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    client, free_port, get_json, metrics_text, model_path, serve_on_loopback, sse_data,
    wait_for_trace, Server, TempDir,
};
use serde_json::{json, Value};

const CALLER_TRACE: &str = "5cf92f3577b34da6a3ce929d0e0e4799";
const CALLER_SPAN: &str = "10f067aa0ba902b7";

/// The back: the default model as `smollm2-135m` on `port` (0 = any).
fn start_back(port: u16) -> Server {
    let model = format!("smollm2-135m={}", model_path().display());
    let port = port.to_string();
    Server::start_raw(
        &[
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--threads",
            "1",
            "--model",
            &model,
            "--telemetry",
            "local",
        ],
        true,
    )
}

/// The front: no local model, one upstream `back` at `back_base` (http://host:port), probed
/// every 200 ms so the fault tests see changes quickly.
/// A front with `back_base` as its one upstream, its config in a temp dir named after `name`.
fn start_front(back_base: &str, name: &str) -> Server {
    let toml = format!(
        "[[upstreams]]\nname = \"back\"\nurl = \"{back_base}/v1\"\nprovider = \"inferd\"\n\
         probe_interval_ms = 200\nmax_retries = 1\nconnect_timeout_ms = 1000\n"
    );
    start_config(&toml, name)
}

/// A server with `toml` as its config file, in a temp dir named after `name` that the server
/// keeps (removed when it is dropped).
fn start_config(toml: &str, name: &str) -> Server {
    let dir = TempDir::new(&format!("gateway-{name}"));
    Server::start_with_config(&dir, toml, &[], &[], false).keep(dir)
}

/// Waits until the front lists `smollm2-135m` (its upstream was probed and discovered).
async fn wait_for_route(front: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client().get(front.url("/v1/models")).send().await {
            let list: Value = r.json().await.unwrap_or_default();
            if list["data"]
                .as_array()
                .is_some_and(|d| d.iter().any(|m| m["id"] == "smollm2-135m"))
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the front never discovered the back's model: {:?}",
        front.logs()
    );
}

fn span<'a>(spans: &'a [Value], pred: impl Fn(&Value) -> bool, what: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| pred(s))
        .unwrap_or_else(|| panic!("no {what} span in {spans:#?}"))
}

fn chat(max_tokens: u32, stream: bool) -> Value {
    let mut body = json!({"model": "smollm2-135m",
        "messages": [{"role": "user", "content": "Name a colour."}],
        "max_tokens": max_tokens, "temperature": 0, "stream": stream});
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

#[tokio::test]
async fn a_request_through_the_gateway_is_one_trace_across_both_processes() {
    let back = start_back(0);
    let front = start_front(&back.base, "trace");
    wait_for_route(&front).await;

    // Non-stream, with the caller's trace context.
    let r = client()
        .post(front.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&chat(6, false))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.expect("json");
    let text = answer["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_owned();
    assert_eq!(answer["model"], "smollm2-135m");
    assert_eq!(answer["usage"]["completion_tokens"], 6, "{answer}");

    let front_spans = wait_for_trace(&front, CALLER_TRACE, 3).await;
    let back_spans = wait_for_trace(&back, CALLER_TRACE, 4).await;
    let server = span(&front_spans, |s| s["kind"] == "server", "front SERVER");
    assert_eq!(server["parent_span_id"], CALLER_SPAN);
    let generation = span(
        &front_spans,
        |s| s["name"] == "chat smollm2-135m",
        "front generation",
    );
    assert_eq!(generation["kind"], "client", "{generation}");
    assert_eq!(generation["parent_span_id"], server["span_id"]);
    let attrs = &generation["attributes"];
    assert_eq!(attrs["gen_ai.provider.name"], "inferd");
    assert_eq!(attrs["server.address"], "127.0.0.1");
    let back_port: i64 = back
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    assert_eq!(attrs["server.port"], back_port);
    assert_eq!(
        attrs["gen_ai.usage.output_tokens"],
        answer["usage"]["completion_tokens"]
    );
    assert_eq!(
        attrs["gen_ai.usage.input_tokens"],
        answer["usage"]["prompt_tokens"]
    );
    let http_client = span(
        &front_spans,
        |s| s["kind"] == "client" && s["parent_span_id"] == generation["span_id"],
        "front HTTP client",
    );
    assert_eq!(http_client["attributes"]["http.response.status_code"], 200);
    // The back's SERVER span is the child of the front's HTTP CLIENT span, in the same trace.
    let back_server = span(&back_spans, |s| s["kind"] == "server", "back SERVER");
    assert_eq!(back_server["parent_span_id"], http_client["span_id"]);
    let back_generation = span(
        &back_spans,
        |s| s["name"] == "chat smollm2-135m",
        "back generation",
    );
    assert_eq!(
        back_generation["attributes"]["gen_ai.usage.output_tokens"],
        answer["usage"]["completion_tokens"]
    );
    assert_eq!(
        back_generation["attributes"]["gen_ai.usage.input_tokens"],
        answer["usage"]["prompt_tokens"]
    );

    // Streamed: the same greedy text, chunk by chunk, and the upstream's usage.
    let r = client()
        .post(front.url("/v1/chat/completions"))
        .json(&chat(6, true))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/event-stream"));
    let body = r.text().await.expect("body");
    let events = sse_data(&body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{body}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk json"))
        .collect();
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, text);
    let usage = chunks
        .iter()
        .find(|c| c["usage"].is_object())
        .map(|c| c["usage"].clone())
        .expect("usage chunk");
    for count in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert_eq!(usage[count], answer["usage"][count], "{count}");
    }
    // The back served the repeated prompt from its prompt cache, and the front passes that on.
    assert_eq!(
        usage["prompt_tokens_details"]["cached_tokens"].as_u64(),
        answer["usage"]["prompt_tokens"].as_u64().map(|n| n - 1),
        "{usage}"
    );
    assert_eq!(
        chunks
            .iter()
            .filter(|c| c["choices"][0]["finish_reason"] == "length")
            .count(),
        1
    );

    // Metrics: the upstream calls are GenAI client operations.
    let metrics = metrics_text(&front).await;
    let count = metrics
        .lines()
        .find(|l| l.starts_with("gen_ai_client_operation_duration_seconds_count"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no client operation duration in:\n{metrics}"));
    assert_eq!(count, 2.0);
    let line = metrics
        .lines()
        .find(|l| l.starts_with("gen_ai_client_operation_duration_seconds_count"))
        .unwrap_or_default();
    assert!(
        line.contains("server_port=\""),
        "server.port is required: {line}"
    );
    // Chunk times come from the streamed call only: the whole answer of the first call says
    // nothing of when its tokens were made.
    let value = |text: &str, prefix: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    for prefix in [
        "gen_ai_client_operation_time_to_first_chunk_seconds_count{",
        "gen_ai_client_operation_time_per_output_chunk_seconds_count{",
        "gen_ai_server_time_to_first_token_seconds_count{",
        "gen_ai_server_time_per_output_token_seconds_count{",
    ] {
        assert_eq!(value(&metrics, prefix), Some(1.0), "{prefix} in\n{metrics}");
    }
    // Tokens are counted once across the hop: the front as the client of the upstream
    // (gen_ai.client.token.usage), the back as the process that ran the model
    // (inferd.generation_tokens), each by one family only.
    let generated = 2.0 * answer["usage"]["completion_tokens"].as_f64().expect("n");
    let client_output = metrics
        .lines()
        .find(|l| {
            l.starts_with("gen_ai_client_token_usage_sum{")
                && l.contains("gen_ai_token_type=\"output\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(client_output, Some(generated), "{metrics}");
    assert_eq!(value(&metrics, "inferd_generation_tokens_total{"), None);
    let back_metrics = metrics_text(&back).await;
    assert_eq!(
        value(&back_metrics, "inferd_generation_tokens_total{"),
        Some(generated),
        "{back_metrics}"
    );
    assert!(
        !back_metrics.contains("gen_ai_client_token_usage_count{"),
        "{back_metrics}"
    );
    // The back's queue limit is there for alerts on a queue near full.
    assert_eq!(
        value(&back_metrics, "inferd_queue_limit{"),
        Some(64.0),
        "{back_metrics}"
    );
}

#[tokio::test]
async fn upstream_errors_pass_through_and_unknown_models_are_404() {
    let back = start_back(0);
    let front = start_front(&back.base, "errors");
    wait_for_route(&front).await;

    let r = client()
        .post(front.url("/v1/completions"))
        .json(&json!({"model": "smollm2-135m", "prompt": "Hi", "max_tokens": 1_000_000}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "context_length_exceeded", "{body}");
    assert_eq!(body["error"]["param"], "max_tokens", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("lower max_tokens")),
        "the back's own message: {body}"
    );

    let r = client()
        .post(front.url("/v1/chat/completions"))
        .json(&json!({"model": "no-such-model", "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "model_not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("smollm2-135m")),
        "lists the upstream's models: {body}"
    );
    // The front kept serving.
    let r = client()
        .post(front.url("/v1/completions"))
        .json(&json!({"model": "smollm2-135m", "prompt": "Hi", "max_tokens": 2}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_absent_upstream_fails_fast_with_503_naming_it() {
    let port = free_port();
    let front = start_front(&format!("http://127.0.0.1:{port}"), "absent");
    let started = Instant::now();
    let r = client()
        .post(front.url("/v1/chat/completions"))
        .json(&chat(4, false))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "upstream_unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`back`")),
        "names the upstream: {body}"
    );
    // /ready says why; /v1/models is an empty list, not an error.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client()
            .get(front.url("/ready"))
            .send()
            .await
            .expect("send");
        let status = r.status();
        let ready: Value = r.json().await.expect("json");
        if ready["upstreams"][0]["healthy"] == false {
            assert_eq!(status, 503);
            assert_eq!(ready["status"], "upstreams_unavailable");
            break;
        }
        assert!(Instant::now() < deadline, "never probed: {ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let models: Value = get_json(&front, "/v1/models").await;
    assert_eq!(models["data"], json!([]));
    let metrics = metrics_text(&front).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "inferd_upstream_healthy{inferd_upstream_name=\"back\"} 0"),
        "{metrics}"
    );
}

/// `--http-workers N` runs exactly N async worker threads (tokio names them
/// `tokio-rt-worker`); without it, half the cores (at least one).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn http_workers_sets_the_number_of_async_worker_threads() {
    // The runtime's own count, as the start-up line reports it.
    let workers = |server: &Server| {
        let line = server
            .logs()
            .into_iter()
            .find(|l| l.contains("inferd listening"))
            .expect("the start-up line");
        let line: Value = serde_json::from_str(&line).expect("a JSON line");
        let n = line["fields"]["http_workers"]
            .as_u64()
            .expect("http_workers");
        // And the threads themselves: tokio names its blocking-pool threads (file I/O, DNS)
        // like its workers, so /proc shows at least that many, and more while a blocking
        // thread idles.
        let threads = std::fs::read_dir(format!("/proc/{}/task", server.pid()))
            .expect("tasks")
            .filter_map(Result::ok)
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|name| name.trim() == "tokio-rt-worker")
            })
            .count();
        assert!(
            threads >= usize::try_from(n).expect("count"),
            "{threads} threads, {n} workers"
        );
        usize::try_from(n).expect("count")
    };
    let back = format!("http://127.0.0.1:{}", free_port());
    let dir = TempDir::new("gateway-workers");
    let toml = format!("[[upstreams]]\nname = \"back\"\nurl = \"{back}/v1\"\n");
    for n in [1, 3] {
        let server =
            Server::start_with_config(&dir, &toml, &["--http-workers", &n.to_string()], &[], false);
        assert_eq!(workers(&server), n, "--http-workers {n}");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server = Server::start_with_config(&dir, &toml, &[], &[], false);
    assert_eq!(
        workers(&server),
        (cores / 2).max(1),
        "half the cores by default"
    );
}

#[tokio::test]
async fn a_back_killed_mid_stream_ends_the_stream_with_an_error_and_recovery_follows_its_restart() {
    let port = free_port();
    let back = start_back(port);
    let front = start_front(&back.base, "kill");
    wait_for_route(&front).await;

    let mut r = client()
        .post(front.url("/v1/chat/completions"))
        .json(&json!({"model": "smollm2-135m",
            "messages": [{"role": "user", "content": "Tell a long story."}],
            "max_tokens": 2000, "ignore_eos": true, "stream": true}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let mut body = String::new();
    while sse_data(&body).len() < 3 {
        let chunk = r.chunk().await.expect("chunk").expect("more chunks");
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(back); // SIGKILL
    let rest = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = r.chunk().await.expect("chunk") {
            body.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(rest.is_ok(), "the client's stream hung after the back died");
    let events = sse_data(&body);
    let error = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find(|e| e["error"].is_object())
        .unwrap_or_else(|| panic!("no error event in {body}"));
    assert_eq!(error["error"]["code"], "upstream_failed", "{error}");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    // The back is gone: 503 at once, naming it.
    let started = Instant::now();
    let r = client()
        .post(front.url("/v1/chat/completions"))
        .json(&chat(3, false))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(3));

    // Back again on the same port: requests succeed again once the probe sees it.
    let _back = start_back(port);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client()
            .post(front.url("/v1/chat/completions"))
            .json(&chat(3, false))
            .send()
            .await
            .expect("send");
        if r.status() == 200 {
            let answer: Value = r.json().await.expect("json");
            assert_eq!(answer["usage"]["completion_tokens"], 3);
            break;
        }
        assert!(Instant::now() < deadline, "the front never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the tool-calling stand-in received.
type Received = std::sync::Arc<std::sync::Mutex<Vec<Value>>>;

/// An upstream that answers every chat request with a call of the tool `get_weather` (a
/// stand-in for a tool-capable server such as vLLM), as one answer or as a stream with a
/// usage chunk, and embeddings requests with a two-number vector; it records the bodies it
/// received (chat in `received`, embeddings in `received_embeddings`). Returns its base URL.
async fn start_tool_upstream(received: Received, received_embeddings: Received) -> String {
    use axum::routing::post;
    const HEAD: &str = r#""id":"up-1","created":1,"model":"tool-model""#;
    let answer = move |axum::Json(body): axum::Json<Value>| {
        let received = received.clone();
        async move {
            let stream = body["stream"] == true;
            received.lock().expect("lock").push(body);
            if !stream {
                let json = format!(
                    r#"{{{HEAD},"object":"chat.completion","choices":[{{"index":0,"message":{{"role":"assistant","content":null,"tool_calls":[{{"id":"call_1","type":"function","function":{{"name":"get_weather","arguments":"{{\"city\":\"Paris\"}}"}}}}]}},"finish_reason":"tool_calls"}}],"usage":{{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}}}"#
                );
                return ([("content-type", "application/json")], json);
            }
            let chunk = |rest: &str| {
                format!("data: {{{HEAD},\"object\":\"chat.completion.chunk\",{rest}}}\n\n")
            };
            let sse = [
                chunk(r#""choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]"#),
                chunk(r#""choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":null}]"#),
                chunk(r#""choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]"#),
                chunk(r#""choices":[],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}"#),
                "data: [DONE]\n\n".to_owned(),
            ]
            .concat();
            ([("content-type", "text/event-stream")], sse)
        }
    };
    let recorded = received_embeddings.clone();
    let embeddings = move |axum::Json(body): axum::Json<Value>| {
        let recorded = recorded.clone();
        async move {
            recorded.lock().expect("lock").push(body);
            axum::Json(json!({"object": "list", "model": "tool-model",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
                "usage": {"prompt_tokens": 3, "total_tokens": 3}}))
        }
    };
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(answer))
        .route("/v1/embeddings", post(embeddings));
    serve_listing_tool_model(app).await
}

/// Serves `app`, plus a `/v1/models` that lists `tool-model`, on loopback; its `/v1` base URL.
async fn serve_listing_tool_model(app: axum::Router) -> String {
    let app = app.route(
        "/v1/models",
        axum::routing::get(|| async { r#"{"data":[{"id":"tool-model"}]}"# }),
    );
    format!("http://{}/v1", serve_on_loopback(app).await)
}

#[tokio::test]
async fn tool_calling_requests_go_to_the_upstream_as_sent_and_its_answers_come_back() {
    let received = Received::default();
    let upstream = start_tool_upstream(received.clone(), Received::default()).await;
    let toml = format!(
        "[[upstreams]]\nname = \"tools\"\nurl = \"{upstream}\"\nmodels = [\"weather=tool-model\"]\n"
    );
    let front = start_config(&toml, "tools");
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let messages = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "sunny"}
    ]);
    let request = |stream: bool| {
        json!({"model": "weather", "messages": messages, "tools": tools,
               "tool_choice": "auto", "stream": stream})
    };

    // One answer, traced.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = client()
        .post(front.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{trace_id}-{CALLER_SPAN}-01"))
        .json(&request(false))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.expect("json");
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{answer}");
    assert_eq!(
        choice["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(
        answer["model"], "weather",
        "the client's name for the model"
    );
    let id = answer["id"].as_str().expect("id");
    assert!(id.starts_with("chatcmpl-") && id != "up-1", "{id}");
    assert_eq!(answer["usage"]["completion_tokens"], 7);
    {
        let received = received.lock().expect("lock");
        let sent = &received[0];
        assert_eq!(sent["model"], "tool-model", "renamed for the upstream");
        assert_eq!(sent["tools"], tools);
        assert_eq!(sent["tool_choice"], "auto");
        assert_eq!(sent["messages"], messages, "tool messages kept whole");
    }
    let spans = wait_for_trace(&front, trace_id, 3).await;
    let generation = span(&spans, |s| s["name"] == "chat weather", "generation");
    let a = &generation["attributes"];
    assert_eq!(a["gen_ai.response.finish_reasons"], json!(["tool_calls"]));
    assert_eq!(a["gen_ai.usage.output_tokens"], 7);
    assert_eq!(a["gen_ai.usage.input_tokens"], 12);

    // A stream, without usage asked for: inferd asks for it, and keeps it to itself.
    let r = client()
        .post(front.url("/v1/chat/completions"))
        .json(&request(true))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let data = sse_data(&r.text().await.expect("body"));
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk json"))
        .collect();
    assert_eq!(
        chunks.len(),
        3,
        "the usage chunk is not passed on: {chunks:?}"
    );
    let first_id = &chunks[0]["id"];
    assert!(chunks
        .iter()
        .all(|c| c["id"] == *first_id && c["model"] == "weather"));
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, "{\"city\":\"Paris\"}");
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        received.lock().expect("lock")[1]["stream_options"]["include_usage"],
        true
    );

    // Fields inferd does not know (vLLM's `min_p`, a message `name`) are not dropped: such a
    // request goes through as sent too.
    let r = client()
        .post(front.url("/v1/chat/completions"))
        .json(&json!({"model": "weather", "min_p": 0.05,
            "messages": [{"role": "user", "name": "ann", "content": "Hi"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.expect("json");
    assert_eq!(
        answer["choices"][0]["finish_reason"], "tool_calls",
        "{answer}"
    );
    let received = received.lock().expect("lock");
    assert_eq!(received[2]["min_p"], 0.05);
    assert_eq!(received[2]["messages"][0]["name"], "ann");
}

#[tokio::test]
async fn embeddings_of_a_remote_model_are_passed_through_and_traced() {
    let received = Received::default();
    let upstream = start_tool_upstream(Received::default(), received.clone()).await;
    let toml = format!(
        "[[upstreams]]\nname = \"emb\"\nurl = \"{upstream}\"\nmodels = [\"embedder=tool-model\"]\n"
    );
    let front = start_config(&toml, "embeddings");
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4737";
    let r = client()
        .post(front.url("/v1/embeddings"))
        .header("traceparent", format!("00-{trace_id}-{CALLER_SPAN}-01"))
        .json(&json!({"model": "embedder", "input": ["red", "blue"], "dimensions": 2}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.expect("json");
    assert_eq!(
        answer["data"][0]["embedding"],
        json!([0.25, -0.5]),
        "{answer}"
    );
    assert_eq!(answer["model"], "embedder");
    assert_eq!(answer["usage"]["prompt_tokens"], 3);
    {
        let received = received.lock().expect("lock");
        assert_eq!(received[0]["model"], "tool-model");
        assert_eq!(received[0]["input"], json!(["red", "blue"]));
        assert_eq!(received[0]["dimensions"], 2);
    }
    let spans = wait_for_trace(&front, trace_id, 3).await;
    let operation = span(&spans, |s| s["name"] == "embeddings embedder", "embeddings");
    let a = &operation["attributes"];
    assert_eq!(a["gen_ai.operation.name"], "embeddings");
    assert_eq!(a["gen_ai.usage.input_tokens"], 3);
    for absent in [
        "gen_ai.response.finish_reasons",
        "gen_ai.usage.output_tokens",
        "gen_ai.request.temperature",
        "gen_ai.request.top_p",
    ] {
        assert!(a.get(absent).is_none(), "{absent}: {a}");
    }
    let finished = &operation["events"][0];
    assert_eq!(finished["name"], "finished", "{operation}");
    assert_eq!(finished["attributes"]["input_tokens"], 3, "{finished}");
    for absent in ["finish_reason", "output_tokens"] {
        assert!(
            finished["attributes"].get(absent).is_none(),
            "{absent}: {finished}"
        );
    }
    let metrics = metrics_text(&front).await;
    assert!(
        metrics.contains("gen_ai_operation_name=\"embeddings\""),
        "no embeddings metrics"
    );

    // Models it does not know: 404, as for completions; no input: 400.
    let r = client()
        .post(front.url("/v1/embeddings"))
        .json(&json!({"model": "nope", "input": "x"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    let r = client()
        .post(front.url("/v1/embeddings"))
        .json(&json!({"model": "embedder"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["param"], "input");
}

#[tokio::test]
async fn passed_through_requests_to_two_replicas_take_turns_between_them() {
    // A request with fields inferd does not model is routed once: the route that chose to pass
    // it through is the one it is sent on, so the replicas alternate as they do for others.
    let (first, second) = (Received::default(), Received::default());
    let a = start_tool_upstream(first.clone(), Received::default()).await;
    let b = start_tool_upstream(second.clone(), Received::default()).await;
    let toml = format!(
        "[[upstreams]]\nname = \"a\"\nurl = \"{a}\"\nmodels = [\"weather=tool-model\"]\n\
         [[upstreams]]\nname = \"b\"\nurl = \"{b}\"\nmodels = [\"weather=tool-model\"]\n"
    );
    let front = start_config(&toml, "pass-through-turns");
    for _ in 0..4 {
        let r = client()
            .post(front.url("/v1/chat/completions"))
            .json(&json!({"model": "weather", "tool_choice": "auto",
                "messages": [{"role": "user", "content": "Weather in Paris?"}]}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    }
    let counts = [&first, &second].map(|r| r.lock().expect("lock").len());
    assert_eq!(counts, [2, 2], "each replica answers every other request");
    let sent = first.lock().expect("lock")[0].clone();
    assert_eq!(sent["tool_choice"], "auto", "passed through: {sent}");
}

/// An upstream that lists `tool-model` but answers every embeddings request 503: healthy, busy.
async fn start_busy_upstream(calls: Arc<AtomicUsize>) -> String {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/v1/embeddings",
        post(move || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy") }
        }),
    );
    serve_listing_tool_model(app).await
}

#[tokio::test]
async fn after_a_failover_the_generation_span_names_the_replica_that_answered() {
    let busy_calls = Arc::new(AtomicUsize::new(0));
    let busy = start_busy_upstream(Arc::clone(&busy_calls)).await;
    let live = start_tool_upstream(Received::default(), Received::default()).await;
    let live_port = reqwest::Url::parse(&live)
        .expect("url")
        .port()
        .expect("port");
    let toml = format!(
        "[[upstreams]]\nname = \"busy\"\nurl = \"{busy}\"\nmodels = [\"embedder=tool-model\"]\n\
         [[upstreams]]\nname = \"live\"\nurl = \"{live}\"\nmodels = [\"embedder=tool-model\"]\n"
    );
    let front = start_config(&toml, "failover-span");
    // The two replicas take turns being tried first, so one of two requests fails over.
    for trace_id in [
        "6bf92f3577b34da6a3ce929d0e0e4701",
        "6bf92f3577b34da6a3ce929d0e0e4702",
    ] {
        let r = client()
            .post(front.url("/v1/embeddings"))
            .header("traceparent", format!("00-{trace_id}-{CALLER_SPAN}-01"))
            .json(&json!({"model": "embedder", "input": "red"}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        let spans = wait_for_trace(&front, trace_id, 3).await;
        let operation = span(&spans, |s| s["name"] == "embeddings embedder", "embeddings");
        assert_eq!(
            operation["attributes"]["server.port"],
            i64::from(live_port),
            "{operation}"
        );
    }
    assert_eq!(busy_calls.load(Ordering::SeqCst), 1, "tried first once");
    // The call sent on to the live replica counts as its retry; both answer their probes.
    let metrics = metrics_text(&front).await;
    for line in [
        "inferd_upstream_retries_total{inferd_upstream_name=\"live\"} 1",
        "inferd_upstream_retries_total{inferd_upstream_name=\"busy\"} 0",
        "inferd_upstream_healthy{inferd_upstream_name=\"live\"} 1",
        "inferd_upstream_healthy{inferd_upstream_name=\"busy\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in\n{metrics}"
        );
    }
}
