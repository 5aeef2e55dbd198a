//! The HTTP client of upstream calls: hyper's pooled client (HTTP/1.1 keep-alive, TCP_NODELAY,
//! rustls with the platform's certificate verifier for https upstreams), straight to the
//! upstream or through an HTTP proxy.
//!
//! hyper rather than reqwest: a gateway call needs none of reqwest's per-request machinery
//! (redirect policy re-parsing every URL, proxy matching, cookie and header bookkeeping), which
//! cost as much CPU per request as the rest of the client together. Whether a proxy is used is
//! decided once per upstream, when it is configured ([`Proxy`]), not per request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::Service;

/// An upstream's answer, its body still to be read.
pub(crate) type Response = http::Response<Incoming>;

/// A request to an upstream: its body is sent whole.
pub(crate) type Request = http::Request<Full<Bytes>>;

/// An HTTP proxy that calls to one upstream go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proxy {
    /// `http://host:port/`, without credentials.
    uri: Uri,
    /// `Proxy-Authorization: Basic …`, from the URL's `user:password@`.
    authorization: Option<HeaderValue>,
}

impl Proxy {
    /// Parses `http://[user:password@]host[:port]`; only plain-HTTP proxies are supported
    /// (an https upstream is reached through a CONNECT tunnel to one).
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        if scheme != Some("http") {
            return Err(format!(
                "proxy URL `{}` must start with http:// (https:// and SOCKS proxies are not supported)",
                redact_userinfo(url)
            ));
        }
        let uri: Uri = "http://proxied.invalid/".parse().expect("static URI");
        let intercept = Matcher::builder()
            .all(url.to_owned())
            .build()
            .intercept(&uri)
            .ok_or_else(|| format!("proxy URL `{}` is not valid", redact_userinfo(url)))?;
        Ok(Self {
            uri: intercept.uri().clone(),
            authorization: intercept.basic_auth().cloned(),
        })
    }

    /// `http://host:port`, safe to show (no credentials).
    pub(crate) fn shown(&self) -> String {
        let text = self.uri.to_string();
        text.trim_end_matches('/').to_owned()
    }
}

/// `url` with any `user:password@` replaced by `***@`, for messages.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// The proxy for `url` from the proxy environment variables, the way curl reads them:
/// `HTTPS_PROXY`/`https_proxy` for https URLs, `HTTP_PROXY`/`http_proxy` for http ones,
/// `ALL_PROXY`/`all_proxy` for both, none for a host matched by `NO_PROXY`/`no_proxy`.
/// Loopback hosts (`localhost`, 127.0.0.0/8, ::1) are always reached directly.
pub fn proxy_from_env(url: &str, env: &dyn inferd_otel::EnvSource) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    let first = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| env.get(name).filter(|v| !v.trim().is_empty()))
            .unwrap_or_default()
    };
    let chosen = match uri.scheme_str() {
        Some("https") => first(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]),
        Some("http") => first(&["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]),
        _ => return None,
    };
    if chosen.trim().is_empty() {
        return None;
    }
    let no_proxy = first(&["NO_PROXY", "no_proxy"]);
    let bypassed = Matcher::builder()
        .all("http://proxy.invalid".to_owned())
        .no(format!("{no_proxy},localhost,127.0.0.0/8,::1"))
        .build()
        .intercept(&uri)
        .is_none();
    (!bypassed).then(|| chosen.trim().to_owned())
}

/// How connections to the upstream are opened.
#[derive(Debug, Clone)]
enum Route {
    Direct,
    /// A plain-HTTP upstream through a proxy: the connection goes to the proxy and requests
    /// are sent to it in absolute form.
    Forward(Proxy),
    /// An https upstream through a proxy: a CONNECT tunnel, TLS inside it.
    Tunnel(Proxy),
}

