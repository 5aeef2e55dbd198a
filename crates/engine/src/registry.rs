//! The model registry: which models this server offers, their load state, and the backend
//! that serves each once it is ready.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use inferd_telemetry::semconv as sc;
use inferd_telemetry::{record_error, set_attribute};

use crate::backend::{Backend, ModelInfo};
use crate::hooks::{HooksBus, ModelLoad};
use crate::local::{LocalEngine, LocalEngineConfig};
use crate::remote::Gateway;
use crate::EngineError;

/// `model.artifacts.source` of a model file already on local disk.
const SOURCE_LOCAL: &str = "local_cache";

/// A model to serve from a local GGUF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub id: String,
    pub path: PathBuf,
    pub engine: LocalEngineConfig,
}

/// Where a model is in its life.
#[derive(Debug, Clone)]
pub enum ModelState {
    Loading,
    Ready(Arc<dyn Backend>),
    Failed(String),
}

#[derive(Debug)]
struct Entry {
    spec: ModelSpec,
    state: ModelState,
    /// Unix seconds when the model became ready (`created` in `/v1/models`).
    created: u64,
}

/// A ready model as listed by `/v1/models`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedModel {
    pub id: String,
    pub created: u64,
    pub info: ModelInfo,
}

/// Why [`ModelRegistry::get`] found no backend.
#[derive(Debug, Clone, PartialEq)]
pub enum LookupError {
    /// No model of that id is configured.
    NotFound {
        model: String,
        available: Vec<String>,
    },
    /// Configured, but not serving (yet, or any more).
    Unavailable(EngineError),
}

/// The models this server offers, keyed by id.
#[derive(Debug)]
pub struct ModelRegistry {
    entries: RwLock<BTreeMap<String, Entry>>,
    default_model: Option<String>,
    hooks: HooksBus,
    /// Remote upstreams, asked for models not served locally.
    gateway: Arc<Gateway>,
}

impl ModelRegistry {
    /// A registry of these models, all in the `Loading` state; the first is the default.
    /// Loads are reported to `hooks`.
    pub fn new(specs: Vec<ModelSpec>, hooks: HooksBus) -> Self {
        let default_model = specs.first().map(|s| s.id.clone());
        let entries = specs
            .into_iter()
            .map(|spec| {
                (
                    spec.id.clone(),
                    Entry {
                        spec,
                        state: ModelState::Loading,
                        created: 0,
                    },
                )
            })
            .collect();
        Self {
            entries: RwLock::new(entries),
            default_model,
            hooks,
            gateway: Arc::new(Gateway::default()),
        }
    }

    /// Routes models not served locally to these upstreams (a local model of the same id
    /// wins).
    pub fn with_gateway(mut self, gateway: Arc<Gateway>) -> Self {
        self.gateway = gateway;
        self
    }

    /// The remote upstreams.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The id of the model `/ready` waits for.
    pub fn default_model(&self) -> Option<&str> {
        self.default_model.as_deref()
    }

