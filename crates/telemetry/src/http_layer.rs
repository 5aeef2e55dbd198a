//! The tower layer that traces each HTTP request to an axum server: it extracts the remote
//! parent, honours `X-Force-Trace`, opens the SERVER span `{METHOD} {route}` with the HTTP
//! semantic-convention attributes, answers with a `traceresponse` header, and records
//! `http.server.request.duration`. The span ends when the response body has been sent (or
//! dropped), so streamed responses are timed whole.
//!
//! When telemetry is off the layer is not installed at all: [`http_layer`] returns `None` and
//! [`with_http_layer`] leaves the router untouched.

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use crate::bound::BoundCache;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::metrics::{BoundHistogram, Histogram};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::KeyValue;

use inferd_otel::propagate::TRACERESPONSE;
use inferd_otel::record_status_code;
use inferd_otel::{span_builder, OtelSpan, Tracer};

use crate::propagation::{traceresponse_header, Propagators};
use crate::sampler::{force_trace_requested, with_force_trace};
use crate::setup::TelemetryGuard;
use inferd_otel::semconv;

/// The request header that asks for a trace.
pub const X_FORCE_TRACE: &str = "x-force-trace";
/// Target of the log lines the HTTP layer writes (useful in log filters).
pub const HTTP_SPAN_TARGET: &str = "inferd_telemetry::http";
/// The label of the HTTP SERVER span in log lines (`span`).
const HTTP_SPAN_LABEL: &str = "HTTP request";

/// The layer for a running telemetry, or `None` when telemetry is off. Prefer
/// [`with_http_layer`] for an axum `Router`: `Router::layer` itself costs a boxed service per
/// route even for a pass-through layer, so when off nothing must be layered at all.
pub fn http_layer(guard: &TelemetryGuard) -> Option<HttpTraceLayer> {
    let tracer = guard.tracer()?;
    let duration = guard.meter().map(|meter| {
        meter
            .f64_histogram(semconv::HTTP_SERVER_REQUEST_DURATION)
            .with_unit("s")
            .with_description("Duration of HTTP server requests")
            .with_boundaries(semconv::HTTP_DURATION_BUCKETS.to_vec())
            .build()
    });
    Some(HttpTraceLayer {
        shared: Arc::new(Shared {
            tracer,
            propagators: guard.propagators.clone(),
            force_trace_header: guard.force_trace_header,
            baggage_span_attributes: guard.baggage_span_attributes.clone(),
            duration,
            bound_durations: BoundCache::new(MAX_BOUND_DURATIONS),
        }),
    })
}

/// `router` with the HTTP layer when telemetry is on, `router` untouched when it is off.
///
/// ```ignore
/// let app = inferd_telemetry::with_http_layer(router, &guard);
/// ```
pub fn with_http_layer<S>(router: axum::Router<S>, guard: &TelemetryGuard) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    match http_layer(guard) {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

#[derive(Debug)]
struct Shared {
    tracer: Tracer,
    propagators: Arc<Propagators>,
    force_trace_header: bool,
    baggage_span_attributes: Arc<[String]>,
    duration: Option<Histogram<f64>>,
    /// `duration` bound to the attribute sets of answered requests, so that recording skips
    /// the SDK's lookup of the set (a SipHash of every key and value, ~1.5k instructions).
    /// At most [`MAX_BOUND_DURATIONS`]: one per (method, route, status) seen.
    bound_durations: BoundCache<u16, BoundDuration>,
}

/// Most (method, route, status) sets of `http.server.request.duration` kept bound; past it,
/// requests record unbound into the same series.
const MAX_BOUND_DURATIONS: usize = 64;

#[derive(Debug)]
struct BoundDuration {
    method: &'static str,
    route: Option<Arc<str>>,
    status: u16,
    histogram: BoundHistogram<f64>,
}

impl BoundDuration {
    fn is_for(&self, method: &str, route: Option<&Arc<str>>, status: u16) -> bool {
        self.status == status && self.method == method && self.route.as_ref() == route
    }
}

impl Shared {
    /// Records the duration of a request answered with `status` (below 500: no `error.type`).
    fn record_answered(
        &self,
        seconds: f64,
        method: &'static str,
        route: Option<&Arc<str>>,
        status: u16,
    ) {
        let Some(histogram) = &self.duration else {
            return;
        };
        let bound = self.bound_durations.get_or_bind(
            &status,
            |b| b.is_for(method, route, status),
            || BoundDuration {
                method,
                route: route.cloned(),
                status,
                histogram: histogram.bind(&duration_attributes(method, route, Some(status), None)),
            },
        );
        match bound {
            Some(bound) => bound.histogram.record(seconds),
            None => histogram.record(
                seconds,
                &duration_attributes(method, route, Some(status), None),
            ),
        }
    }
}

/// The attributes of `http.server.request.duration`.
fn duration_attributes(
    method: &'static str,
    route: Option<&Arc<str>>,
    status: Option<u16>,
    error_type: Option<Cow<'static, str>>,
) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(5);
    attributes.push(KeyValue::new(semconv::HTTP_REQUEST_METHOD, method));
    if let Some(route) = route {
        attributes.push(KeyValue::new(semconv::HTTP_ROUTE, route.clone()));
    }
    if let Some(status) = status {
        attributes.push(KeyValue::new(
            semconv::HTTP_RESPONSE_STATUS_CODE,
            i64::from(status),
        ));
    }
    if let Some(error_type) = error_type {
        attributes.push(KeyValue::new(semconv::ERROR_TYPE, error_type));
    }
    // Required by the HTTP conventions; inferd serves plain HTTP (TLS ends at a proxy).
    attributes.push(KeyValue::new(semconv::URL_SCHEME, "http"));
    attributes
}

