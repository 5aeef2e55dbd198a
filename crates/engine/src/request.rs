//! Validated, protocol-neutral request and response types that cross the [`crate::Backend`] trait.

use serde::Serialize;

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    User,
    Assistant,
}

impl ChatRole {
    /// The role name chat templates expect.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatRole::System => "system",
            ChatRole::User => "user",
            ChatRole::Assistant => "assistant",
        }
    }
}

/// One message of a conversation, text only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

/// What the model is asked to continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// A conversation, rendered with the model's own chat template.
    Chat(Vec<ChatMessage>),
    /// Raw text, tokenized as is (with the model's BOS token when it wants one).
    Text(String),
}

/// Sampling and stopping options, already range-checked by the API layer.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Upper bound on generated tokens; `None` means "until the context is full".
    pub max_tokens: Option<u32>,
    /// 0 selects greedy decoding.
    pub temperature: f32,
    pub top_p: f32,
    /// 0 disables top-k.
    pub top_k: u32,
    /// Seed of the random sampler; `None` picks a fresh one per request.
    pub seed: Option<u64>,
    /// Generation ends before any of these strings; they are not part of the output.
    pub stop: Vec<String>,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    /// Keep generating after an end-of-generation token (for benchmarks).
    pub ignore_eos: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            max_tokens: None,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            seed: None,
            stop: Vec::new(),
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            ignore_eos: false,
        }
    }
}

/// A request for one completion.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    pub prompt: Prompt,
    pub params: SamplingParams,
    /// Whether the client reads a stream. The local engine streams either way; a remote
    /// upstream is asked the same way the client asked.
    pub stream: bool,
    /// Set when the request is passed to a remote upstream as the client sent it.
    pub pass_through: Option<PassThrough>,
    /// Whether a client waits for it now or it is background work (a batch line).
    pub priority: Priority,
}

/// How urgent a generation is. The local engine puts interactive requests first: batch lines
/// sit out the steps in which an interactive request processes its prompt, and process their
/// own prompts in small chunks, so a client waiting for its first token is held up by at most
/// one short step of theirs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Priority {
    /// A client is waiting for the answer.
    #[default]
    Interactive,
    /// Work nobody watches as it runs (a line of an OpenAI batch).
    Batch,
}

/// A request passed to a remote upstream as the client sent it, for what inferd's own request
/// model does not carry (tools, logprobs, `response_format`, `n`, content parts, …), and for
/// embeddings. Its answer comes back as [`GenerationEvent::Raw`] JSON. Only upstreams take
/// it; the local engine refuses it.
#[derive(Debug, Clone, PartialEq)]
pub struct PassThrough {
    /// The upstream endpoint it goes to.
    pub api: inferd_openai::Api,
    /// The client's JSON body; `model` is replaced by the upstream's name for the model.
    pub body: serde_json::Map<String, serde_json::Value>,
    /// The id inferd gives the response: it replaces the upstream's in the answer.
    pub response_id: String,
    /// Whether the client asked for usage in a stream (the usage chunk is passed on only then;
    /// inferd always asks the upstream for it).
    pub include_usage: bool,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// End-of-generation token or a stop sequence.
    Stop,
    /// `max_tokens` reached, or the context is full.
    Length,
    /// An upstream's content filter withheld (part of) the answer.
    ContentFilter,
    /// The model called tools (an upstream answering a passed-through request).
    ToolCalls,
}

impl FinishReason {
    /// The OpenAI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::ToolCalls => "tool_calls",
        }
    }
}

/// Token counts of one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Prompt tokens whose KV cache was reused instead of processed again (prompt cache):
    /// `prompt_tokens_details.cached_tokens`, `gen_ai.usage.cache_read.input_tokens`.
    pub cached_tokens: u32,
}

impl Usage {
    pub fn total_tokens(&self) -> u32 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// Where the engine's time went for one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EngineTimings {
    /// Waiting for the engine.
    pub queue: std::time::Duration,
    /// Processing the prompt, up to the first sampled token.
    pub prefill: std::time::Duration,
    /// Generating the rest.
    pub decode: std::time::Duration,
}

/// What a running generation reports, in order: zero or more `Delta`s, then one `Finished`
/// (or an error in its place).
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// New text, always whole UTF-8 characters.
    Delta(String),
    /// A chunk (streaming) or the whole answer of a passed-through request: JSON to send to
    /// the client as it is (its `id` and `model` already inferd's). `output` says whether it
    /// carries generated output (text or tool calls).
    Raw { json: String, output: bool },
    /// Generation ended.
    Finished {
        finish_reason: FinishReason,
        usage: Usage,
        /// Queue, prefill and decode times, when the backend measures them (a remote
        /// upstream does not tell).
        timings: Option<EngineTimings>,
    },
}
