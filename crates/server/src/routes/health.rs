//! GET /health (the process answers) and GET /ready (the default model can serve).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use inferd_engine::ModelState;
use serde_json::{json, Value};

use crate::AppState;

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let Some(model) = state.registry.default_model() else {
        return (
            StatusCode::OK,
            Json(json!({ "status": "ready", "model": null })),
        );
    };
    match state.registry.state(model) {
        Some(ModelState::Ready(_)) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "model": model })),
        ),
        Some(ModelState::Failed(reason)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "failed", "model": model, "reason": reason })),
        ),
        Some(ModelState::Loading) | None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "loading", "model": model })),
        ),
    }
}