/// Traces HTTP requests; see the module documentation.
#[derive(Debug, Clone)]
pub struct HttpTraceLayer {
    shared: Arc<Shared>,
}

impl<S> tower::Layer<S> for HttpTraceLayer {
    type Service = HttpTraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpTraceService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`HttpTraceLayer`] wraps around the application.
#[derive(Debug, Clone)]
pub struct HttpTraceService<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// The method as semantic conventions name it: known methods as-is, others `_OTHER`.
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// The host and port of a URI authority or `Host` header (`name`, `name:port`, `[v6]:port`,
/// after any `user@`), as `http::uri::Authority` gives them, without its copy of the text and
/// its two scans; `None` when it is not a valid authority.
fn host_and_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match host_port.rfind(':') {
        // A colon inside an IPv6 literal is not a port separator.
        Some(i) if !host_port[i..].contains(']') => (&host_port[..i], Some(&host_port[i + 1..])),
        _ => (host_port, None),
    };
    let valid_host = if let Some(literal) = host.strip_prefix('[') {
        literal.strip_suffix(']').is_some_and(|ip| {
            !ip.is_empty()
                && ip
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        })
    } else {
        !host.is_empty()
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'-' | b'.'
                            | b'_'
                            | b'~'
                            | b'%'
                            | b'!'
                            | b'$'
                            | b'&'
                            | b'\''
                            | b'('
                            | b')'
                            | b'*'
                            | b'+'
                            | b','
                            | b';'
                            | b'='
                    )
            })
    };
    if !valid_host {
        return None;
    }
    let port = match port {
        None | Some("") => None,
        Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => digits.parse().ok(),
        Some(_) => return None,
    };
    Some((host, port))
}

/// An address as `Display` writes it; IPv4 (every request's `client.address`) without
/// `core::fmt`, which cost ~1.2k instructions.
fn ip_text(ip: std::net::IpAddr) -> String {
    let std::net::IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut out = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(itoa::Buffer::new().format(octet));
    }
    out
}

