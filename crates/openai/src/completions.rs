//! `/v1/completions` (legacy text completion) bodies: the request as clients send it, the
//! answer and its stream chunks.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{StreamOptions, UsageBody};

/// A text completion request as clients send it.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    /// A string (or an array holding exactly one string).
    pub prompt: Value,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// Extension (vLLM, llama.cpp server).
    pub top_k: Option<u32>,
    pub seed: Option<i64>,
    pub stop: Option<Value>,
    pub n: Option<u32>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    /// Extension (vLLM): generate past end-of-sequence tokens, for benchmarks.
    pub ignore_eos: Option<bool>,
    pub echo: Option<bool>,
    pub best_of: Option<u32>,
    pub suffix: Option<String>,
    pub logprobs: Option<u32>,
    pub logit_bias: Option<Value>,
}

/// A non-streaming text completion.
#[derive(Debug, Serialize)]
pub struct Completion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    pub usage: UsageBody,
    pub system_fingerprint: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CompletionChoice {
    pub index: u32,
    pub text: String,
    pub logprobs: Option<Value>,
    pub finish_reason: Option<&'static str>,
}

/// One SSE chunk of a streaming text completion.
#[derive(Debug, Serialize)]
pub struct CompletionChunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub system_fingerprint: Option<String>,
    pub choices: Vec<CompletionChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<UsageBody>>,
}
