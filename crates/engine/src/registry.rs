//! The model registry: which models this server offers, where each is in its life
//! (available → downloading → loading → ready → unloading, or failed), and the backend that
//! serves each once it is ready.
//!
//! Models load at start-up or on first use, with single flight: however many requests ask for
//! a cold model at once, one resolves its artifact and loads it, and all are served. With a
//! memory budget, the least recently used idle models are unloaded to make room; a model with
//! requests in flight is never unloaded.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use async_trait::async_trait;
use inferd_otel::semconv::INFERD_MODEL_ARTIFACTS_SOURCE_LOCAL_CACHE;
use opentelemetry::context::FutureExt as _;
use opentelemetry::Context;

use crate::backend::{Backend, ModelInfo, Upstreams};
use crate::hooks::{HooksBus, LoadFailed, LoadStarted, ModelLoad, ModelUnload, UnloadStarted};
use crate::local::{LocalEngine, LocalEngineConfig};
use crate::EngineError;

/// A model to serve: where its GGUF file comes from and how to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub id: String,
    /// Other names requests may use for it.
    pub aliases: Vec<String>,
    /// A local path, or a URL (`https://…`, `s3://bucket/key`, `file://…`) for an artifact
    /// resolver that downloads.
    pub source: String,
    /// Expected sha256 of the file (hex), checked by resolvers that download.
    pub sha256: Option<String>,
    pub engine: LocalEngineConfig,
    /// Load when the server starts (otherwise on first use).
    pub load_at_startup: bool,
}

impl ModelSpec {
    /// A model from a local file, loaded at start-up.
    pub fn local(
        id: impl Into<String>,
        path: impl Into<PathBuf>,
        engine: LocalEngineConfig,
    ) -> Self {
        Self {
            id: id.into(),
            aliases: Vec::new(),
            source: path.into().display().to_string(),
            sha256: None,
            engine,
            load_at_startup: true,
        }
    }
}

/// A model's artifact on local disk, ready to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedArtifact {
    pub path: PathBuf,
    /// `inferd.model.artifacts.source`: `local_cache`, `http`, `s3`, …
    pub source: &'static str,
    pub bytes: u64,
}

/// Turns a model's source into a local file. Called in the context of the `model.load` span,
/// so what it reports (the artifact store's `model.artifacts.load` / `model.artifacts.download`
/// spans) are the load's children.
#[async_trait]
pub trait ArtifactResolver: Send + Sync + std::fmt::Debug {
    /// Whether resolving `spec` downloads (the model is then `downloading`, not `loading`).
    fn is_remote(&self, spec: &ModelSpec) -> bool;

    async fn resolve(&self, spec: &ModelSpec) -> Result<ResolvedArtifact, EngineError>;
}

/// Local files only: the source is a path, used in place. It reports nothing (no
/// `model.artifacts.load` span: that is the artifact store's, which inferd's server uses).
#[derive(Debug, Default)]
pub struct LocalFiles;

#[async_trait]
impl ArtifactResolver for LocalFiles {
    fn is_remote(&self, _spec: &ModelSpec) -> bool {
        false
    }

    async fn resolve(&self, spec: &ModelSpec) -> Result<ResolvedArtifact, EngineError> {
        if spec.source.contains("://") {
            return Err(EngineError::Load {
                model: spec.id.clone(),
                path: spec.source.clone(),
                reason: "this server was built without an artifact store for URLs".into(),
            });
        }
        let path = PathBuf::from(&spec.source);
        let meta = std::fs::metadata(&path).map_err(|e| EngineError::Load {
            model: spec.id.clone(),
            path: spec.source.clone(),
            reason: e.to_string(),
        })?;
        Ok(ResolvedArtifact {
            path,
            source: INFERD_MODEL_ARTIFACTS_SOURCE_LOCAL_CACHE,
            bytes: meta.len(),
        })
    }
}

/// Where a model is in its life.
#[derive(Debug, Clone)]
pub enum ModelState {
    /// Configured, not loaded; loads on first use.
    Available,
    /// Its artifact is being fetched.
    Downloading,
    Loading,
    Ready(Arc<dyn Backend>),
    /// The last load failed (the next request or an admin load tries again).
    Failed(String),
    Unloading,
}

impl ModelState {
    /// The state's name in the admin API.
    pub fn name(&self) -> &'static str {
        match self {
            ModelState::Available => "available",
            ModelState::Downloading => "downloading",
            ModelState::Loading => "loading",
            ModelState::Ready(_) => "ready",
            ModelState::Failed(_) => "failed",
            ModelState::Unloading => "unloading",
        }
    }
}

