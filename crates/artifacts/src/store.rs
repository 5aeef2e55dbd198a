//! [`ArtifactStore`]: the one entry point. Local paths are checked in place; everything else
//! is looked up in the cache and downloaded on a miss, one download per file however many
//! callers ask at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt, Shared};
use inferd_otel::semconv::INFERD_MODEL_ARTIFACTS_SOURCE_LOCAL_CACHE;
use opentelemetry::context::FutureExt as _;
use opentelemetry::Context;
use tokio::sync::watch;

use crate::cache::{self, Lookup, Sidecar};
use crate::digest::Sha256Digest;
use crate::lock::CacheLock;
use crate::observe::{check_finished, Download, Observers, Started, StoreObserver};
use crate::transfer::Job;
use crate::{file, http, s3, ArtifactError, ArtifactSource, Progress, StoreConfig};

/// What to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRequest {
    /// The model the file belongs to (`inferd.model.id` on spans).
    pub model_id: String,
    /// Where it comes from.
    pub source: ArtifactSource,
    /// The sha256 the file must have; checked on download, against the sidecar on a cache hit,
    /// and by hashing a local path.
    pub sha256: Option<Sha256Digest>,
}

impl ArtifactRequest {
    /// A request without an expected digest.
    pub fn new(model_id: impl Into<String>, source: ArtifactSource) -> Self {
        Self {
            model_id: model_id.into(),
            source,
            sha256: None,
        }
    }

    /// Requires this sha256.
    #[must_use]
    pub fn with_sha256(mut self, sha256: Option<Sha256Digest>) -> Self {
        self.sha256 = sha256;
        self
    }
}

/// How the file became available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactOrigin {
    /// A local path, used in place.
    LocalFile,
    /// Already in the cache.
    CacheHit,
    /// Downloaded (or copied from a `file://` URL) just now.
    Downloaded,
}

/// A model file ready on local disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The file to load.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Its sha256 when known (always for cached files; for a local path only when one was
    /// expected).
    pub sha256: Option<Sha256Digest>,
    /// Cache hit, local file or download.
    pub origin: ArtifactOrigin,
    /// `inferd.model.artifacts.source` for metrics: `local_cache`, `http`, `s3` or `file`.
    pub source: &'static str,
}

type SharedFetch = Shared<BoxFuture<'static, Result<Artifact, ArtifactError>>>;

struct InFlight {
    result: SharedFetch,
    progress: watch::Receiver<Progress>,
}

