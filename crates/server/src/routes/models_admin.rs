//! The admin API for local models: list every configured model with its state, and load or
//! unload one. Behind the admin guard (loopback only, or the admin token).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use inferd_engine::{ModelStatus, UnloadError};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::AppState;

/// GET /admin/models: local models (every state) and upstreams.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let models = state.registry.statuses();
    let upstreams = state.gateway.statuses();
    Json(json!({ "models": models, "upstreams": upstreams }))
}

fn find(state: &AppState, id: &str) -> Result<ModelStatus, ApiError> {
    state
        .registry
        .statuses()
        .into_iter()
        .find(|s| s.id == id || s.aliases.iter().any(|a| a == id))
        .ok_or_else(|| {
            ApiError::not_found(
                "model_not_found",
                format!("no local model `{id}` is configured (see GET /admin/models)"),
            )
        })
}

/// POST /admin/models/{id}/load: loads it (waiting for the load) unless it is ready.
pub async fn load(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let model = find(&state, &id)?;
    state
        .registry
        .ensure_loaded(&model.id, &opentelemetry::Context::current())
        .await
        .map_err(|e| ApiError::from_engine(e, "model"))?;
    let model = find(&state, &model.id)?;
    Ok(Json(model).into_response())
}

/// POST /admin/models/{id}/unload: unloads it when no request is using it (409 otherwise).
pub async fn unload(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let model = find(&state, &id)?;
    match state.registry.unload(&model.id, "admin") {
        Ok(()) => {
            let model = find(&state, &model.id)?;
            Ok(Json(model).into_response())
        }
        Err(UnloadError::NotFound(_)) => Err(ApiError::not_found(
            "model_not_found",
            format!("no local model `{id}` is configured"),
        )),
        Err(err @ UnloadError::NotLoaded(_)) => {
            Err(ApiError::conflict("model_not_loaded", err.to_string()))
        }
        Err(err @ UnloadError::Busy { .. }) => {
            Err(ApiError::conflict("model_busy", err.to_string()))
        }
    }
}
