//! One generation on an upstream: the OpenAI request (built by inferd, or the client's own
//! passed through), sent through the [`stack`](super::stack) (failover, retries, the CLIENT
//! span, the deadline), and the answer turned into [`GenerationEvent`]s as it arrives (a
//! stream is passed on chunk by chunk).

use std::sync::Arc;

use async_trait::async_trait;
use http_body_util::BodyExt;
use inferd_openai::{Message, SseParser, StreamOptions, UpstreamAnswer, UpstreamRequest};
use inferd_otel::OtelSpan;
use serde_json::Value;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;
use tower::ServiceExt;

use super::answer;
use super::client::{self, BodyError, Response};
use super::stack::Failover;
use super::{ModelRoute, Upstream};
use inferd_engine::{Backend, GenerationStream, ModelInfo};
use inferd_engine::{EngineError, FinishReason, GenerationEvent, GenerationRequest, Prompt, Usage};

/// Largest whole (non-stream) answer read from an upstream.
const MAX_ANSWER: usize = 64 * 1024 * 1024;

type Events = mpsc::UnboundedSender<Result<GenerationEvent, EngineError>>;

/// A model served by one or more upstreams: the first candidate is the one chosen for this
/// request, the others are where it fails over to (before anything was streamed).
pub struct RemoteBackend {
    /// The top of its stack, holding the candidates.
    failover: Failover,
}

impl std::fmt::Debug for RemoteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBackend").finish_non_exhaustive()
    }
}

impl RemoteBackend {
    /// `candidates` must not be empty.
    pub(super) fn new(candidates: Vec<(Arc<Upstream>, ModelRoute)>) -> Self {
        Self {
            failover: Failover::new(candidates.into(), request_body),
        }
    }
}

#[async_trait]
impl Backend for RemoteBackend {
    fn info(&self) -> ModelInfo {
        self.failover.first().info()
    }

    async fn generate(&self, request: GenerationRequest) -> Result<GenerationStream, EngineError> {
        let sent = self.failover.clone().oneshot(request).await?;
        let request = sent.request;
        // After a failover this is not the upstream `info()` named.
        let served_by = sent.upstream.server.clone();
        let (events, receiver) = mpsc::unbounded_channel();
        let call = Call {
            upstream: sent.upstream,
            span: sent.span,
            events,
            raw: request.pass_through.as_ref().map(|pass| RawOut {
                response_id: pass.response_id.clone(),
                model_id: sent.model_id,
                include_usage: pass.include_usage,
            }),
            _permit: sent.permit,
        };
        if request.stream {
            tokio::spawn(call.pump_stream(sent.response, sent.head_deadline, sent.deadline));
        } else {
            call.read_whole(sent.response, sent.deadline).await;
        }
        Ok(GenerationStream::new(0, receiver).with_served_by(served_by))
    }
}

