//! Outgoing HTTP calls: a CLIENT span per call and the headers that carry its context, so an
//! upstream backend or an artifact download joins the request's trace.

use http::{HeaderMap, Method};
use opentelemetry::Context;
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::semconv;

/// Query parameters whose values are secrets (signed URLs) and are recorded as `REDACTED`.
const SECRET_QUERY_KEYS: [&str; 5] = [
    "AWSAccessKeyId",
    "Signature",
    "sig",
    "X-Goog-Signature",
    "X-Amz-Signature",
];

/// `url` as it may be recorded: no user or password, signature query values redacted.
pub fn sanitize_url(url: &str) -> String {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return String::from("(invalid url)");
    };
    let mut out = String::new();
    if let Some(scheme) = uri.scheme_str() {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some(authority) = uri.authority() {
        let host_port = authority
            .as_str()
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, hp)| hp);
        out.push_str(host_port);
    }
    out.push_str(uri.path());
    if let Some(query) = uri.query() {
        out.push('?');
        let parts: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if SECRET_QUERY_KEYS.contains(&k) => format!("{k}=REDACTED"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&parts.join("&"));
    }
    out
}

/// Where outgoing calls go, parsed once: the `url.full` to record (sanitized) and the
/// `server.address`/`server.port` of a URL. Build one per endpoint that is called often
/// (an upstream's chat URL), so a call's span does not parse its URL again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTarget {
    url_full: String,
    address: Option<String>,
    port: Option<u16>,
}

impl ClientTarget {
    /// The target of calls to `url` (an absolute http(s) URL).
    pub fn new(url: &str) -> Self {
        let (address, port) = match url.parse::<http::Uri>() {
            Ok(uri) => {
                let port = uri.port_u16().or(match uri.scheme_str() {
                    Some("https") => Some(443),
                    Some("http") => Some(80),
                    _ => None,
                });
                (uri.host().map(str::to_owned), port)
            }
            Err(_) => (None, None),
        };
        Self {
            url_full: sanitize_url(url),
            address,
            port,
        }
    }
}

/// Starts the CLIENT span for an outgoing call, child of the current span. Record the outcome
/// with [`record_http_response`]; inject its context with [`inject_span_context`].
pub fn http_client_span(method: &Method, url: &str) -> Span {
    http_client_span_to(method, &ClientTarget::new(url))
}

/// [`http_client_span`] for a target parsed beforehand.
pub fn http_client_span_to(method: &Method, target: &ClientTarget) -> Span {
    tracing::info_span!(
        target: "inferd_telemetry::http_client",
        "HTTP client request",
        otel.name = method.as_str(),
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = method.as_str(),
        url.full = target.url_full.as_str(),
        server.address = target.address.as_deref(),
        server.port = target.port.map(i64::from),
        http.response.status_code = Empty,
        error.type = Empty,
    )
}

/// Records the response status on a client span; 4xx and 5xx set `error.type` and ERROR.
pub fn record_http_response(span: &Span, status: http::StatusCode) {
    span.record(
        semconv::HTTP_RESPONSE_STATUS_CODE,
        i64::from(status.as_u16()),
    );
    if status.is_client_error() || status.is_server_error() {
        span.record(semconv::ERROR_TYPE, status.as_str());
        span.record("otel.status_code", "ERROR");
    }
}

/// Writes `span`'s context (traceparent, tracestate, baggage) into outgoing headers with the
/// global propagator; nothing when telemetry is off.
pub fn inject_span_context(span: &Span, headers: &mut HeaderMap) {
    let cx: Context = span.context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut opentelemetry_http::HeaderInjector(headers));
    });
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt;

    use super::*;
    use crate::config::Mode;
    use crate::propagation::TRACEPARENT;
    use crate::setup::build_for_test;

    #[test]
    fn urls_lose_credentials_and_signatures() {
        assert_eq!(
            sanitize_url("https://user:pw@example.com:8443/m.gguf?X-Amz-Signature=abc&part=1"),
            "https://example.com:8443/m.gguf?X-Amz-Signature=REDACTED&part=1"
        );
        assert_eq!(sanitize_url("http://h/p"), "http://h/p");
        assert_eq!(sanitize_url("not a url"), "(invalid url)");
    }

    #[test]
    fn client_span_is_a_child_with_client_attributes() {
        let (guard, dispatch) = build_for_test(Mode::Local);
        let (trace_id, parent_id, traceparent) =
            tracing::dispatcher::with_default(&dispatch, || {
                let parent = tracing::info_span!("generation");
                let _entered = parent.enter();
                let client = http_client_span(&Method::POST, "http://up:8000/v1/chat?sig=s");
                record_http_response(&client, http::StatusCode::BAD_GATEWAY);
                let mut headers = HeaderMap::new();
                let cx = client.context();
                guard.propagators().inject_headers(&cx, &mut headers);
                let sc = parent.context().span().span_context().clone();
                (
                    sc.trace_id().to_string(),
                    sc.span_id().to_string(),
                    headers
                        .get(TRACEPARENT)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                )
            });
        let detail = guard.trace_store().and_then(|s| s.trace(&trace_id));
        let Some(detail) = detail else {
            panic!("no trace")
        };
        let client = detail.spans.iter().find(|s| s.kind == "client");
        let Some(client) = client else {
            panic!("no client span")
        };
        assert_eq!(client.name, "POST");
        assert_eq!(client.parent_span_id.as_deref(), Some(parent_id.as_str()));
        assert_eq!(
            client.attributes[semconv::URL_FULL],
            "http://up:8000/v1/chat?sig=REDACTED"
        );
        assert_eq!(client.attributes[semconv::SERVER_ADDRESS], "up");
        assert_eq!(client.attributes[semconv::SERVER_PORT], 8000);
        assert_eq!(client.attributes[semconv::ERROR_TYPE], "502");
        assert_eq!(client.status.code, "error");
        let expected = format!("00-{trace_id}-{}-01", client.span_id);
        assert_eq!(traceparent.as_deref(), Some(expected.as_str()));
    }
}
