//! A gateway's view of its upstreams' trace stores: `GET /debug/traces/{id}` of each upstream
//! that is itself an inferd (provider `inferd`), so the gateway's own
//! `/debug/traces/{id}` can show a trace across the processes it went through.

use super::{Gateway, Got, Upstream};

/// Largest trace read from an upstream.
const MAX_TRACE: usize = 16 * 1024 * 1024;

/// What one upstream's trace store said about a trace.
#[derive(Debug)]
pub struct RemoteTrace {
    /// The upstream's name.
    pub upstream: String,
    /// Its `/debug/traces/{id}` answer; `Ok(None)` when its store does not hold the trace.
    pub result: Result<Option<serde_json::Value>, String>,
}

impl Upstream {
    /// Whether the upstream is an inferd, whose `/debug/traces` the gateway may ask.
    fn shares_traces(&self) -> bool {
        self.config.provider == "inferd"
    }

    /// `GET {scheme://host:port}/debug/traces/{trace_id}?local=true` (`local`: that store
    /// alone, so two gateways pointing at each other do not ask each other forever), with the
    /// upstream's admin token when it has one.
    async fn fetch_trace(&self, trace_id: &str) -> Result<Option<serde_json::Value>, String> {
        let base = &self.config.base_url;
        let origin = match base.find("://") {
            Some(scheme_end) => match base[scheme_end + 3..].find('/') {
                Some(path) => &base[..scheme_end + 3 + path],
                None => base.as_str(),
            },
            None => base.as_str(),
        };
        let url = format!("{origin}/debug/traces/{trace_id}?local=true");
        let authorization = match &self.config.admin_token {
            Some(token) => {
                let mut value = http::HeaderValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| "its admin token cannot be sent in an HTTP header".to_owned())?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let body = match self
            .get(&url, authorization.as_ref(), MAX_TRACE, "the trace")
            .await?
        {
            Got::Body(body) => Some(body),
            Got::Status(http::StatusCode::NOT_FOUND) => None,
            Got::Status(status) => {
                let hint = match status.as_u16() {
                    401 | 403 => " (set admin_token_env for this upstream)",
                    _ => "",
                };
                return Err(format!("{}{hint}", self.refused(&url, status)));
            }
        };
        match body {
            None => Ok(None),
            Some(body) => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| format!("GET {url} did not return a trace: {e}")),
        }
    }
}

impl Gateway {
    /// The trace `trace_id` (32 lowercase hex digits) as each inferd upstream's store holds
    /// it, asked concurrently; empty when no upstream is an inferd.
    pub async fn remote_traces(&self, trace_id: &str) -> Vec<RemoteTrace> {
        let asks = self
            .upstreams
            .iter()
            .filter(|u| u.shares_traces())
            .map(|u| async move {
                RemoteTrace {
                    upstream: u.config.name.clone(),
                    result: u.fetch_trace(trace_id).await,
                }
            });
        futures::future::join_all(asks).await
    }
}