#[derive(Debug)]
struct Entry {
    spec: ModelSpec,
    state: ModelState,
    /// Unix seconds when the model became ready (`created` in `/v1/models`).
    created: u64,
    last_used: Instant,
    /// Requests holding a [`Lease`] on the model.
    in_flight: Arc<AtomicUsize>,
    /// Size of its artifact (the memory it is counted for), once resolved.
    bytes: Option<u64>,
    artifact_source: Option<&'static str>,
    load_seconds: Option<f64>,
    /// Serialises loads of this model (single flight).
    load_lock: Arc<tokio::sync::Mutex<()>>,
    /// Finished load attempts, so a request that waited on another's load takes its result
    /// instead of trying again.
    attempts: u64,
}

/// A ready model as listed by `/v1/models`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedModel {
    pub id: String,
    pub created: u64,
    pub info: ModelInfo,
}

/// A configured local model as the admin API shows it (and serializes it).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelStatus {
    pub id: String,
    pub aliases: Vec<String>,
    pub state: &'static str,
    pub source: String,
    pub artifact_source: Option<&'static str>,
    pub bytes: Option<u64>,
    pub load_seconds: Option<f64>,
    pub in_flight: usize,
    /// Seconds since a request last used it, when it is loaded.
    pub idle_seconds: Option<f64>,
    pub error: Option<String>,
    pub load_at_startup: bool,
    /// The engine's sequence slots and KV cache, while the model is ready.
    pub slots: Option<crate::hooks::EngineLoad>,
}

/// Where a request for a model goes: see [`ModelRegistry::route`].
#[derive(Debug)]
pub struct Route(Target);

#[derive(Debug)]
enum Target {
    /// A local model, by its id (an alias resolved).
    Local(String),
    /// An upstream serves it, or may: the error says why it cannot take it now (down, or its
    /// model list not known yet).
    Remote(Result<Arc<dyn Backend>, EngineError>),
    /// Nothing serves a model of that name.
    NotFound(String),
}

impl Route {
    /// Whether the model is not a local one but one an upstream serves (or may serve).
    pub fn is_remote(&self) -> bool {
        matches!(self.0, Target::Remote(_))
    }

    /// Whether the model is a local one.
    pub fn is_local(&self) -> bool {
        matches!(self.0, Target::Local(_))
    }
}

/// Why [`ModelRegistry::acquire_route`] found no backend.
#[derive(Debug, Clone, PartialEq)]
pub enum LookupError {
    /// No model of that id is configured.
    NotFound {
        model: String,
        available: Vec<String>,
    },
    /// Configured, but not serving (its load failed, or an upstream is down).
    Unavailable(EngineError),
}

/// Why an unload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnloadError {
    #[error("no local model `{0}` is configured")]
    NotFound(String),
    #[error("model `{0}` is not loaded")]
    NotLoaded(String),
    #[error("model `{model}` has {in_flight} requests in flight; unload it when they are done")]
    Busy { model: String, in_flight: usize },
}

/// A request's hold on a model: the backend, and (for a local model) a count that keeps the
/// model from being unloaded until the lease is dropped.
#[derive(Debug)]
pub struct Lease {
    pub backend: Arc<dyn Backend>,
    _in_flight: Option<InFlight>,
}

#[derive(Debug)]
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The models this server offers, keyed by id.
#[derive(Debug)]
pub struct ModelRegistry {
    entries: RwLock<BTreeMap<String, Entry>>,
    /// Alias → id.
    aliases: BTreeMap<String, String>,
    default_model: Option<String>,
    hooks: HooksBus,
    /// Remote upstreams (the gateway), asked for models not served locally.
    upstreams: Option<Arc<dyn Upstreams>>,
    resolver: Arc<dyn ArtifactResolver>,
    /// Most bytes of model artifacts loaded at once.
    memory_budget: Option<u64>,
}

