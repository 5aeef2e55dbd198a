//! GET /health (the process answers) and GET /ready (the default model can serve, the
//! upstreams are healthy as the readiness policy asks, and the server is not shutting down).

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
    if state.lifecycle.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting_down" })),
        );
    }
    let gateway = &state.gateway;
    let upstreams = gateway.statuses();
    let model = state.registry.default_model();
    let startup = model.is_some_and(|m| {
        state
            .registry
            .statuses()
            .iter()
            .any(|s| s.id == m && s.load_at_startup)
    });
    let (status, reason) = match model.map(|m| state.registry.state(m)) {
        None | Some(Some(ModelState::Ready(_) | ModelState::Unloading)) => ("ready", None),
        // A model loaded on first use can serve (it loads then).
        Some(Some(ModelState::Available)) if !startup => ("ready", None),
        Some(Some(ModelState::Failed(reason))) => ("failed", Some(reason)),
        Some(
            Some(ModelState::Available | ModelState::Downloading | ModelState::Loading) | None,
        ) => ("loading", None),
    };
    let (status, reason) = if status == "ready" && !gateway.ready() {
        (
            "upstreams_unavailable",
            Some("the upstreams are not healthy as the readiness policy requires".to_owned()),
        )
    } else {
        (status, reason)
    };
    let mut body = json!({ "status": status, "model": model });
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    if !upstreams.is_empty() {
        body["upstreams"] = json!(upstreams);
    }
    let code = if status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use inferd_engine::hooks::HooksBus;
    use inferd_engine::ModelRegistry;

    use super::*;

    #[tokio::test]
    async fn ready_turns_503_as_soon_as_shutdown_begins() {
        let state = AppState {
            registry: Arc::new(ModelRegistry::new(Vec::new(), HooksBus::default())),
            gateway: Arc::default(),
            config: Arc::default(),
            telemetry: crate::TelemetryHandles::default(),
            hooks: HooksBus::default(),
            lifecycle: crate::lifecycle::Lifecycle::default(),
            api_keys: crate::auth::ApiKeys::default(),
            jobs: None,
        };
        let (status, _) = ready(State(state.clone())).await;
        assert_eq!(status, StatusCode::OK);
        state.lifecycle.start_draining();
        let (status, Json(body)) = ready(State(state)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "shutting_down");
    }
}
