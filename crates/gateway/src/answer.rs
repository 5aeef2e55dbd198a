//! An upstream's answer in the engine's terms: its error body as a message, code and param,
//! its finish reason, its token counts. The wire shapes are `inferd_openai`'s.

use inferd_openai::{UpstreamErrorBody, UpstreamUsage};

use inferd_engine::text::clip;
use inferd_engine::{FinishReason, Usage};

/// An upstream's token counts as the engine's.
pub fn usage(u: UpstreamUsage) -> Usage {
    Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        cached_tokens: u
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0),
    }
}

/// An error body's message, code and param: `{"error": {...}}` (OpenAI, vLLM, inferd),
/// `{"error": "text"}` (TGI, Ollama) or `{"message": ...}`; anything else is quoted as text.
pub fn error_from_body(body: &[u8]) -> (String, Option<String>, Option<String>) {
    match serde_json::from_slice::<UpstreamErrorBody>(body) {
        Ok(UpstreamErrorBody::Object { error }) => {
            let code = error.code_string();
            (
                error.message.unwrap_or_else(|| "(no message)".into()),
                code,
                error.param,
            )
        }
        Ok(UpstreamErrorBody::Text { error })
        | Ok(UpstreamErrorBody::Message { message: error }) => (error, None, None),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_and_finish_reason_of_an_answer_are_read() {
        let usage: UpstreamUsage = serde_json::from_str(
            r#"{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"prompt_tokens_details":{"cached_tokens":null}}"#,
        )
        .expect("usage");
        assert_eq!(super::usage(usage).total_tokens(), 5);
        assert_eq!(finish_reason("length"), FinishReason::Length);
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
#[path = "answer_proptests.rs"]
mod proptests;
