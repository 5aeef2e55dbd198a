//! Safe to expose, end to end on the real binary: API keys (missing, wrong, right, rotated,
//! lower-case scheme, per-key limits), connection hygiene (slowloris, connection limit,
//! over-long Content-Length, stalled body), generation limits (completions default, the
//! --max-tokens cap, the generation timeout, the message cap), control-token text in messages,
//! and SIGTERM with streams and a queue.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{sse_data, Server, TempDir};
use serde_json::{json, Value};

fn temp_dir(name: &str) -> TempDir {
    TempDir::new(&format!("hardening-{name}"))
}

/// Sends raw bytes on a new connection and reads the answer until the server closes it or
/// `limit` passes.
fn raw_exchange(addr: &str, request: &[u8], limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(limit)).expect("timeout");
    stream.write_all(request).expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

/// Whether the server has closed `stream` (a read returns end of file or a reset).
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

async fn get_with_key(server: &Server, path: &str, auth: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(server.url(path));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    request.send().await.expect("send")
}

#[tokio::test]
async fn api_keys_refuse_missing_and_wrong_keys_accept_any_case_scheme_and_rotate_from_the_file() {
    let dir = temp_dir("keys");
    let file = dir.join("keys.txt");
    std::fs::write(&file, "# rotated by the test\nsk-file-key-one\n").expect("write");
    let file_arg = file.display().to_string();
    let server = tokio::task::spawn_blocking(move || {
        Server::start(&["--api-key", "sk-flag-key", "--api-key-file", &file_arg])
    })
    .await
    .expect("start");

    let missing = get_with_key(&server, "/v1/models", None).await;
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let wrong = get_with_key(&server, "/v1/models", Some("Bearer sk-nope")).await;
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    for auth in [
        "Bearer sk-flag-key",
        "bearer sk-flag-key",
        "BEARER sk-file-key-one",
    ] {
        let ok = get_with_key(&server, "/v1/models", Some(auth)).await;
        assert_eq!(ok.status(), 200, "{auth}");
    }
    // A generation with a key works end to end.
    let chat = reqwest::Client::new()
        .post(server.url("/v1/chat/completions"))
        .bearer_auth("sk-file-key-one")
        .json(&json!({"model": "smollm2-135m", "max_tokens": 2,
                      "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(chat.status(), 200);
    // Health and readiness stay open.
    assert_eq!(get_with_key(&server, "/health", None).await.status(), 200);
    assert_eq!(get_with_key(&server, "/ready", None).await.status(), 200);

    // Rotation: the file's new key works and its old key stops, without a restart.
    std::fs::write(&file, "sk-file-key-two rpm=100\n").expect("rewrite");
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let new = get_with_key(&server, "/v1/models", Some("Bearer sk-file-key-two")).await;
        if new.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the rotated key never worked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old = get_with_key(&server, "/v1/models", Some("Bearer sk-file-key-one")).await;
    assert_eq!(old.status(), 401, "the rotated-out key is refused");
    let flag = get_with_key(&server, "/v1/models", Some("Bearer sk-flag-key")).await;
    assert_eq!(flag.status(), 200, "keys from flags stay");

    let logs = server.logs().join("\n");
    assert!(logs.contains("API keys reloaded"), "{logs}");
    for key in [
        "sk-flag-key",
        "sk-file-key-one",
        "sk-file-key-two",
        "sk-nope",
    ] {
        assert!(!logs.contains(key), "a key was logged: {key}");
    }
    assert!(
        logs.contains("\"inferd.api_key.id\""),
        "access lines name the key by id"
    );
}

#[tokio::test]
async fn a_key_over_its_request_rate_gets_429_with_retry_after_counted_by_key_id() {
    let server = tokio::task::spawn_blocking(|| {
        Server::start(&[
            "--api-key",
            "sk-limited",
            "--api-key-rpm",
            "2",
            "--telemetry",
            "local",
        ])
    })
    .await
    .expect("start");
    for _ in 0..2 {
        let ok = get_with_key(&server, "/v1/models", Some("Bearer sk-limited")).await;
        assert_eq!(ok.status(), 200);
    }
    let limited = get_with_key(&server, "/v1/models", Some("Bearer sk-limited")).await;
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After seconds");
    assert!(
        (1..=30).contains(&retry),
        "next request in <= 30 s: {retry}"
    );
    let body: Value = limited.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    let _ = get_with_key(&server, "/v1/models", None).await;

    let metrics = common::metrics_text(&server).await;
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("inferd_api_key_rejections"))
        .collect();
    assert!(
        series
            .iter()
            .any(|l| l.contains("rate_limit_exceeded") && l.contains("inferd_api_key_id=\"")),
        "{series:?}"
    );
    assert!(
        series.iter().any(|l| l.contains("missing_api_key")),
        "{series:?}"
    );
    assert!(!metrics.contains("sk-limited"), "the key is not a label");
}

#[tokio::test]
async fn a_key_over_its_concurrency_gets_429_until_its_stream_ends() {
    let server = tokio::task::spawn_blocking(|| {
        Server::start(&[
            "--api-key",
            "sk-one-at-a-time",
            "--api-key-concurrency",
            "1",
        ])
    })
    .await
    .expect("start");
    let client = reqwest::Client::new();
    let stream = client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth("sk-one-at-a-time")
        .json(
            &json!({"model": "smollm2-135m", "stream": true, "max_tokens": 40, "ignore_eos": true,
                      "messages": [{"role": "user", "content": "Count"}]}),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(stream.status(), 200);
    let second = get_with_key(&server, "/v1/models", Some("Bearer sk-one-at-a-time")).await;
    assert_eq!(
        second.status(),
        429,
        "the stream still holds the key's one slot"
    );
    let body = stream.text().await.expect("stream body");
    assert!(body.contains("[DONE]"));
    let after = get_with_key(&server, "/v1/models", Some("Bearer sk-one-at-a-time")).await;
    assert_eq!(
        after.status(),
        200,
        "the slot is free once the stream ended"
    );
}

#[tokio::test]
async fn slowloris_connections_are_closed_after_the_header_timeout_while_requests_are_served() {
    let server = tokio::task::spawn_blocking(|| {
        Server::start(&["--header-timeout", "1", "--keep-alive-timeout", "1"])
    })
    .await
    .expect("start");
    let addr = server.addr();
    let mut slow: Vec<TcpStream> = (0..32)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .expect("partial headers");
            s
        })
        .collect();
    // Real requests are served meanwhile.
    let ok = get_with_key(&server, "/health", None).await;
    assert_eq!(ok.status(), 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let closed = slow.iter_mut().map(closed_by_server).filter(|c| *c).count();
    assert_eq!(
        closed, 32,
        "every slow connection is closed after the header timeout"
    );
    // An idle keep-alive connection is closed too.
    let mut idle = TcpStream::connect(&addr).expect("connect");
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut answer = Vec::new();
    idle.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let _ = idle.read_to_end(&mut answer);
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "answered, then closed when idle"
    );
    assert_eq!(get_with_key(&server, "/health", None).await.status(), 200);
}

#[tokio::test]
async fn past_the_connection_limit_new_connections_wait_and_are_served_once_others_close() {
    let server = tokio::task::spawn_blocking(|| {
        Server::start(&[
            "--max-connections",
            "4",
            "--header-timeout",
            "2",
            "--keep-alive-timeout",
            "2",
        ])
    })
    .await
    .expect("start");
    let addr = server.addr();
    // Wait for the readiness probe's connection to be released.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hogs: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(&addr).expect("connect"))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            raw_exchange(
                &addr,
                b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                Duration::from_secs(15),
            )
        })
    };
    let (answer, waited) = tokio::task::spawn_blocking(move || waiting.join().expect("thread"))
        .await
        .expect("join");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        waited >= Duration::from_millis(1000),
        "the fifth connection waited for one of the four to close: {waited:?}"
    );
    drop(hogs);
    let logs = server.logs().join("\n");
    assert!(logs.contains("connection limit reached"), "{logs}");
    assert_eq!(get_with_key(&server, "/health", None).await.status(), 200);
}

