//! The Batch API: POST /v1/batches, GET /v1/batches (paginated), GET /v1/batches/{id},
//! POST /v1/batches/{id}/cancel. A batch's lines are queued in the job store and run by the
//! batch worker; the creating request's trace context goes with them.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use inferd_jobs::input::BATCH_ENDPOINTS;
use inferd_jobs::redis_store::STREAM_KEY;
use inferd_jobs::{Batch, NewBatch, TraceFields};
use inferd_otel::semconv as sc;
use inferd_otel::{span_builder, OtelSpan};
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use serde::Deserialize;
use serde_json::{json, Value};

use super::files::{caller, jobs, store, store_error, visible};
use crate::auth::ApiKeyId;
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::AppState;

/// The only completion window offered (OpenAI's).
const COMPLETION_WINDOW: &str = "24h";
/// Page size of GET /v1/batches when `limit` is not given, and the largest allowed.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

/// The body of POST /v1/batches.
#[derive(Debug, Deserialize)]
pub struct CreateBatch {
    input_file_id: String,
    endpoint: String,
    completion_window: String,
    #[serde(default)]
    metadata: Option<Value>,
}

/// The query of GET /v1/batches.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
}

fn batch_not_found(id: &str) -> ApiError {
    ApiError::not_found("batch_not_found", format!("no batch with id `{id}`"))
}

/// POST /v1/batches.
pub async fn create(
    State(state): State<AppState>,
    key: Option<Extension<ApiKeyId>>,
    body: Result<JsonBody<CreateBatch>, ApiError>,
) -> Result<Json<Batch>, ApiError> {
    let JsonBody(req, _, _) = body?;
    if !BATCH_ENDPOINTS.contains(&req.endpoint.as_str()) {
        return Err(ApiError::invalid(
            Some("endpoint".into()),
            format!("endpoint must be one of {}", BATCH_ENDPOINTS.join(", ")),
        ));
    }
    if req.completion_window != COMPLETION_WINDOW {
        return Err(ApiError::invalid(
            Some("completion_window".into()),
            "completion_window must be \"24h\"",
        ));
    }
    if req
        .metadata
        .as_ref()
        .is_some_and(|m| !m.is_object() && !m.is_null())
    {
        return Err(ApiError::invalid(
            Some("metadata".into()),
            "metadata must be an object of strings",
        ));
    }
    let owner = caller(key.as_ref()).map(str::to_owned);
    let queue = store(&state)?;
    let found = match queue.file(&req.input_file_id).await.map_err(store_error)? {
        Some((file, owner)) => queue
            .file_content(&req.input_file_id)
            .await
            .map_err(store_error)?
            .map(|bytes| (file, owner, bytes)),
        None => None,
    };
    let not_found = || ApiError {
        param: Some("input_file_id".into()),
        ..ApiError::not_found(
            "file_not_found",
            format!("no file with id `{}`", req.input_file_id),
        )
    };
    let (file, bytes) = match found {
        Some((file, file_owner, bytes)) if visible(file_owner.as_deref(), owner.as_deref()) => {
            (file, bytes)
        }
        _ => return Err(not_found()),
    };
    if file.purpose != "batch" {
        return Err(ApiError::invalid(
            Some("input_file_id".into()),
            format!(
                "file `{}` has purpose `{}`, not `batch`",
                file.id, file.purpose
            ),
        ));
    }
    let lines = inferd_jobs::input::parse(&bytes).map_err(|e| {
        ApiError::invalid(
            Some("input_file_id".into()),
            format!("invalid input file: {e}"),
        )
    })?;
    if let Some((number, line)) = lines
        .iter()
        .enumerate()
        .find(|(_, line)| line.url != req.endpoint)
    {
        return Err(ApiError::invalid(
            Some("input_file_id".into()),
            format!(
                "line {}: url `{}` differs from the batch's endpoint `{}`",
                number + 1,
                line.url,
                req.endpoint
            ),
        ));
    }
    // With a shared queue, putting the lines on the stream is a PRODUCER span under the
    // SERVER span, and it is what the lines' spans descend from.
    let send = if queue.is_shared() {
        send_span(lines.len())
    } else {
        OtelSpan::none()
    };
    // The creating request's span (its SERVER span, or the send span) becomes the parent of
    // every line's span.
    let mut carrier = HashMap::new();
    {
        let _current = send.attach();
        inferd_otel::inject_current_into_map(&mut carrier);
    }
    let new = NewBatch {
        endpoint: req.endpoint,
        input_file_id: req.input_file_id,
        completion_window: req.completion_window,
        metadata: req.metadata.filter(|m| !m.is_null()),
        owner,
        trace: TraceFields::from_map(&carrier),
        expires_in: jobs(&state)?.batch_expiry.as_secs(),
    };
    let created = queue.create_batch(new, lines).await;
    if let Err(e) = &created {
        send.record_error("send_failed", &e.to_string());
    }
    send.end();
    let batch = created.map_err(store_error)?;
    jobs(&state)?.wake_worker();
    Ok(Json(batch))
}

