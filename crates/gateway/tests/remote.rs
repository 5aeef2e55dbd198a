//! The remote backend against a scripted OpenAI-compatible stand-in on 127.0.0.1 (a fake
//! upstream, so each fault can be produced on demand): retries before the first byte, no
//! retry of client errors, the first-token timeout, the concurrency limit, a broken stream;
//! calls through an HTTP proxy (a minimal one, also on 127.0.0.1).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use inferd_engine::{
    ChatMessage, ChatRole, EngineError, FinishReason, GenerationEvent, GenerationRequest, Prompt,
    SamplingParams,
};
use inferd_gateway::{Gateway, ModelRoute, ReadyPolicy, UpstreamConfig};

/// What the stand-in does with each chat request.
#[derive(Clone, Copy)]
enum Script {
    /// 503 for the first `n` requests, then a good stream.
    UnavailableFirst(usize),
    /// Always 400 with an OpenAI error body.
    BadRequest,
    /// Headers at once, then nothing for a long time.
    Stall,
    /// Two chunks, then the connection ends without a finish.
    Broken,
    /// A chunk, then a content filter ends the answer.
    Filtered,
    /// 308 to another address.
    Moved,
}

#[derive(Clone)]
struct Stub {
    script: Script,
    calls: Arc<AtomicUsize>,
}

const GOOD_STREAM: &str = concat!(
    "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
    "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n",
    "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}\n\n",
    "data: [DONE]\n\n",
);

async fn chat(State(stub): State<Stub>) -> Response {
    let n = stub.calls.fetch_add(1, Ordering::SeqCst);
    let sse = |body: Body| {
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(body)
            .expect("response")
    };
    match stub.script {
        Script::UnavailableFirst(k) if n < k => {
            (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response()
        }
        Script::UnavailableFirst(_) => sse(Body::from(GOOD_STREAM)),
        Script::BadRequest => (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            r#"{"error":{"message":"temperature is too hot","type":"invalid_request_error","param":"temperature","code":null}}"#,
        )
            .into_response(),
        Script::Stall => {
            let stream = futures::stream::once(async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok::<_, std::io::Error>(GOOD_STREAM)
            });
            sse(Body::from_stream(stream))
        }
        Script::Moved => (
            StatusCode::PERMANENT_REDIRECT,
            [("location", "http://elsewhere:8000/v1/chat/completions")],
        )
            .into_response(),
        Script::Filtered => sse(Body::from(concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"content_filter\"}]}\n\n",
            "data: [DONE]\n\n",
        ))),
        Script::Broken => {
            let stream = futures::stream::iter([
                Ok::<_, std::io::Error>("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"),
                Ok("data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n"),
            ]);
            sse(Body::from_stream(stream))
        }
    }
}

/// Starts a stand-in; returns its OpenAI base URL and its count of chat calls.
async fn start_stub(script: Script) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(|| async { r#"{"data":[{"id":"m"}]}"# }))
        .with_state(Stub {
            script,
            calls: Arc::clone(&calls),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), calls)
}

/// Starts the stand-in and a gateway with one upstream routing model `m` to it.
async fn setup(
    script: Script,
    tweak: impl FnOnce(&mut UpstreamConfig),
) -> (Gateway, Arc<AtomicUsize>) {
    let (url, calls) = start_stub(script).await;
    let mut config = UpstreamConfig::new("stub", &url);
    config.models = vec![ModelRoute::parse("m")];
    tweak(&mut config);
    let gateway = Gateway::new(vec![config], ReadyPolicy::Any).expect("gateway");
    (gateway, calls)
}

/// A gateway with two upstreams `a` and `b` at `urls`, both serving model `m`.
fn two_upstreams(urls: [&str; 2]) -> Gateway {
    let configs = ["a", "b"]
        .iter()
        .zip(urls)
        .map(|(name, url)| {
            let mut config = UpstreamConfig::new(*name, url);
            config.models = vec![ModelRoute::parse("m")];
            config
        })
        .collect();
    Gateway::new(configs, ReadyPolicy::Any).expect("gateway")
}

fn request() -> GenerationRequest {
    GenerationRequest {
        prompt: Prompt::Chat(vec![ChatMessage {
            role: ChatRole::User,
            content: "Hi".into(),
        }]),
        params: SamplingParams::default(),
        stream: true,
        pass_through: None,
        priority: inferd_engine::Priority::Interactive,
    }
}

/// Runs one generation to its end: the text and the finish event, or the error.
async fn run(gateway: &Gateway) -> Result<(String, Option<GenerationEvent>), EngineError> {
    let backend = gateway.route("m").expect("routed").expect("backend");
    let mut stream = backend.generate(request()).await?;
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        match event? {
            GenerationEvent::Delta(delta) => text.push_str(&delta),
            GenerationEvent::Raw { json, .. } => panic!("not a passed-through request: {json}"),
            finished @ GenerationEvent::Finished { .. } => return Ok((text, Some(finished))),
        }
    }
    Ok((text, None))
}