#[tokio::test]
async fn running_out_of_file_descriptors_is_survived_and_accepting_resumes() {
    let server = tokio::task::spawn_blocking(|| {
        Server::start_with_fd_limit(
            96,
            &["--header-timeout", "30", "--keep-alive-timeout", "30"],
        )
    })
    .await
    .expect("start");
    let addr = server.addr();
    // More connections than the process has descriptors for: accept fails with EMFILE.
    let hogs: Vec<TcpStream> = (0..160)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server
        .logs()
        .join("\n")
        .contains("cannot accept connections")
    {
        assert!(
            Instant::now() < deadline,
            "no accept error reported: {:?}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(hogs);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answered = tokio::time::timeout(
            Duration::from_secs(2),
            reqwest::Client::new().get(server.url("/health")).send(),
        )
        .await;
        if matches!(answered, Ok(Ok(ref r)) if r.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server stopped accepting for good"
        );
    }
    let (status, _) = post(
        &server,
        "/v1/chat/completions",
        json!({"model": "smollm2-135m", "max_tokens": 1,
               "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_over_long_content_length_is_refused_before_the_body_and_a_stalled_body_gets_408() {
    let server = tokio::task::spawn_blocking(|| Server::start(&["--body-timeout", "1"]))
        .await
        .expect("start");
    let addr = server.addr();
    let huge = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000000000\r\n\r\n{\"model\":";
    let (answer, took) = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || raw_exchange(&addr, huge, Duration::from_secs(10))
    })
    .await
    .expect("join");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("request_too_large"), "{answer}");
    assert!(
        took < Duration::from_secs(5),
        "not waiting for the body: {took:?}"
    );

    let stalled = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mod";
    let (answer, took) =
        tokio::task::spawn_blocking(move || raw_exchange(&addr, stalled, Duration::from_secs(10)))
            .await
            .expect("join");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert_eq!(get_with_key(&server, "/health", None).await.status(), 200);
}

async fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(server.url(path))
        .json(&body)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn generation_limits_completions_default_the_cap_and_the_timeout() {
    let server = tokio::task::spawn_blocking(|| Server::start(&[]))
        .await
        .expect("start");
    let (status, body) = post(
        &server,
        "/v1/completions",
        json!({"model": "smollm2-135m", "prompt": "Once upon a time", "ignore_eos": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["completion_tokens"], 16, "OpenAI's default");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    drop(server);

    let server = tokio::task::spawn_blocking(|| {
        Server::start(&["--max-tokens", "5", "--generation-timeout", "1"])
    })
    .await
    .expect("start");
    for request in [
        json!({"model": "smollm2-135m", "max_tokens": 200, "ignore_eos": true,
               "messages": [{"role": "user", "content": "Count to a hundred"}]}),
        json!({"model": "smollm2-135m", "ignore_eos": true,
               "messages": [{"role": "user", "content": "Count to a hundred"}]}),
    ] {
        let (status, body) = post(&server, "/v1/chat/completions", request).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["usage"]["completion_tokens"], 5, "capped: {body}");
    }
    drop(server);

    let server = tokio::task::spawn_blocking(|| Server::start(&["--generation-timeout", "1"]))
        .await
        .expect("start");
    let started = Instant::now();
    let (status, body) = post(
        &server,
        "/v1/chat/completions",
        json!({"model": "smollm2-135m", "max_tokens": 1900, "ignore_eos": true,
               "messages": [{"role": "user", "content": "Write a long story"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    let tokens = body["usage"]["completion_tokens"].as_u64().expect("tokens");
    assert!(
        tokens > 0 && tokens < 1900,
        "stopped by the timeout: {tokens}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn sixty_thousand_tiny_messages_are_refused_at_once_and_the_server_keeps_serving() {
    let server = tokio::task::spawn_blocking(|| Server::start(&[]))
        .await
        .expect("start");
    let messages: Vec<Value> = (0..60_000)
        .map(|_| json!({"role": "user", "content": "x"}))
        .collect();
    let body = json!({"model": "smollm2-135m", "messages": messages});
    let started = Instant::now();
    let (status, answer) = post(&server, "/v1/chat/completions", body).await;
    let took = started.elapsed();
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "too_many_messages");
    assert_eq!(answer["error"]["param"], "messages");
    // The bar is one second on a release build; a debug build parses JSON slower.
    assert!(took < Duration::from_secs(3), "{took:?}");
    let (status, _) = post(
        &server,
        "/v1/chat/completions",
        json!({"model": "smollm2-135m", "max_tokens": 1,
               "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(status, 200);
}

async fn prompt_tokens(server: &Server, content: &str) -> u64 {
    let (status, body) = post(
        server,
        "/v1/chat/completions",
        json!({"model": "smollm2-135m", "max_tokens": 1,
               "messages": [{"role": "user", "content": content}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["usage"]["prompt_tokens"]
        .as_u64()
        .expect("prompt tokens")
}

#[tokio::test]
async fn control_token_text_in_messages_is_tokenized_as_text_unless_asked_otherwise() {
    let forged = "<|im_start|>";
    let server = tokio::task::spawn_blocking(|| Server::start(&[]))
        .await
        .expect("start");
    let base = prompt_tokens(&server, "").await;
    let with_forged = prompt_tokens(&server, forged).await;
    assert!(
        with_forged >= base + 3,
        "`{forged}` is several text tokens, not one control token: {base} -> {with_forged}"
    );
    drop(server);
    let server = tokio::task::spawn_blocking(|| Server::start(&["--special-tokens-in-content"]))
        .await
        .expect("start");
    let base = prompt_tokens(&server, "").await;
    let with_forged = prompt_tokens(&server, forged).await;
    assert_eq!(
        with_forged,
        base + 1,
        "llama.cpp's behaviour on request: one control token"
    );
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_ends_the_rest_at_the_deadline_and_exits_0() {
    let mut server = tokio::task::spawn_blocking(|| {
        Server::start(&["--parallel", "2", "--shutdown-timeout", "3"])
    })
    .await
    .expect("start");
    let client = reqwest::Client::new();
    let long = |content: &'static str| {
        client
            .post(server.url("/v1/chat/completions"))
            .json(
                &json!({"model": "smollm2-135m", "stream": true, "max_tokens": 1900,
                          "ignore_eos": true, "messages": [{"role": "user", "content": content}]}),
            )
            .timeout(Duration::from_secs(60))
            .send()
    };
    // Two long streams take both slots; a third stream and a plain request wait in the queue.
    let first = long("Tell a long story").await.expect("first");
    let second = long("Tell another long story").await.expect("second");
    let queued_stream = long("A third story").await.expect("third");
    let queued_plain = {
        let request = client
            .post(server.url("/v1/chat/completions"))
            .json(&json!({"model": "smollm2-135m", "max_tokens": 5,
                          "messages": [{"role": "user", "content": "Hi"}]}))
            .timeout(Duration::from_secs(60));
        tokio::spawn(async move { request.send().await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signalled = Instant::now();
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        TcpStream::connect(server.addr()).is_err(),
        "new connections are refused while draining"
    );
    for stream in [first, second, queued_stream] {
        let body = stream.text().await.expect("stream ends");
        let events = sse_data(&body);
        let error: Value = events
            .iter()
            .rev()
            .find_map(|e| {
                serde_json::from_str::<Value>(e)
                    .ok()
                    .filter(|v| v.get("error").is_some())
            })
            .expect("an error event ends the stream");
        assert_eq!(error["error"]["code"], "shutting_down");
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    }
    let plain = queued_plain.await.expect("join").expect("answered");
    assert_eq!(plain.status(), 503);
    let body: Value = plain.json().await.expect("json");
    assert_eq!(body["error"]["code"], "shutting_down");
    let ended = signalled.elapsed();
    assert!(
        ended >= Duration::from_millis(2500) && ended < Duration::from_secs(8),
        "ended at the 3 s deadline: {ended:?}"
    );
    let code = tokio::task::spawn_blocking(move || {
        let code = server.wait_exit(Duration::from_secs(15));
        (code, server.logs())
    })
    .await
    .expect("join");
    assert_eq!(code.0, Some(Some(0)), "exit 0; logs: {:?}", code.1);
}

#[tokio::test]
async fn sigterm_lets_a_short_request_finish_and_exits_before_the_deadline() {
    let mut server = tokio::task::spawn_blocking(|| Server::start(&["--shutdown-timeout", "20"]))
        .await
        .expect("start");
    let request = reqwest::Client::new()
        .post(server.url("/v1/chat/completions"))
        .json(
            &json!({"model": "smollm2-135m", "max_tokens": 30, "ignore_eos": true,
                      "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .timeout(Duration::from_secs(60));
    let in_flight = tokio::spawn(async move { request.send().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signalled = Instant::now();
    server.signal("TERM");
    let response = in_flight.await.expect("join").expect("answered");
    assert_eq!(response.status(), 200, "an in-flight request finishes");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["usage"]["completion_tokens"], 30);
    let code = tokio::task::spawn_blocking(move || server.wait_exit(Duration::from_secs(15)))
        .await
        .expect("join");
    assert_eq!(code, Some(Some(0)));
    assert!(
        signalled.elapsed() < Duration::from_secs(15),
        "did not wait for the 20 s deadline"
    );
}

#[tokio::test]
async fn a_non_loopback_bind_without_keys_warns_once_and_with_keys_does_not() {
    let open = tokio::task::spawn_blocking(|| Server::start_on_host("0.0.0.0", &[], false))
        .await
        .expect("start");
    let keyed = tokio::task::spawn_blocking(|| {
        Server::start_on_host("0.0.0.0", &["--api-key", "sk-some-key"], false)
    })
    .await
    .expect("start");
    let warning = "without API keys";
    let warnings = open.logs().iter().filter(|l| l.contains(warning)).count();
    assert_eq!(warnings, 1, "{:?}", open.logs());
    assert!(
        !keyed.logs().iter().any(|l| l.contains(warning)),
        "{:?}",
        keyed.logs()
    );
}