/// Resolves model sources to verified local files. Cheap to clone; clones share the cache
/// and the in-flight downloads.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: StoreConfig,
    http: reqwest::Client,
    in_flight: Mutex<HashMap<PathBuf, InFlight>>,
    observers: Observers,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ArtifactStore {
    /// A store with these settings, reporting to no observer. The cache directory is created
    /// on the first download.
    pub fn new(config: StoreConfig) -> Result<Self, ArtifactError> {
        Self::build(config, None)
    }

    /// A store with these settings that reports what it does to `observer` (which makes its
    /// spans and lines).
    pub fn with_observer(
        config: StoreConfig,
        observer: Arc<dyn StoreObserver>,
    ) -> Result<Self, ArtifactError> {
        Self::build(config, Some(observer))
    }

    fn build(
        config: StoreConfig,
        observer: Option<Arc<dyn StoreObserver>>,
    ) -> Result<Self, ArtifactError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("inferd/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .build()
            .map_err(|e| ArtifactError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                http,
                in_flight: Mutex::new(HashMap::new()),
                observers: Observers::new(observer),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Where `source` is (or would be) cached; `None` for a local path, used in place.
    pub fn cache_path(&self, source: &ArtifactSource) -> Option<PathBuf> {
        source
            .cache_relative_path()
            .map(|rel| self.inner.config.cache_dir.join(rel))
    }

    /// Whether fetching `request` would download (a registry shows the model as
    /// `downloading` then): false for a local path and for a cached file whose sidecar matches
    /// its size (and the expected sha256). A quick, synchronous check of metadata only.
    pub fn needs_download(&self, request: &ArtifactRequest) -> bool {
        let Some(dest) = self.cache_path(&request.source) else {
            return false;
        };
        let Ok(meta) = std::fs::metadata(&dest) else {
            return true;
        };
        let sidecar: Option<Sidecar> = std::fs::read(cache::sidecar_path(&dest))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        !sidecar.is_some_and(|s| {
            s.size == meta.len() && request.sha256.as_ref().is_none_or(|e| *e == s.sha256)
        })
    }

    /// Makes the file of `request` available locally: the local path itself, a verified cache
    /// hit, or a download. What it does is reported to the observer with the current context as
    /// parent.
    pub async fn fetch(&self, request: &ArtifactRequest) -> Result<Artifact, ArtifactError> {
        self.fetch_with_progress(request, |_| {}).await
    }

    /// As [`fetch`](Self::fetch), calling `on_progress` as bytes arrive (also when this call
    /// joined a download another caller started).
    pub async fn fetch_with_progress(
        &self,
        request: &ArtifactRequest,
        mut on_progress: impl FnMut(Progress) + Send,
    ) -> Result<Artifact, ArtifactError> {
        let dest = match (&request.source, self.cache_path(&request.source)) {
            (ArtifactSource::Local(path), _) => {
                return local_file(&self.inner.observers, request, path).await
            }
            (_, Some(dest)) => dest,
            (_, None) => {
                return Err(ArtifactError::InvalidSource {
                    input: request.source.display_url(),
                    reason: "it has no cache location".into(),
                })
            }
        };
        let (mut result, mut progress) = self.join_or_start(request, dest);
        let artifact = loop {
            tokio::select! {
                outcome = &mut result => break outcome?,
                changed = progress.changed() => match changed {
                    Ok(()) => on_progress(*progress.borrow_and_update()),
                    Err(_) => break result.await?,
                },
            }
        };
        // A caller that joined another's fetch may expect a digest the starter did not.
        match (&request.sha256, &artifact.sha256) {
            (Some(expected), Some(actual)) if expected != actual => {
                Err(ArtifactError::ChecksumMismatch {
                    source_url: request.source.display_url(),
                    expected: expected.to_hex(),
                    actual: actual.to_hex(),
                    note: "; the cached copy was fetched for a request without this digest".into(),
                })
            }
            _ => Ok(artifact),
        }
    }

    /// Joins the download of `dest` in flight, or starts one on its own task (so it finishes
    /// into the cache even if every caller goes away).
    fn join_or_start(
        &self,
        request: &ArtifactRequest,
        dest: PathBuf,
    ) -> (SharedFetch, watch::Receiver<Progress>) {
        let mut in_flight = lock(&self.inner.in_flight);
        if let Some(running) = in_flight.get(&dest) {
            self.inner.observers.fetch_joined(&dest);
            return (running.result.clone(), running.progress.clone());
        }
        let (progress_tx, progress_rx) = watch::channel(Progress::default());
        let inner = Arc::clone(&self.inner);
        let task_request = request.clone();
        let task_dest = dest.clone();
        // The download runs on a task of its own: its parent context goes with it.
        let parent = Context::current();
        let task = tokio::spawn(async move {
            let result = inner
                .resolve(&task_request, &task_dest, &parent, &progress_tx)
                .await;
            lock(&inner.in_flight).remove(&task_dest);
            result
        });
        let source_url = request.source.display_url();
        let result = async move {
            task.await.unwrap_or_else(|e| {
                Err(ArtifactError::Internal {
                    source_url,
                    message: e.to_string(),
                })
            })
        }
        .boxed()
        .shared();
        in_flight.insert(
            dest,
            InFlight {
                result: result.clone(),
                progress: progress_rx.clone(),
            },
        );
        (result, progress_rx)
    }
}

impl Inner {
    /// Cache hit or download, reported with `parent` as the parent context.
    async fn resolve(
        &self,
        request: &ArtifactRequest,
        dest: &Path,
        parent: &Context,
        progress: &watch::Sender<Progress>,
    ) -> Result<Artifact, ArtifactError> {
        let started = Started { request, parent };
        // Another process (a second server, `inferd pull`) may be fetching the same file.
        let _lock = match lock_cache_file(dest).await {
            Ok(lock) => lock,
            Err(e) => {
                check_finished(self.observers.check_started(&started), Err(&e));
                return Err(e);
            }
        };
        let expected = request.sha256.as_ref();
        match cache::lookup(dest, expected, self.config.rehash_cache_hits).await {
            Ok(Lookup::Hit(sidecar)) => {
                let check = self.observers.check_started(&started);
                progress.send_replace(Progress {
                    done: sidecar.size,
                    total: Some(sidecar.size),
                });
                let artifact = Artifact {
                    path: dest.to_owned(),
                    bytes: sidecar.size,
                    sha256: Some(sidecar.sha256),
                    origin: ArtifactOrigin::CacheHit,
                    source: INFERD_MODEL_ARTIFACTS_SOURCE_LOCAL_CACHE,
                };
                check_finished(check, Ok(&artifact));
                return Ok(artifact);
            }
            Ok(Lookup::Miss {
                reason: Some(reason),
            }) => {
                self.observers.cached_copy_rejected(dest, &reason);
                cache::evict(dest).await?;
            }
            Ok(Lookup::Miss { reason: None }) => {}
            Err(e) => {
                check_finished(self.observers.check_started(&started), Err(&e));
                return Err(e);
            }
        }
        let download = self.observers.download_started(&started);
        let cx = download.context().clone();
        let result = self
            .download(request, dest, progress, &download)
            .with_context(cx)
            .await;
        download.finished(result.as_ref());
        result
    }

    async fn download(
        &self,
        request: &ArtifactRequest,
        dest: &Path,
        progress: &watch::Sender<Progress>,
        download: &Download,
    ) -> Result<Artifact, ArtifactError> {
        let source_url = request.source.display_url();
        let job = Job {
            dest,
            expected: request.sha256.as_ref(),
            source_url: &source_url,
            progress,
            download,
        };
        let downloaded = match &request.source {
            ArtifactSource::Http(url) => http::download(&self.http, url, &job).await?,
            ArtifactSource::S3(location) => s3::download(&self.config, location, &job).await?,
            ArtifactSource::File(path) => file::copy(path, &job).await?,
            ArtifactSource::Local(_) => {
                return Err(ArtifactError::Internal {
                    source_url,
                    message: "a local path is never downloaded".into(),
                })
            }
        };
        let sidecar = Sidecar {
            source: source_url,
            size: downloaded.bytes,
            sha256: downloaded.sha256,
            fetched_at: cache::now_rfc3339(),
            etag: downloaded.etag,
        };
        if let Err(e) = cache::write_json(&cache::sidecar_path(dest), &sidecar).await {
            // Without its sidecar the file would never be trusted; do not leave it behind.
            let _ = cache::evict(dest).await;
            return Err(e);
        }
        Ok(Artifact {
            path: dest.to_owned(),
            bytes: downloaded.bytes,
            sha256: Some(downloaded.sha256),
            origin: ArtifactOrigin::Downloaded,
            source: request.source.kind(),
        })
    }
}

async fn lock_cache_file(dest: &Path) -> Result<CacheLock, ArtifactError> {
    if let Some(dir) = dest.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| ArtifactError::io("create directory", dir, e))?;
    }
    CacheLock::acquire(dest).await
}