/// The PRODUCER span of putting `count` lines on the Redis Stream, a child of the current span.
fn send_span(count: usize) -> OtelSpan {
    OtelSpan::start_in_current_with(sc::SPAN_SEND_BATCHES, || {
        span_builder(
            sc::SPAN_SEND_BATCHES,
            SpanKind::Producer,
            vec![
                KeyValue::new(sc::MESSAGING_SYSTEM, sc::MESSAGING_SYSTEM_REDIS),
                KeyValue::new(sc::MESSAGING_OPERATION_TYPE, "send"),
                KeyValue::new(sc::MESSAGING_OPERATION_NAME, "send"),
                KeyValue::new(sc::MESSAGING_DESTINATION_NAME, STREAM_KEY),
                KeyValue::new(
                    sc::MESSAGING_BATCH_MESSAGE_COUNT,
                    i64::try_from(count).unwrap_or(i64::MAX),
                ),
            ],
        )
    })
}

/// The batch `id` if the caller may see it.
async fn find(
    state: &AppState,
    key: Option<&Extension<ApiKeyId>>,
    id: &str,
) -> Result<Batch, ApiError> {
    match store(state)?.batch(id).await.map_err(store_error)? {
        Some((batch, owner)) if visible(owner.as_deref(), caller(key)) => Ok(batch),
        _ => Err(batch_not_found(id)),
    }
}

/// GET /v1/batches/{id}.
pub async fn get(
    State(state): State<AppState>,
    key: Option<Extension<ApiKeyId>>,
    Path(id): Path<String>,
) -> Result<Json<Batch>, ApiError> {
    find(&state, key.as_ref(), &id).await.map(Json)
}

/// POST /v1/batches/{id}/cancel.
pub async fn cancel(
    State(state): State<AppState>,
    key: Option<Extension<ApiKeyId>>,
    Path(id): Path<String>,
) -> Result<Json<Batch>, ApiError> {
    find(&state, key.as_ref(), &id).await?;
    store(&state)?
        .cancel_batch(&id)
        .await
        .map_err(store_error)?
        .map(Json)
        .ok_or_else(|| batch_not_found(&id))
}

/// GET /v1/batches?limit=N&after=ID: the caller's batches, newest first.
pub async fn list(
    State(state): State<AppState>,
    key: Option<Extension<ApiKeyId>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(None, e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            Some("limit".into()),
            format!("limit must be from 1 to {MAX_LIMIT}"),
        ));
    }
    let owner = caller(key.as_ref()).map(str::to_owned);
    let page = store(&state)?
        .batches(owner, query.after, limit)
        .await
        .map_err(store_error)?;
    let first_id = page.data.first().map(|b| b.id.clone());
    let last_id = page.data.last().map(|b| b.id.clone());
    Ok(Json(json!({
        "object": "list",
        "data": page.data,
        "first_id": first_id,
        "last_id": last_id,
        "has_more": page.has_more,
    })))
}
