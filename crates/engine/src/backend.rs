//! The [`Backend`] trait: anything that can turn a [`GenerationRequest`] into a stream of
//! [`GenerationEvent`]s. The local llama.cpp engine implements it; a remote upstream will too.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::{EngineError, GenerationEvent, GenerationRequest};

/// Facts about a served model that the API layer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// Context window in tokens.
    pub context_length: u32,
    /// Who provides the model (`owned_by` in `/v1/models`). The strings are shared: `info`
    /// is called several times per request, and its answer is copied into spans and metrics.
    pub owned_by: Arc<str>,
    /// `gen_ai.provider.name` of generations: `inferd` in process, the upstream's kind
    /// (`vllm`, `openai`, …) for a remote one.
    pub provider: Arc<str>,
    /// Address and port of a remote upstream (`server.address`, `server.port`).
    pub server: Option<(Arc<str>, u16)>,
}

/// The events of one generation. Dropping it cancels the generation: the engine notices at its
/// next token and frees its slot.
#[derive(Debug)]
pub struct GenerationStream {
    /// Prompt size in tokens, known once the request was accepted.
    pub prompt_tokens: u32,
    events: mpsc::UnboundedReceiver<Result<GenerationEvent, EngineError>>,
    /// `server.address` / `server.port` of the upstream that took the request, when a remote
    /// model's request went to another replica than the one [`Backend::info`] names.
    served_by: Option<(Arc<str>, u16)>,
}

impl GenerationStream {
    /// Wraps the receiving end of an engine's event channel.
    pub fn new(
        prompt_tokens: u32,
        events: mpsc::UnboundedReceiver<Result<GenerationEvent, EngineError>>,
    ) -> Self {
        Self {
            prompt_tokens,
            events,
            served_by: None,
        }
    }

    /// Names the upstream (`server.address`, `server.port`) that took the request.
    #[must_use]
    pub fn with_served_by(mut self, server: (Arc<str>, u16)) -> Self {
        self.served_by = Some(server);
        self
    }

    /// The upstream that took the request, for a remote model.
    pub fn served_by(&self) -> Option<&(Arc<str>, u16)> {
        self.served_by.as_ref()
    }

    /// The next event; `None` once the generation is over (after `Finished` or an error).
    pub async fn next(&mut self) -> Option<Result<GenerationEvent, EngineError>> {
        self.events.recv().await
    }
}

/// A model server: local engine or remote upstream.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Facts about the model behind this backend.
    fn info(&self) -> ModelInfo;

    /// The slots and KV cache of an in-process engine (none for a remote upstream).
    fn engine_load(&self) -> Option<crate::hooks::EngineLoad> {
        None
    }

    /// Validates and enqueues a generation. Errors returned here (prompt too long, queue full)
    /// happen before any output, so the API can answer with a proper status code.
    async fn generate(&self, request: GenerationRequest) -> Result<GenerationStream, EngineError>;
}

/// Models served elsewhere: the registry asks these for every model it does not serve itself.
/// `inferd-gateway`'s `Gateway` (OpenAI-compatible upstreams) implements it; the engine knows
/// no HTTP.
pub trait Upstreams: Send + Sync + std::fmt::Debug {
    /// The backend for `model`: `None` when no upstream serves it, an error when one that
    /// might serve it cannot be used now.
    fn route(&self, model: &str) -> Option<Result<Arc<dyn Backend>, EngineError>>;

    /// Every model the upstreams serve, with its facts, each id once.
    fn models(&self) -> Vec<(String, ModelInfo)>;
}
