//! `/v1/chat/completions` bodies: the request as clients send it, the answer and its stream
//! chunks, and [`Message`], the one message shape inferd writes and reads back.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{StreamOptions, UsageBody};

/// A chat completion request as clients send it.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<RequestMessage>,
    pub max_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// Extension (vLLM, llama.cpp server): keep only the k most likely tokens.
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
    pub tools: Option<Value>,
    pub functions: Option<Value>,
    pub tool_choice: Option<Value>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
    pub logit_bias: Option<Value>,
    pub response_format: Option<Value>,
}

/// One message of a client's request; `content` is a string or an array of content parts
/// (kept as JSON: the server's validation says what it accepts).
#[derive(Debug, Clone, Deserialize)]
pub struct RequestMessage {
    pub role: String,
    #[serde(default)]
    pub content: Value,
}

/// A chat message as inferd writes it (in a request to an upstream, in a whole answer, as a
/// chunk's `delta`) and reads it back from an upstream's answer (`message` or `delta`, of
/// which only `content` is read). An absent part is left out of the JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Message<'a> {
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub role: Option<&'a str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Cow<'a, str>>,
}

/// A non-streaming chat completion.
#[derive(Debug, Serialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: UsageBody,
    pub system_fingerprint: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ChatChoice {
    pub index: u32,
    /// Role and content both set.
    pub message: Message<'static>,
    pub logprobs: Option<Value>,
    pub finish_reason: &'static str,
}

/// One SSE chunk of a streaming chat completion.
#[derive(Debug, Serialize)]
pub struct ChatCompletionChunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub system_fingerprint: Option<String>,
    pub choices: Vec<ChunkChoice>,
    /// Present (as null) on every chunk when usage was requested, filled on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<UsageBody>>,
}

#[derive(Debug, Serialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Message<'static>,
    pub logprobs: Option<Value>,
    pub finish_reason: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_leaves_out_what_it_lacks_and_reads_only_its_content() {
        let whole = Message {
            role: Some("assistant"),
            content: Some("Hi".into()),
        };
        assert_eq!(
            serde_json::to_string(&whole).expect("json"),
            r#"{"role":"assistant","content":"Hi"}"#
        );
        assert_eq!(
            serde_json::to_string(&Message::default()).expect("json"),
            "{}"
        );
        let read: Message<'static> =
            serde_json::from_str(r#"{"role":"assistant","content":"All","refusal":null}"#)
                .expect("message");
        assert_eq!((read.role, read.content.as_deref()), (None, Some("All")));
        let empty: Message<'static> = serde_json::from_str(r#"{"content":null}"#).expect("null");
        assert_eq!(empty.content, None);
    }
}
