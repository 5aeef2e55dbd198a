//! Server-wide generation limits, applied to every validated request before it runs: the
//! default `max_tokens` of text completions (16, as OpenAI's), the `--max-tokens` cap, and the
//! most messages a chat request may hold.

use inferd_engine::GenerationRequest;
use inferd_openai::Api;
use serde_json::Value;

use crate::error::ApiError;

/// `max_tokens` of a text completion that gives none (OpenAI's default for /v1/completions).
pub const COMPLETIONS_DEFAULT_MAX_TOKENS: u32 = 16;

/// Refuses a chat request with more than `max` messages, before any work is done on them.
pub fn check_message_count(count: usize, max: usize) -> Result<(), ApiError> {
    if count > max {
        return Err(ApiError::invalid(
            Some("messages".into()),
            format!("`messages` holds {count} messages; at most {max} are accepted in one request"),
        )
        .with_code("too_many_messages"));
    }
    Ok(())
}

/// Applies the text completion default and lowers a requested `max_tokens` above `cap` to it,
/// in the body passed through to an upstream as well. A passed-through body without
/// `max_tokens` keeps the upstream's own default; a local model bounds a generation that
/// asks for no limit by its engine's `max_tokens` setting.
pub fn apply(generation: &mut GenerationRequest, api: Api, cap: Option<u32>) {
    let params = &mut generation.params;
    if api == Api::Completions && params.max_tokens.is_none() {
        params.max_tokens = Some(COMPLETIONS_DEFAULT_MAX_TOKENS);
    }
    let Some(cap) = cap else { return };
    if let Some(n) = params.max_tokens.as_mut() {
        *n = (*n).min(cap);
    }
    if let Some(pass) = generation.pass_through.as_mut() {
        for field in ["max_tokens", "max_completion_tokens"] {
            if let Some(value) = pass.body.get_mut(field) {
                if value.as_u64().is_some_and(|n| n > u64::from(cap)) {
                    *value = Value::from(cap);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use inferd_engine::{PassThrough, Prompt, SamplingParams};

    use super::*;

    fn request(max_tokens: Option<u32>) -> GenerationRequest {
        GenerationRequest {
            prompt: Prompt::Text("x".into()),
            params: SamplingParams {
                max_tokens,
                ..SamplingParams::default()
            },
            stream: false,
            pass_through: None,
            priority: inferd_engine::Priority::Interactive,
        }
    }

    #[test]
    fn text_completions_default_to_16_tokens_and_chat_keeps_none() {
        let mut text = request(None);
        apply(&mut text, Api::Completions, None);
        assert_eq!(text.params.max_tokens, Some(16));
        let mut chat = request(None);
        apply(&mut chat, Api::Chat, None);
        assert_eq!(chat.params.max_tokens, None);
        let mut asked = request(Some(100));
        apply(&mut asked, Api::Completions, None);
        assert_eq!(asked.params.max_tokens, Some(100));
    }

    #[test]
    fn the_cap_lowers_larger_requests_including_passed_through_bodies() {
        let mut big = request(Some(5000));
        apply(&mut big, Api::Chat, Some(256));
        assert_eq!(big.params.max_tokens, Some(256));
        let mut small = request(Some(10));
        apply(&mut small, Api::Chat, Some(256));
        assert_eq!(small.params.max_tokens, Some(10));
        let mut pass = request(Some(5000));
        let body = serde_json::json!({"model": "m", "max_completion_tokens": 5000});
        pass.pass_through = Some(PassThrough {
            api: Api::Chat,
            body: body.as_object().cloned().unwrap_or_default(),
            response_id: String::new(),
            include_usage: false,
        });
        apply(&mut pass, Api::Chat, Some(256));
        let body = &pass.pass_through.as_ref().map(|p| p.body.clone());
        assert_eq!(
            body.as_ref().and_then(|b| b.get("max_completion_tokens")),
            Some(&Value::from(256))
        );
    }

    #[test]
    fn too_many_messages_is_a_400_naming_messages() {
        assert!(check_message_count(2048, 2048).is_ok());
        let err = check_message_count(60_000, 2048).expect_err("too many");
        assert_eq!(err.status.as_u16(), 400);
        assert_eq!(err.param.as_deref(), Some("messages"));
        assert_eq!(err.code, Some("too_many_messages"));
    }
}
