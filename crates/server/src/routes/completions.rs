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
    let JsonBody(req, raw) = body.map_err(|e| rejected(&state, e))?;
    let request = match validation::chat(&req) {
        Ok(request) => request,
        // What inferd does not implement, an upstream may: its request goes on as it is.
        Err(e) if e.is_unsupported() && state.registry.is_remote(&req.model) => {
            validation::chat_pass_through(&req, &raw).map_err(|e| rejected(&state, e))?
        }
        Err(e) => return Err(rejected(&state, e)),
    };
    generate(&state, Endpoint::Chat, request, facts(access)).await
}

pub async fn text(
    State(state): State<AppState>,
    access: Option<Extension<AccessFacts>>,
    body: Result<JsonBody<CompletionRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let JsonBody(req, raw) = body.map_err(|e| rejected(&state, e))?;
    let request = match validation::completion(&req) {
        Ok(request) => request,
        Err(e) if e.is_unsupported() && state.registry.is_remote(&req.model) => {
            validation::completion_pass_through(&req, &raw).map_err(|e| rejected(&state, e))?
        }
        Err(e) => return Err(rejected(&state, e)),
    };
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
