//! POST /v1/chat/completions and POST /v1/completions.

use axum::extract::State;
use axum::response::Response;

use crate::error::ApiError;
use crate::json::JsonBody;
use crate::openai::chat::ChatCompletionRequest;
use crate::openai::completions::CompletionRequest;
use crate::respond::{generate, Endpoint};
use crate::{validation, AppState};

pub async fn chat(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let request = validation::chat(&req)?;
    generate(&state, Endpoint::Chat, request).await
}

pub async fn text(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CompletionRequest>,
) -> Result<Response, ApiError> {
    let request = validation::completion(&req)?;
    generate(&state, Endpoint::Text, request).await
}
