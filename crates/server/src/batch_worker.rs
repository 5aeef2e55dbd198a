//! The batch worker: takes queued batch lines from the job store one at a time and runs each
//! through the same code as an interactive request ([`run_chat`], [`run_text`]), in a
//! CONSUMER span whose parent is the trace context of the request that created the batch.
//!
//! Batch lines yield to interactive requests: a line starts only while its model has no
//! request waiting for a slot, at most `--batch-concurrency` lines run at once (one by
//! default), so a batch holds at most that many of a model's slots, and the engine runs them
//! at batch priority (they sit out the steps of interactive prompts). The worker is the same
//! over either store ([`JobQueue`]); with Redis, each inferd process sharing it runs one such
//! worker, a consumer of the stream's group.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use inferd_engine::Priority;
use inferd_jobs::redis_store::STREAM_KEY;
use inferd_jobs::{Claim, JobQueue, Line, LineResult, QueueDepth};
use inferd_openai::{Api, ChatCompletionRequest, CompletionRequest};
use inferd_otel::semconv as sc;
use inferd_otel::{span_builder, OtelSpan};
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::access::AccessFacts;
use crate::error::ApiError;
use crate::routes::completions::{run_chat, run_text};
use crate::{json, AppState};

/// How often the worker looks at the store when nothing woke it (a line requeued by a
/// restart is found at start; new batches wake it at once).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How often a line waiting for its turn checks the model's queue again.
const TURN_POLL: Duration = Duration::from_millis(25);
/// How long the worker waits after a store error before trying again.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// How often the queue's depth is read for the metrics.
pub const DEPTH_REFRESH: Duration = Duration::from_secs(5);
/// The largest answer of one line read back (a generation's JSON body).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// What this process's worker has done, read by the metrics (`observe::observe_jobs`).
#[derive(Debug, Default)]
pub struct JobStats {
    /// Lines run and recorded with a 2xx answer.
    pub completed: AtomicU64,
    /// Lines run and recorded with another answer.
    pub failed: AtomicU64,
    /// Lines running now (at most the worker's concurrency).
    pub running: AtomicU64,
    /// Lines this process took up again after a worker stopped without finishing them.
    pub retried: AtomicU64,
    /// The whole queue as last read (every process sharing it), refreshed every
    /// [`DEPTH_REFRESH`]; `None` until the first read.
    pub depth: std::sync::Mutex<Option<QueueDepth>>,
}

