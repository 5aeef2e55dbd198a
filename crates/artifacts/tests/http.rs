//! The artifact store against a real HTTP server on 127.0.0.1: cold download, cache hit,
//! single flight, cut-short bodies, resume, digest mismatch, local paths and file:// copies.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inferd_artifacts::{
    pull, Artifact, ArtifactError, ArtifactOrigin, ArtifactRequest, ArtifactSource, ArtifactStore,
    PullDisplay, PullOptions, Sha256Digest, Sidecar, StoreConfig,
};
use support::{content, files_under, temp_dir, FileServer, Served};

fn store(cache: &Path) -> ArtifactStore {
    ArtifactStore::new(StoreConfig::new(cache)).unwrap()
}

fn request(url: &str) -> ArtifactRequest {
    ArtifactRequest::new("m", ArtifactSource::parse(url).unwrap())
}

fn sidecar_of(artifact: &Artifact) -> Sidecar {
    let mut p = artifact.path.clone().into_os_string();
    p.push(".meta.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[tokio::test]
async fn cold_download_lands_in_cache_with_sidecar_and_second_fetch_is_a_hit_without_request() {
    let server = FileServer::start().await;
    let body = content(300_000);
    let url = server.add(
        "models/m.gguf",
        Served {
            body: body.clone(),
            ..Served::default()
        },
    );
    let cache = temp_dir("cold");
    let store = store(&cache);

    assert!(store.needs_download(&request(&url)));
    let first = store.fetch(&request(&url)).await.unwrap();
    assert!(!store.needs_download(&request(&url)));
    let other_digest = request(&url).with_sha256(Some(Sha256Digest::of(b"other")));
    assert!(store.needs_download(&other_digest));
    assert_eq!(first.origin, ArtifactOrigin::Downloaded);
    assert_eq!(first.source, "http");
    assert_eq!(first.bytes, body.len() as u64);
    assert!(first.path.starts_with(&cache), "{}", first.path.display());
    assert_eq!(std::fs::read(&first.path).unwrap(), body);
    let sidecar = sidecar_of(&first);
    assert_eq!(sidecar.size, body.len() as u64);
    assert_eq!(sidecar.sha256, Sha256Digest::of(&body));
    assert_eq!(sidecar.source, url);
    assert!(sidecar.fetched_at.ends_with('Z'), "{}", sidecar.fetched_at);
    assert_eq!(first.sha256, Some(Sha256Digest::of(&body)));
    // Only the file and its sidecar: no .part, no temporary files.
    let rel = first
        .path
        .strip_prefix(&cache)
        .unwrap()
        .display()
        .to_string();
    assert_eq!(
        files_under(&cache),
        vec![rel.clone(), format!("{rel}.meta.json")]
    );
    assert_eq!(server.seen("models/m.gguf").len(), 1);

    // A new store (a restart) finds it in the cache and asks the server nothing.
    let again = store_again(&cache).fetch(&request(&url)).await.unwrap();
    assert_eq!(again.origin, ArtifactOrigin::CacheHit);
    assert_eq!(again.source, "local_cache");
    assert_eq!(again.path, first.path);
    assert_eq!(again.bytes, first.bytes);
    assert_eq!(server.seen("models/m.gguf").len(), 1);
}

fn store_again(cache: &Path) -> ArtifactStore {
    store(cache)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_fetches_make_exactly_one_request() {
    let server = FileServer::start().await;
    let body = content(200_000);
    let url = server.add(
        "m.gguf",
        Served {
            body: body.clone(),
            delay: Duration::from_millis(300),
            ..Served::default()
        },
    );
    let cache = temp_dir("single-flight");
    let store = store(&cache);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let req = request(&url);
            tokio::spawn(async move { store.fetch(&req).await })
        })
        .collect();
    let mut paths = Vec::new();
    for task in tasks {
        let artifact = task.await.unwrap().unwrap();
        paths.push(artifact.path);
    }
    assert_eq!(
        server.seen("m.gguf").len(),
        1,
        "one download for eight callers"
    );
    assert!(paths.iter().all(|p| *p == paths[0]));
    assert_eq!(std::fs::read(&paths[0]).unwrap(), body);
}

#[tokio::test]
async fn cut_short_body_fails_leaves_nothing_complete_and_next_fetch_succeeds() {
    let server = FileServer::start().await;
    let body = content(500_000);
    let url = server.add(
        "cut.gguf",
        Served {
            body: body.clone(),
            truncate_first: 1,
            ..Served::default()
        },
    );
    let cache = temp_dir("truncated");
    let store = store(&cache);
    let err = store.fetch(&request(&url)).await.unwrap_err();
    match &err {
        ArtifactError::Truncated {
            expected, received, ..
        } => {
            assert_eq!(*expected, body.len() as u64);
            assert!(*received < *expected, "{err}");
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert!(err.to_string().contains("cut short"), "{err}");
    // The server cannot resume, so the part is gone too: nothing at all in the cache.
    assert_eq!(files_under(&cache), Vec::<String>::new());

    let ok = store.fetch(&request(&url)).await.unwrap();
    assert_eq!(ok.origin, ArtifactOrigin::Downloaded);
    assert_eq!(std::fs::read(&ok.path).unwrap(), body);
    assert_eq!(server.seen("cut.gguf").len(), 2);
}

#[tokio::test]
async fn interrupted_download_resumes_with_a_range_request() {
    let server = FileServer::start().await;
    let body = content(400_000);
    let url = server.add(
        "resume.gguf",
        Served {
            body: body.clone(),
            ranges: true,
            truncate_first: 1,
            ..Served::default()
        },
    );
    let cache = temp_dir("resume");
    let store = store(&cache);
    let req = request(&url).with_sha256(Some(Sha256Digest::of(&body)));
    let err = store.fetch(&req).await.unwrap_err();
    assert!(matches!(err, ArtifactError::Truncated { .. }), "{err:?}");
    // Only the resumable part (and its validator) remain; nothing that looks complete.
    let left = files_under(&cache);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|f| f.contains(".part")), "{left:?}");
    let part_len = std::fs::metadata(cache.join(&left[0])).unwrap().len();
    assert_eq!(part_len, body.len() as u64 / 2);

    let ok = store.fetch(&req).await.unwrap();
    assert_eq!(std::fs::read(&ok.path).unwrap(), body);
    assert_eq!(ok.sha256, Some(Sha256Digest::of(&body)));
    let seen = server.seen("resume.gguf");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].range, None);
    assert_eq!(
        seen[1].range.as_deref(),
        Some(format!("bytes={part_len}-").as_str())
    );
    let rel = ok.path.strip_prefix(&cache).unwrap().display().to_string();
    assert_eq!(
        files_under(&cache),
        vec![rel.clone(), format!("{rel}.meta.json")]
    );
}

