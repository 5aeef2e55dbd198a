//! The remote backend against a scripted OpenAI-compatible stand-in on 127.0.0.1 (a fake
//! upstream, so each fault can be produced on demand): retries before the first byte, no
//! retry of client errors, the first-token timeout, the concurrency limit, a broken stream.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use inferd_engine::remote::{Gateway, ModelRoute, ReadyPolicy, UpstreamConfig};
use inferd_engine::{
    ChatMessage, ChatRole, EngineError, FinishReason, GenerationEvent, GenerationRequest, Prompt,
    SamplingParams,
};

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

/// Starts the stand-in and a gateway with one upstream routing model `m` to it.
async fn setup(
    script: Script,
    tweak: impl FnOnce(&mut UpstreamConfig),
) -> (Gateway, Arc<AtomicUsize>) {
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
    let mut config = UpstreamConfig::new("stub", &format!("http://{addr}/v1"));
    config.models = vec![ModelRoute::parse("m")];
    tweak(&mut config);
    let gateway = Gateway::new(vec![config], ReadyPolicy::Any).expect("gateway");
    (gateway, calls)
}

fn request() -> GenerationRequest {
    GenerationRequest {
        prompt: Prompt::Chat(vec![ChatMessage {
            role: ChatRole::User,
            content: "Hi".into(),
        }]),
        params: SamplingParams::default(),
        stream: true,
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
