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

/// The query string of GET /debug/traces/{trace_id}.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    /// `true`: this process's store alone, without asking the upstreams.
    local: Option<String>,
}

/// GET /debug/traces/{trace_id}: the trace as this process's store holds it; in a gateway,
/// merged with what each inferd upstream's store holds of it (unless `local=true`), each
/// span from an upstream marked with its `process`, and an `upstreams` list saying what each
/// upstream answered.
pub async fn get_trace(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
    query: Result<Query<GetQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let store = trace_store(&state)?;
    let Query(query) = query.map_err(|e| {
        ApiError::invalid(
            None,
            format!("{}; /debug/traces/{{trace_id}} takes local", e.body_text()),
        )
    })?;
    let local_only = match given(&query.local) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                Some("local".to_owned()),
                format!("local `{other}` must be `true` or `false`"),
            ))
        }
    };
    let id = trace_id.to_ascii_lowercase();
    let own = store.trace(&id);
    let gateway = &state.gateway;
    let is_trace_id = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let remotes = if local_only || !is_trace_id || gateway.is_empty() {
        Vec::new()
    } else {
        gateway.remote_traces(&id).await
    };
    let asked = !remotes.is_empty();
    let not_found = |detail: String| {
        ApiError::not_found(
            "trace_not_found",
            format!(
                "no trace `{trace_id}` in the recent-trace store (not sampled, evicted, or not finished yet){detail}"
            ),
        )
    };
    if !asked {
        return match own {
            Some(trace) => Ok(Json(trace).into_response()),
            None => Err(not_found(String::new())),
        };
    }
    let own = own
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| ApiError::internal(format!("cannot serialize the trace: {e}")))?;
    merge_trace(&id, own, remotes)
        .map_err(|answers| {
            not_found(format!(
                ", nor in the upstreams' stores ({})",
                answers.join("; ")
            ))
        })
        .map(|merged| Json(merged).into_response())
}

/// This process's trace (`own`, as `/debug/traces/{id}` serializes it) with the upstreams'
/// spans and log lines added: spans ordered by start, a span id seen twice kept once, each
/// upstream span and JSON log line given `process` (the upstream's name), and `upstreams`
/// saying how many spans each upstream had or why it could not say. `Err` (what each
/// upstream answered) when no store holds the trace.
fn merge_trace(
    id: &str,
    own: Option<serde_json::Value>,
    remotes: Vec<inferd_gateway::RemoteTrace>,
) -> Result<serde_json::Value, Vec<String>> {
    let mut found = own.is_some();
    let take = |trace: &mut serde_json::Value, key: &str| match trace
        .get_mut(key)
        .map(serde_json::Value::take)
    {
        Some(serde_json::Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let (mut spans, mut logs) = match own {
        Some(mut trace) => (take(&mut trace, "spans"), take(&mut trace, "logs")),
        None => (Vec::new(), Vec::new()),
    };
    let mut seen: std::collections::HashSet<String> = spans
        .iter()
        .filter_map(|s| s["span_id"].as_str().map(str::to_owned))
        .collect();
    let mut upstreams = Vec::new();
    let mut answers = Vec::new();
    for remote in remotes {
        let name = remote.upstream;
        match remote.result {
            Ok(Some(mut trace)) => {
                found = true;
                let mut added = 0;
                for mut span in take(&mut trace, "spans") {
                    let Some(span_id) = span["span_id"].as_str().map(str::to_owned) else {
                        continue;
                    };
                    if seen.insert(span_id) {
                        span["process"] = json!(name);
                        spans.push(span);
                        added += 1;
                    }
                }
                for mut line in take(&mut trace, "logs") {
                    if let Some(fields) = line.as_object_mut() {
                        fields.insert("process".to_owned(), json!(name));
                    }
                    logs.push(line);
                }
                upstreams.push(json!({"name": name, "spans": added}));
            }
            Ok(None) => {
                answers.push(format!("{name}: not held"));
                upstreams.push(json!({"name": name, "spans": 0}));
            }
            Err(reason) => {
                answers.push(format!("{name}: {reason}"));
                upstreams.push(json!({"name": name, "spans": 0, "error": reason}));
            }
        }
    }
    if !found {
        return Err(answers);
    }
    spans.sort_by_key(|s| s["start_unix_nanos"].as_u64().unwrap_or(0));
    Ok(json!({"trace_id": id, "spans": spans, "logs": logs, "upstreams": upstreams}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferd_gateway::RemoteTrace;

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

    fn remote(name: &str, result: Result<Option<serde_json::Value>, String>) -> RemoteTrace {
        RemoteTrace {
            upstream: name.to_owned(),
            result,
        }
    }

    fn span(id: &str, start: u64) -> serde_json::Value {
        json!({"span_id": id, "start_unix_nanos": start})
    }

    #[test]
    fn upstream_spans_join_the_trace_in_start_order_marked_with_their_process() {
        let own = json!({"trace_id": "t", "spans": [span("a", 10), span("c", 40)],
                         "logs": [{"message": "own"}]});
        let replica = json!({"trace_id": "t", "spans": [span("b", 20), span("a", 10)],
                             "logs": [{"message": "replica"}, "a pretty line"]});
        let merged = merge_trace(
            "t",
            Some(own),
            vec![
                remote("replica", Ok(Some(replica))),
                remote("idle", Ok(None)),
                remote("down", Err("GET … failed".into())),
            ],
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let ids: Vec<&str> = merged["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| s["span_id"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(ids, ["a", "b", "c"], "ordered by start, `a` once");
        assert_eq!(merged["spans"][0].get("process"), None, "own span unmarked");
        assert_eq!(merged["spans"][1]["process"], "replica");
        assert_eq!(merged["logs"][1]["process"], "replica");
        assert_eq!(merged["logs"][2], "a pretty line");
        assert_eq!(
            merged["upstreams"],
            json!([{"name": "replica", "spans": 1}, {"name": "idle", "spans": 0},
                   {"name": "down", "spans": 0, "error": "GET … failed"}])
        );
    }

    #[test]
    fn a_trace_no_store_holds_says_what_each_upstream_answered() {
        let answers = merge_trace(
            "t",
            None,
            vec![
                remote("idle", Ok(None)),
                remote("down", Err("refused".into())),
            ],
        )
        .expect_err("no store holds it");
        assert_eq!(answers, ["idle: not held", "down: refused"]);
        let only_upstream = merge_trace(
            "t",
            None,
            vec![remote("r", Ok(Some(json!({"spans": [span("x", 1)]}))))],
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(only_upstream["spans"][0]["process"], "r");
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
