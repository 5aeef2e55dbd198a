//! Request validation: turns a parsed OpenAI request into an engine [`GenerationRequest`], or a
//! 400 that names the field and says what is accepted. Nothing reaches the engine unchecked.

use inferd_engine::{
    ChatMessage, ChatRole, GenerationRequest, PassThrough, Prompt, SamplingParams,
};
use inferd_openai::{Api, ChatCompletionRequest, CompletionRequest, RequestMessage, StreamOptions};
use serde_json::Value;

use crate::error::ApiError;

/// Most stop sequences accepted in one request.
pub const MAX_STOP_SEQUENCES: usize = 16;

/// A request ready for the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRequest {
    pub model: String,
    pub generation: GenerationRequest,
    pub stream: bool,
    pub include_usage: bool,
}

/// The sampling fields both endpoints share.
struct Sampling<'a> {
    max_tokens: Option<(u32, &'static str)>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<u32>,
    seed: Option<i64>,
    stop: Option<&'a Value>,
    n: Option<u32>,
    stream: Option<bool>,
    stream_options: Option<&'a StreamOptions>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    ignore_eos: Option<bool>,
}

/// Validates a chat completion request.
pub fn chat(req: &ChatCompletionRequest) -> Result<ValidRequest, ApiError> {
    let model = model_id(&req.model)?;
    if has_items(&req.tools) || has_items(&req.functions) {
        return Err(ApiError::unsupported(
            if has_items(&req.tools) {
                "tools"
            } else {
                "functions"
            },
            "tool and function calling are not supported by this server",
        ));
    }
    if let Some(choice) = &req.tool_choice {
        if choice != "none" {
            return Err(ApiError::unsupported(
                "tool_choice",
                "tool_choice is not supported by this server (only \"none\")",
            ));
        }
    }
    if req.logprobs == Some(true) || req.top_logprobs.is_some_and(|n| n > 0) {
        return Err(ApiError::unsupported(
            "logprobs",
            "logprobs are not supported by this server",
        ));
    }
    check_logit_bias(&req.logit_bias)?;
    if let Some(format) = &req.response_format {
        if format.get("type").and_then(Value::as_str) != Some("text") {
            return Err(ApiError::unsupported(
                "response_format",
                "only response_format {\"type\": \"text\"} is supported",
            ));
        }
    }
    if req.messages.is_empty() {
        return Err(ApiError::invalid(
            Some("messages".into()),
            "`messages` must contain at least one message",
        ));
    }
    let messages = req
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| message(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    let max_tokens = match (req.max_completion_tokens, req.max_tokens) {
        (Some(n), _) => Some((n, "max_completion_tokens")),
        (None, Some(n)) => Some((n, "max_tokens")),
        (None, None) => None,
    };
    let sampling = Sampling {
        max_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        seed: req.seed,
        stop: req.stop.as_ref(),
        n: req.n,
        stream: req.stream,
        stream_options: req.stream_options.as_ref(),
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        ignore_eos: req.ignore_eos,
    };
    finish(model, Prompt::Chat(messages), &sampling)
}

/// Validates a text completion request.
pub fn completion(req: &CompletionRequest) -> Result<ValidRequest, ApiError> {
    let model = model_id(&req.model)?;
    if req.echo == Some(true) {
        return Err(ApiError::unsupported(
            "echo",
            "echo is not supported by this server",
        ));
    }
    if req.best_of.is_some_and(|n| n != 1) {
        return Err(ApiError::unsupported(
            "best_of",
            "best_of must be 1 (or absent)",
        ));
    }
    if req.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::unsupported(
            "suffix",
            "suffix (fill-in-the-middle) is not supported",
        ));
    }
    if req.logprobs.is_some_and(|n| n > 0) {
        return Err(ApiError::unsupported(
            "logprobs",
            "logprobs are not supported by this server",
        ));
    }
    check_logit_bias(&req.logit_bias)?;
    let prompt = match &req.prompt {
        Value::String(text) => text.clone(),
        Value::Array(items) if items.len() == 1 && items[0].is_string() => {
            items[0].as_str().unwrap_or_default().to_owned()
        }
        Value::Array(items) if items.iter().all(Value::is_string) => {
            return Err(ApiError::unsupported(
                "prompt",
                "only one prompt per request is supported; send one request per prompt",
            ))
        }
        Value::Array(_) => {
            return Err(ApiError::unsupported(
                "prompt",
                "token-id prompts are not supported; send the prompt as a string",
            ))
        }
        _ => {
            return Err(ApiError::invalid(
                Some("prompt".into()),
                "`prompt` must be a string",
            ))
        }
    };
    if prompt.is_empty() {
        return Err(ApiError::invalid(
            Some("prompt".into()),
            "`prompt` must not be empty",
        ));
    }
    let sampling = Sampling {
        max_tokens: req.max_tokens.map(|n| (n, "max_tokens")),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        seed: req.seed,
        stop: req.stop.as_ref(),
        n: req.n,
        stream: req.stream,
        stream_options: req.stream_options.as_ref(),
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        ignore_eos: req.ignore_eos,
    };
    finish(model, Prompt::Text(prompt), &sampling)
}

