//! GET /v1/models.

use axum::extract::State;
use axum::Json;
use inferd_openai::{ModelCard, ModelList};

use crate::AppState;

pub async fn list(State(state): State<AppState>) -> Json<ModelList> {
    let data = state
        .registry
        .list_ready()
        .into_iter()
        .map(|m| ModelCard {
            id: m.id,
            object: "model",
            created: m.created,
            owned_by: m.info.owned_by.to_string(),
            context_length: (m.info.context_length > 0).then_some(m.info.context_length),
        })
        .collect();
    Json(ModelList {
        object: "list",
        data,
    })
}