fn header_str<B>(req: &Request<B>, name: http::header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

impl<S> HttpTraceService<S> {
    fn start_span<B>(&self, req: &Request<B>) -> (OtelSpan, RequestState, Option<HeaderValue>) {
        let shared = &self.shared;
        let mut parent = shared.propagators.extract_headers(req.headers());
        let forced = shared.force_trace_header
            && req
                .headers()
                .get(X_FORCE_TRACE)
                .is_some_and(|v| force_trace_requested(v.as_bytes()));
        if forced {
            parent = with_force_trace(&parent);
        }
        let method = method_name(req.method());
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|p| Arc::<str>::from(p.as_str()));
        let name = match (&route, method) {
            (_, "_OTHER") => "HTTP".to_owned(),
            (Some(route), _) => {
                let mut name = String::with_capacity(method.len() + 1 + route.len());
                name.push_str(method);
                name.push(' ');
                name.push_str(route);
                name
            }
            (None, _) => method.to_owned(),
        };
        // Every attribute is known before the span starts, so a sampler sees them all.
        let mut attributes = Vec::with_capacity(10);
        attributes.push(KeyValue::new(semconv::HTTP_REQUEST_METHOD, method));
        if let Some(route) = &route {
            attributes.push(KeyValue::new(semconv::HTTP_ROUTE, route.clone()));
        }
        let path = req.uri().path();
        attributes.push(match &route {
            // A route without parameters is the path itself: share its string.
            Some(route) if &**route == path => KeyValue::new(semconv::URL_PATH, route.clone()),
            _ => KeyValue::new(semconv::URL_PATH, path.to_owned()),
        });
        attributes.push(KeyValue::new(
            semconv::URL_SCHEME,
            match req.uri().scheme_str() {
                None | Some("http") => Cow::Borrowed("http"),
                Some("https") => Cow::Borrowed("https"),
                Some(other) => Cow::Owned(other.to_owned()),
            },
        ));
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| header_str(req, http::header::HOST));
        if let Some((host, port)) = authority.and_then(host_and_port) {
            attributes.push(KeyValue::new(semconv::SERVER_ADDRESS, host.to_owned()));
            if let Some(port) = port {
                attributes.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
            }
        }
        if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
            attributes.push(KeyValue::new(semconv::CLIENT_ADDRESS, ip_text(addr.ip())));
        }
        if let Some(agent) = header_str(req, http::header::USER_AGENT) {
            attributes.push(KeyValue::new(
                semconv::USER_AGENT_ORIGINAL,
                agent.to_owned(),
            ));
        }
        if !shared.baggage_span_attributes.is_empty() {
            let baggage = parent.baggage();
            for key in shared.baggage_span_attributes.iter() {
                if let Some(value) = baggage.get(key.as_str()) {
                    attributes.push(KeyValue::new(key.clone(), value.to_string()));
                }
            }
        }
        let span = OtelSpan::start(
            &shared.tracer,
            &parent,
            HTTP_SPAN_LABEL,
            span_builder(name, SpanKind::Server, attributes),
        );
        let traceresponse = span.context().and_then(traceresponse_header);
        let state = RequestState {
            shared: self.shared.clone(),
            start: Instant::now(),
            method,
            route,
            status: None,
            body_finished: true,
            span: span.clone(),
        };
        (span, state, traceresponse)
    }
}

impl<S, B> tower::Service<Request<B>> for HttpTraceService<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>>,
    S::Error: std::fmt::Display,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (span, state, traceresponse) = self.start_span(&req);
        let inner = span.in_scope(|| self.inner.call(req));
        ResponseFuture {
            inner,
            span,
            state: Some(state),
            traceresponse,
        }
    }
}

/// What is needed to finish a request: kept by the future, then by the response body.
#[derive(Debug)]
struct RequestState {
    shared: Arc<Shared>,
    start: Instant,
    method: &'static str,
    route: Option<Arc<str>>,
    status: Option<u16>,
    /// Whether the response body was sent to its end (`true` until a body is being streamed).
    body_finished: bool,
    span: OtelSpan,
}

impl Drop for RequestState {
    /// Ends the request: records the duration and lets the span close. A request dropped before
    /// its response was produced, or whose body was dropped before its end, was cancelled by the
    /// client.
    fn drop(&mut self) {
        let cancelled = self.status.is_none() || !self.body_finished;
        if cancelled {
            self.span
                .set_attribute(KeyValue::new(semconv::ERROR_TYPE, "cancelled"));
            self.span.set_status(Status::error(""));
        }
        self.span.end();
        let Some(histogram) = &self.shared.duration else {
            return;
        };
        let seconds = self.start.elapsed().as_secs_f64();
        let route = self.route.as_ref();
        let error_type: Option<Cow<'static, str>> = match self.status {
            Some(status) if status >= 500 => Some(status.to_string().into()),
            _ if cancelled => Some("cancelled".into()),
            _ => None,
        };
        match (self.status, error_type) {
            (Some(status), None) => {
                self.shared
                    .record_answered(seconds, self.method, route, status)
            }
            (status, error_type) => histogram.record(
                seconds,
                &duration_attributes(self.method, route, status, error_type),
            ),
        }
    }
}