/// Opens connections for hyper's pool: TCP to the upstream, to a forward proxy, or through a
/// CONNECT tunnel (TLS is added above it by the https connector).
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    tcp: HttpConnector,
    route: Route,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match &self.route {
            Route::Direct => {
                let connecting = self.tcp.call(dst);
                Box::pin(async move {
                    Ok(Conn {
                        io: connecting.await?,
                        forward: false,
                    })
                })
            }
            Route::Forward(proxy) | Route::Tunnel(proxy) => {
                let proxy = proxy.clone();
                let forward = matches!(self.route, Route::Forward(_));
                let connecting = self.tcp.call(proxy.uri.clone());
                Box::pin(async move {
                    let io = connecting
                        .await
                        .map_err(|e| with_causes(format!("proxy {}", proxy.shown()), &e))?;
                    let io = if forward {
                        io
                    } else {
                        tunnel(io, &dst, &proxy).await?
                    };
                    Ok(Conn { io, forward })
                })
            }
        }
    }
}

/// `context: cause: cause…` as an error.
fn with_causes(context: String, e: &dyn std::error::Error) -> BoxError {
    let mut text = context;
    text.push_str(": ");
    text.push_str(&e.to_string());
    push_causes(&mut text, e);
    text.into()
}

/// Largest answer head accepted from a proxy to CONNECT.
const MAX_PROXY_HEAD: usize = 16 * 1024;

/// Asks `proxy` (connected as `io`) for a tunnel to `dst`'s host and port. hyper-util has one
/// too, but its errors do not say what the proxy answered.
async fn tunnel(
    io: TokioIo<TcpStream>,
    dst: &Uri,
    proxy: &Proxy,
) -> Result<TokioIo<TcpStream>, BoxError> {
    let shown = proxy.shown();
    let host = dst.host().ok_or("the upstream URL has no host")?;
    let port = dst.port_u16().unwrap_or(443);
    let mut stream = io.into_inner();
    let mut head =
        format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n").into_bytes();
    if let Some(auth) = &proxy.authorization {
        head.extend_from_slice(b"Proxy-Authorization: ");
        head.extend_from_slice(auth.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let io_error =
        |e: std::io::Error| with_causes(format!("proxy {shown}: CONNECT {host}:{port}"), &e);
    stream.write_all(&head).await.map_err(io_error)?;
    let mut answer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        // A proxy sends nothing after its answer until the client speaks (TLS starts with
        // the client's hello), so whatever arrives is the head.
        let n = stream.read(&mut chunk).await.map_err(io_error)?;
        if n == 0 {
            return Err(format!(
                "proxy {shown} closed the connection instead of answering CONNECT {host}:{port}"
            )
            .into());
        }
        answer.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&answer) {
            Ok(httparse::Status::Complete(len)) => {
                let code = parsed.code.unwrap_or(0);
                if (200..300).contains(&code) {
                    if len != answer.len() {
                        return Err(format!(
                            "proxy {shown} sent data after accepting CONNECT {host}:{port}"
                        )
                        .into());
                    }
                    return Ok(TokioIo::new(stream));
                }
                let reason = parsed.reason.unwrap_or("");
                let hint = if code == 407 {
                    if proxy.authorization.is_some() {
                        " (the credentials in the proxy URL were refused)"
                    } else {
                        " (put user:password@ in the proxy URL)"
                    }
                } else {
                    ""
                };
                return Err(format!(
                    "proxy {shown} answered {code} {reason} to CONNECT {host}:{port}{hint}"
                )
                .into());
            }
            Ok(httparse::Status::Partial) if answer.len() < MAX_PROXY_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Err(format!("proxy {shown} sent an over-long answer to CONNECT").into())
            }
            Err(e) => {
                return Err(format!(
                "proxy {shown} answered CONNECT {host}:{port} with something that is not HTTP: {e}"
            )
                .into())
            }
        }
    }
}

/// A connection from [`Connector`]: TCP, marked as going to a forward proxy when it does (so
/// hyper writes requests in absolute form).
#[derive(Debug)]
pub(crate) struct Conn {
    io: TokioIo<TcpStream>,
    forward: bool,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.forward)
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// Connections to one upstream, pooled and kept alive between calls.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    inner: Client<HttpsConnector<Connector>, Full<Bytes>>,
    /// Sent with each request when they go to a forward proxy that wants credentials.
    proxy_authorization: Option<HeaderValue>,
}

