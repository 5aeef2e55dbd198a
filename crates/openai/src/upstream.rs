//! What inferd's gateway exchanges with an upstream for its own (not passed-through) chat and
//! text completion requests: the request body it sends, and the few fields of the answer or
//! stream chunk it reads (everything else the upstream sends is ignored).

use serde::{Deserialize, Serialize};

use crate::{Message, StreamOptions, UpstreamError, UpstreamUsage};

/// The body sent upstream: a chat (`messages`) or text (`prompt`) completion request. Absent
/// options are left out, so the upstream's defaults apply.
#[derive(Debug, Serialize)]
pub struct UpstreamRequest<'a> {
    pub model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Message<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    pub temperature: f32,
    pub top_p: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<&'a Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_eos: Option<bool>,
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

/// The fields of a completion or a completion chunk (chat or text) that inferd reads.
#[derive(Debug, Default, Deserialize)]
pub struct UpstreamAnswer {
    #[serde(default)]
    pub choices: Vec<UpstreamChoice>,
    #[serde(default)]
    pub usage: Option<UpstreamUsage>,
    #[serde(default)]
    pub error: Option<UpstreamError>,
}

/// One choice of an [`UpstreamAnswer`].
#[derive(Debug, Default, Deserialize)]
pub struct UpstreamChoice {
    /// Chat chunks.
    #[serde(default)]
    pub delta: Option<Message<'static>>,
    /// Chat, whole answer.
    #[serde(default)]
    pub message: Option<Message<'static>>,
    /// Text completions.
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

impl UpstreamChoice {
    /// The new text this choice carries, whichever shape it has.
    pub fn text(&self) -> Option<&str> {
        self.delta
            .as_ref()
            .and_then(|d| d.content.as_deref())
            .or_else(|| self.message.as_ref().and_then(|m| m.content.as_deref()))
            .or(self.text.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_fields_of_chat_and_text_completions_are_read() {
        let chat: UpstreamAnswer = serde_json::from_str(
            r#"{"id":"x","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
        )
        .expect("chat");
        assert_eq!(chat.choices[0].text(), Some("Hi"));
        let text: UpstreamAnswer = serde_json::from_str(
            r#"{"choices":[{"text":" there","finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
        )
        .expect("text");
        assert_eq!(text.choices[0].text(), Some(" there"));
        assert_eq!(text.choices[0].finish_reason.as_deref(), Some("length"));
        let usage = text.usage.expect("usage");
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (3, 2));
        let whole: UpstreamAnswer = serde_json::from_str(
            r#"{"choices":[{"message":{"role":"assistant","content":"All"},"finish_reason":"stop"}]}"#,
        )
        .expect("whole");
        assert_eq!(whole.choices[0].text(), Some("All"));
    }

    #[test]
    fn a_request_leaves_out_absent_options_in_a_fixed_order() {
        let stop = vec!["\n".to_owned()];
        let request = UpstreamRequest {
            model: "m",
            messages: Some(vec![Message {
                role: Some("user"),
                content: Some("Hi".into()),
            }]),
            prompt: None,
            max_tokens: Some(7),
            temperature: 0.7,
            top_p: 1.0,
            top_k: None,
            seed: None,
            stop: Some(&stop),
            frequency_penalty: None,
            presence_penalty: None,
            ignore_eos: None,
            stream: true,
            stream_options: Some(StreamOptions {
                include_usage: true,
            }),
        };
        assert_eq!(
            serde_json::to_string(&request).expect("json"),
            r#"{"model":"m","messages":[{"role":"user","content":"Hi"}],"max_tokens":7,"temperature":0.7,"top_p":1.0,"stop":["\n"],"stream":true,"stream_options":{"include_usage":true}}"#
        );
    }
}