/// A chat request for a remote model that uses what inferd does not implement (tools,
/// logprobs, `n`, content parts, …): it goes to the upstream as the client sent it (`raw`),
/// which validates it. What inferd reads from it here only describes the generation in its
/// telemetry.
pub fn chat_pass_through(
    req: &ChatCompletionRequest,
    raw: &[u8],
) -> Result<ValidRequest, ApiError> {
    let messages = req
        .messages
        .iter()
        .map(|m| ChatMessage {
            role: match m.role.as_str() {
                "system" | "developer" => ChatRole::System,
                "assistant" => ChatRole::Assistant,
                _ => ChatRole::User,
            },
            content: loose_text(&m.content),
        })
        .collect();
    let max_tokens = req.max_completion_tokens.or(req.max_tokens);
    let params = loose_params(
        max_tokens,
        (req.temperature, req.top_p, req.top_k, req.seed),
        req.stop.as_ref(),
        (req.frequency_penalty, req.presence_penalty),
    );
    pass_through(
        Api::Chat,
        &req.model,
        Prompt::Chat(messages),
        params,
        (req.stream, req.stream_options.as_ref()),
        raw,
    )
}

/// A text completion request for a remote model that uses what inferd does not implement
/// (`echo`, `best_of`, `suffix`, logprobs, several prompts, …); see [`chat_pass_through`].
pub fn completion_pass_through(
    req: &CompletionRequest,
    raw: &[u8],
) -> Result<ValidRequest, ApiError> {
    let params = loose_params(
        req.max_tokens,
        (req.temperature, req.top_p, req.top_k, req.seed),
        req.stop.as_ref(),
        (req.frequency_penalty, req.presence_penalty),
    );
    let prompt = Prompt::Text(loose_text(&req.prompt));
    pass_through(
        Api::Completions,
        &req.model,
        prompt,
        params,
        (req.stream, req.stream_options.as_ref()),
        raw,
    )
}

/// An embeddings request (for a remote model; never streamed). `input` is kept as text only
/// to describe the request in telemetry.
pub fn embeddings_pass_through(
    model: &str,
    input: &Value,
    raw: &[u8],
) -> Result<ValidRequest, ApiError> {
    if input.is_null() {
        return Err(ApiError::invalid(
            Some("input".into()),
            "`input` is required: a string or an array of strings",
        ));
    }
    pass_through(
        Api::Embeddings,
        model,
        Prompt::Text(loose_text(input)),
        SamplingParams::default(),
        (None, None),
        raw,
    )
}

fn pass_through(
    api: Api,
    model: &str,
    prompt: Prompt,
    params: SamplingParams,
    (stream, stream_options): (Option<bool>, Option<&StreamOptions>),
    raw: &[u8],
) -> Result<ValidRequest, ApiError> {
    let model = model_id(model)?;
    let body: serde_json::Map<String, Value> = serde_json::from_slice(raw).map_err(|e| {
        ApiError::invalid(None, format!("the request body must be a JSON object: {e}"))
    })?;
    let stream = stream.unwrap_or(false);
    let include_usage = stream_options.is_some_and(|o| o.include_usage);
    Ok(ValidRequest {
        model,
        generation: GenerationRequest {
            prompt,
            params,
            stream,
            pass_through: Some(PassThrough {
                api,
                body,
                // Set when the response is made.
                response_id: String::new(),
                include_usage,
            }),
            priority: inferd_engine::Priority::Interactive,
        },
        stream,
        include_usage,
    })
}

/// The text of a message content or prompt, whatever its shape: a string, text parts (other
/// parts left out), strings; anything else gives nothing.
fn loose_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(|item| {
                item.as_str()
                    .or_else(|| item.get("text").and_then(Value::as_str))
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Sampling parameters as given (defaults where absent), unchecked: they describe a request
/// the upstream checks.
fn loose_params(
    max_tokens: Option<u32>,
    (temperature, top_p, top_k, seed): (Option<f32>, Option<f32>, Option<u32>, Option<i64>),
    stop: Option<&Value>,
    (frequency_penalty, presence_penalty): (Option<f32>, Option<f32>),
) -> SamplingParams {
    let defaults = SamplingParams::default();
    SamplingParams {
        max_tokens,
        temperature: temperature.unwrap_or(defaults.temperature),
        top_p: top_p.unwrap_or(defaults.top_p),
        top_k: top_k.unwrap_or(0),
        seed: seed.map(|seed| seed as u64),
        stop: stop_sequences(stop).unwrap_or_default(),
        frequency_penalty: frequency_penalty.unwrap_or(0.0),
        presence_penalty: presence_penalty.unwrap_or(0.0),
        ignore_eos: false,
    }
}

fn model_id(model: &str) -> Result<String, ApiError> {
    if model.trim().is_empty() {
        return Err(ApiError::invalid(
            Some("model".into()),
            "`model` must not be empty",
        ));
    }
    Ok(model.to_owned())
}

fn has_items(value: &Option<Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
    }
}

fn check_logit_bias(bias: &Option<Value>) -> Result<(), ApiError> {
    match bias {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(map)) if map.is_empty() => Ok(()),
        Some(_) => Err(ApiError::unsupported(
            "logit_bias",
            "logit_bias is not supported by this server",
        )),
    }
}