impl HttpClient {
    /// A client for an upstream at `upstream` (its scheme decides forward proxying or a
    /// tunnel), whose connections take at most `connect_timeout` to open and of which up to
    /// `max_idle` stay open, idle, for 90 s.
    pub(crate) fn new(
        upstream: &Uri,
        proxy: Option<Proxy>,
        connect_timeout: Duration,
        max_idle: usize,
    ) -> Result<Self, String> {
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(connect_timeout));
        // Without it, Nagle delays a small request body until the upstream's delayed ACK.
        tcp.set_nodelay(true);
        // The https connector below decides the scheme.
        tcp.enforce_http(false);
        let https_upstream = upstream.scheme_str() == Some("https");
        let (route, proxy_authorization) = match proxy {
            None => (Route::Direct, None),
            Some(proxy) if https_upstream => (Route::Tunnel(proxy), None),
            Some(proxy) => {
                let authorization = proxy.authorization.clone();
                (Route::Forward(proxy), authorization)
            }
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .try_with_platform_verifier()
            .map_err(|e| format!("cannot set up TLS certificate verification: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(Connector { tcp, route });
        let inner = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(max_idle)
            .build(https);
        Ok(Self {
            inner,
            proxy_authorization,
        })
    }

    /// Sends `request` and waits for the answer's head.
    pub(crate) async fn send(
        &self,
        mut request: Request,
    ) -> Result<Response, hyper_util::client::legacy::Error> {
        if let Some(value) = &self.proxy_authorization {
            request
                .headers_mut()
                .insert(http::header::PROXY_AUTHORIZATION, value.clone());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_scheme_of_the_upstream_picks_the_variable() {
        let vars = env(&[
            ("HTTP_PROXY", "http://plain:3128"),
            ("https_proxy", "http://secure:3128"),
        ]);
        assert_eq!(
            proxy_from_env("http://gpu:8000/v1", &vars).as_deref(),
            Some("http://plain:3128")
        );
        assert_eq!(
            proxy_from_env("https://api.example.com/v1", &vars).as_deref(),
            Some("http://secure:3128")
        );
        let all = env(&[("ALL_PROXY", "http://every:3128")]);
        assert_eq!(
            proxy_from_env("https://api.example.com/v1", &all).as_deref(),
            Some("http://every:3128")
        );
        assert_eq!(proxy_from_env("http://gpu:8000/v1", &env(&[])), None);
    }

    #[test]
    fn no_proxy_and_loopback_hosts_go_direct() {
        let vars = env(&[
            ("HTTP_PROXY", "http://plain:3128"),
            ("NO_PROXY", "example.com, 10.0.0.0/8"),
        ]);
        for direct in [
            "http://gpu.example.com/v1",
            "http://10.1.2.3:8000/v1",
            "http://127.0.0.1:8000/v1",
            "http://localhost:8000/v1",
            "http://[::1]:8000/v1",
        ] {
            assert_eq!(proxy_from_env(direct, &vars), None, "{direct}");
        }
        assert!(proxy_from_env("http://gpu.other.org/v1", &vars).is_some());
    }

    #[test]
    fn proxy_urls_give_credentials_as_basic_auth_and_hide_them_in_messages() {
        let proxy = Proxy::parse("http://user:secret@proxy:3128").expect("valid");
        assert_eq!(proxy.shown(), "http://proxy:3128");
        assert_eq!(
            proxy.authorization.as_ref().map(HeaderValue::as_bytes),
            Some(&b"Basic dXNlcjpzZWNyZXQ="[..])
        );
        assert_eq!(
            Proxy::parse("http://proxy:3128")
                .expect("valid")
                .authorization,
            None
        );
        let err = Proxy::parse("socks5://user:secret@proxy:1080").expect_err("socks");
        assert!(err.contains("socks5://***@proxy:1080"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        assert!(Proxy::parse("https://proxy:3128").is_err());
    }
}
