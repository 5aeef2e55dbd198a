//! Token counts both ways (the `usage` inferd writes and the one it reads from an upstream),
//! and `stream_options`, which asks for them in a stream.

use serde::{Deserialize, Serialize};

/// `stream_options` of a streaming request, as a client sends it and as inferd sends it
/// upstream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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

/// Token counts as an upstream reports them: every part may be missing or null.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct UpstreamUsage {
    #[serde(default)]
    pub prompt_tokens: u32,
    #[serde(default)]
    pub completion_tokens: u32,
    #[serde(default)]
    pub prompt_tokens_details: Option<UpstreamPromptDetails>,
}

/// `usage.prompt_tokens_details` (vLLM and OpenAI report prompt-cache hits here).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct UpstreamPromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u32>,
}
