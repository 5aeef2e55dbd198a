//! The HTTP client of upstream calls: hyper's pooled client (HTTP/1.1 keep-alive, TCP_NODELAY,
//! rustls with the platform's certificate verifier for https upstreams).
//!
//! hyper rather than reqwest: a gateway call needs none of reqwest's per-request machinery
//! (redirect policy re-parsing every URL, proxy matching, cookie and header bookkeeping), which
//! cost as much CPU per request as the rest of the client together. Requests go straight to
//! the upstream; `HTTP_PROXY`/`HTTPS_PROXY` are not consulted.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// An upstream's answer, its body still to be read.
pub(crate) type Response = http::Response<Incoming>;

/// A request to an upstream: its body is sent whole.
pub(crate) type Request = http::Request<Full<Bytes>>;

/// Connections to one upstream, pooled and kept alive between calls.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpClient {
    /// A client whose connections take at most `connect_timeout` to open and of which up to
    /// `max_idle` stay open, idle, for 90 s.
    pub(crate) fn new(connect_timeout: Duration, max_idle: usize) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        // Without it, Nagle delays a small request body until the upstream's delayed ACK.
        http.set_nodelay(true);
        // The https connector below decides the scheme.
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .try_with_platform_verifier()
            .map_err(|e| format!("cannot set up TLS certificate verification: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(max_idle)
            .build(https);
        Ok(Self { inner })
    }

    /// Sends `request` and waits for the answer's head.
    pub(crate) async fn send(
        &self,
        request: Request,
    ) -> Result<Response, hyper_util::client::legacy::Error> {
        self.inner.request(request).await
    }
}

/// A failed call in a few words, with its causes (the client's own message is terse).
pub(crate) fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the connection failed".to_owned()
    };
    push_causes(&mut text, e);
    text
}

/// Appends `: cause` for each cause in `e`'s source chain.
pub(crate) fn push_causes(text: &mut String, e: &dyn std::error::Error) {
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// It is longer than the limit given.
    TooLarge(usize),
    /// The connection broke off.
    Broken(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge(limit) => write!(f, "it is larger than {limit} bytes"),
            BodyError::Broken(reason) => f.write_str(reason),
        }
    }
}

/// Reads a whole body of at most `limit` bytes.
pub(crate) async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, BodyError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(limit)),
        Err(e) => {
            let mut reason = e.to_string();
            push_causes(&mut reason, &*e);
            Err(BodyError::Broken(reason))
        }
    }
}

/// The start of a body, at most `limit` bytes (an error answer quoted in a message); a body
/// that breaks off gives what arrived.
pub(crate) async fn read_prefix(mut body: Incoming, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < limit {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    out.extend_from_slice(data);
                }
            }
            _ => break,
        }
    }
    out.truncate(limit);
    out
}
