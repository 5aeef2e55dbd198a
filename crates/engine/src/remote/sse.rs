//! Reading an OpenAI-compatible upstream's answer: a server-sent-event line parser that takes
//! bytes as they arrive, and the few fields of a completion (chunk) inferd needs.

use serde::Deserialize;

use crate::text::clip;
use crate::{FinishReason, Usage};

/// Splits a byte stream into SSE events and returns each event's `data` (multi-line data
/// joined with `\n`). Fields other than `data` (`event`, `id`, `retry`) and comments are
/// skipped; a partial line waits for the next bytes.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    data: Option<String>,
}

impl SseParser {
    /// Feeds `bytes` and returns the events they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buffer[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos;
            let mut line = &self.buffer[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    events.push(data);
                }
            } else if let Some(value) = line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                let value = String::from_utf8_lossy(value);
                match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(&value);
                    }
                    None => self.data = Some(value.into_owned()),
                }
            }
            start = end + 1;
        }
        self.buffer.drain(..start);
        events
    }

    /// The event left when the stream ended without its closing blank line.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buffer);
        if !rest.is_empty() {
            self.push(&rest);
            self.push(b"\n");
        }
        self.data.take()
    }
}

/// The fields of a completion or a completion chunk that inferd reads; everything else the
/// upstream sends is ignored.
#[derive(Debug, Default, Deserialize)]
pub struct WireCompletion {
    #[serde(default)]
    pub choices: Vec<WireChoice>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
    #[serde(default)]
    pub error: Option<WireError>,
}

#[derive(Debug, Default, Deserialize)]
pub struct WireChoice {
    /// Chat chunks.
    #[serde(default)]
    pub delta: Option<WireMessage>,
    /// Chat, whole answer.
    #[serde(default)]
    pub message: Option<WireMessage>,
    /// Text completions.
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct WireMessage {
    #[serde(default)]
    pub content: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: u32,
    #[serde(default)]
    pub completion_tokens: u32,
    #[serde(default)]
    pub prompt_tokens_details: Option<WirePromptDetails>,
}

/// `usage.prompt_tokens_details` (vLLM and OpenAI report prompt-cache hits here).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct WirePromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u32>,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cached_tokens: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
        }
    }
}

/// OpenAI's error object, as upstreams send it in an error body or an error event.
#[derive(Debug, Default, Deserialize)]
pub struct WireError {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub code: Option<serde_json::Value>,
    #[serde(default)]
    pub param: Option<String>,
}

impl WireError {
    /// The code as a string (some servers send numbers).
    pub fn code_string(&self) -> Option<String> {
        match &self.code {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// An error body: `{"error": {...}}` (OpenAI, vLLM, inferd), `{"error": "text"}` (TGI,
/// Ollama) or `{"message": ...}`; anything else is quoted as text.
pub fn error_from_body(body: &[u8]) -> (String, Option<String>, Option<String>) {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Body {
        Object { error: WireError },
        Text { error: String },
        Message { message: String },
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(Body::Object { error }) => {
            let code = error.code_string();
            (
                error.message.unwrap_or_else(|| "(no message)".into()),
                code,
                error.param,
            )
        }
        Ok(Body::Text { error }) | Ok(Body::Message { message: error }) => (error, None, None),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = clip(text.trim(), 512);
            (
                if text.is_empty() {
                    "(empty body)".into()
                } else {
                    text
                },
                None,
                None,
            )
        }
    }
}

/// OpenAI's finish reason as inferd's: `length` is a cut, `content_filter` and tool calls are
/// passed on, anything else (`stop`, `eos`, …) is a server's own spelling of an ordinary end.
pub fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

impl WireChoice {
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
    fn events_split_across_reads_are_reassembled() {
        let mut p = SseParser::default();
        assert!(p.push(b"data: {\"a\"").is_empty());
        assert_eq!(p.push(b":1}\n\ndata: [DO"), vec!["{\"a\":1}".to_owned()]);
        assert_eq!(p.push(b"NE]\r\n\r\n"), vec!["[DONE]".to_owned()]);
    }

    #[test]
    fn comments_and_other_fields_are_skipped_and_multiline_data_joined() {
        let mut p = SseParser::default();
        let events = p.push(b": keep-alive\nevent: x\nid: 3\ndata:a\ndata: b\n\ndata: c\n\n");
        assert_eq!(events, vec!["a\nb".to_owned(), "c".to_owned()]);
    }

    #[test]
    fn an_unterminated_last_event_is_returned_at_the_end() {
        let mut p = SseParser::default();
        assert!(p.push(b"data: tail").is_empty());
        assert_eq!(p.finish().as_deref(), Some("tail"));
        assert_eq!(p.finish(), None);
    }

    #[test]
    fn chunk_fields_of_chat_and_text_completions_are_read() {
        let chat: WireCompletion = serde_json::from_str(
            r#"{"id":"x","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
        )
        .expect("chat");
        assert_eq!(chat.choices[0].text(), Some("Hi"));
        let text: WireCompletion = serde_json::from_str(
            r#"{"choices":[{"text":" there","finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
        )
        .expect("text");
        assert_eq!(text.choices[0].text(), Some(" there"));
        assert_eq!(
            finish_reason(text.choices[0].finish_reason.as_deref().unwrap_or("")),
            FinishReason::Length
        );
        assert_eq!(Usage::from(text.usage.expect("usage")).total_tokens(), 5);
        let whole: WireCompletion = serde_json::from_str(
            r#"{"choices":[{"message":{"role":"assistant","content":"All"},"finish_reason":"stop"}]}"#,
        )
        .expect("whole");
        assert_eq!(whole.choices[0].text(), Some("All"));
    }

    #[test]
    fn error_bodies_of_several_servers_give_their_message() {
        let (m, code, param) = error_from_body(
            br#"{"error":{"message":"no such model","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#,
        );
        assert_eq!(m, "no such model");
        assert_eq!(code.as_deref(), Some("model_not_found"));
        assert_eq!(param.as_deref(), Some("model"));
        assert_eq!(error_from_body(br#"{"error":"bad input"}"#).0, "bad input");
        assert_eq!(
            error_from_body(br#"{"error":{"message":"x","code":400}}"#)
                .1
                .as_deref(),
            Some("400")
        );
        assert_eq!(error_from_body(b"Bad Gateway").0, "Bad Gateway");
        assert_eq!(error_from_body(b"").0, "(empty body)");
    }
}

#[cfg(test)]
#[path = "sse_proptests.rs"]
mod proptests;
