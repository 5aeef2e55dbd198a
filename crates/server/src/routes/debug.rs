//! Operator endpoints backed by the telemetry crate: GET /metrics (Prometheus text) and
//! GET /debug/traces[/{trace_id}] (recent traces from the in-memory store).

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::AppState;

/// Most traces one listing returns.
const MAX_LISTED_TRACES: usize = 1000;

fn telemetry_off(what: &str) -> ApiError {
    ApiError::not_found(
        "telemetry_off",
        format!("{what} is not available: telemetry mode is off (see --telemetry)"),
    )
}

fn trace_store(state: &AppState) -> Result<&inferd_telemetry::TraceStore, ApiError> {
    state
        .telemetry
        .trace_store
        .as_ref()
        .ok_or_else(|| telemetry_off("/debug/traces"))
}

/// Prometheus text, or OpenMetrics with exemplars when the scraper's `Accept` asks for it.
pub async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let prometheus = state
        .telemetry
        .prometheus
        .as_ref()
        .ok_or_else(|| telemetry_off("/metrics"))?;
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(inferd_telemetry::wants_openmetrics);
    let (text, content_type) = if openmetrics {
        (
            prometheus.render_openmetrics(),
            inferd_telemetry::OPENMETRICS_TEXT,
        )
    } else {
        (prometheus.render(), inferd_telemetry::PROMETHEUS_TEXT)
    };
    let text = text.map_err(|e| ApiError::internal(format!("cannot render metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
}

pub async fn list_traces(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let store = trace_store(&state)?;
    let limit = query.limit.unwrap_or(100).min(MAX_LISTED_TRACES);
    Ok(Json(json!({ "traces": store.recent_traces(limit) })).into_response())
}

pub async fn get_trace(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
) -> Result<Response, ApiError> {
    match trace_store(&state)?.trace(&trace_id.to_ascii_lowercase()) {
        Some(trace) => Ok(Json(trace).into_response()),
        None => Err(ApiError::not_found(
            "trace_not_found",
            format!(
                "no trace `{trace_id}` in the recent-trace store (not sampled, evicted, or not finished yet)"
            ),
        )),
    }
}
