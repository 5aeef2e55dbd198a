//! End-to-end: models whose source is a URL, with the real binary and model. Served over HTTP
//! by a server started in the test on 127.0.0.1 (it counts requests and can cut or corrupt
//! the file) and over S3 by moto's server (scripts/install-moto.sh, INFERD_TEST_MOTO): a cold
//! model is downloaded once however many requests ask for it, the next start finds it in the
//! cache, and a truncated or corrupted download fails cleanly, leaves nothing that looks
//! complete, and is retried by the next request.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use common::{client, get_json, metrics_text, model_path, Server, TempDir};
use serde_json::{json, Value};

/// The model file's bytes and sha256 (computed once by `sha256sum`, which every test machine
/// has through coreutils).
fn model() -> (bytes::Bytes, String) {
    let path = model_path();
    let bytes = std::fs::read(&path).expect("model");
    let out = std::process::Command::new("sha256sum")
        .arg(&path)
        .output()
        .expect("sha256sum");
    let sha = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_owned();
    (bytes.into(), sha)
}

#[derive(Clone)]
struct Origin {
    model: bytes::Bytes,
    gets: Arc<AtomicUsize>,
    /// Cut the body short (after a tenth) while set.
    truncate: Arc<AtomicBool>,
    /// Flip bytes while set.
    corrupt: Arc<AtomicBool>,
}

async fn serve_model(State(o): State<Origin>) -> Response {
    o.gets.fetch_add(1, Ordering::SeqCst);
    let full = o.model.len();
    if o.truncate.load(Ordering::SeqCst) {
        // Promise the whole file, send a tenth, then end the connection.
        let part = o.model.slice(..full / 10);
        let body = futures::stream::iter([
            Ok::<_, std::io::Error>(part),
            Err(std::io::Error::other("cut")),
        ]);
        return Response::builder()
            .header(header::CONTENT_LENGTH, full)
            .body(Body::from_stream(body))
            .expect("response");
    }
    if o.corrupt.load(Ordering::SeqCst) {
        let mut bytes = o.model.to_vec();
        for b in bytes.iter_mut().skip(1000).step_by(4096) {
            *b ^= 0xff;
        }
        return (StatusCode::OK, bytes).into_response();
    }
    (StatusCode::OK, o.model.clone()).into_response()
}

/// The origin server on 127.0.0.1, serving the model at /models/smol.gguf.
async fn start_origin() -> (String, Origin) {
    let (model, _) = model();
    let origin = Origin {
        model,
        gets: Arc::new(AtomicUsize::new(0)),
        truncate: Arc::new(AtomicBool::new(false)),
        corrupt: Arc::new(AtomicBool::new(false)),
    };
    let app = Router::new()
        .route("/models/smol.gguf", get(serve_model))
        .with_state(origin.clone());
    let addr = common::serve_on_loopback(app).await;
    (format!("http://{addr}/models/smol.gguf"), origin)
}

fn home(name: &str) -> TempDir {
    TempDir::new(&format!("dl-{name}"))
}

/// `inferd serve` with one on-demand model `remote` from `source`, its cache under `home`.
fn start(home: &Path, source: &str, sha256: Option<&str>, env: &[(&str, &str)]) -> Server {
    let mut table =
        format!("[[models]]\nid = \"remote\"\nsource = \"{source}\"\nload = \"on_demand\"\n");
    if let Some(sha) = sha256 {
        table.push_str(&format!("sha256 = \"{sha}\"\n"));
    }
    let home_arg = home.display().to_string();
    Server::start_with_config(home, &table, &["--home", &home_arg], env, true)
}