/// A local path: present, a file, and (when expected) of the right digest. Never modified.
async fn local_file(
    observers: &Observers,
    request: &ArtifactRequest,
    path: &Path,
) -> Result<Artifact, ArtifactError> {
    let check = observers.check_started(&Started {
        request,
        parent: &Context::current(),
    });
    let result = async {
        let meta = match tokio::fs::metadata(path).await {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ArtifactError::NotFound {
                    source_url: path.display().to_string(),
                    detail: ": no such file; check the path".into(),
                })
            }
            Err(e) => return Err(ArtifactError::io("read", path, e)),
        };
        if !meta.is_file() {
            return Err(ArtifactError::NotFound {
                source_url: path.display().to_string(),
                detail: ": it is not a file".into(),
            });
        }
        let sha256 = match &request.sha256 {
            Some(expected) => {
                let actual = cache::hash_file(path).await?;
                if actual != *expected {
                    return Err(ArtifactError::ChecksumMismatch {
                        source_url: path.display().to_string(),
                        expected: expected.to_hex(),
                        actual: actual.to_hex(),
                        note: "; the file was left in place".into(),
                    });
                }
                Some(actual)
            }
            None => None,
        };
        Ok(Artifact {
            path: path.to_owned(),
            bytes: meta.len(),
            sha256,
            origin: ArtifactOrigin::LocalFile,
            source: INFERD_MODEL_ARTIFACTS_SOURCE_LOCAL_CACHE,
        })
    }
    .await;
    check_finished(check, result.as_ref());
    result
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a task panicked mid-update; the map is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
