//! The Files API: POST /v1/files (multipart, purpose `batch`, a JSONL file checked line by
//! line), GET /v1/files, GET /v1/files/{id}, GET /v1/files/{id}/content, DELETE
//! /v1/files/{id}. With API keys on, a file belongs to the key that uploaded it; other keys
//! get 404.

use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use inferd_jobs::{FileObject, JobQueue, JobsError};
use serde_json::json;

use crate::auth::ApiKeyId;
use crate::batch_worker::Jobs;
use crate::error::ApiError;
use crate::AppState;

/// The only upload purpose accepted.
const PURPOSE_BATCH: &str = "batch";

/// The caller's key id (`None` when keys are off).
pub(super) fn caller(key: Option<&Extension<ApiKeyId>>) -> Option<&str> {
    key.map(|Extension(ApiKeyId(id))| id.as_str())
}

/// Whether something of `owner` is visible to `caller`: everything is when keys are off.
pub(super) fn visible(owner: Option<&str>, caller: Option<&str>) -> bool {
    caller.is_none() || owner == caller
}

/// The job store, or 503 when it could not be opened at start-up.
pub(super) fn jobs(state: &AppState) -> Result<&Jobs, ApiError> {
    state.jobs.as_ref().ok_or_else(|| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: "the job store is not available (see the server's start-up log)".into(),
        kind: "server_error",
        param: None,
        code: Some("jobs_unavailable"),
    })
}

/// The job store in use, or 503 when it could not be opened at start-up.
pub(super) fn store(state: &AppState) -> Result<&JobQueue, ApiError> {
    Ok(&jobs(state)?.store)
}

/// A failed store operation as a 500 (logged).
pub(super) fn store_error(e: JobsError) -> ApiError {
    tracing::error!(error = %e, "job store operation failed");
    ApiError::internal(format!("job store error: {e}"))
}

fn file_not_found(id: &str) -> ApiError {
    ApiError::not_found("file_not_found", format!("no file with id `{id}`"))
}

fn multipart_error(state: &AppState, e: &MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(state.config.max_file_bytes)
    } else {
        ApiError::invalid(
            None,
            format!("cannot read the multipart body: {}", e.body_text()),
        )
    }
}

/// POST /v1/files.
pub async fn upload(
    State(state): State<AppState>,
    key: Option<Extension<ApiKeyId>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    jobs(&state)?;
    let mut multipart = multipart.map_err(|e| {
        ApiError::invalid(
            None,
            format!("send the file as multipart/form-data: {}", e.body_text()),
        )
    })?;
    let (mut purpose, mut file) = (None, None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(&state, &e))?
    {
        match field.name() {
            Some("purpose") => {
                purpose = Some(
                    field
                        .text()
                        .await
                        .map_err(|e| multipart_error(&state, &e))?,
                );
            }
            Some("file") => {
                let name = field.file_name().unwrap_or("input.jsonl").to_owned();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| multipart_error(&state, &e))?;
                file = Some((name, bytes));
            }
            _ => {}
        }
    }
    let purpose = purpose
        .ok_or_else(|| ApiError::invalid(Some("purpose".into()), "`purpose` is required"))?;
    if purpose != PURPOSE_BATCH {
        return Err(ApiError::invalid(
            Some("purpose".into()),
            format!("purpose `{purpose}` is not supported: only `batch` is"),
        ));
    }
    let (filename, bytes) =
        file.ok_or_else(|| ApiError::invalid(Some("file".into()), "`file` is required"))?;
    if bytes.len() > state.config.max_file_bytes {
        return Err(ApiError::too_large(state.config.max_file_bytes));
    }
    inferd_jobs::input::parse(&bytes).map_err(|e| {
        ApiError::invalid(
            Some("file".into()),
            format!("invalid batch input file: {e}"),
        )
    })?;
    let owner = caller(key.as_ref()).map(str::to_owned);
    let file = store(&state)?
        .put_file(&purpose, &filename, bytes.to_vec(), owner)
        .await
        .map_err(store_error)?;
    Ok(Json(file).into_response())
}

/// The file `id` if the caller may see it.
async fn find(
    state: &AppState,
    key: Option<&Extension<ApiKeyId>>,
    id: &str,
) -> Result<FileObject, ApiError> {
    let found = store(state)?.file(id).await.map_err(store_error)?;
    match found {
        Some((file, owner)) if visible(owner.as_deref(), caller(key)) => Ok(file),
        _ => Err(file_not_found(id)),
    }
}

/// GET /v1/files/{id}.
pub async fn get(
    State(state): State<AppState>,
    key: Option<Extension<ApiKeyId>>,
    Path(id): Path<String>,
) -> Result<Json<FileObject>, ApiError> {
    find(&state, key.as_ref(), &id).await.map(Json)
}

/// GET /v1/files/{id}/content.
pub async fn content(
    State(state): State<AppState>,
    key: Option<Extension<ApiKeyId>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    find(&state, key.as_ref(), &id).await?;
    let bytes = store(&state)?
        .file_content(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| file_not_found(&id))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// DELETE /v1/files/{id}.
pub async fn delete(
    State(state): State<AppState>,
    key: Option<Extension<ApiKeyId>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    find(&state, key.as_ref(), &id).await?;
    store(&state)?.delete_file(&id).await.map_err(store_error)?;
    Ok(Json(json!({"id": id, "object": "file", "deleted": true})))
}

/// GET /v1/files: the caller's files, newest first.
pub async fn list(
    State(state): State<AppState>,
    key: Option<Extension<ApiKeyId>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let owner = caller(key.as_ref()).map(str::to_owned);
    let files = store(&state)?.files(owner).await.map_err(store_error)?;
    Ok(Json(
        json!({"object": "list", "data": files, "has_more": false}),
    ))
}
