//! POST /v1/chat/completions and POST /v1/completions.

use axum::extract::State;
use axum::response::Response;
use axum::Extension;

use crate::access::AccessFacts;
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::openai::chat::ChatCompletionRequest;
use crate::openai::completions::CompletionRequest;
use crate::respond::{generate, Endpoint};
use crate::{validation, AppState};

pub async fn chat(
    State(state): State<AppState>,
    access: Option<Extension<AccessFacts>>,
    body: Result<JsonBody<ChatCompletionRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let request = body
        .and_then(|JsonBody(req)| validation::chat(&req))
        .map_err(|e| rejected(&state, e))?;
    generate(&state, Endpoint::Chat, request, facts(access)).await
}

pub async fn text(
    State(state): State<AppState>,
    access: Option<Extension<AccessFacts>>,
    body: Result<JsonBody<CompletionRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let request = body
        .and_then(|JsonBody(req)| validation::completion(&req))
        .map_err(|e| rejected(&state, e))?;
    generate(&state, Endpoint::Text, request, facts(access)).await
}

/// Reports a request refused before generation (the hooks record it) and hands the error back.
fn rejected(state: &AppState, error: ApiError) -> ApiError {
    let error_type = error.code.unwrap_or(error.kind);
    state.hooks.request_rejected(error_type, &error.message);
    error
}

/// The request's access-log facts (a detached set when the access log middleware is absent).
fn facts(access: Option<Extension<AccessFacts>>) -> AccessFacts {
    access.map(|Extension(facts)| facts).unwrap_or_default()
}