#[tokio::test]
async fn sha256_mismatch_names_both_digests_and_caches_nothing() {
    let server = FileServer::start().await;
    let body = content(100_000);
    let url = server.add(
        "bad.gguf",
        Served {
            body: body.clone(),
            corrupt: true,
            ranges: true,
            ..Served::default()
        },
    );
    let cache = temp_dir("mismatch");
    let store = store(&cache);
    let expected = Sha256Digest::of(&body);
    let actual = Sha256Digest::of(&body.iter().map(|b| b ^ 0xff).collect::<Vec<_>>());
    let err = store
        .fetch(&request(&url).with_sha256(Some(expected)))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ArtifactError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    assert!(text.contains(&expected.to_hex()), "{text}");
    assert!(text.contains(&actual.to_hex()), "{text}");
    assert_eq!(files_under(&cache), Vec::<String>::new());
}

#[tokio::test]
async fn cached_file_of_another_size_or_digest_is_fetched_again() {
    let server = FileServer::start().await;
    let body = content(50_000);
    let url = server.add(
        "m.gguf",
        Served {
            body: body.clone(),
            ..Served::default()
        },
    );
    let cache = temp_dir("stale");
    let store = store(&cache);
    let first = store.fetch(&request(&url)).await.unwrap();
    // Someone truncated the cached file: the size check catches it.
    std::fs::write(&first.path, b"short").unwrap();
    let second = store.fetch(&request(&url)).await.unwrap();
    assert_eq!(second.origin, ArtifactOrigin::Downloaded);
    assert_eq!(std::fs::read(&second.path).unwrap(), body);
    // The configuration now expects another digest: the cached copy is not trusted.
    let other = Sha256Digest::of(b"another model");
    let err = store
        .fetch(&request(&url).with_sha256(Some(other)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(server.seen("m.gguf").len(), 3);
    assert_eq!(files_under(&cache), Vec::<String>::new());
}

#[tokio::test]
async fn missing_remote_file_is_not_found_and_caches_nothing() {
    let server = FileServer::start().await;
    let cache = temp_dir("404");
    let err = store(&cache)
        .fetch(&request(&server.url("nope.gguf")))
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.gguf"), "{err}");
    assert_eq!(files_under(&cache), Vec::<String>::new());
    // Credentials in the URL never reach an error message.
    let with_password = format!("http://user:s3cr3t@{}/nope.gguf", server.addr);
    let err = store(&cache)
        .fetch(&request(&with_password))
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("s3cr3t"), "{err}");
}

#[tokio::test]
async fn progress_reports_bytes_done_up_to_the_total() {
    let server = FileServer::start().await;
    let body = content(3_000_000);
    let url = server.add(
        "big.gguf",
        Served {
            body: body.clone(),
            ..Served::default()
        },
    );
    let cache = temp_dir("progress");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    store(&cache)
        .fetch_with_progress(&request(&url), move |p| sink.lock().unwrap().push(p))
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done), "{seen:?}");
    let last = seen.last().unwrap();
    assert_eq!(last.done, body.len() as u64);
    assert_eq!(last.total, Some(body.len() as u64));
}

