//! What the Batch API tests share: input files, uploads, calls, polling a batch and reading
//! its output (tests/batches.rs with the embedded store, tests/batches_redis.rs with Redis).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{client, Server};

pub const MODEL: &str = "smollm2-135m";
pub const CHAT: &str = "/v1/chat/completions";

/// `n` chat lines with custom ids `req-0` … of at most `max_tokens` tokens each (tiny and
/// deterministic).
pub fn input(n: usize, max_tokens: u32) -> String {
    input_asking(n, max_tokens, |i| format!("Say {i}"))
}

/// As [`input`], line `i` asking `ask(i)`.
pub fn input_asking(n: usize, max_tokens: u32, ask: impl Fn(usize) -> String) -> String {
    (0..n)
        .map(|i| {
            json!({"custom_id": format!("req-{i}"), "method": "POST", "url": CHAT,
                   "body": {"model": MODEL, "messages": [{"role": "user", "content": ask(i)}],
                            "max_tokens": max_tokens, "temperature": 0}})
            .to_string()
                + "\n"
        })
        .collect()
}

/// POST /v1/files as multipart/form-data (as the openai client sends it), with `key` as the
/// bearer token when given.
pub async fn upload(server: &Server, key: Option<&str>, content: &str) -> (u16, Value) {
    let boundary = "inferd-test-boundary-7MA4YWxkTrZu0gW";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"input.jsonl\"\r\n\
         Content-Type: application/jsonl\r\n\r\n{content}\r\n--{boundary}--\r\n"
    );
    let mut request = client()
        .post(server.url("/v1/files"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// `method path` with `key` and a JSON `body` when given: the status and the JSON answer.
pub async fn call(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client().request(method, server.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

pub async fn get(server: &Server, path: &str) -> (u16, Value) {
    call(server, reqwest::Method::GET, path, None, None).await
}

/// POSTs `path` (a batch's cancel route) and checks the answer: 200 and the batch
/// `cancelling` or already `cancelled`; the batch.
pub async fn cancel(server: &Server, path: &str) -> Value {
    let (status, batch) = call(server, reqwest::Method::POST, path, None, None).await;
    assert_eq!(status, 200, "{batch}");
    assert!(
        ["cancelling", "cancelled"].contains(&batch["status"].as_str().unwrap_or("")),
        "{batch}"
    );
    batch
}

/// Polls the batch on `server` until `done` says so (at most two minutes).
pub async fn wait_batch(server: &Server, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, batch) = get(server, &format!("/v1/batches/{id}")).await;
        assert_eq!(status, 200, "{batch}");
        if done(&batch) {
            return batch;
        }
        assert!(Instant::now() < deadline, "batch never got there: {batch}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The lines of file `id`, parsed.
pub async fn file_lines(server: &Server, id: &str) -> Vec<Value> {
    let response = client()
        .get(server.url(&format!("/v1/files/{id}/content")))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("text");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// How many times each custom id is answered in output `lines`; each must be a 200 with a
/// chat completion.
pub fn answers(lines: &[Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in lines {
        assert_eq!(line["response"]["status_code"], 200, "{line}");
        assert_eq!(
            line["response"]["body"]["object"], "chat.completion",
            "{line}"
        );
        let id = line["custom_id"].as_str().expect("custom_id").to_owned();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}