fn message(index: usize, msg: &RequestMessage) -> Result<ChatMessage, ApiError> {
    let role = match msg.role.as_str() {
        "system" | "developer" => ChatRole::System,
        "user" => ChatRole::User,
        "assistant" => ChatRole::Assistant,
        "tool" | "function" => {
            return Err(ApiError::unsupported(
                &format!("messages[{index}].role"),
                format!(
                    "role `{}` is not supported: this server has no tool calling",
                    msg.role
                ),
            ))
        }
        other => {
            return Err(ApiError::invalid(
                Some(format!("messages[{index}].role")),
                format!(
                    "unknown role `{other}`; expected one of: system, developer, user, assistant"
                ),
            ))
        }
    };
    let param = format!("messages[{index}].content");
    let content = match &msg.content {
        Value::String(text) => text.clone(),
        Value::Null if role == ChatRole::Assistant => String::new(),
        Value::Array(parts) => {
            let mut text = String::new();
            for (i, part) in parts.iter().enumerate() {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => match part.get("text").and_then(Value::as_str) {
                        Some(t) => text.push_str(t),
                        None => {
                            return Err(ApiError::invalid(
                                Some(format!("{param}[{i}].text")),
                                "a text content part needs a string `text`",
                            ))
                        }
                    },
                    Some(other) => {
                        return Err(ApiError::unsupported(
                            &format!("{param}[{i}].type"),
                            format!("content parts of type `{other}` are not supported; this model takes text only"),
                        ))
                    }
                    None => {
                        return Err(ApiError::invalid(
                            Some(format!("{param}[{i}].type")),
                            "each content part needs a `type`",
                        ))
                    }
                }
            }
            text
        }
        Value::Null => {
            return Err(ApiError::invalid(
                Some(param),
                "message `content` is required",
            ))
        }
        _ => {
            return Err(ApiError::invalid(
                Some(param),
                "message `content` must be a string or an array of text parts",
            ))
        }
    };
    Ok(ChatMessage { role, content })
}

fn finish(model: String, prompt: Prompt, s: &Sampling<'_>) -> Result<ValidRequest, ApiError> {
    if let Some(n) = s.n {
        if n != 1 {
            return Err(ApiError::unsupported("n", "only n=1 is supported"));
        }
    }
    let max_tokens = match s.max_tokens {
        Some((0, field)) => {
            return Err(ApiError::invalid(
                Some(field.into()),
                format!("`{field}` must be at least 1"),
            ))
        }
        Some((n, _)) => Some(n),
        None => None,
    };
    let temperature = in_range("temperature", s.temperature, 0.0, 2.0)?.unwrap_or(1.0);
    let top_p = in_range("top_p", s.top_p, 0.0, 1.0)?.unwrap_or(1.0);
    if top_p == 0.0 {
        return Err(ApiError::invalid(
            Some("top_p".into()),
            "`top_p` must be greater than 0",
        ));
    }
    let frequency_penalty =
        in_range("frequency_penalty", s.frequency_penalty, -2.0, 2.0)?.unwrap_or(0.0);
    let presence_penalty =
        in_range("presence_penalty", s.presence_penalty, -2.0, 2.0)?.unwrap_or(0.0);
    let stream = s.stream.unwrap_or(false);
    if s.stream_options.is_some() && !stream {
        return Err(ApiError::invalid(
            Some("stream_options".into()),
            "`stream_options` is only allowed when `stream` is true",
        ));
    }
    let params = SamplingParams {
        max_tokens,
        temperature,
        top_p,
        top_k: s.top_k.unwrap_or(0),
        // Negative seeds are valid in OpenAI's API; keep their bits.
        seed: s.seed.map(|seed| seed as u64),
        stop: stop_sequences(s.stop)?,
        frequency_penalty,
        presence_penalty,
        ignore_eos: s.ignore_eos.unwrap_or(false),
    };
    Ok(ValidRequest {
        model,
        generation: GenerationRequest {
            prompt,
            params,
            stream,
            pass_through: None,
            priority: inferd_engine::Priority::Interactive,
        },
        stream,
        include_usage: s.stream_options.is_some_and(|o| o.include_usage),
    })
}

