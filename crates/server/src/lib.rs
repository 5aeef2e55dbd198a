//! The HTTP face of inferd: an OpenAI-compatible API over axum.
//!
//! [`router`] composes every route and layer in one place; handlers live in [`routes`], the
//! wire types in the `inferd_openai` crate, request checking in [`validation`], error rendering
//! in [`error`].

pub mod access;
pub mod admin;
pub mod auth;
pub mod batch_worker;
mod body_guard;
pub mod error;
pub mod json;
pub mod lifecycle;
pub mod limits;
pub mod listen;
pub mod observe;
pub mod respond;
pub mod routes;
pub mod validation;

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use inferd_engine::hooks::HooksBus;
use inferd_engine::ModelRegistry;
use inferd_telemetry::{PrometheusMetrics, TelemetryGuard, TraceStore};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::ApiError;

/// Settings of the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Whether prompts and completions are handed to observers (GenAI content capture,
    /// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`).
    pub capture_content: bool,
    /// Bearer token for operator endpoints (/debug/*); without one they answer loopback
    /// clients only.
    pub admin_token: Option<String>,
    /// Bearer token `/metrics` requires; without one it is open (for scrapers).
    pub metrics_token: Option<String>,
    /// Connection limits and timeouts, shutdown deadline included.
    pub connections: listen::ConnectionLimits,
    /// Most tokens one request may generate; a larger `max_tokens` is lowered to it.
    pub max_tokens: Option<u32>,
    /// Most messages in one chat request.
    pub max_messages: usize,
    /// Largest file POST /v1/files accepts; larger ones get 413.
    pub max_file_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            capture_content: false,
            admin_token: None,
            metrics_token: None,
            connections: listen::ConnectionLimits::default(),
            max_tokens: None,
            max_messages: 2048,
            max_file_bytes: 100 * 1024 * 1024,
        }
    }
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub registry: Arc<ModelRegistry>,
    /// The upstreams (the registry routes to them too): health for `/ready` and
    /// `/admin/models`, remote spans for `/debug/traces/{id}`.
    pub gateway: Arc<inferd_gateway::Gateway>,
    pub config: Arc<ServerConfig>,
    pub telemetry: TelemetryHandles,
    /// Generation observers (tracing and metrics plugins when telemetry is on).
    pub hooks: HooksBus,
    /// Shutdown phase (draining, stopping).
    pub lifecycle: lifecycle::Lifecycle,
    /// API keys /v1/* requires (none: open).
    pub api_keys: auth::ApiKeys,
    /// The job store of the Files and Batch API (none: those routes answer 503).
    pub jobs: Option<batch_worker::Jobs>,
}

/// The parts of telemetry that routes read; empty when telemetry is off.
#[derive(Debug, Clone, Default)]
pub struct TelemetryHandles {
    /// Starts the spans that continue a stored context (batch lines).
    pub tracer: Option<inferd_otel::Tracer>,
    pub trace_store: Option<TraceStore>,
    pub prometheus: Option<PrometheusMetrics>,
}

impl TelemetryHandles {
    /// The handles of an initialised telemetry guard.
    pub fn from_guard(guard: &TelemetryGuard) -> Self {
        Self {
            tracer: guard.tracer(),
            trace_store: guard.trace_store().cloned(),
            prometheus: guard.prometheus_metrics().cloned(),
        }
    }
}

/// All routes and layers except telemetry's (see [`serve`]).
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    let openai = Router::new()
        .route("/v1/chat/completions", post(routes::completions::chat))
        .route("/v1/completions", post(routes::completions::text))
        .route("/v1/embeddings", post(routes::embeddings::embeddings))
        .route("/v1/models", get(routes::models::list))
        .route(
            "/v1/files",
            get(routes::files::list).post(routes::files::upload).layer(
                // Multipart overhead (boundaries, the purpose field) on top of the file.
                DefaultBodyLimit::max(state.config.max_file_bytes.saturating_add(64 * 1024)),
            ),
        )
        .route(
            "/v1/files/{id}",
            get(routes::files::get).delete(routes::files::delete),
        )
        .route("/v1/files/{id}/content", get(routes::files::content))
        .route(
            "/v1/batches",
            get(routes::batches::list).post(routes::batches::create),
        )
        .route("/v1/batches/{id}", get(routes::batches::get))
        .route("/v1/batches/{id}/cancel", post(routes::batches::cancel));
    // Without keys the API is open and its requests skip the middleware altogether.
    let openai = if state.api_keys.is_enabled() {
        openai.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ))
    } else {
        openai
    };
    Router::new()
        .merge(openai)
        .route("/health", get(routes::health::health))
        .route("/ready", get(routes::health::ready))
        .route(
            "/metrics",
            get(routes::debug::metrics).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                admin::require_metrics_token,
            )),
        )
        .merge(
            Router::new()
                .route("/debug", get(routes::debug_ui::page))
                .route("/debug/", get(routes::debug_ui::page))
                .route("/debug/traces", get(routes::debug::list_traces))
                .route("/debug/traces/{trace_id}", get(routes::debug::get_trace))
                // Every key's batches, for operators (the handlers see no caller key).
                .route("/admin/batches", get(routes::batches::list))
                .route("/admin/batches/{id}", get(routes::batches::get))
                .route("/admin/batches/{id}/cancel", post(routes::batches::cancel))
                .route("/admin/models", get(routes::models_admin::list))
                .route("/admin/models/{id}/load", post(routes::models_admin::load))
                .route(
                    "/admin/models/{id}/unload",
                    post(routes::models_admin::unload),
                )
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    admin::require_admin,
                )),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(access::AccessLogLayer)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then drains: /ready turns 503, new connections are
/// refused, in-flight requests get until the shutdown deadline (see [`lifecycle`]). The
/// telemetry HTTP layer (SERVER span per request, `traceresponse`, HTTP metrics) wraps every
/// route unless telemetry is off, in which case the router is left untouched.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    telemetry: &TelemetryGuard,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.connections.clone();
    let lifecycle = state.lifecycle.clone();
    let app = inferd_telemetry::with_http_layer(router(state), telemetry);
    listen::run(listener, app, limits, lifecycle, shutdown).await
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::route_not_found(uri.path())
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown cause");
    tracing::error!(panic = detail, "request handler panicked");
    ApiError::internal("internal error while handling the request").into_response()
}