async fn complete(server: &Server) -> (u16, Value) {
    let r = client()
        .post(server.url("/v1/completions"))
        .json(&json!({"model": "remote", "prompt": "Hello", "max_tokens": 2}))
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// Every file under `dir` (recursively), as paths relative to it.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The spans of the trace holding a `model.load`, with the load and its artifacts child.
async fn load_trace(server: &Server) -> (Value, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list: Value = get_json(server, "/debug/traces").await;
        for t in list["traces"].as_array().cloned().unwrap_or_default() {
            let id = t["trace_id"].as_str().unwrap_or_default().to_owned();
            let trace: Value = get_json(server, &format!("/debug/traces/{id}")).await;
            let spans = trace["spans"].as_array().cloned().unwrap_or_default();
            let load = spans.iter().find(|s| s["name"] == "model.load").cloned();
            let artifacts = spans
                .iter()
                .find(|s| {
                    s["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("model.artifacts."))
                })
                .cloned();
            if let (Some(load), Some(artifacts)) = (load, artifacts) {
                assert_eq!(artifacts["parent_span_id"], load["span_id"]);
                return (load, artifacts);
            }
        }
        assert!(Instant::now() < deadline, "no model.load trace");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn loads_by_source(server: &Server) -> Vec<String> {
    metrics_text(server)
        .await
        .lines()
        .filter(|l| l.starts_with("inferd_model_loads_total"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_cold_http_model_is_downloaded_once_for_concurrent_requests_and_cached_for_the_next_start(
) {
    let (url, origin) = start_origin().await;
    let (model, sha) = model();
    let home = home("http");
    let server = start(&home, &url, Some(&sha), &[]);

    let requests = (0..8).map(|_| complete(&server));
    let answers = futures::future::join_all(requests).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert_eq!(
        origin.gets.load(Ordering::SeqCst),
        1,
        "exactly one download"
    );
    let loads = loads_by_source(&server).await;
    assert_eq!(
        loads,
        vec![
            r#"inferd_model_loads_total{inferd_model_artifacts_source="http",inferd_model_id="remote"} 1"#
        ]
    );
    let (load, download) = load_trace(&server).await;
    assert_eq!(download["name"], "model.artifacts.download");
    assert_eq!(
        download["attributes"]["inferd.model.artifacts.source"],
        "http"
    );
    assert_eq!(download["attributes"]["url.full"], url);
    assert_eq!(
        download["attributes"]["inferd.model.artifacts.bytes"],
        model.len()
    );
    assert_eq!(load["attributes"]["inferd.model.id"], "remote");
    // The cache holds the file, complete, and its sidecar; no part file.
    let cached = files(&home.join("models"));
    assert!(
        cached.iter().any(|f| f.ends_with("smol.gguf")),
        "{cached:?}"
    );
    assert!(cached.iter().all(|f| !f.ends_with(".part")), "{cached:?}");
    drop(server);

    // The next start finds it in the cache: no request to the origin.
    let server = start(&home, &url, Some(&sha), &[]);
    let (status, _) = complete(&server).await;
    assert_eq!(status, 200);
    assert_eq!(origin.gets.load(Ordering::SeqCst), 1);
    let (_, artifacts) = load_trace(&server).await;
    assert_eq!(artifacts["name"], "model.artifacts.load");
    assert_eq!(
        artifacts["attributes"]["inferd.model.artifacts.source"],
        "local_cache"
    );
    assert_eq!(
        loads_by_source(&server).await,
        vec![
            r#"inferd_model_loads_total{inferd_model_artifacts_source="local_cache",inferd_model_id="remote"} 1"#
        ]
    );
}

#[tokio::test]
async fn truncated_and_corrupted_downloads_fail_cleanly_and_the_next_request_retries() {
    let (url, origin) = start_origin().await;
    let (_, sha) = model();
    let home = home("faults");
    let server = start(&home, &url, Some(&sha), &[]);
    let cache = home.join("models");
    let complete_looking = |cache: &Path| -> Vec<String> {
        files(cache)
            .into_iter()
            .filter(|f| f.ends_with(".gguf") || f.ends_with(".meta.json"))
            .collect()
    };

    origin.truncate.store(true, Ordering::SeqCst);
    let (status, body) = complete(&server).await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("remote"), "{body}");
    assert!(complete_looking(&cache).is_empty(), "{:?}", files(&cache));
    origin.truncate.store(false, Ordering::SeqCst);

    origin.corrupt.store(true, Ordering::SeqCst);
    let (status, body) = complete(&server).await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&sha), "names the expected digest: {body}");
    assert!(complete_looking(&cache).is_empty(), "{:?}", files(&cache));
    origin.corrupt.store(false, Ordering::SeqCst);

    // The server kept serving; the next request downloads again and succeeds.
    let (status, body) = complete(&server).await;
    assert_eq!(status, 200, "{body}");
    assert!(!complete_looking(&cache).is_empty());
    let admin: Value = get_json(&server, "/admin/models").await;
    assert_eq!(admin["models"][0]["state"], "ready", "{admin}");
    assert_eq!(admin["models"][0]["artifact_source"], "http", "{admin}");
}

/// moto's S3 server, killed on drop.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_moto() -> Option<Moto> {
    let binary = match std::env::var("INFERD_TEST_MOTO") {
        Ok(path) if !path.is_empty() => path,
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "INFERD_TEST_MOTO is not set under CI: run scripts/install-moto.sh (make test does)"
            );
            eprintln!("skipped: set INFERD_TEST_MOTO=$(scripts/install-moto.sh) to run");
            return None;
        }
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let child = std::process::Command::new(&binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start moto");
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while client().get(&moto.endpoint).send().await.is_err() {
        assert!(Instant::now() < deadline, "moto did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(moto)
}

#[tokio::test]
async fn a_model_in_s3_is_downloaded_through_the_aws_variables() {
    let Some(moto) = start_moto().await else {
        return;
    };
    let (model, sha) = model();
    // moto accepts unsigned PUTs: make the bucket, upload the model.
    let r = client()
        .put(format!("{}/models", moto.endpoint))
        .send()
        .await
        .expect("bucket");
    assert!(r.status().is_success(), "{}", r.status());
    let r = client()
        .put(format!("{}/models/smol/model.gguf", moto.endpoint))
        .body(model.clone())
        .send()
        .await
        .expect("upload");
    assert!(r.status().is_success(), "{}", r.status());

    let home = home("s3");
    let env = [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let server = start(&home, "s3://models/smol/model.gguf", Some(&sha), &env);
    let (status, body) = complete(&server).await;
    assert_eq!(status, 200, "{body}");
    let (_, download) = load_trace(&server).await;
    assert_eq!(download["name"], "model.artifacts.download");
    assert_eq!(
        download["attributes"]["inferd.model.artifacts.source"],
        "s3"
    );
    assert_eq!(
        download["attributes"]["inferd.model.artifacts.bytes"],
        model.len()
    );
    assert!(
        files(&home.join("models"))
            .iter()
            .any(|f| f.ends_with("model.gguf")),
        "cached"
    );
}
