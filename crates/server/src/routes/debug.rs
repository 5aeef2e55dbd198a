//! Operator endpoints backed by the telemetry crate: GET /metrics (Prometheus text) and
//! GET /debug/traces[/{trace_id}] (recent traces from the in-memory store, filtered and sorted
//! on the server; a trace with its log lines). The page that shows them is in `debug_ui`.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use inferd_telemetry::{StatusFilter, TraceOrder, TraceQuery};
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

/// Traces one listing returns unless `limit` says otherwise.
const DEFAULT_LISTED_TRACES: usize = 100;

/// The query string of GET /debug/traces, as text: every value is checked by
/// [`ListQuery::parse`], so a wrong one is answered with what was expected. An empty value
/// counts as absent (an empty filter field of the viewer's form).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Most traces returned (at most [`MAX_LISTED_TRACES`]).
    limit: Option<String>,
    /// The root span's `http.route`, exactly.
    route: Option<String>,
    /// `gen_ai.request.model`, exactly.
    model: Option<String>,
    /// The root span's status code (`404`) or class (`5xx`).
    status: Option<String>,
    /// `true`: only traces with an error span.
    error: Option<String>,
    /// Only traces lasting at least this many milliseconds.
    min_duration_ms: Option<String>,
    /// `time` (newest first, the default) or `duration` (longest first).
    sort: Option<String>,
}

/// A present, non-empty query value.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl ListQuery {
    /// The store query and the limit, or a 400 naming the parameter.
    fn parse(&self) -> Result<(TraceQuery, usize), ApiError> {
        let limit = match given(&self.limit) {
            None => DEFAULT_LISTED_TRACES,
            Some(text) => text.parse::<usize>().map_err(|_| {
                ApiError::invalid(
                    Some("limit".to_owned()),
                    format!("limit `{text}` is not a whole number of traces"),
                )
            })?,
        };
        let status = given(&self.status)
            .map(str::parse::<StatusFilter>)
            .transpose()
            .map_err(|e| ApiError::invalid(Some("status".to_owned()), e.to_string()))?;
        let errors_only = match given(&self.error) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::invalid(
                    Some("error".to_owned()),
                    format!("error `{other}` must be `true` or `false`"),
                ))
            }
        };
        let min_duration = given(&self.min_duration_ms)
            .map(|text| {
                text.parse::<f64>()
                    .ok()
                    .filter(|ms| ms.is_finite() && *ms >= 0.0)
                    .map(|ms| Duration::from_secs_f64(ms / 1000.0))
                    .ok_or_else(|| {
                        ApiError::invalid(
                            Some("min_duration_ms".to_owned()),
                            format!("min_duration_ms `{text}` is not a number of milliseconds (0 or more)"),
                        )
                    })
            })
            .transpose()?;
        let order = match given(&self.sort) {
            None | Some("time") => TraceOrder::Newest,
            Some("duration") => TraceOrder::Slowest,
            Some(other) => {
                return Err(ApiError::invalid(
                    Some("sort".to_owned()),
                    format!(
                    "sort `{other}` must be `time` (newest first) or `duration` (longest first)"
                ),
                ))
            }
        };
        let query = TraceQuery {
            route: given(&self.route).map(str::to_owned),
            model: given(&self.model).map(str::to_owned),
            status,
            errors_only,
            min_duration,
            order,
        };
        Ok((query, limit.min(MAX_LISTED_TRACES)))
    }
}

/// GET /debug/traces: the stored traces the query selects (see [`ListQuery`]).
pub async fn list_traces(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let store = trace_store(&state)?;
    let Query(query) = query.map_err(|e| {
        ApiError::invalid(
            None,
            format!(
                "{}; /debug/traces takes limit, route, model, status, error, min_duration_ms and sort",
                e.body_text()
            ),
        )
    })?;
    let (query, limit) = query.parse()?;
    Ok(Json(json!({ "traces": store.find_traces(&query, limit) })).into_response())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Result<(TraceQuery, usize), ApiError> {
        let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let uri: axum::http::Uri = format!("/debug/traces?{}", text.join("&"))
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let Query(list) = Query::<ListQuery>::try_from_uri(&uri).unwrap_or_else(|e| panic!("{e}"));
        list.parse()
    }

    #[test]
    fn every_filter_and_order_is_read_and_empty_values_are_absent() {
        let (q, limit) = query(&[
            ("limit", "5"),
            ("route", "/v1/chat/completions"),
            ("model", "smollm2-135m"),
            ("status", "5xx"),
            ("error", "true"),
            ("min_duration_ms", "12.5"),
            ("sort", "duration"),
        ])
        .unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(limit, 5);
        assert_eq!(
            q,
            TraceQuery {
                route: Some("/v1/chat/completions".into()),
                model: Some("smollm2-135m".into()),
                status: Some(StatusFilter::Class(5)),
                errors_only: true,
                min_duration: Some(Duration::from_micros(12_500)),
                order: TraceOrder::Slowest,
            }
        );
        let (q, limit) = query(&[("route", ""), ("status", ""), ("sort", "")])
            .unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!((q, limit), (TraceQuery::default(), DEFAULT_LISTED_TRACES));
        let (_, limit) = query(&[("limit", "100000")]).unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(limit, MAX_LISTED_TRACES);
    }

    #[test]
    fn a_wrong_value_is_a_400_naming_its_parameter() {
        for (param, value) in [
            ("limit", "ten"),
            ("status", "7xx"),
            ("error", "yes"),
            ("min_duration_ms", "-1"),
            ("min_duration_ms", "NaN"),
            ("sort", "size"),
        ] {
            let e = query(&[(param, value)]).expect_err(param);
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert_eq!(e.param.as_deref(), Some(param));
            assert!(e.message.contains(value), "{}", e.message);
        }
    }
}