fn in_range(field: &str, value: Option<f32>, min: f32, max: f32) -> Result<Option<f32>, ApiError> {
    match value {
        Some(v) if !(min..=max).contains(&v) => Err(ApiError::invalid(
            Some(field.into()),
            format!("`{field}` must be between {min} and {max}, got {v}"),
        )),
        other => Ok(other),
    }
}

fn stop_sequences(stop: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let bad = || {
        ApiError::invalid(
            Some("stop".into()),
            "`stop` must be a string or an array of strings",
        )
    };
    let stops = match stop {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad()),
    };
    if stops.len() > MAX_STOP_SEQUENCES {
        return Err(ApiError::invalid(
            Some("stop".into()),
            format!(
                "at most {MAX_STOP_SEQUENCES} stop sequences are allowed, got {}",
                stops.len()
            ),
        ));
    }
    if stops.iter().any(String::is_empty) {
        return Err(ApiError::invalid(
            Some("stop".into()),
            "stop sequences must not be empty",
        ));
    }
    Ok(stops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    fn chat_req(json: &str) -> Result<ValidRequest, ApiError> {
        chat(&parse::<ChatCompletionRequest>(json.as_bytes())?)
    }

    #[test]
    fn valid_chat_request_maps_all_options() {
        let v = chat_req(
            r#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
                "max_completion_tokens":7,"max_tokens":99,"temperature":0,"top_p":0.5,"top_k":3,"seed":-1,"stop":"x",
                "stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .expect("valid");
        let p = &v.generation.params;
        assert_eq!(p.max_tokens, Some(7));
        assert_eq!(p.temperature, 0.0);
        assert_eq!(p.top_k, 3);
        assert_eq!(p.seed, Some(u64::MAX));
        assert_eq!(p.stop, vec!["x"]);
        assert!(v.stream && v.include_usage);
        match &v.generation.prompt {
            Prompt::Chat(m) => {
                assert_eq!(m[0].role, ChatRole::System);
                assert_eq!(m[1].content, "ab");
            }
            other => panic!("unexpected prompt {other:?}"),
        }
    }

    #[test]
    fn empty_messages_rejected() {
        let err = chat_req(r#"{"model":"m","messages":[]}"#).expect_err("empty");
        assert_eq!(err.param.as_deref(), Some("messages"));
    }

    #[test]
    fn unsupported_options_named() {
        for (json, param) in [
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}"#,
                "n",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}"#,
                "tools",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true}"#,
                "logprobs",
            ),
            (
                r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
                "messages[0].role",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
                "messages[0].content[0].type",
            ),
        ] {
            let err = chat_req(json).expect_err(json);
            assert_eq!(err.param.as_deref(), Some(param), "{json}");
            assert_eq!(err.code, Some("unsupported_parameter"), "{json}");
        }
    }

    #[test]
    fn out_of_range_values_rejected() {
        for (json, param) in [
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}"#,
                "temperature",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"top_p":0}"#,
                "top_p",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
                "max_tokens",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":[1]}"#,
                "stop",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#,
                "stream_options",
            ),
            (
                r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#,
                "messages[0].role",
            ),
            (
                r#"{"model":"","messages":[{"role":"user","content":"x"}]}"#,
                "model",
            ),
        ] {
            let err = chat_req(json).expect_err(json);
            assert_eq!(err.param.as_deref(), Some(param), "{json}");
            assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn completion_prompt_forms() {
        let ok =
            |json: &str| completion(&parse::<CompletionRequest>(json.as_bytes()).expect("parse"));
        assert!(ok(r#"{"model":"m","prompt":"hi"}"#).is_ok());
        assert!(ok(r#"{"model":"m","prompt":["hi"]}"#).is_ok());
        assert_eq!(
            ok(r#"{"model":"m","prompt":["a","b"]}"#)
                .expect_err("two")
                .param
                .as_deref(),
            Some("prompt")
        );
        assert_eq!(
            ok(r#"{"model":"m","prompt":[1,2]}"#)
                .expect_err("ids")
                .param
                .as_deref(),
            Some("prompt")
        );
        assert_eq!(
            ok(r#"{"model":"m","prompt":""}"#)
                .expect_err("empty")
                .param
                .as_deref(),
            Some("prompt")
        );
        assert_eq!(
            ok(r#"{"model":"m","prompt":"x","echo":true}"#)
                .expect_err("echo")
                .param
                .as_deref(),
            Some("echo")
        );
    }
}

#[cfg(test)]
#[path = "validation_proptests.rs"]
mod proptests;
