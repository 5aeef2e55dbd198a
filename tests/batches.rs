//! End-to-end tests of the Files and Batch API: the real binary, the real default model, a job
//! store in a directory of each test's own.

mod common;

use common::batches::{
    answers, call, cancel, file_lines, get, input, input_asking, upload, wait_batch, CHAT, MODEL,
};
use common::{client, Server, TempDir};
use serde_json::{json, Value};

/// A fresh jobs directory for one test.
fn jobs_dir(name: &str) -> TempDir {
    TempDir::new(&format!("batches-{name}"))
}

fn start(dir: &std::path::Path, extra: &[&str]) -> Server {
    let dir = dir.to_str().expect("utf-8 path");
    let mut args = vec!["--jobs-dir", dir];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// The value of the unlabelled sample `name` in a Prometheus text page.
fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Reads /metrics until `ready` holds (30 s at most); the page.
async fn wait_metric(server: &Server, ready: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let page = common::metrics_text(server).await;
        if ready(&page) {
            return page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/metrics never showed what was awaited:\n{page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Uploads `n` lines and creates a batch of them; the batch object.
async fn create_batch(server: &Server, n: usize) -> Value {
    create_batch_of(server, &input(n, 4)).await
}

/// A batch of the input file `content`.
async fn create_batch_of(server: &Server, content: &str) -> Value {
    let (status, file) = upload(server, None, content).await;
    assert_eq!(status, 200, "{file}");
    let body = json!({"input_file_id": file["id"], "endpoint": CHAT, "completion_window": "24h",
                      "metadata": {"job": "test"}});
    let (status, batch) = call(
        server,
        reqwest::Method::POST,
        "/v1/batches",
        None,
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{batch}");
    batch
}

#[tokio::test]
async fn batch_of_ten_lines_completes_with_each_custom_id_answered_once() {
    let dir = jobs_dir("complete");
    let server = start(&dir, &[]);
    let batch = create_batch(&server, 10).await;
    assert_eq!(batch["object"], "batch");
    assert_eq!(batch["request_counts"]["total"], 10);
    assert_eq!(batch["metadata"]["job"], "test");
    let id = batch["id"].as_str().expect("id");
    let done = wait_batch(&server, id, |b| b["status"] == "completed").await;
    assert_eq!(done["request_counts"]["completed"], 10, "{done}");
    assert_eq!(done["request_counts"]["failed"], 0);
    assert!(done["error_file_id"].is_null());
    assert!(done["completed_at"].is_u64());
    let output = done["output_file_id"].as_str().expect("output file");
    let counts = answers(&file_lines(&server, output).await);
    assert_eq!(counts.len(), 10);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    // The worker's metrics: ten lines completed, none failed, none running now.
    let metrics = common::metrics_text(&server).await;
    for line in [
        "inferd_jobs_lines_total{inferd_jobs_outcome=\"completed\"} 10",
        "inferd_jobs_lines_total{inferd_jobs_outcome=\"failed\"} 0",
        "inferd_jobs_running 0",
    ] {
        assert!(
            metrics.lines().any(|l| l.starts_with(line)),
            "{line} missing from /metrics:\n{metrics}"
        );
    }

    // The queue's depth, read every few seconds, comes down to nothing waiting.
    wait_metric(&server, |m| {
        m.lines().any(|l| l == "inferd_jobs_queued 0")
            && m.lines().any(|l| l == "inferd_jobs_oldest_age_seconds 0")
    })
    .await;

    let (status, list) = get(&server, "/v1/batches?limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"][0]["id"], id);
    assert_eq!(list["first_id"], id);
    assert_eq!(list["has_more"], false);

    let (status, file) = get(&server, &format!("/v1/files/{output}")).await;
    assert_eq!(status, 200);
    assert_eq!(file["purpose"], "batch_output");
    let (status, files) = get(&server, "/v1/files").await;
    assert_eq!(status, 200);
    assert_eq!(files["data"].as_array().map(Vec::len), Some(2));
    let (status, deleted) = call(
        &server,
        reqwest::Method::DELETE,
        &format!("/v1/files/{output}"),
        None,
        None,
    )
    .await;
    assert_eq!((status, &deleted["deleted"]), (200, &json!(true)));
    let (status, _) = get(&server, &format!("/v1/files/{output}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn malformed_input_and_unknown_ids_get_openai_errors() {
    let dir = jobs_dir("errors");
    let server = start(&dir, &["--max-file-bytes", "4096"]);
    let good = input(2, 4);
    let bad_json = format!("{good}{{\"custom_id\": nope\n");
    let (status, body) = upload(&server, None, &bad_json).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("line 3"), "{message}");
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let duplicate = format!("{good}{}", input(1, 4));
    let (status, body) = upload(&server, None, &duplicate).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("line 3") && message.contains("duplicate"),
        "{message}"
    );

    let (status, body) = upload(&server, None, &input(40, 4)).await;
    assert_eq!(status, 413, "{body}");

    let (status, body) = get(&server, "/v1/batches/batch_nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "batch_not_found");
    let (status, _) = get(&server, "/v1/files/file-nope/content").await;
    assert_eq!(status, 404);
    let create =
        json!({"input_file_id": "file-nope", "endpoint": CHAT, "completion_window": "24h"});
    let (status, body) = call(
        &server,
        reqwest::Method::POST,
        "/v1/batches",
        None,
        Some(create),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let create = json!({"input_file_id": "file-nope", "endpoint": "/v1/embeddings", "completion_window": "24h"});
    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        "/v1/batches",
        None,
        Some(create),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn cancelled_batch_drops_its_pending_lines() {
    let dir = jobs_dir("cancel");
    let server = start(&dir, &[]);
    let batch = create_batch(&server, 60).await;
    let id = batch["id"].as_str().expect("id");
    cancel(&server, &format!("/v1/batches/{id}/cancel")).await;
    let done = wait_batch(&server, id, |b| b["status"] == "cancelled").await;
    let counts = &done["request_counts"];
    assert_eq!(counts["total"], 60);
    assert!(
        counts["completed"].as_u64().expect("completed") < 60,
        "{done}"
    );
    assert!(done["cancelled_at"].is_u64());
}

#[tokio::test]
async fn batch_resumes_after_the_server_is_killed() {
    const LINES: usize = 20;
    let dir = jobs_dir("restart");
    let server = start(&dir, &[]);
    // Lines that generate for a while (a story, 48 tokens): the kill below follows the scrape
    // that saw a line running by a few milliseconds, and must land inside that line.
    let lines = input_asking(LINES, 48, |i| {
        format!("Write a long story about the number {i}.")
    });
    let batch = create_batch_of(&server, &lines).await;
    let id = batch["id"].as_str().expect("id").to_owned();
    let partial = wait_batch(&server, &id, |b| {
        b["request_counts"]["completed"].as_u64().unwrap_or(0) >= 2
    })
    .await;
    // Killed while a line runs (the gauge counts a line from its claim to just before its
    // result is recorded): the next start takes that line up again.
    wait_metric(&server, |m| m.lines().any(|l| l == "inferd_jobs_running 1")).await;
    server.signal("KILL");
    drop(server);
    assert_eq!(
        partial["status"], "in_progress",
        "the batch ended before the kill"
    );

    let server = start(&dir, &[]);
    // The restarted process sees the lines left and how long the oldest has waited.
    let metrics = wait_metric(&server, |m| metric(m, "inferd_jobs_queued").is_some()).await;
    let queued = metric(&metrics, "inferd_jobs_queued").expect("queued");
    let age = metric(&metrics, "inferd_jobs_oldest_age_seconds").expect("age");
    assert!(queued >= 1.0 && age > 0.0, "{metrics}");
    let done = wait_batch(&server, &id, |b| b["status"] == "completed").await;
    let metrics = common::metrics_text(&server).await;
    assert_eq!(
        metric(&metrics, "inferd_jobs_retried_total"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(done["request_counts"]["completed"], LINES, "{done}");
    let output = done["output_file_id"].as_str().expect("output file");
    let counts = answers(&file_lines(&server, output).await);
    assert_eq!(counts.len(), LINES);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}

#[tokio::test]
async fn a_batch_past_its_window_ends_expired_keeping_what_ran() {
    let dir = jobs_dir("expiry");
    let server = start(&dir, &["--batch-expiry", "3"]);
    let batch = create_batch(&server, 200).await;
    let id = batch["id"].as_str().expect("id");
    let created = batch["created_at"].as_u64().expect("created_at");
    assert_eq!(batch["expires_at"].as_u64(), Some(created + 3));
    let done = wait_batch(&server, id, |b| b["status"] != "in_progress").await;
    assert_eq!(done["status"], "expired", "{done}");
    assert!(done["expired_at"].as_u64().expect("expired_at") >= created + 3);
    let counts = &done["request_counts"];
    let (completed, failed) = (
        counts["completed"].as_u64().expect("completed"),
        counts["failed"].as_u64().expect("failed"),
    );
    assert_eq!(completed + failed, 200, "{done}");
    assert!(completed >= 1 && failed >= 1, "{done}");
    let output = done["output_file_id"].as_str().expect("output file");
    assert_eq!(file_lines(&server, output).await.len() as u64, completed);
    let errors = file_lines(&server, done["error_file_id"].as_str().expect("error file")).await;
    assert_eq!(errors.len() as u64, failed);
    assert!(
        errors
            .iter()
            .all(|l| l["error"]["code"] == "batch_expired" && l["response"].is_null()),
        "{errors:?}"
    );
}

#[tokio::test]
async fn with_batch_concurrency_several_lines_run_at_once() {
    let dir = jobs_dir("concurrency");
    let server = start(&dir, &["--parallel", "4", "--batch-concurrency", "3"]);
    let batch = create_batch(&server, 30).await;
    let id = batch["id"].as_str().expect("id");
    wait_metric(&server, |m| {
        metric(m, "inferd_jobs_running").is_some_and(|n| n >= 2.0)
    })
    .await;
    let done = wait_batch(&server, id, |b| b["status"] == "completed").await;
    let output = done["output_file_id"].as_str().expect("output file");
    let counts = answers(&file_lines(&server, output).await);
    assert_eq!(counts.len(), 30);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}

#[tokio::test]
async fn batch_lines_run_in_the_trace_of_the_creating_request() {
    let dir = jobs_dir("trace");
    let server = start(&dir, &["--telemetry", "local"]);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (status, file) = upload(&server, None, &input(3, 4)).await;
    assert_eq!(status, 200);
    let response = client()
        .post(server.url("/v1/batches"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"input_file_id": file["id"], "endpoint": CHAT, "completion_window": "24h"}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let batch: Value = response.json().await.expect("json");
    let id = batch["id"].as_str().expect("id");
    wait_batch(&server, id, |b| b["status"] == "completed").await;
    // POST /v1/batches, then per line: process, chat, queue, infer.
    let spans = common::wait_for_trace(&server, trace_id, 1 + 3 * 4).await;
    let server_span = spans
        .iter()
        .find(|s| s["kind"] == "server")
        .expect("server span");
    let process: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == "process batches")
        .collect();
    assert_eq!(process.len(), 3, "{spans:?}");
    for (i, span) in process.iter().enumerate() {
        assert_eq!(span["kind"], "consumer");
        assert_eq!(span["parent_span_id"], server_span["span_id"]);
        let text = span.to_string();
        assert!(text.contains("messaging.message.id"), "{text}");
        assert!(text.contains(&format!("req-{i}")), "{text}");
    }
    let chats = spans
        .iter()
        .filter(|s| s["name"] == format!("chat {MODEL}"))
        .filter(|s| process.iter().any(|p| p["span_id"] == s["parent_span_id"]))
        .count();
    assert_eq!(chats, 3, "{spans:?}");
}

#[tokio::test]
async fn files_and_batches_of_another_key_are_not_found() {
    let dir = jobs_dir("keys");
    let (a, b) = ("sk-batches-key-a-0123456789", "sk-batches-key-b-0123456789");
    let server = start(&dir, &["--api-key", a, "--api-key", b]);
    let (status, file) = upload(&server, Some(a), &input(1, 4)).await;
    assert_eq!(status, 200, "{file}");
    let file_id = file["id"].as_str().expect("id");
    let path = format!("/v1/files/{file_id}");
    let (status, _) = call(&server, reqwest::Method::GET, &path, Some(b), None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&server, reqwest::Method::GET, &path, Some(a), None).await;
    assert_eq!(status, 200);
    let (_, files) = call(&server, reqwest::Method::GET, "/v1/files", Some(b), None).await;
    assert_eq!(files["data"], json!([]));
    let create = json!({"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h"});
    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        "/v1/batches",
        Some(b),
        Some(create.clone()),
    )
    .await;
    assert_eq!(status, 404);
    let (status, batch) = call(
        &server,
        reqwest::Method::POST,
        "/v1/batches",
        Some(a),
        Some(create),
    )
    .await;
    assert_eq!(status, 200, "{batch}");
    let path = format!("/v1/batches/{}", batch["id"].as_str().expect("id"));
    let (status, _) = call(&server, reqwest::Method::GET, &path, Some(b), None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&server, reqwest::Method::GET, "/v1/batches", None, None).await;
    assert_eq!(status, 401);

    // The operator (admin routes: loopback without --admin-token) sees and cancels any key's
    // (a batch long enough to be still running when cancelled).
    let (status, long) = upload(&server, Some(a), &input(60, 4)).await;
    assert_eq!(status, 200, "{long}");
    let create = json!({"input_file_id": long["id"], "endpoint": CHAT, "completion_window": "24h"});
    let (status, batch) = call(
        &server,
        reqwest::Method::POST,
        "/v1/batches",
        Some(a),
        Some(create),
    )
    .await;
    assert_eq!(status, 200, "{batch}");
    let batch_id = batch["id"].as_str().expect("id");
    let (status, all) = get(&server, "/admin/batches").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["data"][0]["id"], batch_id, "{all}");
    assert_eq!(all["data"].as_array().map(Vec::len), Some(2), "{all}");
    cancel(&server, &format!("/admin/batches/{batch_id}/cancel")).await;
}

#[tokio::test]
async fn interactive_requests_are_served_while_a_batch_runs() {
    let dir = jobs_dir("priority");
    // One slot: a batch line and an interactive request cannot run side by side, so the
    // interactive one is served only if the worker yields to it between lines.
    let server = start(&dir, &["--parallel", "1"]);
    let batch = create_batch(&server, 100).await;
    let id = batch["id"].as_str().expect("id");
    wait_batch(&server, id, |b| {
        b["request_counts"]["completed"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    for i in 0..3 {
        let body = json!({"model": MODEL, "messages": [{"role": "user", "content": format!("Hi {i}")}],
                          "max_tokens": 4, "temperature": 0});
        let (status, answer) = call(&server, reqwest::Method::POST, CHAT, None, Some(body)).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["object"], "chat.completion");
    }
    let (_, batch) = get(&server, &format!("/v1/batches/{id}")).await;
    assert_eq!(
        batch["status"], "in_progress",
        "the interactive requests waited for the whole batch: {batch}"
    );
}
