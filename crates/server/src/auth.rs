//! API keys for the OpenAI routes (/v1/*): a caller presents `Authorization: Bearer KEY`
//! (the scheme in any case); a missing or wrong key gets 401 `invalid_api_key`. Keys come from
//! the command line, the environment, the config file and a key file that is re-read on SIGHUP
//! or when it changes, so keys rotate without a restart. Each key may have a requests-per-minute
//! and a concurrency limit; over one, 429 with Retry-After.
//!
//! Keys are held as SHA-256 digests and never logged; a key is named by its id, the first
//! eight hex digits of its digest, in access lines and metrics.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use inferd_otel::semconv as sc;
use opentelemetry::metrics::Counter;
use opentelemetry::KeyValue;
use sha2::{Digest, Sha256};

use crate::access::AccessFacts;
use crate::error::ApiError;
use crate::AppState;

/// How often the key file is checked for changes.
const KEY_FILE_POLL: Duration = Duration::from_secs(2);

/// Limits of one key; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyLimits {
    pub requests_per_minute: Option<u32>,
    pub concurrency: Option<u32>,
}

/// Where the keys come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeyConfig {
    /// Keys given on the command line, in the environment or in the config file.
    pub keys: Vec<String>,
    /// A file of keys, one per line (`KEY [rpm=N] [concurrency=N]`).
    pub file: Option<PathBuf>,
    /// Limits of keys that set none of their own.
    pub default_limits: KeyLimits,
}

impl ApiKeyConfig {
    /// Whether /v1/* needs a key. With a key file configured it does even while the file
    /// holds none, so emptying the file locks the API rather than opening it.
    pub fn is_enabled(&self) -> bool {
        !self.keys.is_empty() || self.file.is_some()
    }
}

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the API key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("API key file {path}, line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
}

/// The keys in force, shared by every request; cheap to clone. Open (no check) when no key is
/// configured.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    config: ApiKeyConfig,
    keys: RwLock<Arc<HashMap<[u8; 32], Arc<KeyState>>>>,
    /// The key file's modification time and length when last read.
    file_stamp: Mutex<Option<(SystemTime, u64)>>,
    rejections: Counter<u64>,
}

/// One key's id, limits and current use.
#[derive(Debug)]
struct KeyState {
    id: String,
    limits: KeyLimits,
    bucket: Mutex<Bucket>,
    running: AtomicU32,
}

