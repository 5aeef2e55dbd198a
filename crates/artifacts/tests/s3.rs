//! The artifact store against a real S3-compatible server: moto's server mode (PyPI
//! `moto[server]`), installed by scripts/install-moto.sh and passed in as INFERD_TEST_MOTO.
//! Without that variable the test is skipped locally and FAILS under CI=true.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use inferd_artifacts::{
    ArtifactError, ArtifactOrigin, ArtifactRequest, ArtifactSource, ArtifactStore, S3Config,
    Sha256Digest, StoreConfig,
};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use support::{content, files_under, temp_dir};

const BUCKET: &str = "models";

/// moto_server on a free port; killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> Option<String> {
    match std::env::var("INFERD_TEST_MOTO") {
        Ok(path) if !path.is_empty() => Some(path),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "INFERD_TEST_MOTO is not set under CI=true: run scripts/install-moto.sh (make test does)"
        ),
        _ => {
            eprintln!("skipped: set INFERD_TEST_MOTO=$(scripts/install-moto.sh) to run the S3 tests");
            None
        }
    }
}

async fn start_moto(binary: &str) -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = reqwest::Client::new();
    loop {
        if client.get(&moto.endpoint).send().await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "moto did not start on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    moto
}

/// The settings a deployment would take from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
/// AWS_SECRET_ACCESS_KEY and AWS_ALLOW_HTTP, given explicitly (the process env is untouched).
fn s3_config(endpoint: &str) -> S3Config {
    S3Config {
        endpoint: Some(endpoint.to_owned()),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        allow_http: true,
        ..S3Config::default()
    }
}

/// Creates the bucket (object_store has no bucket API; moto accepts a plain PUT) and uploads
/// `body` at `key` with object_store. Returns the object's ETag.
async fn upload(moto: &Moto, key: &str, body: &[u8]) -> String {
    let created = reqwest::Client::new()
        .put(format!("{}/{BUCKET}", moto.endpoint))
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "create bucket: {}",
        created.status()
    );
    let store = AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(&moto.endpoint)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_allow_http(true)
        .build()
        .unwrap();
    let put = store
        .put(
            &ObjectPath::parse(key).unwrap(),
            PutPayload::from(body.to_vec()),
        )
        .await
        .unwrap();
    put.e_tag.unwrap()
}

#[tokio::test]
async fn s3_object_is_downloaded_verified_and_then_served_from_the_cache() {
    let Some(binary) = moto_binary() else { return };
    let moto = start_moto(&binary).await;
    let body = content(2_000_000);
    upload(&moto, "team/m.gguf", &body).await;
    let cache = temp_dir("s3");
    let mut config = StoreConfig::new(&cache);
    config.s3 = s3_config(&moto.endpoint);
    let store = ArtifactStore::new(config).unwrap();
    let source = ArtifactSource::parse(&format!("s3://{BUCKET}/team/m.gguf")).unwrap();
    let request = ArtifactRequest::new("m", source).with_sha256(Some(Sha256Digest::of(&body)));

    let first = store.fetch(&request).await.unwrap();
    assert_eq!(first.origin, ArtifactOrigin::Downloaded);
    assert_eq!(first.source, "s3");
    assert!(
        first.path.ends_with("s3/models/team/m.gguf"),
        "{}",
        first.path.display()
    );
    assert_eq!(std::fs::read(&first.path).unwrap(), body);
    assert_eq!(
        files_under(&cache),
        vec!["s3/models/team/m.gguf", "s3/models/team/m.gguf.meta.json"]
    );

    // The server is gone: the second fetch can only be a cache hit.
    drop(moto);
    let second = store.fetch(&request).await.unwrap();
    assert_eq!(second.origin, ArtifactOrigin::CacheHit);
    assert_eq!(second.path, first.path);
}

#[tokio::test]
async fn s3_errors_are_clear_and_leave_nothing_in_the_cache() {
    let Some(binary) = moto_binary() else { return };
    let moto = start_moto(&binary).await;
    let body = content(10_000);
    upload(&moto, "m.gguf", &body).await;
    let cache = temp_dir("s3-errors");
    let mut config = StoreConfig::new(&cache);
    config.s3 = s3_config(&moto.endpoint);
    let store = ArtifactStore::new(config).unwrap();

    let missing = ArtifactRequest::new(
        "m",
        ArtifactSource::parse("s3://models/absent.gguf").unwrap(),
    );
    let err = store.fetch(&missing).await.unwrap_err();
    assert!(matches!(err, ArtifactError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("s3://models/absent.gguf"), "{err}");

    let wrong = Sha256Digest::of(b"not this");
    let request = ArtifactRequest::new("m", ArtifactSource::parse("s3://models/m.gguf").unwrap())
        .with_sha256(Some(wrong));
    let err = store.fetch(&request).await.unwrap_err();
    assert!(err.to_string().contains(&wrong.to_hex()), "{err}");
    assert!(
        err.to_string().contains(&Sha256Digest::of(&body).to_hex()),
        "{err}"
    );
    assert_eq!(files_under(&cache), Vec::<String>::new());
}

#[tokio::test]
async fn s3_download_resumes_an_interrupted_part() {
    let Some(binary) = moto_binary() else { return };
    let moto = start_moto(&binary).await;
    let body = content(1_000_000);
    let etag = upload(&moto, "r.gguf", &body).await;
    let cache = temp_dir("s3-resume");
    let mut config = StoreConfig::new(&cache);
    config.s3 = s3_config(&moto.endpoint);
    let store = ArtifactStore::new(config).unwrap();
    // What an interrupted download leaves: a part and the object's validator. The part's
    // bytes are marked (0xAA), so the result shows which bytes were fetched and which kept.
    let dest = cache.join("s3/models/r.gguf");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let half = body.len() / 2;
    std::fs::write(cache.join("s3/models/r.gguf.part"), vec![0xAA; half]).unwrap();
    std::fs::write(
        cache.join("s3/models/r.gguf.part.meta.json"),
        format!(r#"{{"validator": {etag:?}, "total": {}}}"#, body.len()),
    )
    .unwrap();
    let request = ArtifactRequest::new("r", ArtifactSource::parse("s3://models/r.gguf").unwrap());
    let artifact = store.fetch(&request).await.unwrap();
    let mut expected = vec![0xAA; half];
    expected.extend_from_slice(&body[half..]);
    assert!(
        std::fs::read(&artifact.path).unwrap() == expected,
        "only the missing range was fetched and appended to the part"
    );

    // A part whose validator no longer matches the object is thrown away, not resumed.
    std::fs::remove_file(&artifact.path).unwrap();
    std::fs::write(cache.join("s3/models/r.gguf.part"), vec![0xAA; half]).unwrap();
    std::fs::write(
        cache.join("s3/models/r.gguf.part.meta.json"),
        r#"{"validator": "\"stale-etag\"", "total": 1000000}"#,
    )
    .unwrap();
    let request = request.with_sha256(Some(Sha256Digest::of(&body)));
    let artifact = store.fetch(&request).await.unwrap();
    assert_eq!(std::fs::read(&artifact.path).unwrap(), body);
}
