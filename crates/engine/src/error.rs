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
    /// A remote upstream cannot be reached (down, refusing connections, probing says
    /// unhealthy, or its model list is not known yet).
    #[error("upstream `{upstream}` is unavailable: {reason}")]
    UpstreamUnavailable { upstream: String, reason: String },
    /// Every connection an upstream may have (`max_concurrent`) is in use.
    #[error("upstream `{upstream}` is busy: all {limit} allowed concurrent requests are in flight; retry later")]
    UpstreamBusy { upstream: String, limit: usize },
    /// The upstream answered with an error status; its message is passed on.
    #[error("{message}")]
    UpstreamStatus {
        upstream: String,
        status: u16,
        message: String,
        /// The upstream's error `code` and `param`, when it sent OpenAI-style error JSON.
        code: Option<String>,
        param: Option<String>,
    },
    /// The upstream broke the exchange: a cut stream, an unreadable answer.
    #[error("upstream `{upstream}` failed: {reason}")]
    UpstreamFailed { upstream: String, reason: String },
    /// The upstream did not answer in time (`what` names the timeout that fired).
    #[error("upstream `{upstream}` timed out: no {what} within {seconds}s")]
    UpstreamTimeout {
        upstream: String,
        what: &'static str,
        seconds: f64,
    },
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
            EngineError::UpstreamUnavailable { .. } => "upstream_unavailable",
            EngineError::UpstreamBusy { .. } => "overloaded",
            EngineError::UpstreamStatus { .. } => "upstream_error",
            EngineError::UpstreamFailed { .. } => "upstream_failed",
            EngineError::UpstreamTimeout { .. } => "upstream_timeout",
        }
    }
}