/// Token bucket of the requests-per-minute limit: holds up to a minute's worth of requests,
/// refilled continuously.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl ApiKeys {
    /// The keys of `config`, its key file read now; `rejections` counts refused requests.
    pub fn new(config: ApiKeyConfig, rejections: Counter<u64>) -> Result<Self, KeyFileError> {
        if !config.is_enabled() {
            return Ok(Self::default());
        }
        let inner = Inner {
            config,
            keys: RwLock::new(Arc::new(HashMap::new())),
            file_stamp: Mutex::new(None),
            rejections,
        };
        let keys = Self {
            inner: Some(Arc::new(inner)),
        };
        keys.reload()?;
        Ok(keys)
    }

    /// Whether requests need a key.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// How many keys are in force.
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |inner| inner.current().len())
    }

    /// Whether no key is in force (every request is refused when keys are enabled).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the key file again and puts its keys (with the configured ones) in force. On an
    /// error the keys in force stay. Returns how many keys are in force.
    pub fn reload(&self) -> Result<usize, KeyFileError> {
        let Some(inner) = &self.inner else {
            return Ok(0);
        };
        let mut specs: Vec<(String, KeyLimits)> = inner
            .config
            .keys
            .iter()
            .map(|k| (k.trim().to_owned(), inner.config.default_limits))
            .collect();
        if let Some(path) = &inner.config.file {
            let stamp = file_stamp(path);
            let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
                path: path.display().to_string(),
                source,
            })?;
            specs.extend(parse_key_file(
                &text,
                &path.display().to_string(),
                inner.config.default_limits,
            )?);
            *inner.file_stamp.lock().unwrap_or_else(|e| e.into_inner()) = stamp;
        }
        let old = inner.current();
        let mut keys = HashMap::with_capacity(specs.len());
        for (key, limits) in specs {
            let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
            // A key kept with the same limits keeps its counters across a reload.
            let state = match old.get(&digest) {
                Some(state) if state.limits == limits => Arc::clone(state),
                _ => Arc::new(KeyState::new(&digest, limits)),
            };
            keys.insert(digest, state);
        }
        let count = keys.len();
        *inner.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(count)
    }

    /// Re-reads the key file on SIGHUP and whenever its modification time or size changes.
    /// Does nothing without a key file.
    pub fn spawn_reloader(&self) {
        let Some(inner) = &self.inner else { return };
        let Some(path) = inner.config.file.clone() else {
            return;
        };
        let keys = self.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                #[cfg(unix)]
                let signalled = async {
                    match hangup.as_mut() {
                        Some(signal) => {
                            signal.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                #[cfg(not(unix))]
                let signalled = std::future::pending::<()>();
                let reason = tokio::select! {
                    () = signalled => "SIGHUP",
                    () = tokio::time::sleep(KEY_FILE_POLL) => {
                        let Some(inner) = &keys.inner else { return };
                        let known = *inner.file_stamp.lock().unwrap_or_else(|e| e.into_inner());
                        if file_stamp(&path) == known {
                            continue;
                        }
                        "file changed"
                    }
                };
                match keys.reload() {
                    Ok(count) => tracing::info!(keys = count, reason, "API keys reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, reason, "API keys not reloaded; the previous keys stay in force");
                        // Do not report the same broken file every poll.
                        if let Some(inner) = &keys.inner {
                            *inner.file_stamp.lock().unwrap_or_else(|e| e.into_inner()) =
                                file_stamp(&path);
                        }
                    }
                }
            }
        });
    }

    /// Lets a request with `bearer` in, or says why not (401, or 429 with a Retry-After).
    fn admit(&self, bearer: Option<&str>) -> Result<Option<Admission>, Refusal> {
        let Some(inner) = &self.inner else {
            return Ok(None);
        };
        let Some(given) = bearer else {
            inner.reject("missing_api_key", None);
            return Err(Refusal::unauthorized(
                "you didn't provide an API key: send it as `Authorization: Bearer KEY`",
            ));
        };
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        let Some(key) = inner.current().get(&digest).cloned() else {
            inner.reject("invalid_api_key", None);
            return Err(Refusal::unauthorized("incorrect API key provided"));
        };
        if let Some(limit) = key.limits.concurrency {
            if key.running.fetch_add(1, Ordering::SeqCst) >= limit {
                key.running.fetch_sub(1, Ordering::SeqCst);
                inner.reject("concurrency_limit_exceeded", Some(&key.id));
                return Err(Refusal::rate_limited(
                    format!("this API key has its limit of {limit} requests running at once; retry when one ends"),
                    1,
                ));
            }
        }
        if let Some(rpm) = key.limits.requests_per_minute {
            if let Err(wait) = key.take_token(rpm) {
                if key.limits.concurrency.is_some() {
                    key.running.fetch_sub(1, Ordering::SeqCst);
                }
                inner.reject("rate_limit_exceeded", Some(&key.id));
                return Err(Refusal::rate_limited(
                    format!("this API key has reached its limit of {rpm} requests per minute"),
                    wait.as_secs_f64().ceil().max(1.0) as u64,
                ));
            }
        }
        Ok(Some(Admission { key }))
    }
}

