//! OpenAI-compatible wire types. Requests are parsed loosely (unknown fields are ignored, as
//! OpenAI clients send many) and checked strictly in [`crate::validation`].

pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod models;

use serde::{Deserialize, Serialize};

/// `stream_options` of a streaming request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// Token counts in a response.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct UsageBody {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
    /// OpenAI's breakdown of the prompt: how much of it the prompt cache served.
    pub prompt_tokens_details: PromptTokensDetails,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens reused from the KV cache instead of processed again.
    pub cached_tokens: u32,
}

impl From<inferd_engine::Usage> for UsageBody {
    fn from(usage: inferd_engine::Usage) -> Self {
        Self {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage.total_tokens(),
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: usage.cached_tokens,
            },
        }
    }
}
