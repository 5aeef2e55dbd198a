//! The model registry: which models this server offers, their load state, and the backend
//! that serves each once it is ready.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::backend::{Backend, ModelInfo};
use crate::local::{LocalEngine, LocalEngineConfig};
use crate::EngineError;

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
}

impl ModelRegistry {
    /// A registry of these models, all in the `Loading` state; the first is the default.
    pub fn new(specs: Vec<ModelSpec>) -> Self {
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
        }
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
            let loaded = tokio::task::spawn_blocking(move || {
                LocalEngine::load(&spec.id, &spec.path, &spec.engine)
            })
            .await
            .unwrap_or_else(|e| {
                Err(EngineError::Inference(format!(
                    "model loader task failed: {e}"
                )))
            });
            let state = match loaded {
                Ok(engine) => {
                    tracing::info!(model = %id, seconds = started.elapsed().as_secs_f64(), "model ready");
                    ModelState::Ready(Arc::new(engine))
                }
                Err(err) => {
                    tracing::error!(model = %id, error = %err, "model failed to load");
                    ModelState::Failed(err.to_string())
                }
            };
            if let Some(entry) = self.write().get_mut(&id) {
                entry.state = state;
                entry.created = unix_now();
            }
        }
    }

    /// The backend serving `model`, if it is ready.
    pub fn get(&self, model: &str) -> Result<Arc<dyn Backend>, LookupError> {
        let entries = self.read();
        let entry = entries.get(model).ok_or_else(|| LookupError::NotFound {
            model: model.to_owned(),
            available: entries.keys().cloned().collect(),
        })?;
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

    /// Whether `model` is loaded and serving.
    pub fn is_ready(&self, model: &str) -> bool {
        self.get(model).is_ok()
    }

    /// The state of `model`, if configured.
    pub fn state(&self, model: &str) -> Option<ModelState> {
        self.read().get(model).map(|e| e.state.clone())
    }

    /// Ready models, sorted by id.
    pub fn list_ready(&self) -> Vec<ListedModel> {
        self.read()
            .iter()
            .filter_map(|(id, entry)| match &entry.state {
                ModelState::Ready(backend) => Some(ListedModel {
                    id: id.clone(),
                    created: entry.created,
                    info: backend.info(),
                }),
                _ => None,
            })
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        // A poisoned lock only means another thread panicked mid-update; the map is still valid.
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
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
        let registry = ModelRegistry::new(vec![spec("a"), spec("b")]);
        match registry.get("zzz") {
            Err(LookupError::NotFound { available, .. }) => assert_eq!(available, vec!["a", "b"]),
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert_eq!(registry.default_model(), Some("a"));
    }

    #[tokio::test]
    async fn missing_file_marks_model_failed_not_ready() {
        let registry = Arc::new(ModelRegistry::new(vec![spec("gone")]));
        assert!(matches!(registry.state("gone"), Some(ModelState::Loading)));
        Arc::clone(&registry).load_all().await;
        assert!(matches!(
            registry.state("gone"),
            Some(ModelState::Failed(_))
        ));
        assert!(!registry.is_ready("gone"));
        assert!(registry.list_ready().is_empty());
        match registry.get("gone") {
            Err(LookupError::Unavailable(EngineError::NotReady { reason, .. })) => {
                assert!(reason.contains("no such file"), "{reason}")
            }
            other => panic!("expected NotReady, got {other:?}"),
        }
    }
}