pin_project_lite::pin_project! {
    /// Future of [`HttpTraceService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: OtelSpan,
        state: Option<RequestState>,
        traceresponse: Option<HeaderValue>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
    E: std::fmt::Display,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _attached = this.span.attach();
            ready!(this.inner.poll(cx))
        };
        let Some(mut state) = this.state.take() else {
            return Poll::Ready(result);
        };
        match result {
            Ok(mut response) => {
                let status = response.status();
                state.status = Some(status.as_u16());
                // A server's 4xx is the client's mistake, not a failure of this request.
                record_status_code(this.span, status, status.is_server_error());
                if let Some(value) = this.traceresponse.take() {
                    response.headers_mut().insert(TRACERESPONSE, value);
                }
                Poll::Ready(Ok(response.map(|body| {
                    state.body_finished = http_body::Body::is_end_stream(&body);
                    Body::new(TracedBody { inner: body, state })
                })))
            }
            Err(error) => {
                state.status = Some(500);
                this.span
                    .set_attribute(KeyValue::new(semconv::ERROR_TYPE, "_OTHER"));
                this.span.set_status(Status::error(""));
                this.span.in_scope(
                    || tracing::error!(target: HTTP_SPAN_TARGET, %error, "request failed"),
                );
                Poll::Ready(Err(error))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps the request's span open until it is sent or dropped.
    struct TracedBody {
        #[pin]
        inner: Body,
        state: RequestState,
    }
}

impl http_body::Body for TracedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            None | Some(Err(_)) => this.state.body_finished = true,
            Some(Ok(_)) => {
                if http_body::Body::is_end_stream(&*this.inner) {
                    this.state.body_finished = true;
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;
    use crate::config::Mode;
    use crate::setup::build_for_test;

    fn serve_one(read_body: bool) -> crate::store::TraceDetail {
        let _serial = crate::serial_dispatch();
        let (guard, dispatch) = build_for_test(Mode::Local);
        let app = with_http_layer(
            Router::new().route("/stream", get(|| async { "chunk" })),
            &guard,
        );
        let runtime = tokio::runtime::Builder::new_current_thread().build();
        let Ok(runtime) = runtime else {
            panic!("no runtime")
        };
        let _default = tracing::dispatcher::set_default(&dispatch);
        let trace_id = runtime.block_on(async {
            let request = Request::get("/stream").body(Body::empty());
            let Ok(request) = request else {
                panic!("request")
            };
            let Ok(response) = app.oneshot(request).await;
            let traceresponse = response.headers()[TRACERESPONSE]
                .to_str()
                .map(str::to_owned);
            if read_body {
                let body = axum::body::to_bytes(response.into_body(), 1024).await;
                assert!(body.is_ok());
            }
            // Otherwise the response (and its body) is dropped unread: the client went away.
            traceresponse.unwrap_or_default()[3..35].to_owned()
        });
        let detail = guard.trace_store().and_then(|s| s.trace(&trace_id));
        let Some(detail) = detail else {
            panic!("trace not stored")
        };
        detail
    }

    #[test]
    fn body_dropped_before_its_end_marks_the_span_cancelled() {
        let span = &serve_one(false).spans[0];
        assert_eq!(span.name, "GET /stream");
        assert_eq!(span.attributes[semconv::ERROR_TYPE], "cancelled");
        assert_eq!(span.status.code, "error");
    }

    /// Every request counts once in `http.server.request.duration`, under its own attribute
    /// set, whether that set is bound (answered), past the bound limit, or unbound (a 5xx,
    /// a cancelled body).
    #[test]
    fn durations_count_per_method_route_and_status() {
        let _serial = crate::serial_dispatch();
        let (guard, dispatch) = build_for_test(Mode::Local);
        let app = with_http_layer(
            Router::new()
                .route("/ok", get(|| async { "fine" }))
                .route(
                    "/status/{code}",
                    get(
                        |axum::extract::Path(code): axum::extract::Path<u16>| async move {
                            http::StatusCode::from_u16(code)
                                .unwrap_or(http::StatusCode::IM_A_TEAPOT)
                        },
                    ),
                )
                .route("/fail", get(|| async { http::StatusCode::BAD_GATEWAY })),
            &guard,
        );
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
            panic!("no runtime")
        };
        let _default = tracing::dispatcher::set_default(&dispatch);
        // More statuses on one route than sets are kept bound: the rest record unbound.
        let statuses: Vec<u16> = (200..200 + MAX_BOUND_DURATIONS as u16 + 5).collect();
        runtime.block_on(async {
            let send = |uri: String, read: bool| {
                let app = app.clone();
                async move {
                    let Ok(request) = Request::get(uri).body(Body::empty()) else {
                        panic!("request")
                    };
                    let Ok(response) = app.oneshot(request).await;
                    if read {
                        assert!(axum::body::to_bytes(response.into_body(), 1024)
                            .await
                            .is_ok());
                    }
                }
            };
            for _ in 0..3 {
                send("/ok".into(), true).await;
            }
            send("/ok".into(), false).await;
            send("/fail".into(), true).await;
            for status in &statuses {
                send(format!("/status/{status}"), true).await;
            }
            send("/status/201".into(), true).await;
        });
        let text = guard
            .prometheus_metrics()
            .map(|p| p.render())
            .and_then(Result::ok)
            .unwrap_or_default();
        let has = |line: &str| assert!(text.contains(line), "no `{line}` in\n{text}");
        let ok = "http_request_method=\"GET\",http_response_status_code=\"200\",http_route=\"/ok\",url_scheme=\"http\"";
        has(&format!(
            "http_server_request_duration_seconds_count{{{ok}}} 3"
        ));
        has("http_server_request_duration_seconds_count{error_type=\"cancelled\",http_request_method=\"GET\",http_response_status_code=\"200\",http_route=\"/ok\",url_scheme=\"http\"} 1");
        has("http_server_request_duration_seconds_count{error_type=\"502\",http_request_method=\"GET\",http_response_status_code=\"502\",http_route=\"/fail\",url_scheme=\"http\"} 1");
        has("http_server_request_duration_seconds_count{http_request_method=\"GET\",http_response_status_code=\"201\",http_route=\"/status/{code}\",url_scheme=\"http\"} 2");
        for status in statuses.iter().filter(|s| **s != 201) {
            has(&format!("http_server_request_duration_seconds_count{{http_request_method=\"GET\",http_response_status_code=\"{status}\",http_route=\"/status/{{code}}\",url_scheme=\"http\"}} 1\n"));
        }
    }

    #[test]
    fn host_and_port_read_authorities_as_the_http_crate_does() {
        for text in [
            "127.0.0.1:8080",
            "example.com",
            "example.com:443",
            "user:pw@example.com:80",
            "[::1]:8080",
            "[::1]",
            "[2001:db8::7]:99",
            "host:",
            "a-b.c_d~e:1",
            "localhost:65535",
        ] {
            let Ok(expected) = text.parse::<http::uri::Authority>() else {
                panic!("{text} should parse")
            };
            assert_eq!(
                host_and_port(text),
                Some((expected.host(), expected.port_u16())),
                "{text}"
            );
        }
        for text in [
            "",
            ":80",
            "exa mple.com",
            "host:8x",
            "[::1",
            "[]:80",
            "a/b",
            "h\u{e9}",
        ] {
            assert_eq!(host_and_port(text), None, "{text:?}");
        }
        // Out-of-range ports: the http crate rejects the authority; the host stays known.
        assert_eq!(host_and_port("host:70000"), Some(("host", None)));
    }

    #[test]
    fn ip_text_is_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.100.255",
            "192.168.1.9",
            "::1",
            "::ffff:1.2.3.4",
            "2001:db8::7",
        ] {
            let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
                panic!("{ip}")
            };
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    #[test]
    fn body_read_to_its_end_is_not_cancelled() {
        let span = &serve_one(true).spans[0];
        assert_eq!(span.attributes.get(semconv::ERROR_TYPE), None);
        assert_eq!(span.attributes[semconv::HTTP_RESPONSE_STATUS_CODE], 200);
        assert_eq!(span.kind, "server");
    }
}
