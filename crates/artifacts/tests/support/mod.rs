//! A real HTTP file server on 127.0.0.1 for the artifact store's tests: serves whole, cut-short
//! and corrupted bodies, answers Range requests when asked to, and logs every request.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use futures::StreamExt;

/// How one path is served.
#[derive(Debug, Clone, Default)]
pub struct Served {
    pub body: Vec<u8>,
    /// Answer `Range: bytes=N-` with 206 and advertise `Accept-Ranges` and an ETag.
    pub ranges: bool,
    /// The first this-many requests send only half the body (Content-Length still says all).
    pub truncate_first: usize,
    /// Every response sends these bytes instead of `body` (same length).
    pub corrupt: bool,
    /// Wait before answering (so concurrent clients overlap).
    pub delay: Duration,
}

/// One request the server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
    pub traceparent: Option<String>,
}

#[derive(Default)]
struct Inner {
    files: Mutex<HashMap<String, Served>>,
    seen: Mutex<Vec<Seen>>,
}

/// The running server.
#[derive(Clone)]
pub struct FileServer {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl FileServer {
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::get(serve))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, inner }
    }

    /// Serves `served` at `/{path}` and returns its URL.
    pub fn add(&self, path: &str, served: Served) -> String {
        self.inner
            .files
            .lock()
            .unwrap()
            .insert(path.to_owned(), served);
        self.url(path)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// Requests seen for `path`.
    pub fn seen(&self, path: &str) -> Vec<Seen> {
        self.inner
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

async fn serve(
    State(inner): State<Arc<Inner>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let range = get("range");
    let number = {
        let mut seen = inner.seen.lock().unwrap();
        seen.push(Seen {
            path: path.clone(),
            range: range.clone(),
            traceparent: get("traceparent"),
        });
        seen.iter().filter(|s| s.path == path).count()
    };
    let Some(served) = inner.files.lock().unwrap().get(&path).cloned() else {
        return status(StatusCode::NOT_FOUND);
    };
    tokio::time::sleep(served.delay).await;
    let mut body = served.body.clone();
    if served.corrupt {
        for b in &mut body {
            *b ^= 0xff;
        }
    }
    let total = body.len();
    let etag = format!("\"v1-{total}\"");
    let mut builder = Response::builder().header(header::CONTENT_TYPE, "application/octet-stream");
    if served.ranges {
        builder = builder
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::ETAG, &etag);
    }
    let start = match (&range, served.ranges) {
        (Some(r), true) if get("if-range").is_none_or(|v| v == etag) => r
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<usize>().ok()),
        _ => None,
    };
    let (status_code, slice) = match start {
        Some(start) if start >= total => return status(StatusCode::RANGE_NOT_SATISFIABLE),
        Some(start) => {
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{}/{total}", total - 1),
            );
            (StatusCode::PARTIAL_CONTENT, body[start..].to_vec())
        }
        None => (StatusCode::OK, body),
    };
    builder = builder
        .status(status_code)
        .header(header::CONTENT_LENGTH, slice.len());
    if number <= served.truncate_first {
        // Announce everything, send half, then break the connection.
        let half = Bytes::from(slice[..slice.len() / 2].to_vec());
        // The pause lets the headers and the first half reach the client before the cut.
        let stream = futures::stream::unfold(Some(half), |state| async move {
            match state {
                Some(half) => Some((Ok(half), None)),
                None => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Some((
                        Err(std::io::Error::other("connection cut by the test server")),
                        None,
                    ))
                }
            }
        })
        .take(2);
        return builder.body(Body::from_stream(stream)).unwrap();
    }
    builder.body(Body::from(slice)).unwrap()
}

fn status(code: StatusCode) -> Response {
    Response::builder()
        .status(code)
        .body(Body::empty())
        .unwrap()
}

/// Deterministic test content of `len` bytes.
pub fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// A fresh, empty directory under the target dir's tmp.
pub fn temp_dir(name: &str) -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = base.join(format!("artifacts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}