#[tokio::test]
async fn local_path_is_used_in_place_and_checked() {
    let dir = temp_dir("local");
    let file = dir.join("mine.gguf");
    std::fs::write(&file, b"local model").unwrap();
    let cache = temp_dir("local-cache");
    let store = store(&cache);
    let source = ArtifactSource::parse(file.to_str().unwrap()).unwrap();
    let artifact = store
        .fetch(&ArtifactRequest::new("mine", source.clone()))
        .await
        .unwrap();
    assert_eq!(artifact.path, file);
    assert!(!store.needs_download(&ArtifactRequest::new("mine", source.clone())));
    assert_eq!(artifact.origin, ArtifactOrigin::LocalFile);
    assert_eq!(artifact.bytes, 11);
    assert_eq!(files_under(&cache), Vec::<String>::new(), "nothing copied");

    let good = ArtifactRequest::new("mine", source.clone())
        .with_sha256(Some(Sha256Digest::of(b"local model")));
    assert!(store.fetch(&good).await.is_ok());
    let bad = ArtifactRequest::new("mine", source).with_sha256(Some(Sha256Digest::of(b"x")));
    let err = store.fetch(&bad).await.unwrap_err();
    assert!(
        matches!(err, ArtifactError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    assert!(file.exists(), "a local file is never deleted");

    let missing = dir.join("absent.gguf");
    let err = store
        .fetch(&request(missing.to_str().unwrap()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("absent.gguf"), "{err}");
}

#[tokio::test]
async fn file_url_is_copied_into_the_cache() {
    let dir = temp_dir("file-url");
    let file = dir.join("unpacked.gguf");
    let body = content(1_500_000);
    std::fs::write(&file, &body).unwrap();
    let cache = temp_dir("file-url-cache");
    let url = format!("file://{}", file.display());
    let artifact = store(&cache).fetch(&request(&url)).await.unwrap();
    assert_eq!(artifact.origin, ArtifactOrigin::Downloaded);
    assert_eq!(artifact.source, "file");
    assert!(artifact.path.starts_with(&cache));
    assert_eq!(std::fs::read(&artifact.path).unwrap(), body);
    assert_eq!(sidecar_of(&artifact).sha256, Sha256Digest::of(&body));
}

#[tokio::test]
async fn unwritable_cache_is_an_error_naming_the_path() {
    let server = FileServer::start().await;
    let url = server.add(
        "m.gguf",
        Served {
            body: content(10),
            ..Served::default()
        },
    );
    let dir = temp_dir("unwritable");
    // The cache "directory" is a regular file, so nothing can be created under it.
    let blocker = dir.join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let err = store(&blocker).fetch(&request(&url)).await.unwrap_err();
    assert!(matches!(err, ArtifactError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

#[tokio::test]
async fn pull_downloads_into_the_cache_and_returns_the_path() {
    let server = FileServer::start().await;
    let body = content(20_000);
    let url = server.add(
        "pulled.gguf",
        Served {
            body: body.clone(),
            ..Served::default()
        },
    );
    let cache = temp_dir("pull");
    let store = store(&cache);
    let options = PullOptions {
        sha256: Some(Sha256Digest::of(&body)),
        display: PullDisplay::Lines,
        ..PullOptions::default()
    };
    let artifact = pull(&store, &url, &options).await.unwrap();
    assert!(artifact.path.starts_with(&cache));
    assert!(artifact.path.ends_with("pulled.gguf"));
    assert_eq!(std::fs::read(&artifact.path).unwrap(), body);
    let err = pull(&store, "ftp://h/x.gguf", &options).await.unwrap_err();
    assert!(err.to_string().contains("unsupported scheme"), "{err}");
}

#[tokio::test]
async fn part_of_an_object_that_changed_since_is_not_resumed() {
    let server = FileServer::start().await;
    let old = content(300_000);
    let url = server.add(
        "changing.gguf",
        Served {
            body: old,
            ranges: true,
            truncate_first: 1,
            ..Served::default()
        },
    );
    let cache = temp_dir("changed");
    let store = store(&cache);
    assert!(store.fetch(&request(&url)).await.is_err());
    // The object is replaced (new ETag) before the next fetch.
    let new: Vec<u8> = content(350_000).iter().map(|b| b.wrapping_add(7)).collect();
    server.add(
        "changing.gguf",
        Served {
            body: new.clone(),
            ranges: true,
            ..Served::default()
        },
    );
    let artifact = store.fetch(&request(&url)).await.unwrap();
    assert_eq!(std::fs::read(&artifact.path).unwrap(), new);
    let seen = server.seen("changing.gguf");
    assert_eq!(seen.len(), 2);
    assert!(seen[1].range.is_some(), "a resume was tried, with If-Range");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_cache_directory_download_once() {
    // Two stores stand for two processes (a server and `inferd pull`): they share no memory,
    // only the directory, and its per-file lock makes the second wait and then hit the cache.
    let server = FileServer::start().await;
    let body = content(100_000);
    let url = server.add(
        "shared.gguf",
        Served {
            body: body.clone(),
            delay: Duration::from_millis(300),
            ..Served::default()
        },
    );
    let cache = temp_dir("two-stores");
    let (a, b) = (store(&cache), store(&cache));
    let (ra, rb) = (request(&url), request(&url));
    let (first, second) = tokio::join!(
        tokio::spawn(async move { a.fetch(&ra).await }),
        tokio::spawn(async move { b.fetch(&rb).await })
    );
    let (first, second) = (first.unwrap().unwrap(), second.unwrap().unwrap());
    assert_eq!(server.seen("shared.gguf").len(), 1);
    let mut origins = [first.origin, second.origin];
    origins.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        origins,
        [ArtifactOrigin::CacheHit, ArtifactOrigin::Downloaded]
    );
    assert_eq!(std::fs::read(&first.path).unwrap(), body);
    let rel = first
        .path
        .strip_prefix(&cache)
        .unwrap()
        .display()
        .to_string();
    assert_eq!(
        files_under(&cache),
        vec![rel.clone(), format!("{rel}.meta.json")],
        "no lock file left"
    );
}