impl ModelRegistry {
    /// A registry of these models, all `available`; the first is the default. Loads are
    /// reported to `hooks`.
    pub fn new(specs: Vec<ModelSpec>, hooks: HooksBus) -> Self {
        let default_model = specs.first().map(|s| s.id.clone());
        let mut aliases = BTreeMap::new();
        for spec in &specs {
            for alias in &spec.aliases {
                aliases.insert(alias.clone(), spec.id.clone());
            }
        }
        let entries = specs
            .into_iter()
            .map(|spec| {
                (
                    spec.id.clone(),
                    Entry {
                        spec,
                        state: ModelState::Available,
                        created: 0,
                        last_used: Instant::now(),
                        in_flight: Arc::new(AtomicUsize::new(0)),
                        bytes: None,
                        artifact_source: None,
                        load_seconds: None,
                        load_lock: Arc::new(tokio::sync::Mutex::new(())),
                        attempts: 0,
                    },
                )
            })
            .collect();
        Self {
            entries: RwLock::new(entries),
            aliases,
            default_model,
            hooks,
            upstreams: None,
            resolver: Arc::new(LocalFiles),
            memory_budget: None,
        }
    }

    /// Routes models not served locally to these upstreams (a local model of the same id
    /// wins).
    pub fn with_upstreams(mut self, upstreams: Arc<dyn Upstreams>) -> Self {
        self.upstreams = Some(upstreams);
        self
    }

