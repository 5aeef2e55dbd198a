//! Outgoing HTTP calls: a CLIENT span per call and the headers that carry its context, so an
//! upstream backend or an artifact download joins the request's trace.

use std::borrow::Cow;
use std::sync::Arc;

use http::{HeaderMap, Method};
use opentelemetry::trace::{SpanBuilder, SpanKind, Status};
use opentelemetry::{KeyValue, StringValue};

use crate::propagate::inject_into_headers;
use crate::semconv;
use crate::span::{span_builder, OtelSpan};

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
    /// Shared strings: a span's attribute then costs a reference count, not a copy.
    url_full: Arc<str>,
    address: Option<Arc<str>>,
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
            url_full: sanitize_url(url).into(),
            address: address.map(Arc::from),
            port,
        }
    }
}

/// Starts the CLIENT span for an outgoing call, child of the current context. Record the
/// outcome with [`record_http_response`]; inject its context with [`inject_span_context`];
/// end it when the response body has been read.
pub fn http_client_span(method: &Method, url: &str) -> OtelSpan {
    http_client_span_to(method, &ClientTarget::new(url))
}

/// [`http_client_span`] for a target parsed beforehand.
pub fn http_client_span_to(method: &Method, target: &ClientTarget) -> OtelSpan {
    OtelSpan::start_in_current_with(CLIENT_SPAN_LABEL, || client_span_builder(method, target))
}

fn client_span_builder(method: &Method, target: &ClientTarget) -> SpanBuilder {
    let mut attributes = Vec::with_capacity(6);
    attributes.push(KeyValue::new(
        semconv::HTTP_REQUEST_METHOD,
        method_str(method),
    ));
    attributes.push(KeyValue::new(
        semconv::URL_FULL,
        StringValue::from(Arc::clone(&target.url_full)),
    ));
    if let Some(address) = &target.address {
        attributes.push(KeyValue::new(
            semconv::SERVER_ADDRESS,
            StringValue::from(Arc::clone(address)),
        ));
    }
    if let Some(port) = target.port {
        attributes.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
    }
    span_builder(method_str(method), SpanKind::Client, attributes)
}

/// The label of HTTP client spans in log lines.
const CLIENT_SPAN_LABEL: &str = "HTTP client request";

/// The method as a static string (the methods inferd sends are all standard).
fn method_str(method: &Method) -> Cow<'static, str> {
    match *method {
        Method::GET => Cow::Borrowed("GET"),
        Method::POST => Cow::Borrowed("POST"),
        Method::PUT => Cow::Borrowed("PUT"),
        Method::DELETE => Cow::Borrowed("DELETE"),
        Method::HEAD => Cow::Borrowed("HEAD"),
        _ => Cow::Owned(method.as_str().to_owned()),
    }
}

/// Records the response status on a client span; 4xx and 5xx set `error.type` and ERROR.
pub fn record_http_response(span: &OtelSpan, status: http::StatusCode) {
    record_status_code(
        span,
        status,
        status.is_client_error() || status.is_server_error(),
    );
}

/// Records `http.response.status_code` on `span`; when the status means the call `failed`,
/// also `error.type` (the code) and status ERROR.
pub fn record_status_code(span: &OtelSpan, status: http::StatusCode, failed: bool) {
    let code = KeyValue::new(
        semconv::HTTP_RESPONSE_STATUS_CODE,
        i64::from(status.as_u16()),
    );
    if failed {
        span.set_attributes(vec![
            code,
            KeyValue::new(semconv::ERROR_TYPE, status.as_str().to_owned()),
        ]);
        span.set_status(Status::error(""));
    } else {
        span.set_attribute(code);
    }
}

/// Writes `span`'s context (traceparent, tracestate, baggage) into outgoing headers with the
/// global propagator; nothing when telemetry is off.
pub fn inject_span_context(span: &OtelSpan, headers: &mut HeaderMap) {
    if let Some(cx) = span.context() {
        inject_into_headers(cx, headers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_and_signatures() {
        assert_eq!(
            sanitize_url("https://user:pw@example.com:8443/m.gguf?X-Amz-Signature=abc&part=1"),
            "https://example.com:8443/m.gguf?X-Amz-Signature=REDACTED&part=1"
        );
        assert_eq!(sanitize_url("http://h/p"), "http://h/p");
        assert_eq!(sanitize_url("not a url"), "(invalid url)");
    }
}