    /// Loads every configured model on the blocking pool, one after another, updating states.
    pub async fn load_all(self: Arc<Self>) {
        let specs: Vec<ModelSpec> = self
            .read()
            .values()
            .map(|entry| entry.spec.clone())
            .collect();
        for spec in specs {
            let id = spec.id.clone();
            let started = Instant::now();
            // Loads at start-up belong to no request: each gets a trace of its own.
            let span = tracing::info_span!(parent: None, "load", otel.name = sc::SPAN_MODEL_LOAD);
            set_attribute(&span, sc::MODEL_ID, id.clone());
            set_attribute(&span, sc::INFERD_MODEL_FORMAT, "gguf");
            let in_span = span.clone();
            let hooks = self.hooks.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                in_span.in_scope(|| {
                    check_artifacts(&spec);
                    LocalEngine::load(&spec.id, &spec.path, &spec.engine, hooks)
                })
            })
            .await
            .unwrap_or_else(|e| {
                Err(EngineError::Inference(format!(
                    "model loader task failed: {e}"
                )))
            });
            let duration = started.elapsed();
            set_attribute(&span, sc::MODEL_LOAD_TIME_SECONDS, duration.as_secs_f64());
            let (state, result) = match loaded {
                Ok(engine) => {
                    tracing::info!(parent: &span, model = %id, seconds = duration.as_secs_f64(), "model ready");
                    (ModelState::Ready(Arc::new(engine)), Ok(()))
                }
                Err(err) => {
                    tracing::error!(parent: &span, model = %id, error = %err, "model failed to load");
                    record_error(&span, err.kind(), &err.to_string());
                    (ModelState::Failed(err.to_string()), Err(err.to_string()))
                }
            };
            // Enter once more so the span ends now (a span's end is its last exit).
            span.in_scope(|| {});
            drop(span);
            self.hooks.model_loaded(&ModelLoad {
                model_id: id.clone(),
                source: SOURCE_LOCAL,
                duration,
                result,
            });
            if let Some(entry) = self.write().get_mut(&id) {
                entry.state = state;
                entry.created = unix_now();
            }
        }
    }

    /// The backend serving `model`, if it is ready.
    pub fn get(&self, model: &str) -> Result<Arc<dyn Backend>, LookupError> {
        let entries = self.read();
        let Some(entry) = entries.get(model) else {
            return match self.gateway.route(model) {
                Some(Ok(backend)) => Ok(backend),
                Some(Err(err)) => Err(LookupError::Unavailable(err)),
                None => {
                    let mut available: Vec<String> = entries.keys().cloned().collect();
                    available.extend(self.gateway.models().into_iter().map(|(id, _)| id));
                    Err(LookupError::NotFound {
                        model: model.to_owned(),
                        available,
                    })
                }
            };
        };
        match &entry.state {
            ModelState::Ready(backend) => Ok(Arc::clone(backend)),
            ModelState::Loading => Err(LookupError::Unavailable(EngineError::NotReady {
                model: model.to_owned(),
                reason: "it is still loading".into(),
            })),
            ModelState::Failed(reason) => Err(LookupError::Unavailable(EngineError::NotReady {
                model: model.to_owned(),
                reason: format!("its load failed: {reason}"),
            })),
        }
    }

    /// The state of `model`, if configured.
    pub fn state(&self, model: &str) -> Option<ModelState> {
        self.read().get(model).map(|e| e.state.clone())
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
        for (id, info) in self.gateway.models() {
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

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        // A poisoned lock only means another thread panicked mid-update; the map is still valid.
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `model.artifacts.load` step: finding the model file in local storage.
fn check_artifacts(spec: &ModelSpec) {
    let span = tracing::info_span!("artifacts", otel.name = sc::SPAN_MODEL_ARTIFACTS_LOAD);
    set_attribute(&span, sc::MODEL_ID, spec.id.clone());
    set_attribute(&span, sc::MODEL_ARTIFACTS_SOURCE, SOURCE_LOCAL);
    span.in_scope(|| match std::fs::metadata(&spec.path) {
        Ok(meta) => {
            set_attribute(
                &span,
                sc::MODEL_ARTIFACTS_BYTES,
                i64::try_from(meta.len()).unwrap_or(i64::MAX),
            );
        }
        Err(e) => record_error(
            &span,
            "artifact_missing",
            &format!("{}: {e}", spec.path.display()),
        ),
    });
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str) -> ModelSpec {
        ModelSpec {
            id: id.into(),
            path: PathBuf::from(format!("/nonexistent/{id}.gguf")),
            engine: LocalEngineConfig::default(),
        }
    }

    #[test]
    fn unknown_model_lists_available_ids() {
        let registry = ModelRegistry::new(vec![spec("a"), spec("b")], HooksBus::default());
        match registry.get("zzz") {
            Err(LookupError::NotFound { available, .. }) => assert_eq!(available, vec!["a", "b"]),
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert_eq!(registry.default_model(), Some("a"));
    }

    #[tokio::test]
    async fn missing_file_marks_model_failed_not_ready() {
        let registry = Arc::new(ModelRegistry::new(vec![spec("gone")], HooksBus::default()));
        assert!(matches!(registry.state("gone"), Some(ModelState::Loading)));
        Arc::clone(&registry).load_all().await;
        assert!(matches!(
            registry.state("gone"),
            Some(ModelState::Failed(_))
        ));
        assert!(registry.get("gone").is_err());
        assert!(registry.list_ready().is_empty());
        match registry.get("gone") {
            Err(LookupError::Unavailable(EngineError::NotReady { reason, .. })) => {
                assert!(reason.contains("no such file"), "{reason}")
            }
            other => panic!("expected NotReady, got {other:?}"),
        }
    }
}
