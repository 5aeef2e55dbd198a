//! POST /v1/embeddings: served by remote upstreams only (the request and the answer are passed
//! through, traced and metered like a generation); local models do not compute embeddings.

use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use inferd_openai::{Api, EmbeddingsRequest};

use super::{facts, rejected};
use crate::access::AccessFacts;
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::respond::generate;
use crate::{validation, AppState};

pub async fn embeddings(
    State(state): State<AppState>,
    access: Option<Extension<AccessFacts>>,
    body: Result<JsonBody<EmbeddingsRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let JsonBody(req, raw, _) = body.map_err(|e| rejected(&state, e))?;
    let route = state.registry.route(&req.model);
    if route.is_local() {
        return Err(rejected(
            &state,
            ApiError::unsupported(
                "model",
                format!(
                    "model `{}` is served by this server, which does not compute embeddings; \
                     embeddings are passed on to remote upstreams only",
                    req.model
                ),
            ),
        ));
    }
    // An unknown model gets its 404 (with the models there are) from `generate`.
    let request = validation::embeddings_pass_through(&req.model, &req.input, &raw)
        .map_err(|e| rejected(&state, e))?;
    generate(&state, Api::Embeddings, request, Some(route), facts(access)).await
}