#[tokio::test]
async fn a_503_before_the_first_byte_is_retried_and_the_stream_passed_on() {
    let (gateway, calls) = setup(Script::UnavailableFirst(2), |c| c.max_retries = 2).await;
    let (text, finished) = run(&gateway).await.expect("served after retries");
    assert_eq!(text, "Hello");
    match finished {
        Some(GenerationEvent::Finished { usage, .. }) => {
            assert_eq!((usage.prompt_tokens, usage.completion_tokens), (4, 2));
        }
        other => panic!("no finish: {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3, "two 503s, then success");
}

#[tokio::test]
async fn a_content_filter_finish_is_passed_on_not_turned_into_stop() {
    let (gateway, _) = setup(Script::Filtered, |_| {}).await;
    let (text, finished) = run(&gateway).await.expect("served");
    assert_eq!(text, "Hel");
    match finished {
        Some(GenerationEvent::Finished { finish_reason, .. }) => {
            assert_eq!(finish_reason, FinishReason::ContentFilter);
            assert_eq!(finish_reason.as_str(), "content_filter");
        }
        other => panic!("no finish: {other:?}"),
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_the_error_says_where_it_points() {
    let (gateway, calls) = setup(Script::Moved, |c| c.max_retries = 2).await;
    match run(&gateway).await.expect_err("308") {
        EngineError::UpstreamStatus {
            status, message, ..
        } => {
            assert_eq!(status, 308);
            assert!(
                message.contains("http://elsewhere:8000/v1/chat/completions"),
                "{message}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "not retried, not followed");
}

#[tokio::test]
async fn retries_stop_at_the_limit_and_the_503_is_reported() {
    let (gateway, calls) = setup(Script::UnavailableFirst(10), |c| c.max_retries = 1).await;
    let err = run(&gateway).await.expect_err("still 503");
    match err {
        EngineError::UpstreamStatus { status, .. } => assert_eq!(status, 503),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_client_error_is_not_retried_and_keeps_the_upstream_message() {
    let (gateway, calls) = setup(Script::BadRequest, |c| c.max_retries = 3).await;
    let err = run(&gateway).await.expect_err("400");
    match err {
        EngineError::UpstreamStatus {
            status,
            message,
            param,
            ..
        } => {
            assert_eq!(status, 400);
            assert_eq!(message, "temperature is too hot");
            assert_eq!(param.as_deref(), Some("temperature"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_silent_upstream_hits_the_first_token_timeout() {
    let (gateway, _) = setup(Script::Stall, |c| {
        c.timeouts.first_token = Duration::from_millis(300);
    })
    .await;
    let started = std::time::Instant::now();
    let err = run(&gateway).await.expect_err("timeout");
    assert_eq!(err.kind(), "upstream_timeout", "{err}");
    assert!(err.to_string().contains("first token"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_stream_cut_before_its_end_is_an_error_not_a_short_answer() {
    let (gateway, _) = setup(Script::Broken, |_| {}).await;
    let err = run(&gateway).await.expect_err("broken");
    assert_eq!(err.kind(), "upstream_failed", "{err}");
}

#[tokio::test]
async fn requests_beyond_max_concurrent_are_refused_at_once() {
    let (gateway, _) = setup(Script::Stall, |c| c.max_concurrent = 1).await;
    let backend = gateway.route("m").expect("routed").expect("backend");
    let first = backend.generate(request()).await.expect("first accepted");
    let err = backend
        .generate(request())
        .await
        .expect_err("second refused");
    assert_eq!(err.kind(), "overloaded", "{err}");
    drop(first);
    // The permit comes back once the first call's reader sees the client gone.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(backend.generate(request()).await.is_ok());
}

/// A minimal HTTP proxy on 127.0.0.1 that wants the credentials `user:secret`: it records the
/// head of the first request of each connection, answers 407 when the credentials are missing,
/// relays plain requests (absolute form) to their host, and answers CONNECT with
/// `connect_answer`. Returns its address and the heads seen.
async fn start_proxy(connect_answer: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&heads);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let end = loop {
                    let Ok(n) = client.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                seen.lock().expect("heads").push(head.clone());
                let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                let lower = head.to_lowercase();
                if !lower.contains("\r\nproxy-authorization: basic dxnlcjpzzwnyzxq=\r\n") {
                    let _ = client
                        .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                if head.starts_with("CONNECT ") {
                    let _ = client.write_all(connect_answer.as_bytes()).await;
                    return;
                }
                // `http://host:port/path`: relay the whole connection to host:port.
                let authority = target
                    .trim_start_matches("http://")
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let Ok(mut upstream) = tokio::net::TcpStream::connect(authority).await else {
                    return;
                };
                if upstream.write_all(&buf).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (addr, heads)
}

/// Why a request for `m` failed: at once (a probe already found the upstream unreachable) or
/// when the call was tried; either way the error says what went wrong.
async fn refusal(gateway: &Gateway) -> EngineError {
    match gateway.route("m").expect("routed") {
        Ok(backend) => backend.generate(request()).await.err(),
        Err(e) => Some(e),
    }
    .expect("the request failed")
}

/// The request heads `heads` holds, lowercased.
fn lowered(heads: &Mutex<Vec<String>>) -> Vec<String> {
    heads
        .lock()
        .expect("heads")
        .iter()
        .map(|h| h.to_lowercase())
        .collect()
}

#[tokio::test]
async fn calls_go_through_an_http_proxy_in_absolute_form_with_its_credentials() {
    let (proxy, heads) = start_proxy("HTTP/1.1 403 Forbidden\r\n\r\n").await;
    let (gateway, calls) = setup(Script::UnavailableFirst(0), |c| {
        c.proxy = Some(format!("http://user:secret@{proxy}"));
    })
    .await;
    let (text, _) = run(&gateway).await.expect("served through the proxy");
    assert_eq!(text, "Hello");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let status = &gateway.statuses()[0];
    assert_eq!(
        status.proxy.as_deref(),
        Some(format!("http://{proxy}").as_str())
    );
    let upstream = status.base_url.trim_start_matches("http://").to_owned();
    let heads = lowered(&heads);
    let chat = heads
        .iter()
        .find(|h| h.starts_with("post "))
        .unwrap_or_else(|| panic!("no POST went through the proxy: {heads:?}"));
    assert!(
        chat.starts_with(&format!(
            "post http://{upstream}/chat/completions http/1.1\r\n"
        )),
        "not in absolute form: {chat}"
    );
    // base64("user:secret")
    assert!(
        chat.contains("\r\nproxy-authorization: basic dxnlcjpzzwnyzxq=\r\n"),
        "{chat}"
    );
}

#[tokio::test]
async fn a_proxy_asking_for_credentials_is_a_502_that_says_so_not_a_407() {
    let (proxy, _) = start_proxy("HTTP/1.1 403 Forbidden\r\n\r\n").await;
    let (gateway, calls) = setup(Script::UnavailableFirst(0), |c| {
        c.proxy = Some(format!("http://{proxy}"));
    })
    .await;
    let err = refusal(&gateway).await;
    let message = err.to_string();
    assert!(
        message.contains(&format!("the proxy http://{proxy} asks for credentials")),
        "{message}"
    );
    // Found by the call (502) or already by the health probe (503): never a 407 passed on.
    assert!(
        matches!(
            err,
            EngineError::UpstreamStatus { status: 502, .. }
                | EngineError::UpstreamUnavailable { .. }
        ),
        "{err:?}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "nothing reached the upstream"
    );
}

#[tokio::test]
async fn an_https_upstream_is_reached_through_a_connect_tunnel_and_a_refusal_is_explained() {
    let (proxy, heads) = start_proxy("HTTP/1.1 403 Forbidden\r\n\r\n").await;
    let (gateway, _) = setup(Script::UnavailableFirst(0), |c| {
        c.base_url = "https://upstream.test:8443/v1".into();
        c.proxy = Some(format!("http://user:secret@{proxy}"));
        c.max_retries = 0;
    })
    .await;
    // No TLS upstream is behind the proxy.
    let err = refusal(&gateway).await;
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "proxy http://{proxy} answered 403 Forbidden to CONNECT upstream.test:8443"
        )),
        "{message}"
    );
    assert!(!message.contains("secret"), "{message}");
    let heads = lowered(&heads);
    assert!(
        heads
            .iter()
            .any(|h| h.starts_with("connect upstream.test:8443 http/1.1\r\n")
                && h.contains("\r\nproxy-authorization: basic dxnlcjpzzwnyzxq=\r\n")),
        "{heads:?}"
    );
}

#[test]
fn a_proxy_that_is_not_plain_http_is_refused_at_start_up() {
    let mut config = UpstreamConfig::new("stub", "http://127.0.0.1:9/v1");
    config.proxy = Some("socks5://user:secret@127.0.0.1:1080".into());
    let err = Gateway::new(vec![config], ReadyPolicy::Any).expect_err("refused");
    assert!(err.contains("must start with http://"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

#[tokio::test]
async fn a_model_served_by_two_upstreams_takes_turns_between_them() {
    let (a, a_calls) = start_stub(Script::UnavailableFirst(0)).await;
    let (b, b_calls) = start_stub(Script::UnavailableFirst(0)).await;
    let gateway = two_upstreams([&a, &b]);
    for _ in 0..6 {
        let (text, _) = run(&gateway).await.expect("served");
        assert_eq!(text, "Hello");
    }
    assert_eq!(a_calls.load(Ordering::SeqCst), 3);
    assert_eq!(b_calls.load(Ordering::SeqCst), 3);
    assert_eq!(gateway.models().len(), 1, "listed once");
}

#[tokio::test]
async fn the_less_busy_upstream_gets_the_request() {
    let (a, a_calls) = start_stub(Script::Stall).await;
    let (b, b_calls) = start_stub(Script::Stall).await;
    let gateway = two_upstreams([&a, &b]);
    let backend = || gateway.route("m").expect("routed").expect("backend");
    let held = backend().generate(request()).await.expect("first, on a");
    let second = backend().generate(request()).await.expect("second, on b");
    drop(second);
    // b's permit comes back once its reader sees the client gone.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // a's turn again, but a still answers `held`: b takes it.
    let _third = backend().generate(request()).await.expect("third");
    assert_eq!(a_calls.load(Ordering::SeqCst), 1);
    assert_eq!(b_calls.load(Ordering::SeqCst), 2);
    drop(held);
}

#[tokio::test]
async fn an_unreachable_upstream_is_failed_over_at_once_and_marked_down() {
    // A port nothing listens on: bound, then released.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/v1", listener.local_addr().expect("addr"))
    };
    let (b, b_calls) = start_stub(Script::UnavailableFirst(0)).await;
    let gateway = two_upstreams([&dead, &b]);
    // The stream names the replica that took the request, whichever was tried first.
    let backend = gateway.route("m").expect("routed").expect("backend");
    let stream = backend.generate(request()).await.expect("served by b");
    let b_port = b
        .parse::<http::Uri>()
        .expect("b's url")
        .port_u16()
        .expect("b's port");
    assert_eq!(stream.served_by(), Some(&("127.0.0.1".into(), b_port)));
    drop(stream);
    for _ in 0..3 {
        let (text, _) = run(&gateway).await.expect("served by b");
        assert_eq!(text, "Hello");
    }
    assert_eq!(b_calls.load(Ordering::SeqCst), 4);
    let a = &gateway.statuses()[0];
    assert_eq!((a.name.as_str(), a.healthy), ("a", Some(false)));
}

#[tokio::test]
async fn a_503_from_one_upstream_is_passed_on_to_the_other() {
    let (a, a_calls) = start_stub(Script::UnavailableFirst(usize::MAX)).await;
    let (b, b_calls) = start_stub(Script::UnavailableFirst(0)).await;
    let gateway = two_upstreams([&a, &b]);
    for _ in 0..2 {
        let (text, _) = run(&gateway).await.expect("served by b");
        assert_eq!(text, "Hello");
    }
    assert_eq!(a_calls.load(Ordering::SeqCst), 1, "tried once, not retried");
    assert_eq!(b_calls.load(Ordering::SeqCst), 2);
    assert_eq!(gateway.statuses()[0].healthy, None, "busy is not down");
}
