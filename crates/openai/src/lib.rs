//! The OpenAI API as inferd speaks it, both ways: the request, response, chunk and error
//! bodies its server reads and writes, what its gateway sends to an upstream and reads back,
//! and the server-sent-event parser for streamed answers. It knows nothing of models, engines
//! or HTTP stacks; the server, the gateway, the job store and the bench all name these types.
//!
//! Requests are parsed loosely (unknown fields are ignored, as OpenAI clients send many; the
//! server notes them to pass a request through) and checked strictly by the server. Written
//! bodies keep their field order and their absent-field rules: clients and tests compare them.

mod api;
mod chat;
mod completions;
mod embeddings;
mod error;
mod models;
mod sse;
mod upstream;
mod usage;

pub use api::Api;
pub use chat::{
    ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChunkChoice, Message,
    RequestMessage,
};
pub use completions::{Completion, CompletionChoice, CompletionChunk, CompletionRequest};
pub use embeddings::EmbeddingsRequest;
pub use error::{ErrorBody, ErrorDetail, UpstreamError, UpstreamErrorBody};
pub use models::{ModelCard, ModelList, UpstreamModel, UpstreamModelList};
pub use sse::SseParser;
pub use upstream::{UpstreamAnswer, UpstreamChoice, UpstreamRequest};
pub use usage::{
    PromptTokensDetails, StreamOptions, UpstreamPromptDetails, UpstreamUsage, UsageBody,
};

/// Now as the API's timestamps write it (`created`, `created_at`, `completed_at` …): whole
/// seconds since the Unix epoch (0 for a clock set before it).
pub fn unix_timestamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
