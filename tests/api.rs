//! End-to-end tests of the OpenAI-compatible API: the real binary, the real default model,
//! real HTTP on 127.0.0.1.

mod common;

use std::time::Duration;

use common::{client, get_json, sse_data, Server, TempDir};
use futures::StreamExt;
use serde_json::{json, Value};

const MODEL: &str = "smollm2-135m";

async fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let response = client()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.expect("json body");
    (status, body)
}

async fn post_raw(server: &Server, path: &str, body: &str) -> (u16, Value) {
    let response = client()
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json::<Value>().await.expect("json body"))
}

fn capital_question(extra: Value) -> Value {
    let mut body = json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"}
        ],
        "temperature": 0,
        "max_tokens": 24
    });
    if let (Some(obj), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        obj.extend(extra.clone());
    }
    body
}

fn assert_openai_error(status: u16, body: &Value, expected_status: u16, param: Option<&str>) {
    assert_eq!(status, expected_status, "body: {body}");
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error.message missing: {body}"
    );
    assert!(error["type"].is_string(), "error.type missing: {body}");
    assert!(
        error.get("param").is_some() && error.get("code").is_some(),
        "{body}"
    );
    if let Some(param) = param {
        assert_eq!(error["param"], param, "{body}");
    }
}

#[tokio::test]
async fn chat_completion_answers_with_text_finish_reason_and_usage() {
    let server = Server::start(&[]);
    let (status, body) = post(&server, "/v1/chat/completions", capital_question(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], MODEL);
    assert!(body["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("chatcmpl-")));
    assert!(body["created"].as_u64().is_some_and(|t| t > 1_700_000_000));
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    let text = choice["message"]["content"].as_str().expect("content");
    assert!(text.contains("Paris"), "unexpected answer: {text}");
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &body["usage"];
    let prompt = usage["prompt_tokens"].as_u64().expect("prompt_tokens");
    let completion = usage["completion_tokens"]
        .as_u64()
        .expect("completion_tokens");
    assert!(prompt > 10 && completion > 0 && completion <= 24, "{usage}");
    assert_eq!(usage["total_tokens"].as_u64(), Some(prompt + completion));
}

#[tokio::test]
async fn max_tokens_cut_ends_with_length_and_exact_count() {
    let server = Server::start(&[]);
    let body = json!({"model": MODEL, "prompt": "Once upon a time", "max_tokens": 5,
                      "temperature": 0, "ignore_eos": true});
    let (status, body) = post(&server, "/v1/completions", body).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert!(!body["choices"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .is_empty());
}

#[tokio::test]
async fn seeded_sampling_and_greedy_are_deterministic() {
    let server = Server::start(&[]);
    let sampled = json!({"model": MODEL, "prompt": "The best thing about autumn is",
                         "max_tokens": 20, "temperature": 0.9, "seed": 1234});
    let (_, a) = post(&server, "/v1/completions", sampled.clone()).await;
    let (_, b) = post(&server, "/v1/completions", sampled).await;
    assert_eq!(a["choices"][0]["text"], b["choices"][0]["text"]);
    let (_, g1) = post(
        &server,
        "/v1/chat/completions",
        capital_question(json!({"seed": 7})),
    )
    .await;
    let (_, g2) = post(
        &server,
        "/v1/chat/completions",
        capital_question(json!({"seed": 7})),
    )
    .await;
    assert_eq!(g1["choices"][0]["message"], g2["choices"][0]["message"]);
    // A different seed must be able to change sampled text: try a few until one differs.
    let mut differs = false;
    for seed in 1..6 {
        let other = json!({"model": MODEL, "prompt": "The best thing about autumn is",
                           "max_tokens": 20, "temperature": 0.9, "seed": seed});
        let (_, c) = post(&server, "/v1/completions", other).await;
        differs |= c["choices"][0]["text"] != a["choices"][0]["text"];
    }
    assert!(differs, "the seed has no effect on sampling");
}

#[tokio::test]
async fn chat_stream_is_sse_and_matches_non_stream_text() {
    let server = Server::start(&[]);
    let (_, whole) = post(&server, "/v1/chat/completions", capital_question(json!({}))).await;
    let response = client()
        .post(server.url("/v1/chat/completions"))
        .json(&capital_question(
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/event-stream"));
    let body = response.text().await.expect("body");
    let data = sse_data(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{body}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk is JSON"))
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        text,
        whole["choices"][0]["message"]["content"]
            .as_str()
            .expect("text")
    );
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, vec![&json!("stop")]);
    let usage_chunk = chunks.last().expect("usage chunk");
    assert_eq!(usage_chunk["choices"], json!([]));
    for count in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert_eq!(
            usage_chunk["usage"][count], whole["usage"][count],
            "{count}"
        );
    }
    // The same prompt again comes from the prompt cache, all but its last token (whose logits
    // give the first output token).
    assert_eq!(whole["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(
        usage_chunk["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64(),
        whole["usage"]["prompt_tokens"].as_u64().map(|n| n - 1),
        "{usage_chunk}"
    );
}

#[tokio::test]
async fn text_completion_stream_matches_non_stream() {
    let server = Server::start(&[]);
    let request = json!({"model": MODEL, "prompt": "The three primary colors are",
                         "max_tokens": 16, "temperature": 0});
    let (_, whole) = post(&server, "/v1/completions", request.clone()).await;
    let mut streamed = request;
    streamed["stream"] = json!(true);
    let body = client()
        .post(server.url("/v1/completions"))
        .json(&streamed)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("body");
    let data = sse_data(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("json"))
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, whole["choices"][0]["text"].as_str().expect("text"));
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "usage sent without being asked"
    );
}

#[tokio::test]
async fn stop_sequence_ends_generation_before_it() {
    let server = Server::start(&[]);
    let (_, free) = post(&server, "/v1/chat/completions", capital_question(json!({}))).await;
    let text = free["choices"][0]["message"]["content"]
        .as_str()
        .expect("text")
        .to_owned();
    // Stop on a word from the middle of the unconstrained answer.
    let word = text
        .split_whitespace()
        .nth(2)
        .expect("three words")
        .to_owned();
    let (status, stopped) = post(
        &server,
        "/v1/chat/completions",
        capital_question(json!({"stop": [word.clone()]})),
    )
    .await;
    assert_eq!(status, 200);
    let cut = stopped["choices"][0]["message"]["content"]
        .as_str()
        .expect("text");
    assert_eq!(stopped["choices"][0]["finish_reason"], "stop");
    assert!(
        !cut.contains(&word),
        "stop sequence `{word}` leaked into `{cut}`"
    );
    assert!(text.starts_with(cut), "`{cut}` is not a prefix of `{text}`");
}

#[tokio::test]
async fn bad_requests_get_openai_errors_and_server_keeps_serving() {
    let mut server = Server::start(&[
        "--ctx-size",
        "128",
        "--parallel",
        "1",
        "--max-body-bytes",
        "4096",
    ]);
    let chat = "/v1/chat/completions";
    let (s, b) = post_raw(&server, chat, "{\"model\": ").await;
    assert_openai_error(s, &b, 400, None);
    assert!(b["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("JSON"));
    let (s, b) = post_raw(&server, chat, r#"{"model":"smollm2-135m","messages":"hi"}"#).await;
    assert_openai_error(s, &b, 400, Some("messages"));
    let (s, b) = post_raw(
        &server,
        chat,
        r#"{"model":"smollm2-135m","messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}"#,
    )
    .await;
    assert_openai_error(s, &b, 400, Some("max_tokens"));
    let (s, b) = post(
        &server,
        chat,
        json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_openai_error(s, &b, 400, None);
    assert!(b["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("model"));
    let (s, b) = post(
        &server,
        chat,
        json!({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_openai_error(s, &b, 404, Some("model"));
    assert_eq!(b["error"]["code"], "model_not_found");
    let (s, b) = post(&server, chat, json!({"model": MODEL, "messages": []})).await;
    assert_openai_error(s, &b, 400, Some("messages"));
    let (s, b) = post(&server, chat, capital_question(json!({"n": 2}))).await;
    assert_openai_error(s, &b, 400, Some("n"));
    let (s, b) = post(
        &server,
        chat,
        capital_question(json!({"tools": [{"type": "function", "function": {"name": "f"}}]})),
    )
    .await;
    assert_openai_error(s, &b, 400, Some("tools"));
    let (s, b) = post(&server, chat, capital_question(json!({"temperature": 5}))).await;
    assert_openai_error(s, &b, 400, Some("temperature"));
    // Local models compute no embeddings (remote ones pass them through: tests/gateway.rs).
    let (s, b) = post(
        &server,
        "/v1/embeddings",
        json!({"model": MODEL, "input": "x"}),
    )
    .await;
    assert_openai_error(s, &b, 400, Some("model"));
    assert_eq!(b["error"]["code"], "unsupported_parameter");

    // Prompt longer than the 128-token context: 400 naming both counts.
    let long = "tell me more about the weather ".repeat(40);
    let (s, b) = post(
        &server,
        chat,
        json!({"model": MODEL, "messages": [{"role": "user", "content": long}]}),
    )
    .await;
    assert_openai_error(s, &b, 400, Some("messages"));
    assert_eq!(b["error"]["code"], "context_length_exceeded");
    let message = b["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("128") && message.contains("prompt has"),
        "{message}"
    );
    // Prompt fits but prompt + max_tokens does not: 400 (not clamped) with the numbers.
    let (s, b) = post(&server, chat, capital_question(json!({"max_tokens": 500}))).await;
    assert_openai_error(s, &b, 400, Some("max_tokens"));
    assert!(b["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("500 for the completion"));

    // Body over the 4096-byte limit: 413.
    let huge = "x".repeat(10_000);
    let (s, b) = post(
        &server,
        chat,
        json!({"model": MODEL, "messages": [{"role": "user", "content": huge}]}),
    )
    .await;
    assert_openai_error(s, &b, 413, None);

    // Unknown route and wrong method are JSON errors too.
    let r = client()
        .get(server.url("/v1/nothing"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    let r = client().get(server.url(chat)).send().await.expect("send");
    assert_eq!(r.status(), 405);
    assert!(r.json::<Value>().await.expect("json")["error"].is_object());

    // After all that, the server still answers properly.
    assert!(server.is_alive());
    let (s, b) = post(&server, chat, capital_question(json!({"max_tokens": 8}))).await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn eight_concurrent_requests_all_complete() {
    let server = Server::start(&[]);
    let requests = (0..8).map(|i| {
        let body = json!({"model": MODEL, "prompt": format!("Count from {i}:"),
                          "max_tokens": 12, "temperature": 0, "ignore_eos": true});
        let url = server.url("/v1/completions");
        async move {
            let r = client().post(url).json(&body).send().await.expect("send");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    });
    let results = futures::future::join_all(requests).await;
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["usage"]["completion_tokens"], 12, "{body}");
        assert_eq!(body["choices"][0]["finish_reason"], "length");
    }
    // Greedy answers for the same prompt must not depend on the concurrency.
    let (_, alone) = post(
        &server,
        "/v1/completions",
        json!({"model": MODEL, "prompt": "Count from 3:",
        "max_tokens": 12, "temperature": 0, "ignore_eos": true}),
    )
    .await;
    assert_eq!(
        alone["choices"][0]["text"],
        results[3].1["choices"][0]["text"]
    );
}

#[tokio::test]
async fn abandoned_stream_frees_the_engine_and_full_queue_gets_503() {
    let server = Server::start(&["--max-queue", "1", "--parallel", "1"]);
    let endless = json!({"model": MODEL, "prompt": "Write a very long story.", "max_tokens": 8000,
                         "temperature": 0, "ignore_eos": true, "stream": true});
    // Request A runs (we read its first chunk), request B waits in the single queue slot.
    let mut a = client()
        .post(server.url("/v1/completions"))
        .json(&endless)
        .send()
        .await
        .expect("send a")
        .bytes_stream();
    a.next().await.expect("first chunk of a").expect("chunk");
    let b_url = server.url("/v1/completions");
    let b_body = endless.clone();
    let b = tokio::spawn(async move { client().post(b_url).json(&b_body).send().await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Request C finds the queue full.
    let (status, body) = post(
        &server,
        "/v1/completions",
        json!({"model": MODEL, "prompt": "hi", "max_tokens": 2}),
    )
    .await;
    assert_openai_error(status, &body, 503, None);
    assert_eq!(body["error"]["code"], "overloaded");

    // Abandon both streams: the engine must notice and serve a new request promptly
    // (8000 tokens each would otherwise keep it busy for several minutes). Until it notices,
    // the queue may still be full, so retry 503s as a client honouring Retry-After would.
    drop(a);
    let b = b.await.expect("join").expect("b response");
    drop(b);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let small = json!({"model": MODEL, "prompt": "hi", "max_tokens": 4, "ignore_eos": true});
    loop {
        let (status, body) = post(&server, "/v1/completions", small.clone()).await;
        if status == 200 {
            assert_eq!(body["usage"]["completion_tokens"], 4);
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "engine still busy 60 s after both clients left"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn models_health_and_ready_endpoints() {
    let server = Server::start(&[]);
    let models: Value = get_json(&server, "/v1/models").await;
    assert_eq!(models["object"], "list");
    let card = &models["data"][0];
    assert_eq!(card["id"], MODEL);
    assert_eq!(card["object"], "model");
    assert!(card["created"].as_u64().is_some_and(|t| t > 0));
    assert!(card["owned_by"].is_string());
    let health = client()
        .get(server.url("/health"))
        .send()
        .await
        .expect("send");
    assert_eq!(health.status(), 200);
    let ready = client()
        .get(server.url("/ready"))
        .send()
        .await
        .expect("send");
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.expect("json")["model"], MODEL);
}

#[tokio::test]
async fn ready_is_503_when_the_default_model_fails_to_load() {
    let dir = TempDir::new("corrupt");
    let corrupt = dir.join("corrupt.gguf");
    std::fs::write(&corrupt, b"this is not a gguf file").expect("write");
    let model = format!("broken={}", corrupt.display());
    let server = Server::start_raw(&["serve", "--port", "0", "--model", &model], false);
    let mut last = (0, Value::Null);
    for _ in 0..100 {
        let r = client()
            .get(server.url("/ready"))
            .send()
            .await
            .expect("send");
        last = (r.status().as_u16(), r.json().await.expect("json"));
        if last.1["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last.0, 503, "{}", last.1);
    assert_eq!(last.1["status"], "failed");
    assert!(last.1["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("corrupt.gguf"));
    let (status, body) = post(
        &server,
        "/v1/completions",
        json!({"model": "broken", "prompt": "x"}),
    )
    .await;
    assert_openai_error(status, &body, 503, None);
    let health = client()
        .get(server.url("/health"))
        .send()
        .await
        .expect("send");
    assert_eq!(health.status(), 200, "the process must keep serving");
}