/// The OpenAI request for `request`, naming the upstream's model.
fn request_body(model: &str, request: &GenerationRequest) -> Vec<u8> {
    if let Some(pass) = &request.pass_through {
        let mut body = pass.body.clone();
        body.insert("model".into(), Value::from(model));
        if request.stream {
            let options = body
                .entry("stream_options")
                .or_insert_with(|| Value::Object(Default::default()));
            if !options.is_object() {
                *options = Value::Object(Default::default());
            }
            if let Some(options) = options.as_object_mut() {
                options.insert("include_usage".into(), Value::Bool(true));
            }
        }
        // A map of JSON values always serializes.
        return serde_json::to_vec(&body).unwrap_or_default();
    }
    let p = &request.params;
    let (messages, prompt) = match &request.prompt {
        Prompt::Chat(messages) => (
            Some(
                messages
                    .iter()
                    .map(|m| Message {
                        role: Some(m.role.as_str()),
                        content: Some(m.content.as_str().into()),
                    })
                    .collect(),
            ),
            None,
        ),
        Prompt::Text(text) => (None, Some(text.as_str())),
    };
    let body = UpstreamRequest {
        model,
        messages,
        prompt,
        max_tokens: p.max_tokens,
        temperature: p.temperature,
        top_p: p.top_p,
        top_k: (p.top_k > 0).then_some(p.top_k),
        // OpenAI-compatible servers read the seed as a signed 64-bit integer.
        seed: p.seed.map(|seed| seed as i64),
        stop: (!p.stop.is_empty()).then_some(&p.stop),
        frequency_penalty: (p.frequency_penalty != 0.0).then_some(p.frequency_penalty),
        presence_penalty: (p.presence_penalty != 0.0).then_some(p.presence_penalty),
        ignore_eos: p.ignore_eos.then_some(true),
        stream: request.stream,
        stream_options: request.stream.then_some(StreamOptions {
            include_usage: true,
        }),
    };
    // Plain strings and numbers (sampling values are finite after validation): cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A call whose answer is being read.
struct Call {
    upstream: Arc<Upstream>,
    /// The HTTP CLIENT span of the successful attempt; ends when the body is read.
    span: OtelSpan,
    events: Events,
    /// Set for a passed-through request: its answer goes on as JSON.
    raw: Option<RawOut>,
    /// Held until the answer is read: the upstream's concurrency limit.
    _permit: OwnedSemaphorePermit,
}

/// How a passed-through answer is handed on.
struct RawOut {
    /// Replaces the upstream's `id`.
    response_id: String,
    /// Replaces the upstream's `model` (its own name for the model).
    model_id: String,
    /// Whether the usage-only chunk of a stream goes on to the client.
    include_usage: bool,
}

/// What the stream said so far.
#[derive(Default)]
struct Progress {
    finish_reason: Option<FinishReason>,
    usage: Option<Usage>,
    /// Text chunks received: the completion token count when the upstream gives no usage.
    chunks: u32,
    done: bool,
}

impl Call {
    fn name(&self) -> &str {
        &self.upstream.config.name
    }

    /// Passes a streamed answer on chunk by chunk. Ends early, dropping the connection (so
    /// the upstream stops), when the client went away.
    async fn pump_stream(self, response: Response, first_deadline: Instant, deadline: Instant) {
        let mut body = response.into_body();
        let mut parser = SseParser::default();
        let mut progress = Progress::default();
        let timeouts = self.upstream.config.timeouts;
        loop {
            let (limit, what, seconds) = if progress.chunks == 0 && first_deadline < deadline {
                (first_deadline, "first token", timeouts.first_token)
            } else {
                (deadline, "complete answer", timeouts.total)
            };
            let next = tokio::select! {
                biased;
                () = self.events.closed() => {
                    self.span.record_error("cancelled", "the client went away");
                    self.span.end();
                    return;
                }
                next = tokio::time::timeout_at(limit, body.frame()) => next,
            };
            let chunk = match next {
                Err(_elapsed) => {
                    return self.fail(EngineError::UpstreamTimeout {
                        upstream: self.name().to_owned(),
                        what,
                        seconds: seconds.as_secs_f64(),
                    });
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    let mut reason = format!("the stream broke: {e}");
                    client::push_causes(&mut reason, &e);
                    return self.fail(EngineError::UpstreamFailed {
                        upstream: self.name().to_owned(),
                        reason,
                    });
                }
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(chunk) => chunk,
                    // Trailers carry no text.
                    Err(_trailers) => continue,
                },
            };
            for data in parser.push(&chunk) {
                if let Err(err) = self.on_event(&data, &mut progress) {
                    return self.fail(err);
                }
                if progress.done {
                    break;
                }
            }
            if progress.done {
                break;
            }
        }
        if !progress.done {
            if let Some(data) = parser.finish() {
                if let Err(err) = self.on_event(&data, &mut progress) {
                    return self.fail(err);
                }
            }
        }
        if !progress.done && progress.finish_reason.is_none() {
            return self.fail(EngineError::UpstreamFailed {
                upstream: self.name().to_owned(),
                reason: "the stream ended before the answer was finished".into(),
            });
        }
        self.finish(progress);
    }

    /// Handles one SSE event's data.
    fn on_event(&self, data: &str, progress: &mut Progress) -> Result<(), EngineError> {
        if data.trim() == "[DONE]" {
            progress.done = true;
            return Ok(());
        }
        if let Some(raw) = &self.raw {
            return self.pass_on(raw, data.as_bytes(), progress, true);
        }
        let chunk: UpstreamAnswer =
            serde_json::from_str(data).map_err(|e| EngineError::UpstreamFailed {
                upstream: self.name().to_owned(),
                reason: format!("unreadable stream chunk ({e}): {}", clip(data)),
            })?;
        if let Some(error) = chunk.error {
            return Err(EngineError::UpstreamFailed {
                upstream: self.name().to_owned(),
                reason: error
                    .message
                    .unwrap_or_else(|| "an error event without a message".into()),
            });
        }
        self.apply(chunk, progress)
    }

    fn apply(&self, chunk: UpstreamAnswer, progress: &mut Progress) -> Result<(), EngineError> {
        if let Some(usage) = chunk.usage {
            progress.usage = Some(answer::usage(usage));
        }
        if let Some(choice) = chunk.choices.into_iter().next() {
            if let Some(text) = choice.text().filter(|t| !t.is_empty()) {
                progress.chunks += 1;
                if self
                    .events
                    .send(Ok(GenerationEvent::Delta(text.to_owned())))
                    .is_err()
                {
                    return Err(EngineError::UpstreamFailed {
                        upstream: self.name().to_owned(),
                        reason: "cancelled".into(),
                    });
                }
            }
            if let Some(reason) = choice.finish_reason.as_deref() {
                progress.finish_reason = Some(answer::finish_reason(reason));
            }
        }
        Ok(())
    }

    /// Hands on one chunk (or the whole answer) of a passed-through request: the upstream's
    /// JSON with inferd's response id and model id, after noting its usage, finish reason and
    /// whether it carries output. In a stream, the usage-only chunk goes on only when the
    /// client asked for usage.
    fn pass_on(
        &self,
        raw: &RawOut,
        data: &[u8],
        progress: &mut Progress,
        streaming: bool,
    ) -> Result<(), EngineError> {
        let unreadable = |e: serde_json::Error| EngineError::UpstreamFailed {
            upstream: self.name().to_owned(),
            reason: format!(
                "unreadable {} ({e}): {}",
                if streaming { "stream chunk" } else { "answer" },
                clip(&String::from_utf8_lossy(data))
            ),
        };
        let mut value: Value = serde_json::from_slice(data).map_err(unreadable)?;
        let Some(object) = value.as_object_mut() else {
            return Err(unreadable(serde::de::Error::custom("not a JSON object")));
        };
        if let Some(error) = object.get("error").filter(|e| !e.is_null()) {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("an error event without a message");
            return Err(EngineError::UpstreamFailed {
                upstream: self.name().to_owned(),
                reason: message.to_owned(),
            });
        }
        let usage = object.get("usage").filter(|u| !u.is_null());
        if let Some(usage) = usage {
            let count = |key: &str| {
                usage
                    .get(key)
                    .and_then(Value::as_u64)
                    .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
            };
            let cached_tokens = usage
                .get("prompt_tokens_details")
                .and_then(|d| d.get("cached_tokens"))
                .and_then(Value::as_u64)
                .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
            progress.usage = Some(Usage {
                prompt_tokens: count("prompt_tokens"),
                completion_tokens: count("completion_tokens"),
                cached_tokens,
            });
        }
        let choices = object.get("choices").and_then(Value::as_array);
        let mut output = false;
        for choice in choices.into_iter().flatten() {
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                progress
                    .finish_reason
                    .get_or_insert(answer::finish_reason(reason));
            }
            output |= carries_output(choice);
        }
        let usage_only = choices.is_none_or(Vec::is_empty) && usage.is_some();
        if streaming && usage_only && !raw.include_usage {
            return Ok(());
        }
        if output {
            progress.chunks += 1;
        }
        // Embeddings answers may have no id; completions always do.
        if object.contains_key("id") {
            object.insert("id".into(), Value::from(raw.response_id.as_str()));
        }
        if object.contains_key("model") {
            object.insert("model".into(), Value::from(raw.model_id.as_str()));
        }
        let json = serde_json::to_string(&value).map_err(unreadable)?;
        self.events
            .send(Ok(GenerationEvent::Raw { json, output }))
            .map_err(|_| EngineError::UpstreamFailed {
                upstream: self.name().to_owned(),
                reason: "cancelled".into(),
            })
    }

    /// Reads a whole (non-stream) answer.
    async fn read_whole(self, response: Response, deadline: Instant) {
        let body = client::read_body(response.into_body(), MAX_ANSWER);
        let bytes = match tokio::time::timeout_at(deadline, body).await {
            Err(_elapsed) => {
                let seconds = self.upstream.config.timeouts.total.as_secs_f64();
                return self.fail(EngineError::UpstreamTimeout {
                    upstream: self.name().to_owned(),
                    what: "complete answer",
                    seconds,
                });
            }
            Ok(Err(BodyError::TooLarge(limit))) => {
                return self.fail(EngineError::UpstreamFailed {
                    upstream: self.name().to_owned(),
                    reason: format!("its answer is larger than {limit} bytes"),
                })
            }
            Ok(Err(BodyError::Broken(reason))) => {
                return self.fail(EngineError::UpstreamFailed {
                    upstream: self.name().to_owned(),
                    reason: format!("the answer broke off: {reason}"),
                })
            }
            Ok(Ok(bytes)) => bytes,
        };
        if let Some(raw) = &self.raw {
            let mut progress = Progress::default();
            if let Err(err) = self.pass_on(raw, &bytes, &mut progress, false) {
                return self.fail(err);
            }
            return self.finish(progress);
        }
        let answer: UpstreamAnswer = match serde_json::from_slice(&bytes) {
            Ok(answer) => answer,
            Err(e) => {
                return self.fail(EngineError::UpstreamFailed {
                    upstream: self.name().to_owned(),
                    reason: format!(
                        "unreadable answer ({e}): {}",
                        clip(&String::from_utf8_lossy(&bytes))
                    ),
                })
            }
        };
        let mut progress = Progress::default();
        if let Err(err) = self.apply(answer, &mut progress) {
            return self.fail(err);
        }
        self.finish(progress);
    }

    fn finish(&self, progress: Progress) {
        let usage = progress.usage.unwrap_or(Usage {
            prompt_tokens: 0,
            completion_tokens: progress.chunks,
            cached_tokens: 0,
        });
        let _ = self.events.send(Ok(GenerationEvent::Finished {
            finish_reason: progress.finish_reason.unwrap_or(FinishReason::Stop),
            usage,
            timings: None,
        }));
        self.span.end();
    }

    fn fail(&self, err: EngineError) {
        if self.events.is_closed() {
            self.span.record_error("cancelled", "the client went away");
            self.span.end();
            return;
        }
        self.span.in_scope(
            || tracing::warn!(upstream = %self.name(), error = %err, "upstream call failed"),
        );
        end_with_error(&self.span, &err);
        let _ = self.events.send(Err(err));
    }
}

