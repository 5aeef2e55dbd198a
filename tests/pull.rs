//! `inferd pull` end to end: the real binary downloads from an HTTP server on 127.0.0.1 into a
//! cache directory, prints the path, reports progress as plain lines (stderr is not a
//! terminal here), and a second pull is a cache hit.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Serves `body` at any path over HTTP/1.1 and counts requests.
fn serve(body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (format!("http://{addr}/models/tiny.gguf"), count)
}

fn pull(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inferd"))
        .arg("pull")
        .args(args)
        .output()
        .expect("run inferd pull")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("inferd-pull-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn pull_downloads_into_the_cache_prints_the_path_and_then_hits_the_cache() {
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    let (url, requests) = serve(body.clone());
    let cache = temp_dir("ok");
    let source_file = cache.join("expected.bin");
    std::fs::write(&source_file, &body).expect("write");
    let digest = sha256_hex(&source_file);
    std::fs::remove_file(&source_file).expect("rm");
    let cache_arg = cache.to_str().expect("utf-8 path");

    let out = pull(&[&url, "--sha256", &digest, "--cache-dir", cache_arg]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let path = PathBuf::from(text(&out.stdout).trim());
    assert!(path.starts_with(&cache), "{}", path.display());
    assert_eq!(std::fs::read(&path).expect("read pulled file"), body);
    assert!(
        stderr.contains("pull http://"),
        "plain progress lines: {stderr}"
    );
    assert!(stderr.contains("(100%)"), "{stderr}");
    assert!(stderr.contains("downloaded"), "{stderr}");
    assert_eq!(requests.load(Ordering::SeqCst), 1);

    let again = pull(&[&url, "--cache-dir", cache_arg]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(PathBuf::from(text(&again.stdout).trim()), path);
    assert!(text(&again.stderr).contains("already in the cache"));
    assert_eq!(requests.load(Ordering::SeqCst), 1, "no second download");
}

#[test]
fn pull_with_the_wrong_sha256_fails_naming_both_digests_and_caches_nothing() {
    let (url, _) = serve(b"not the model you expect".to_vec());
    let cache = temp_dir("mismatch");
    let wrong = "0".repeat(64);
    let out = pull(&[
        &url,
        "--sha256",
        &wrong,
        "--cache-dir",
        cache.to_str().expect("utf-8"),
    ]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&wrong), "{stderr}");
    assert!(stderr.contains("sha256 mismatch"), "{stderr}");
    assert!(text(&out.stdout).is_empty());
    let left: Vec<_> = walk(&cache);
    assert!(left.is_empty(), "{left:?}");

    let out = pull(&[
        &url,
        "--sha256",
        "xyz",
        "--cache-dir",
        cache.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("invalid sha256 `xyz`"));
}

#[test]
fn pull_of_a_known_id_missing_from_the_cache_says_how_to_get_it() {
    let cache = temp_dir("known");
    let out = pull(&[
        "smollm2-135m",
        "--cache-dir",
        cache.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("make model"),
        "{}",
        text(&out.stderr)
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