impl JobStats {
    /// The queue's depth as last read.
    pub fn depth(&self) -> Option<QueueDepth> {
        *self.depth.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The job store and the worker's wake-up call; cheap to clone.
#[derive(Debug, Clone)]
pub struct Jobs {
    pub store: JobQueue,
    /// What the worker has done so far.
    pub stats: Arc<JobStats>,
    wake: Arc<Notify>,
    /// How often a running line tells a shared queue it is still being worked on.
    keep_alive: Duration,
    /// How long a new batch has to finish.
    pub batch_expiry: Duration,
    /// Most lines this process runs at once.
    concurrency: usize,
}

impl Jobs {
    /// `visibility`: how long a shared queue lets a taken line go unacknowledged before
    /// another process takes it over (the worker renews its claim well within that);
    /// `batch_expiry`: how long a new batch has to finish.
    pub fn new(store: JobQueue, visibility: Duration, batch_expiry: Duration) -> Self {
        Self {
            store,
            stats: Arc::default(),
            wake: Arc::new(Notify::new()),
            keep_alive: (visibility / 3).max(Duration::from_millis(10)),
            batch_expiry,
            concurrency: 1,
        }
    }

    /// Runs up to `lines` batch lines at once (at least one).
    pub fn with_concurrency(mut self, lines: usize) -> Self {
        self.concurrency = lines.max(1);
        self
    }

    /// Tells the worker there is new work.
    pub fn wake_worker(&self) {
        self.wake.notify_one();
    }
}

/// Starts the worker on the runtime when the state has a job store.
pub fn spawn(state: AppState) {
    if let Some(jobs) = state.jobs.clone() {
        tokio::spawn(read_depth(state.clone(), jobs.clone()));
        tokio::spawn(run(state, jobs));
    }
}

/// Reads the queue's depth every [`DEPTH_REFRESH`] for the metrics, while the server runs.
async fn read_depth(state: AppState, jobs: Jobs) {
    let mut every = tokio::time::interval(DEPTH_REFRESH);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !state.lifecycle.is_draining() {
        every.tick().await;
        match jobs.store.depth().await {
            Ok(depth) => {
                *jobs.stats.depth.lock().unwrap_or_else(|e| e.into_inner()) = Some(depth);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the batch queue's depth"),
        }
    }
}

async fn run(state: AppState, jobs: Jobs) {
    let mut lines = tokio::task::JoinSet::new();
    while !state.lifecycle.is_draining() {
        // At most `concurrency` lines at once: wait for one to end.
        if lines.len() >= jobs.concurrency {
            lines.join_next().await;
            continue;
        }
        match jobs.store.claim_next().await {
            Ok(Some(claim)) => {
                lines.spawn(run_line(state.clone(), jobs.clone(), claim));
            }
            Ok(None) if jobs.store.claim_waits() => {}
            Ok(None) => {
                tokio::select! {
                    () = jobs.wake.notified() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    Some(_) = lines.join_next(), if !lines.is_empty() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the batch queue");
                tokio::time::sleep(STORE_RETRY).await;
            }
        }
    }
    // Lines still running see the server stopping and give themselves back.
    while lines.join_next().await.is_some() {}
}

/// Runs one claimed line to its recorded result, or gives it back when the server stops.
async fn run_line(state: AppState, jobs: Jobs, claim: Claim) {
    if claim.retried() {
        jobs.stats.retried.fetch_add(1, Ordering::Relaxed);
    }
    jobs.stats.running.fetch_add(1, Ordering::Relaxed);
    let processed = process_keeping_claim(&state, &jobs, &claim).await;
    jobs.stats.running.fetch_sub(1, Ordering::Relaxed);
    let Some(result) = processed else {
        // Shutting down: the line is run again, by the next start (embedded) or by another
        // process sharing the Redis queue.
        if let Err(e) = jobs.store.release(&claim).await {
            tracing::warn!(error = %e, "cannot give back an unfinished batch line");
        }
        return;
    };
    let counter = if result.failed {
        &jobs.stats.failed
    } else {
        &jobs.stats.completed
    };
    match jobs.store.finish_line(claim, result).await {
        Ok(()) => {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => tracing::error!(error = %e, "cannot record a batch line's result"),
    }
}

/// Runs the claimed line, renewing the claim meanwhile so no other process takes it over.
async fn process_keeping_claim(state: &AppState, jobs: &Jobs, claim: &Claim) -> Option<LineResult> {
    let work = process(state, &jobs.store, claim.line());
    tokio::pin!(work);
    let mut renew = tokio::time::interval(jobs.keep_alive);
    renew.tick().await;
    loop {
        tokio::select! {
            result = &mut work => return result,
            _ = renew.tick() => {
                if let Err(e) = jobs.store.keep_alive(claim).await {
                    tracing::warn!(error = %e, "cannot renew the claim on a batch line");
                }
            }
        }
    }
}

/// Runs one line in its span; `None` when the server began stopping before it ended.
async fn process(state: &AppState, queue: &JobQueue, line: &Line) -> Option<LineResult> {
    let system = if queue.is_shared() {
        sc::MESSAGING_SYSTEM_REDIS
    } else {
        "inferd"
    };
    let destination = if queue.is_shared() {
        STREAM_KEY
    } else {
        "batches"
    };
    let parent = inferd_otel::extract_from_map(&line.trace.to_map());
    let tracer = state.telemetry.tracer.as_ref();
    let span = OtelSpan::start_opt(tracer, &parent, sc::SPAN_PROCESS_BATCHES, || {
        span_builder(
            sc::SPAN_PROCESS_BATCHES,
            SpanKind::Consumer,
            vec![
                KeyValue::new(sc::MESSAGING_SYSTEM, system),
                KeyValue::new(sc::MESSAGING_OPERATION_TYPE, "process"),
                KeyValue::new(sc::MESSAGING_OPERATION_NAME, "process"),
                KeyValue::new(sc::MESSAGING_DESTINATION_NAME, destination),
                KeyValue::new(sc::MESSAGING_MESSAGE_ID, line.custom_id.clone()),
                KeyValue::new(sc::INFERD_BATCH_ID, line.batch_id.clone()),
            ],
        )
    });
    let model = line.body.get("model").and_then(Value::as_str).unwrap_or("");
    wait_for_turn(state, model).await;
    if state.lifecycle.is_draining() {
        span.end();
        return None;
    }
    let response = span.run(answer(state, line)).await;
    if state.lifecycle.is_stopped() {
        span.end();
        return None;
    }
    let status = response.status();
    let body = match axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) => json!({"error": {"message": format!("cannot read the answer: {e}")}}),
    };
    let failed = !status.is_success();
    if failed {
        span.record_error("batch_line_failed", &format!("status {}", status.as_u16()));
    }
    span.end();
    let error = failed.then(|| {
        json!({
            "code": body.pointer("/error/code").cloned().unwrap_or(Value::Null),
            "message": body.pointer("/error/message").cloned().unwrap_or(Value::Null),
        })
    });
    let output = json!({
        "id": inferd_jobs::batch_request_id(),
        "custom_id": line.custom_id,
        "response": {
            "status_code": status.as_u16(),
            "request_id": format!("req_{:032x}", fastrand::u128(..)),
            "body": body,
        },
        "error": error,
    });
    Some(LineResult {
        custom_id: line.custom_id.clone(),
        failed,
        json: output.to_string(),
    })
}

/// Waits while `model` has interactive requests waiting for a slot (or the server stops).
async fn wait_for_turn(state: &AppState, model: &str) {
    loop {
        let waiting = state
            .registry
            .statuses()
            .into_iter()
            .find(|s| s.id == model || s.aliases.iter().any(|a| a == model))
            .and_then(|s| s.slots)
            .map_or(0, |load| load.waiting);
        if waiting == 0 || state.lifecycle.is_draining() {
            return;
        }
        tokio::time::sleep(TURN_POLL).await;
    }
}

/// The line's answer as the endpoint would give it to a client (never streamed).
async fn answer(state: &AppState, line: &Line) -> Response {
    let mut body = line.body.clone();
    if let Some(object) = body.as_object_mut() {
        object.remove("stream");
        object.remove("stream_options");
    }
    let raw = body.to_string().into_bytes();
    let access = AccessFacts::default();
    let answered = if line.url == Api::Completions.path() {
        match json::parse_noting_unknown::<CompletionRequest>(&raw) {
            Ok((req, unknown)) => {
                run_text(state, &req, &raw, &unknown, access, Priority::Batch).await
            }
            Err(e) => Err(e),
        }
    } else {
        match json::parse_noting_unknown::<ChatCompletionRequest>(&raw) {
            Ok((req, unknown)) => {
                run_chat(state, &req, &raw, &unknown, access, Priority::Batch).await
            }
            Err(e) => Err(e),
        }
    };
    answered.unwrap_or_else(ApiError::into_response)
}
