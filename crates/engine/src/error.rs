//! Errors a backend reports; each variant maps to one kind of client-facing response.

use thiserror::Error;

/// Why a generation could not be started or did not finish.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EngineError {
    /// The prompt alone does not fit in the model's context window.
    #[error("this model's maximum context length is {context_length} tokens, but the prompt has {prompt_tokens} tokens")]
    PromptTooLong {
        prompt_tokens: u32,
        context_length: u32,
    },
    /// The prompt fits, but the prompt plus the requested completion does not.
    #[error("this model's maximum context length is {context_length} tokens, but {requested_total} tokens were requested ({prompt_tokens} in the prompt, {max_tokens} for the completion); lower max_tokens to at most {available}")]
    MaxTokensTooLarge {
        prompt_tokens: u32,
        max_tokens: u32,
        requested_total: u32,
        context_length: u32,
        available: u32,
    },
    /// The request is well-formed JSON but the model cannot serve it (e.g. no chat template).
    #[error("{0}")]
    InvalidRequest(String),
    /// The engine's queue is full; the client should retry later.
    #[error("model `{model}` is overloaded: {queued} requests are already waiting (limit {limit}); retry later")]
    Overloaded {
        model: String,
        queued: usize,
        limit: usize,
    },
    /// The model is known but not ready to serve (still loading, or its load failed).
    #[error("model `{model}` is not ready: {reason}")]
    NotReady { model: String, reason: String },
    /// The model could not be loaded.
    #[error("failed to load model `{model}` from {path}: {reason}")]
    Load {
        model: String,
        path: String,
        reason: String,
    },
    /// The engine thread failed while generating (decode error, thread gone).
    #[error("inference failed: {0}")]
    Inference(String),
}

impl EngineError {
    /// A short, stable label for the error, used as `code` in API errors and `error.type` in telemetry.
    pub fn kind(&self) -> &'static str {
        match self {
            EngineError::PromptTooLong { .. } => "context_length_exceeded",
            EngineError::MaxTokensTooLarge { .. } => "context_length_exceeded",
            EngineError::InvalidRequest(_) => "invalid_request",
            EngineError::Overloaded { .. } => "overloaded",
            EngineError::NotReady { .. } => "model_not_ready",
            EngineError::Load { .. } => "model_load_failed",
            EngineError::Inference(_) => "inference_failed",
        }
    }
}