    /// Resolves model sources with `resolver` (default: local files only).
    pub fn with_resolver(mut self, resolver: Arc<dyn ArtifactResolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Keeps the artifacts of loaded models under `bytes`, unloading idle models (least
    /// recently used first) to make room.
    pub fn with_memory_budget(mut self, bytes: Option<u64>) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// The id of the model `/ready` waits for.
    pub fn default_model(&self) -> Option<&str> {
        self.default_model.as_deref()
    }

    /// The id `name` stands for (itself, or the model it is an alias of).
    fn canonical<'a>(&'a self, name: &'a str) -> &'a str {
        self.aliases.get(name).map_or(name, String::as_str)
    }

    /// Loads the models marked for start-up, one after another. Each load is a trace of its
    /// own (it belongs to no request).
    pub async fn load_all(self: Arc<Self>) {
        let ids: Vec<String> = self
            .read()
            .values()
            .filter(|e| e.spec.load_at_startup)
            .map(|e| e.spec.id.clone())
            .collect();
        for id in ids {
            // Errors are recorded in the model's state and on its spans.
            let _ = self.ensure_loaded(&id, &Context::new()).await;
        }
    }

    /// Where requests for `model` (an id or alias) go: a local model, its upstreams (in the order
    /// they are tried), or nowhere. Decided once per request: the server looks at
    /// it to choose what it sends, and [`ModelRegistry::acquire_route`] takes it.
    pub fn route(&self, model: &str) -> Route {
        let id = self.canonical(model);
        if self.read().contains_key(id) {
            return Route(Target::Local(id.to_owned()));
        }
        match self.route_upstream(model) {
            Some(backend) => Route(Target::Remote(backend)),
            None => Route(Target::NotFound(model.to_owned())),
        }
    }

    /// A lease on the backend `route` names, loading a local model on first use (its
    /// `model.load` span a child of `parent`).
    pub async fn acquire_route(
        &self,
        route: Route,
        parent: &Context,
    ) -> Result<Lease, LookupError> {
        let id = match route.0 {
            Target::Local(id) => id,
            Target::Remote(Ok(backend)) => {
                return Ok(Lease {
                    backend,
                    _in_flight: None,
                })
            }
            Target::Remote(Err(err)) => return Err(LookupError::Unavailable(err)),
            Target::NotFound(model) => {
                return Err(LookupError::NotFound {
                    model,
                    available: self.names(),
                })
            }
        };
        if let Some(lease) = self.lease(&id) {
            return Ok(lease);
        }
        self.ensure_loaded(&id, parent)
            .await
            .map_err(LookupError::Unavailable)?;
        self.lease(&id).ok_or_else(|| {
            LookupError::Unavailable(EngineError::NotReady {
                model: id.clone(),
                reason: "it was unloaded right after loading (memory budget); retry".into(),
            })
        })
    }

    /// The upstream backend for `model`, if an upstream serves it (or may).
    fn route_upstream(&self, model: &str) -> Option<Result<Arc<dyn Backend>, EngineError>> {
        self.upstreams.as_ref()?.route(model)
    }

    /// The models the upstreams serve.
    fn upstream_models(&self) -> Vec<(String, ModelInfo)> {
        self.upstreams
            .as_ref()
            .map_or_else(Vec::new, |upstreams| upstreams.models())
    }

    /// Every model name a request may use: local ids and aliases, then upstream models.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().keys().cloned().collect();
        names.extend(self.aliases.keys().cloned());
        names.extend(self.upstream_models().into_iter().map(|(id, _)| id));
        names
    }

    /// A lease when the model is ready (taken under the lock, so eviction cannot race it).
    fn lease(&self, id: &str) -> Option<Lease> {
        let mut entries = self.write();
        let entry = entries.get_mut(id)?;
        let ModelState::Ready(backend) = &entry.state else {
            return None;
        };
        entry.last_used = Instant::now();
        entry.in_flight.fetch_add(1, Ordering::SeqCst);
        Some(Lease {
            backend: Arc::clone(backend),
            _in_flight: Some(InFlight(Arc::clone(&entry.in_flight))),
        })
    }

    /// Loads `id` unless it is ready, with single flight. `parent` is the OpenTelemetry context
    /// of the request that triggered the load, the parent of its `model.load` span (an empty
    /// one at start-up: the load is a trace of its own).
    pub async fn ensure_loaded(&self, id: &str, parent: &Context) -> Result<(), EngineError> {
        let (lock, seen) = {
            let entries = self.read();
            let entry = entries.get(id).ok_or_else(|| EngineError::NotReady {
                model: id.to_owned(),
                reason: "no such local model".into(),
            })?;
            if matches!(entry.state, ModelState::Ready(_)) {
                return Ok(());
            }
            (Arc::clone(&entry.load_lock), entry.attempts)
        };
        let _loading = lock.lock().await;
        {
            let entries = self.read();
            if let Some(entry) = entries.get(id) {
                match &entry.state {
                    ModelState::Ready(_) => return Ok(()),
                    // Another request's load finished (and failed) while this one waited.
                    ModelState::Failed(reason) if entry.attempts != seen => {
                        return Err(not_ready_failed(id, reason));
                    }
                    _ => {}
                }
            }
        }
        self.load_now(id, parent).await
    }

    /// The load itself: resolve the artifact, make room, load the engine.
    async fn load_now(&self, id: &str, parent: &Context) -> Result<(), EngineError> {
        let spec = match self.read().get(id) {
            Some(entry) => entry.spec.clone(),
            None => return Ok(()),
        };
        let started = Instant::now();
        let mut observed = self.hooks.model_load_started(&LoadStarted {
            model_id: id,
            parent,
        });
        let remote = self.resolver.is_remote(&spec);
        self.set_state(
            id,
            if remote {
                ModelState::Downloading
            } else {
                ModelState::Loading
            },
        );
        let context = observed.context().clone();
        let in_load = context.clone();
        let loading = async move {
            let artifact = self.resolver.resolve(&spec).await?;
            self.set_state(id, ModelState::Loading);
            self.make_room(id, artifact.bytes).await?;
            let hooks = self.hooks.clone();
            let path = artifact.path.clone();
            let engine = tokio::task::spawn_blocking(move || {
                let _attached = in_load.attach();
                LocalEngine::load(&spec.id, &path, &spec.engine, hooks)
            })
            .await
            .unwrap_or_else(|e| {
                Err(EngineError::Inference(format!(
                    "model loader task failed: {e}"
                )))
            })?;
            Ok::<_, EngineError>((engine, artifact))
        };
        let result = loading.with_context(context).await;
        let duration = started.elapsed();
        match result {
            Ok(((engine, engine_started), artifact)) => {
                observed.engine_started(&engine_started);
                let mut entries = self.write();
                if let Some(entry) = entries.get_mut(id) {
                    entry.state = ModelState::Ready(Arc::new(engine));
                    entry.created = inferd_openai::unix_timestamp();
                    entry.last_used = Instant::now();
                    entry.bytes = Some(artifact.bytes);
                    entry.artifact_source = Some(artifact.source);
                    entry.load_seconds = Some(duration.as_secs_f64());
                    entry.attempts += 1;
                }
                drop(entries);
                observed.finished(&ModelLoad {
                    model_id: id.to_owned(),
                    source: artifact.source,
                    duration,
                    result: Ok(()),
                });
                Ok(())
            }
            Err(err) => {
                let mut entries = self.write();
                if let Some(entry) = entries.get_mut(id) {
                    entry.state = ModelState::Failed(err.to_string());
                    entry.attempts += 1;
                }
                drop(entries);
                observed.finished(&ModelLoad {
                    model_id: id.to_owned(),
                    source: if remote {
                        "download"
                    } else {
                        INFERD_MODEL_ARTIFACTS_SOURCE_LOCAL_CACHE
                    },
                    duration,
                    result: Err(LoadFailed {
                        error_type: err.kind(),
                        message: err.to_string(),
                    }),
                });
                Err(not_ready_failed(id, &err.to_string()))
            }
        }
    }

    /// Unloads idle models, least recently used first, until `bytes` more fit in the budget.
    async fn make_room(&self, loading: &str, bytes: u64) -> Result<(), EngineError> {
        let Some(budget) = self.memory_budget else {
            return Ok(());
        };
        if bytes > budget {
            return Err(EngineError::Load {
                model: loading.to_owned(),
                path: String::new(),
                reason: format!(
                    "its artifact ({bytes} bytes) is larger than the whole memory budget ({budget} bytes)"
                ),
            });
        }
        loop {
            let (used, victim) = {
                let entries = self.read();
                let used: u64 = entries
                    .values()
                    .filter(|e| matches!(e.state, ModelState::Ready(_)))
                    .filter_map(|e| e.bytes)
                    .sum();
                let victim = entries
                    .values()
                    .filter(|e| e.spec.id != loading)
                    .filter(|e| matches!(e.state, ModelState::Ready(_)))
                    .filter(|e| e.in_flight.load(Ordering::SeqCst) == 0)
                    .min_by_key(|e| e.last_used)
                    .map(|e| e.spec.id.clone());
                (used, victim)
            };
            if used + bytes <= budget {
                return Ok(());
            }
            let Some(victim) = victim else {
                return Err(EngineError::NotReady {
                    model: loading.to_owned(),
                    reason: format!(
                        "the memory budget ({budget} bytes) is full ({used} in use) and every loaded model has requests in flight; retry later"
                    ),
                });
            };
            match self.unload(&victim, "evicted") {
                Ok(()) | Err(UnloadError::NotLoaded(_)) => {}
                // It got a request since: look for another.
                Err(UnloadError::Busy { .. }) => tokio::task::yield_now().await,
                Err(UnloadError::NotFound(_)) => {}
            }
        }
    }

    /// Unloads a ready model with no request in flight. `reason` (`admin`, `evicted`) goes on
    /// the `model.unload` span, a child of the current span.
    pub fn unload(&self, model: &str, reason: &'static str) -> Result<(), UnloadError> {
        let id = self.canonical(model).to_owned();
        // A refused unload is reported too (its observers are dropped on the way out).
        let observed = self.hooks.model_unload_started(&UnloadStarted {
            model_id: &id,
            reason,
            parent: &Context::current(),
        });
        let taken = {
            let mut entries = self.write();
            let entry = entries
                .get_mut(&id)
                .ok_or_else(|| UnloadError::NotFound(id.clone()))?;
            if !matches!(entry.state, ModelState::Ready(_)) {
                return Err(UnloadError::NotLoaded(id.clone()));
            }
            let in_flight = entry.in_flight.load(Ordering::SeqCst);
            if in_flight > 0 {
                return Err(UnloadError::Busy {
                    model: id.clone(),
                    in_flight,
                });
            }
            std::mem::replace(&mut entry.state, ModelState::Unloading)
        };
        // Dropping the last handle stops the engine thread and frees the model.
        {
            let _attached = observed.context().clone().attach();
            drop(taken);
        }
        if let Some(entry) = self.write().get_mut(&id) {
            entry.state = ModelState::Available;
            entry.load_seconds = None;
        }
        observed.finished(&ModelUnload {
            model_id: id,
            reason,
        });
        Ok(())
    }

    /// The state of `model`, if configured locally.
    pub fn state(&self, model: &str) -> Option<ModelState> {
        self.read()
            .get(self.canonical(model))
            .map(|e| e.state.clone())
    }

    /// Every configured local model, for the admin API.
    /// Whether no local engine is running or holding a sequence: before the process exits,
    /// as llama.cpp's globals are torn down at exit under any thread still decoding.
    pub fn engines_idle(&self) -> bool {
        self.statuses()
            .iter()
            .filter_map(|s| s.slots)
            .all(|load| load.running == 0 && load.waiting == 0)
    }

    pub fn statuses(&self) -> Vec<ModelStatus> {
        self.read()
            .values()
            .map(|e| ModelStatus {
                id: e.spec.id.clone(),
                aliases: e.spec.aliases.clone(),
                state: e.state.name(),
                // URLs may carry credentials or signatures.
                source: if e.spec.source.contains("://") {
                    inferd_otel::sanitize_url(&e.spec.source)
                } else {
                    e.spec.source.clone()
                },
                artifact_source: e.artifact_source,
                bytes: e.bytes,
                load_seconds: e.load_seconds,
                in_flight: e.in_flight.load(Ordering::SeqCst),
                idle_seconds: matches!(e.state, ModelState::Ready(_))
                    .then(|| e.last_used.elapsed().as_secs_f64()),
                error: match &e.state {
                    ModelState::Failed(reason) => Some(reason.clone()),
                    _ => None,
                },
                load_at_startup: e.spec.load_at_startup,
                slots: match &e.state {
                    ModelState::Ready(backend) => backend.engine_load(),
                    _ => None,
                },
            })
            .collect()
    }

    /// Ready local models, then the models of the upstreams (a local id hides a remote one),
    /// sorted by id.
    pub fn list_ready(&self) -> Vec<ListedModel> {
        let entries = self.read();
        let mut listed: Vec<ListedModel> = entries
            .iter()
            .filter_map(|(id, entry)| match &entry.state {
                ModelState::Ready(backend) => Some(ListedModel {
                    id: id.clone(),
                    created: entry.created,
                    info: backend.info(),
                }),
                _ => None,
            })
            .collect();
        for (id, info) in self.upstream_models() {
            if !entries.contains_key(&id) {
                listed.push(ListedModel {
                    id,
                    created: 0,
                    info,
                });
            }
        }
        listed.sort_by(|a, b| a.id.cmp(&b.id));
        listed
    }

    fn set_state(&self, id: &str, state: ModelState) {
        if let Some(entry) = self.write().get_mut(id) {
            entry.state = state;
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        // A poisoned lock only means another thread panicked mid-update; the map is still valid.
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn not_ready_failed(id: &str, reason: &str) -> EngineError {
    EngineError::NotReady {
        model: id.to_owned(),
        reason: format!("its load failed: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str) -> ModelSpec {
        ModelSpec::local(
            id,
            format!("/nonexistent/{id}.gguf"),
            LocalEngineConfig::default(),
        )
    }

    #[tokio::test]
    async fn unknown_model_lists_available_ids_and_aliases() {
        let mut a = spec("a");
        a.aliases = vec!["alpha".into()];
        let registry = ModelRegistry::new(vec![a, spec("b")], HooksBus::default());
        match registry
            .acquire_route(registry.route("zzz"), &Context::new())
            .await
        {
            Err(LookupError::NotFound { available, .. }) => {
                assert_eq!(available, vec!["a", "b", "alpha"])
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert_eq!(registry.default_model(), Some("a"));
        assert_eq!(registry.state("alpha").map(|s| s.name()), Some("available"));
    }

    #[test]
    fn a_route_names_a_local_model_by_id_or_alias_and_nothing_else_without_upstreams() {
        let mut a = spec("a");
        a.aliases = vec!["alpha".into()];
        let registry = ModelRegistry::new(vec![a], HooksBus::default());
        for name in ["a", "alpha"] {
            let route = registry.route(name);
            assert!(route.is_local() && !route.is_remote(), "{name}: {route:?}");
        }
        let route = registry.route("zzz");
        assert!(!route.is_local() && !route.is_remote(), "{route:?}");
    }

    #[tokio::test]
    async fn missing_file_marks_model_failed_and_the_next_use_retries() {
        let registry = Arc::new(ModelRegistry::new(vec![spec("gone")], HooksBus::default()));
        assert!(matches!(
            registry.state("gone"),
            Some(ModelState::Available)
        ));
        Arc::clone(&registry).load_all().await;
        assert!(matches!(
            registry.state("gone"),
            Some(ModelState::Failed(_))
        ));
        assert!(registry.list_ready().is_empty());
        match registry
            .acquire_route(registry.route("gone"), &Context::new())
            .await
        {
            Err(LookupError::Unavailable(EngineError::NotReady { reason, .. })) => {
                assert!(reason.contains("No such file"), "{reason}")
            }
            other => panic!("expected NotReady, got {other:?}"),
        }
        assert_eq!(registry.statuses()[0].state, "failed");
        assert!(registry.statuses()[0].error.is_some());
    }

    #[test]
    fn unloading_what_is_not_loaded_is_refused() {
        let registry = ModelRegistry::new(vec![spec("a")], HooksBus::default());
        assert_eq!(
            registry.unload("a", "admin"),
            Err(UnloadError::NotLoaded("a".into()))
        );
        assert_eq!(
            registry.unload("zz", "admin"),
            Err(UnloadError::NotFound("zz".into()))
        );
    }
}
