//! POST /v1/chat/completions and POST /v1/completions.

use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use inferd_engine::{Priority, Route};
use inferd_openai::{Api, ChatCompletionRequest, CompletionRequest};

use super::{facts, rejected};
use crate::access::AccessFacts;
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::respond::generate;
use crate::validation::ValidRequest;
use crate::{limits, validation, AppState};

pub async fn chat(
    State(state): State<AppState>,
    access: Option<Extension<AccessFacts>>,
    body: Result<JsonBody<ChatCompletionRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let JsonBody(req, raw, unknown) = body.map_err(|e| rejected(&state, e))?;
    run_chat(
        &state,
        &req,
        &raw,
        &unknown,
        facts(access),
        Priority::Interactive,
    )
    .await
}

/// Runs a parsed chat request as POST /v1/chat/completions does (`raw`: the bytes it was
/// parsed from; `unknown`: the fields it had no place for). Batch lines come through here too,
/// with [`Priority::Batch`].
pub async fn run_chat(
    state: &AppState,
    req: &ChatCompletionRequest,
    raw: &[u8],
    unknown: &[String],
    access: AccessFacts,
    priority: Priority,
) -> Result<Response, ApiError> {
    limits::check_message_count(req.messages.len(), state.config.max_messages)
        .map_err(|e| rejected(state, e))?;
    let (mut request, route) = choose(state, &req.model, validation::chat(req), unknown, || {
        validation::chat_pass_through(req, raw)
    })?;
    request.generation.priority = priority;
    limits::apply(&mut request.generation, Api::Chat, state.config.max_tokens);
    generate(state, Api::Chat, request, route, access).await
}

pub async fn text(
    State(state): State<AppState>,
    access: Option<Extension<AccessFacts>>,
    body: Result<JsonBody<CompletionRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let JsonBody(req, raw, unknown) = body.map_err(|e| rejected(&state, e))?;
    run_text(
        &state,
        &req,
        &raw,
        &unknown,
        facts(access),
        Priority::Interactive,
    )
    .await
}

/// Runs a parsed text completion request as POST /v1/completions does (see [`run_chat`]).
pub async fn run_text(
    state: &AppState,
    req: &CompletionRequest,
    raw: &[u8],
    unknown: &[String],
    access: AccessFacts,
    priority: Priority,
) -> Result<Response, ApiError> {
    let (mut request, route) = choose(
        state,
        &req.model,
        validation::completion(req),
        unknown,
        || validation::completion_pass_through(req, raw),
    )?;
    request.generation.priority = priority;
    limits::apply(
        &mut request.generation,
        Api::Completions,
        state.config.max_tokens,
    );
    generate(state, Api::Completions, request, route, access).await
}

/// The request to run: inferd's own (`validated`), or, for a remote model, the client's as
/// sent (`pass_through`) when it uses what inferd does not implement (refused as unsupported)
/// or know (`unknown` fields): an upstream may, so it is neither refused nor dropped. The
/// model's route, when that choice needed it, comes back to be used for the call.
fn choose(
    state: &AppState,
    model: &str,
    validated: Result<ValidRequest, ApiError>,
    unknown: &[String],
    pass_through: impl FnOnce() -> Result<ValidRequest, ApiError>,
) -> Result<(ValidRequest, Option<Route>), ApiError> {
    let mut route = None;
    let mut remote = || {
        route
            .get_or_insert_with(|| state.registry.route(model))
            .is_remote()
    };
    let request = match validated {
        Ok(request) if unknown.is_empty() || !remote() => request,
        Err(e) if !(e.is_unsupported() && remote()) => return Err(rejected(state, e)),
        _ => {
            if !unknown.is_empty() {
                tracing::debug!(fields = %unknown.join(", "), "passing the request through for its fields");
            }
            pass_through().map_err(|e| rejected(state, e))?
        }
    };
    Ok((request, route))
}
