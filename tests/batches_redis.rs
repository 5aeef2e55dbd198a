//! The shared job store (`--jobs-redis`): several real inferd processes on one real Redis
//! (Debian's `redis-server`, started by each test on a free port) share a batch's lines, a
//! killed process's lines are taken over after the visibility timeout, any process answers
//! for any batch, and the store's Lua script ends a batch once however its last lines race.
//! In CI (env CI set) a missing redis-server fails; elsewhere the tests are skipped.

mod common;
#[path = "../crates/telemetry/tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use common::batches::{answers, cancel, file_lines, get, input, upload, wait_batch, CHAT};
use common::redis::Redis;
use common::{client, Server};
use inferd_jobs::redis_store::{Finished, GROUP, STREAM_KEY};
use inferd_jobs::{LineResult, NewBatch, RedisStore, TraceFields};
use serde_json::{json, Value};

/// An inferd on `redis` with a 1.5 s visibility timeout.
fn start(redis: &Redis, extra: &[&str]) -> Server {
    let mut args = vec![
        "--jobs-redis",
        redis.url.as_str(),
        "--jobs-visibility-timeout-ms",
        "1500",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Uploads `n` lines through `server`; the file id.
async fn upload_lines(server: &Server, n: usize) -> String {
    let (status, file) = upload(server, None, &input(n, 8)).await;
    assert_eq!(status, 200, "{file}");
    file["id"].as_str().expect("file id").to_owned()
}

/// Creates a batch of the file through `server`, in the trace `trace_id` when given.
async fn create_batch(server: &Server, file_id: &str, trace_id: Option<&str>) -> Value {
    let mut request = client()
        .post(server.url("/v1/batches"))
        .json(&json!({"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h"}));
    if let Some(trace_id) = trace_id {
        request = request.header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"));
    }
    let response = request.send().await.expect("send");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// The stream entries `consumer` has taken and not acknowledged.
async fn pending_of(redis: &Redis, consumer: &str) -> usize {
    let client = redis::Client::open(redis.url.as_str()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let pending: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(STREAM_KEY)
        .arg(GROUP)
        .arg("-")
        .arg("+")
        .arg(100)
        .arg(consumer)
        .query_async(&mut conn)
        .await
        .expect("xpending");
    pending.len()
}

fn consumer_name(server: &Server) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), server.pid())
}

#[tokio::test]
async fn two_processes_share_a_batch_and_lines_of_a_killed_one_are_taken_over() {
    let Some(redis) = common::redis::start("share") else {
        return;
    };
    let a = start(&redis, &["--telemetry", "local"]);
    let b = start(&redis, &[]);
    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4737";
    let file_id = upload_lines(&a, 30).await;
    let batch = create_batch(&a, &file_id, Some(trace_id)).await;
    let id = batch["id"].as_str().expect("id").to_owned();

    // B is killed while it holds a line, after it has run some.
    let b_name = consumer_name(&b);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, now) = get(&a, &format!("/v1/batches/{id}")).await;
        let completed = now["request_counts"]["completed"].as_u64().unwrap_or(0);
        if completed >= 4 && pending_of(&redis, &b_name).await > 0 {
            break;
        }
        assert_ne!(now["status"], "completed", "B never took a line: {now}");
        assert!(Instant::now() < deadline, "B never took a line: {now}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    b.signal("KILL");
    drop(b);

    let done = wait_batch(&a, &id, |b| b["status"] == "completed").await;
    assert_eq!(done["request_counts"]["completed"], 30, "{done}");
    assert_eq!(done["request_counts"]["failed"], 0, "{done}");
    assert_eq!(
        pending_of(&redis, &b_name).await,
        0,
        "B's lines were not taken over"
    );
    let output = done["output_file_id"].as_str().expect("output file");

    // A third process, which neither created nor ran the batch, answers for it.
    let c = start(&redis, &[]);
    let (status, seen) = get(&c, &format!("/v1/batches/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(seen["status"], "completed");
    let counts = answers(&file_lines(&c, output).await);
    assert_eq!(counts.len(), 30, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");

    // A's lines are in the creating request's trace, under the PRODUCER span.
    let spans = common::wait_for_trace(&a, trace_id, 3).await;
    let server_span = spans
        .iter()
        .find(|s| s["kind"] == "server")
        .expect("server span");
    let send = spans
        .iter()
        .find(|s| s["name"] == "send batches")
        .expect("send batches span");
    assert_eq!(send["kind"], "producer");
    assert_eq!(send["parent_span_id"], server_span["span_id"]);
    let text = send.to_string();
    assert!(text.contains("messaging.batch.message_count"), "{text}");
    assert!(text.contains(STREAM_KEY), "{text}");
    let process: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == "process batches")
        .collect();
    assert!(!process.is_empty(), "{spans:?}");
    for span in process {
        assert_eq!(span["kind"], "consumer");
        assert_eq!(span["parent_span_id"], send["span_id"]);
        assert!(span.to_string().contains("redis"), "{span}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_one_trace_at_a_real_otlp_receiver_whichever_process_ran_its_lines() {
    let Some(redis) = common::redis::start("otlp") else {
        return;
    };
    let (endpoint, received) = support::grpc_receiver().await;
    let url = redis.url.clone();
    let (a, b) = tokio::task::spawn_blocking(move || {
        let start = |name: &str| {
            Server::start_env(
                &["--jobs-redis", url.as_str(), "--telemetry", "otlp"],
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                    ("OTEL_BSP_SCHEDULE_DELAY", "100"),
                    ("OTEL_METRICS_EXPORTER", "none"),
                    ("OTEL_LOGS_EXPORTER", "none"),
                    ("OTEL_SERVICE_NAME", name),
                ],
            )
        };
        (start("inferd-a"), start("inferd-b"))
    })
    .await
    .expect("servers start");
    let caller_trace = "6cf92f3577b34da6a3ce929d0e0e4738";
    let file_id = upload_lines(&a, 6).await;
    let batch = create_batch(&a, &file_id, Some(caller_trace)).await;
    let id = batch["id"].as_str().expect("id").to_owned();
    wait_batch(&a, &id, |b| b["status"] == "completed").await;

    // The creating request, the PRODUCER span, and per line a CONSUMER span with its chat
    // span below, all in the caller's trace.
    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = received
            .all()
            .into_iter()
            .filter(|s| s.trace_id() == caller_trace)
            .collect();
        let chats = spans
            .iter()
            .filter(|s| s.span.name.starts_with("chat "))
            .count();
        if chats == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names: Vec<&str> = spans.iter().map(|s| s.span.name.as_str()).collect();
    let server_span = spans
        .iter()
        .find(|s| s.span.name == "POST /v1/batches")
        .unwrap_or_else(|| panic!("no server span: {names:?}"));
    assert_eq!(server_span.parent_span_id(), "00f067aa0ba902b7");
    // SpanKind: SERVER = 2, PRODUCER = 4, CONSUMER = 5.
    let send = spans
        .iter()
        .find(|s| s.span.name == "send batches")
        .unwrap_or_else(|| panic!("no send span: {names:?}"));
    assert_eq!(send.span.kind, 4);
    assert_eq!(send.parent_span_id(), server_span.span_id());
    assert_eq!(send.attr("messaging.system").as_deref(), Some("redis"));
    assert_eq!(
        send.attr("messaging.batch.message_count").as_deref(),
        Some("6")
    );
    let process: Vec<_> = spans
        .iter()
        .filter(|s| s.span.name == "process batches")
        .collect();
    assert_eq!(process.len(), 6, "{names:?}");
    let mut services = std::collections::BTreeSet::new();
    for line in &process {
        assert_eq!(line.span.kind, 5);
        assert_eq!(line.parent_span_id(), send.span_id());
        assert_eq!(line.attr("messaging.system").as_deref(), Some("redis"));
        assert_eq!(
            line.attr("messaging.destination.name").as_deref(),
            Some(STREAM_KEY)
        );
        assert_eq!(
            line.attr("messaging.operation.type").as_deref(),
            Some("process")
        );
        assert!(
            spans
                .iter()
                .any(|s| s.span.name.starts_with("chat ") && s.parent_span_id() == line.span_id()),
            "line {:?} has no chat span below it: {names:?}",
            line.attr("messaging.message.id")
        );
        services.insert(line.resource_attr("service.name"));
    }
    // Both processes were waiting on the stream, so both ran lines of the batch.
    assert_eq!(services.len(), 2, "{services:?}");
    drop(b);
}

#[tokio::test]
async fn cancelled_batch_on_redis_drops_its_lines_not_yet_run() {
    let Some(redis) = common::redis::start("cancel") else {
        return;
    };
    let server = start(&redis, &[]);
    let file_id = upload_lines(&server, 30).await;
    let batch = create_batch(&server, &file_id, None).await;
    let id = batch["id"].as_str().expect("id").to_owned();
    wait_batch(&server, &id, |b| {
        b["request_counts"]["completed"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    cancel(&server, &format!("/v1/batches/{id}/cancel")).await;
    let done = wait_batch(&server, &id, |b| b["status"] == "cancelled").await;
    let completed = done["request_counts"]["completed"].as_u64().expect("count");
    assert!(completed < 30, "{done}");
    assert!(done["cancelled_at"].is_u64(), "{done}");
    if completed > 0 {
        let output = done["output_file_id"].as_str().expect("output file");
        assert_eq!(
            answers(&file_lines(&server, output).await).len() as u64,
            completed
        );
    }
}

#[tokio::test]
async fn lines_of_a_batch_past_its_window_are_not_run_and_end_it_expired() {
    let Some(redis) = common::redis::start("expiry") else {
        return;
    };
    let store = RedisStore::connect(&redis.url, "w", Duration::from_secs(60))
        .await
        .expect("connect");
    let lines = inferd_jobs::input::parse(input(3, 8).as_bytes()).expect("input");
    let expired = NewBatch {
        expires_in: 0,
        ..new_batch()
    };
    let batch = store.create_batch(expired, lines).await.expect("create");
    assert!(store.claim_next().await.expect("claim").is_none());
    let (batch, _) = store
        .batch(&batch.id)
        .await
        .expect("batch")
        .expect("exists");
    assert_eq!(batch.status, inferd_jobs::BatchStatus::Expired);
    assert!(batch.expired_at.is_some());
    assert_eq!(batch.request_counts.failed, 3);
    assert!(batch.output_file_id.is_none());
    let errors = batch.error_file_id.expect("error file");
    let text = String::from_utf8(
        store
            .file_content(&errors)
            .await
            .expect("content")
            .expect("bytes"),
    )
    .expect("utf-8");
    assert_eq!(text.matches("\"batch_expired\"").count(), 3, "{text}");
}

fn result(custom_id: &str) -> LineResult {
    LineResult {
        custom_id: custom_id.to_owned(),
        failed: false,
        json: json!({"custom_id": custom_id, "response": {"status_code": 200}}).to_string(),
    }
}

fn new_batch() -> NewBatch {
    NewBatch {
        endpoint: CHAT.into(),
        input_file_id: "file-test".into(),
        completion_window: "24h".into(),
        metadata: None,
        owner: None,
        trace: TraceFields::default(),
        expires_in: 24 * 3600,
    }
}

#[tokio::test]
async fn two_workers_finishing_the_last_lines_at_once_end_the_batch_once() {
    let Some(redis) = common::redis::start("finish") else {
        return;
    };
    let visibility = Duration::from_secs(60);
    let w1 = RedisStore::connect(&redis.url, "w1", visibility)
        .await
        .expect("connect");
    let w2 = RedisStore::connect(&redis.url, "w2", visibility)
        .await
        .expect("connect");
    let lines = inferd_jobs::input::parse(input(2, 8).as_bytes()).expect("input");
    let batch = w1.create_batch(new_batch(), lines).await.expect("create");
    let first = w1.claim_next().await.expect("claim").expect("a line");
    let second = w2.claim_next().await.expect("claim").expect("a line");
    assert_ne!(first.line.index, second.line.index);

    // The two last lines end at once; the same line delivered twice ends nothing more.
    let (one, two) = (
        result(&first.line.custom_id),
        result(&second.line.custom_id),
    );
    let (r1, r2, r3) = tokio::join!(
        w1.finish_line(&first, Some(&one)),
        w2.finish_line(&second, Some(&two)),
        w2.finish_line(&second, Some(&two)),
    );
    let outcomes = [
        r1.expect("finish"),
        r2.expect("finish"),
        r3.expect("finish"),
    ];
    let ended = outcomes.iter().filter(|o| **o == Finished::Ended).count();
    assert_eq!(ended, 1, "{outcomes:?}");
    let again = w1.finish_line(&first, Some(&one)).await.expect("finish");
    assert_eq!(again, Finished::Recorded);

    let (done, _) = w1.batch(&batch.id).await.expect("batch").expect("exists");
    assert_eq!(done.status, inferd_jobs::BatchStatus::Completed);
    assert_eq!(done.request_counts.completed, 2);
    let outputs: Vec<_> = w1
        .files(None)
        .await
        .expect("files")
        .into_iter()
        .filter(|f| f.purpose == "batch_output")
        .collect();
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert_eq!(Some(outputs[0].id.clone()), done.output_file_id);
    let content = w1
        .file_content(&outputs[0].id)
        .await
        .expect("content")
        .expect("bytes");
    let text = String::from_utf8(content).expect("utf-8");
    let ids: Vec<&str> = text
        .lines()
        .map(|l| {
            if l.contains("\"req-0\"") {
                "req-0"
            } else {
                "req-1"
            }
        })
        .collect();
    assert_eq!(ids, ["req-0", "req-1"], "{text}");
}

#[tokio::test]
async fn a_line_given_back_by_a_stopping_process_is_taken_over_at_once() {
    let Some(redis) = common::redis::start("release") else {
        return;
    };
    let visibility = Duration::from_secs(600);
    let stopping = RedisStore::connect(&redis.url, "stopping", visibility)
        .await
        .expect("connect");
    let other = RedisStore::connect(&redis.url, "other", visibility)
        .await
        .expect("connect");
    let lines = inferd_jobs::input::parse(input(1, 8).as_bytes()).expect("input");
    stopping
        .create_batch(new_batch(), lines)
        .await
        .expect("create");
    let depth = stopping.depth().await.expect("depth");
    assert_eq!((depth.waiting, depth.taken), (1, 0), "{depth:?}");
    let taken = stopping.claim_next().await.expect("claim").expect("a line");
    assert_eq!(taken.line.attempts, 1);
    let depth = other.depth().await.expect("depth");
    assert_eq!((depth.waiting, depth.taken), (0, 1), "{depth:?}");
    let queued = depth.oldest_queued_ms.expect("oldest line's time");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(queued <= now_ms && now_ms - queued < 60_000, "{queued}");
    assert!(
        other.claim_next().await.expect("claim").is_none(),
        "a line held within the visibility timeout is not taken over"
    );
    stopping.release(&taken).await.expect("release");
    let again = other
        .claim_next()
        .await
        .expect("claim")
        .expect("taken over");
    assert_eq!(again.line.custom_id, taken.line.custom_id);
    assert_eq!(again.entry_id, taken.entry_id);
    assert_eq!(again.line.attempts, 2, "the taken-over line is a retry");
    other
        .finish_line(&again, Some(&result(&again.line.custom_id)))
        .await
        .expect("finish");
    let depth = other.depth().await.expect("depth");
    assert_eq!(depth, inferd_jobs::QueueDepth::default());
}
