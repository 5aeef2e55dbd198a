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
use crate::validation::ValidRequest;
use crate::{validation, AppState};

pub async fn chat(
    State(state): State<AppState>,
    access: Option<Extension<AccessFacts>>,
    body: Result<JsonBody<ChatCompletionRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let JsonBody(req, raw, unknown) = body.map_err(|e| rejected(&state, e))?;
    let remote = || state.registry.is_remote(&req.model);
    let request = match validation::chat(&req) {
        Ok(request) if unknown.is_empty() || !remote() => request,
        // What inferd does not implement or know, an upstream may: rather than refused or
        // dropped, it goes on as the client sent it.
        Ok(_) => pass_through(&state, validation::chat_pass_through(&req, &raw), &unknown)?,
        Err(e) if e.is_unsupported() && remote() => {
            pass_through(&state, validation::chat_pass_through(&req, &raw), &unknown)?
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
    let JsonBody(req, raw, unknown) = body.map_err(|e| rejected(&state, e))?;
    let remote = || state.registry.is_remote(&req.model);
    let request = match validation::completion(&req) {
        Ok(request) if unknown.is_empty() || !remote() => request,
        Ok(_) => pass_through(
            &state,
            validation::completion_pass_through(&req, &raw),
            &unknown,
        )?,
        Err(e) if e.is_unsupported() && remote() => pass_through(
            &state,
            validation::completion_pass_through(&req, &raw),
            &unknown,
        )?,
        Err(e) => return Err(rejected(&state, e)),
    };
    generate(&state, Endpoint::Text, request, facts(access)).await
}

/// A request for an upstream, passed through as sent (`unknown`: the fields inferd has no
/// place for, if that is why).
fn pass_through(
    state: &AppState,
    request: Result<ValidRequest, ApiError>,
    unknown: &[String],
) -> Result<ValidRequest, ApiError> {
    if !unknown.is_empty() {
        tracing::debug!(fields = %unknown.join(", "), "passing the request through for its fields");
    }
    request.map_err(|e| rejected(state, e))
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