/// Whether a choice (of a chunk or a whole answer) holds generated output: text, a refusal or
/// tool calls.
fn carries_output(choice: &Value) -> bool {
    let non_empty = |v: Option<&Value>| match v {
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Null) | None => false,
        Some(_) => true,
    };
    let message = choice.get("delta").or_else(|| choice.get("message"));
    non_empty(choice.get("text"))
        || message.is_some_and(|m| {
            non_empty(m.get("content"))
                || non_empty(m.get("tool_calls"))
                || non_empty(m.get("function_call"))
                || non_empty(m.get("refusal"))
        })
}

fn end_with_error(span: &OtelSpan, err: &EngineError) {
    span.record_error(err.kind(), &err.to_string());
    span.end();
}

/// Longest piece of an unreadable upstream answer quoted in an error.
const QUOTED_BYTES: usize = 200;

fn clip(text: &str) -> String {
    inferd_engine::text::clip(text, QUOTED_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferd_engine::{ChatMessage, ChatRole, SamplingParams};
    use serde_json::Value;

    #[test]
    fn the_request_names_the_upstream_model_and_asks_for_usage_when_streaming() {
        let request = GenerationRequest {
            prompt: Prompt::Chat(vec![ChatMessage {
                role: ChatRole::User,
                content: "Hi".into(),
            }]),
            params: SamplingParams {
                max_tokens: Some(7),
                temperature: 0.7,
                stop: vec!["\n".into()],
                ..SamplingParams::default()
            },
            stream: true,
            pass_through: None,
            priority: inferd_engine::Priority::Interactive,
        };
        let body: Value =
            serde_json::from_slice(&request_body("big/model", &request)).expect("json");
        assert_eq!(body["model"], "big/model");
        assert_eq!(body["messages"][0]["content"], "Hi");
        assert_eq!(body["max_tokens"], 7);
        // f32 values go out as written (0.7), not widened to 0.699999988079071.
        assert_eq!(body["temperature"], 0.7);
        assert_eq!(body["stop"][0], "\n");
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert!(body.get("top_k").is_none(), "top_k 0 is not sent");
        let text = GenerationRequest {
            prompt: Prompt::Text("Once".into()),
            params: SamplingParams::default(),
            stream: false,
            pass_through: None,
            priority: inferd_engine::Priority::Interactive,
        };
        let body: Value = serde_json::from_slice(&request_body("m", &text)).expect("json");
        assert_eq!(body["prompt"], "Once");
        assert_eq!(body["stream"], false);
        assert!(body.get("stream_options").is_none());
    }

    #[test]
    fn a_passed_through_body_keeps_every_field_but_the_model_and_always_asks_for_usage() {
        let client: serde_json::Map<String, Value> = serde_json::from_str(
            r#"{"model":"chat","messages":[{"role":"tool","tool_call_id":"c1","content":"42"}],
                "tools":[{"type":"function","function":{"name":"f"}}],"n":2,
                "stream":true,"stream_options":{"include_usage":false,"other":1}}"#,
        )
        .expect("json");
        let request = GenerationRequest {
            prompt: Prompt::Chat(Vec::new()),
            params: SamplingParams::default(),
            stream: true,
            pass_through: Some(inferd_engine::PassThrough {
                api: inferd_openai::Api::Chat,
                body: client.clone(),
                response_id: "chatcmpl-x".into(),
                include_usage: false,
            }),
            priority: inferd_engine::Priority::Interactive,
        };
        let body: Value =
            serde_json::from_slice(&request_body("big/model", &request)).expect("json");
        assert_eq!(body["model"], "big/model");
        assert_eq!(body["tools"], client["tools"]);
        assert_eq!(body["messages"], client["messages"]);
        assert_eq!(body["n"], 2);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["stream_options"]["other"], 1);
    }

    #[test]
    fn output_is_text_a_refusal_or_tool_calls() {
        let out = |v: Value| carries_output(&v);
        assert!(out(serde_json::json!({"delta": {"content": "a"}})));
        assert!(out(
            serde_json::json!({"delta": {"tool_calls": [{"index": 0}]}})
        ));
        assert!(out(
            serde_json::json!({"message": {"content": null, "tool_calls": [{}]}})
        ));
        assert!(out(serde_json::json!({"text": "x"})));
        assert!(!out(
            serde_json::json!({"delta": {"role": "assistant", "content": ""}})
        ));
        assert!(!out(
            serde_json::json!({"delta": {}, "finish_reason": "stop"})
        ));
    }
}