impl Inner {
    fn current(&self) -> Arc<HashMap<[u8; 32], Arc<KeyState>>> {
        Arc::clone(&self.keys.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn reject(&self, error_type: &'static str, key_id: Option<&str>) {
        let error = KeyValue::new(sc::ERROR_TYPE, error_type);
        match key_id {
            Some(id) => self.rejections.add(
                1,
                &[error, KeyValue::new(sc::INFERD_API_KEY_ID, id.to_owned())],
            ),
            None => self.rejections.add(1, &[error]),
        }
    }
}

impl KeyState {
    fn new(digest: &[u8; 32], limits: KeyLimits) -> Self {
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            id,
            limits,
            bucket: Mutex::new(Bucket {
                tokens: f64::from(limits.requests_per_minute.unwrap_or(0)),
                refilled: Instant::now(),
            }),
            running: AtomicU32::new(0),
        }
    }

    /// Takes one request from the bucket, or says how long until one is there.
    fn take_token(&self, rpm: u32) -> Result<(), Duration> {
        let per_second = f64::from(rpm) / 60.0;
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(f64::from(rpm));
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

/// A request let in: holds its key's concurrency slot until the answer has been sent.
#[derive(Debug)]
struct Admission {
    key: Arc<KeyState>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.key.limits.concurrency.is_some() {
            self.key.running.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Why a request was refused.
#[derive(Debug)]
struct Refusal {
    error: ApiError,
    retry_after: Option<u64>,
}

impl Refusal {
    fn unauthorized(message: &str) -> Self {
        Self {
            error: ApiError {
                status: StatusCode::UNAUTHORIZED,
                message: message.to_owned(),
                kind: "invalid_request_error",
                param: None,
                code: Some("invalid_api_key"),
            },
            retry_after: None,
        }
    }

    fn rate_limited(message: String, retry_after: u64) -> Self {
        Self {
            error: ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                message,
                kind: "requests",
                param: None,
                code: Some("rate_limit_exceeded"),
            },
            retry_after: Some(retry_after),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        } else {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// The id of the API key a request was admitted with (a request extension; absent when keys
/// are off). Files and batches belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyId(pub String);

/// Middleware of the /v1 routes, layered only when keys are configured.
pub async fn require_api_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match state.api_keys.admit(bearer(request.headers())) {
        Ok(admission) => {
            if let Some(admission) = &admission {
                if let Some(facts) = request.extensions().get::<AccessFacts>() {
                    facts.set_key_id(&admission.key.id);
                }
                let id = ApiKeyId(admission.key.id.clone());
                request.extensions_mut().insert(id);
            }
            let response = next.run(request).await;
            match admission {
                Some(admission) => crate::body_guard::hold_until_sent(response, admission),
                None => response,
            }
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// The token of an `Authorization: Bearer TOKEN` header; the scheme is case-insensitive
/// (RFC 9110), surrounding spaces are ignored.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The modification time and size of `path`, to notice a change.
fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reads a key file: one key per line, optionally followed by `rpm=N` and `concurrency=N`;
/// blank lines and lines starting with `#` are skipped.
fn parse_key_file(
    text: &str,
    path: &str,
    defaults: KeyLimits,
) -> Result<Vec<(String, KeyLimits)>, KeyFileError> {
    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let error = |reason: String| KeyFileError::Line {
            path: path.to_owned(),
            line: index + 1,
            reason,
        };
        let mut words = line.split_whitespace();
        let Some(key) = words.next() else { continue };
        let mut limits = defaults;
        for option in words {
            let (name, value) = option.split_once('=').ok_or_else(|| {
                error(format!(
                    "`{option}` is not an option: write `rpm=N` or `concurrency=N` after the key"
                ))
            })?;
            let number = value
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| error(format!("{name} must be a whole number above 0")))?;
            match name {
                "rpm" => limits.requests_per_minute = Some(number),
                "concurrency" => limits.concurrency = Some(number),
                other => {
                    return Err(error(format!(
                        "unknown option `{other}` (known: rpm, concurrency)"
                    )))
                }
            }
        }
        keys.push((key.to_owned(), limits));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop_counter() -> Counter<u64> {
        use opentelemetry::metrics::MeterProvider as _;
        opentelemetry::metrics::NoopMeterProvider::new()
            .meter("test")
            .u64_counter("x")
            .build()
    }

    fn keys(config: ApiKeyConfig) -> ApiKeys {
        ApiKeys::new(config, noop_counter()).expect("valid keys")
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_token() {
        let mut headers = HeaderMap::new();
        for (value, expected) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER  abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearer", None),
            ("Bearer ", None),
            ("abc", None),
        ] {
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(bearer(&headers), expected, "{value:?}");
        }
    }

    #[test]
    fn right_key_passes_wrong_or_missing_key_is_refused_with_401() {
        let keys = keys(ApiKeyConfig {
            keys: vec!["sk-right".into()],
            ..ApiKeyConfig::default()
        });
        assert!(keys.admit(Some("sk-right")).expect("admitted").is_some());
        for given in [None, Some("sk-wrong"), Some("sk-righ")] {
            let refusal = keys.admit(given).expect_err("refused");
            assert_eq!(refusal.error.status, StatusCode::UNAUTHORIZED);
            assert_eq!(refusal.error.code, Some("invalid_api_key"));
            assert!(!refusal.error.message.contains("sk-"), "never echo the key");
        }
    }

    #[test]
    fn no_keys_means_open_and_an_empty_key_file_means_closed() {
        let open = keys(ApiKeyConfig::default());
        assert!(!open.is_enabled());
        assert!(open.admit(None).expect("open").is_none());
        let scratch = inferd_testkit::temp_dir("keys-empty");
        let dir = scratch.path();
        std::fs::create_dir_all(dir).expect("mkdir");
        let file = dir.join("keys");
        std::fs::write(&file, "# no keys yet\n").expect("write");
        let closed = keys(ApiKeyConfig {
            file: Some(file),
            ..ApiKeyConfig::default()
        });
        assert!(closed.is_enabled() && closed.is_empty());
        assert!(closed.admit(Some("anything")).is_err());
    }

    #[test]
    fn concurrency_limit_refuses_until_an_answer_ends() {
        let keys = keys(ApiKeyConfig {
            keys: vec!["k".into()],
            default_limits: KeyLimits {
                requests_per_minute: None,
                concurrency: Some(2),
            },
            ..ApiKeyConfig::default()
        });
        let first = keys.admit(Some("k")).expect("1");
        let _second = keys.admit(Some("k")).expect("2");
        let refusal = keys.admit(Some("k")).expect_err("third refused");
        assert_eq!(refusal.error.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refusal.retry_after, Some(1));
        drop(first);
        assert!(keys.admit(Some("k")).is_ok(), "a slot was freed");
    }

    #[test]
    fn rpm_limit_refuses_with_the_wait_until_the_next_request() {
        let keys = keys(ApiKeyConfig {
            keys: vec!["k".into()],
            default_limits: KeyLimits {
                requests_per_minute: Some(3),
                concurrency: None,
            },
            ..ApiKeyConfig::default()
        });
        for _ in 0..3 {
            keys.admit(Some("k")).expect("within the limit");
        }
        let refusal = keys.admit(Some("k")).expect_err("fourth refused");
        assert_eq!(refusal.error.code, Some("rate_limit_exceeded"));
        let wait = refusal.retry_after.expect("retry after");
        assert!((19..=20).contains(&wait), "one request per 20 s: {wait}");
    }

    #[test]
    fn key_file_lines_set_their_own_limits_and_bad_lines_are_named() {
        let defaults = KeyLimits {
            requests_per_minute: Some(60),
            concurrency: None,
        };
        let parsed = parse_key_file(
            "# team a\nsk-a rpm=10 concurrency=2\n\n  sk-b  \n",
            "keys.txt",
            defaults,
        )
        .expect("valid");
        assert_eq!(
            parsed,
            vec![
                (
                    "sk-a".to_owned(),
                    KeyLimits {
                        requests_per_minute: Some(10),
                        concurrency: Some(2)
                    }
                ),
                ("sk-b".to_owned(), defaults),
            ]
        );
        let err = parse_key_file("sk-a\nsk-b burst=3\n", "keys.txt", defaults)
            .expect_err("unknown option");
        assert!(
            err.to_string().contains("line 2") && err.to_string().contains("burst"),
            "{err}"
        );
        let err =
            parse_key_file("sk-a rpm=0\n", "keys.txt", defaults).expect_err("zero is no limit");
        assert!(err.to_string().contains("above 0"), "{err}");
    }

    #[test]
    fn reload_swaps_keys_and_a_broken_file_keeps_the_old_ones() {
        let scratch = inferd_testkit::temp_dir("keys-reload");
        let dir = scratch.path();
        std::fs::create_dir_all(dir).expect("mkdir");
        let file = dir.join("keys");
        std::fs::write(&file, "sk-old\n").expect("write");
        let keys = keys(ApiKeyConfig {
            keys: vec!["sk-static".into()],
            file: Some(file.clone()),
            ..ApiKeyConfig::default()
        });
        assert!(keys.admit(Some("sk-old")).is_ok());
        std::fs::write(&file, "sk-new\n").expect("write");
        assert_eq!(keys.reload().expect("reloaded"), 2);
        assert!(keys.admit(Some("sk-old")).is_err(), "rotated out");
        assert!(keys.admit(Some("sk-new")).is_ok());
        assert!(keys.admit(Some("sk-static")).is_ok());
        std::fs::write(&file, "sk-newer rpm=x\n").expect("write");
        assert!(keys.reload().is_err());
        assert!(keys.admit(Some("sk-new")).is_ok(), "old keys stay in force");
    }
}
