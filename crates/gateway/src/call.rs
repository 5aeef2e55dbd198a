//! One generation on an upstream (or, before the first byte, on the next replica): the OpenAI
//! request (built by inferd, or the client's own passed through), retries before the first
//! byte, the HTTP CLIENT span with the trace context injected, and the answer turned into
//! [`GenerationEvent`]s as it arrives (a stream is passed on chunk by chunk).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use inferd_openai::{Api, Message, SseParser, StreamOptions, UpstreamAnswer, UpstreamRequest};
use inferd_otel::{http_client_span_to, inject_span_context, record_http_response, OtelSpan};
use opentelemetry::KeyValue;
use serde_json::Value;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;

use super::answer;
use super::client::{self, describe, BodyError, Response};
use super::{Endpoint, ModelRoute, Upstream};
use inferd_engine::{Backend, GenerationStream, ModelInfo};
use inferd_engine::{EngineError, FinishReason, GenerationEvent, GenerationRequest, Prompt, Usage};

/// Backoff before the first retry; doubled each time, capped, with full jitter.
const RETRY_BASE: Duration = Duration::from_millis(50);
const RETRY_CAP: Duration = Duration::from_secs(2);
/// Largest error body read from an upstream.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Largest whole (non-stream) answer read from an upstream.
const MAX_ANSWER: usize = 64 * 1024 * 1024;

type Events = mpsc::UnboundedSender<Result<GenerationEvent, EngineError>>;

/// A model served by one or more upstreams: the first candidate is the one chosen for this
/// request, the others are where it fails over to (before anything was streamed).
#[derive(Debug)]
pub struct RemoteBackend {
    candidates: Vec<(Arc<Upstream>, ModelRoute)>,
}

impl RemoteBackend {
    /// `candidates` must not be empty.
    pub(super) fn new(candidates: Vec<(Arc<Upstream>, ModelRoute)>) -> Self {
        debug_assert!(!candidates.is_empty());
        Self { candidates }
    }
}

/// A call that got its answer's head.
struct Sent {
    response: Response,
    /// The HTTP CLIENT span of the successful attempt.
    span: OtelSpan,
    upstream: Arc<Upstream>,
    /// The model's id as clients name it.
    model_id: String,
    permit: OwnedSemaphorePermit,
    headers_deadline: Instant,
    deadline: Instant,
}

/// How the attempts on one upstream ended without an answer.
enum Failed {
    /// Another upstream may do better (it could not be reached, or said 502/503).
    Retryable(EngineError),
    /// The error is the answer (a 4xx, a timeout, a broken connection).
    Final(EngineError),
}

#[async_trait]
impl Backend for RemoteBackend {
    fn info(&self) -> ModelInfo {
        self.candidates[0].0.info()
    }

    async fn generate(&self, request: GenerationRequest) -> Result<GenerationStream, EngineError> {
        let sent = self.send(&request).await?;
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
            tokio::spawn(call.pump_stream(sent.response, sent.headers_deadline, sent.deadline));
        } else {
            call.read_whole(sent.response, sent.deadline).await;
        }
        Ok(GenerationStream::new(0, receiver).with_served_by(served_by))
    }
}

impl RemoteBackend {
    /// Sends the request to the first candidate that is healthy and has room. One that cannot
    /// be reached or answers 502/503 hands the request on to the next usable candidate at
    /// once; the last one retries (see [`RemoteBackend::attempts`]). Nothing was streamed to
    /// the client yet, so this is safe.
    async fn send(&self, request: &GenerationRequest) -> Result<Sent, EngineError> {
        let started = Instant::now();
        let api = match &request.pass_through {
            Some(pass) => pass.api,
            None if matches!(request.prompt, Prompt::Chat(_)) => Api::Chat,
            None => Api::Completions,
        };
        let mut error: Option<EngineError> = None;
        let mut resends: u32 = 0;
        for (i, (up, route)) in self.candidates.iter().enumerate() {
            if let Err(e) = up.check_healthy() {
                error.get_or_insert(e);
                continue;
            }
            let Ok(permit) = Arc::clone(&up.permits).try_acquire_owned() else {
                error.get_or_insert(EngineError::UpstreamBusy {
                    upstream: up.config.name.clone(),
                    limit: up.config.max_concurrent,
                });
                continue;
            };
            let endpoint = up.endpoint(api);
            let body = bytes::Bytes::from(request_body(&route.upstream_model, request));
            let timeouts = up.config.timeouts;
            let deadline = started + timeouts.total;
            // A stream's headers come before its first token; a whole answer's only at the end.
            let headers_deadline = if request.stream {
                started + timeouts.first_token.min(timeouts.total)
            } else {
                deadline
            };
            let headers_limit = headers_deadline - started;
            let fallback = self.candidates[i + 1..]
                .iter()
                .any(|(u, _)| u.health().healthy != Some(false));
            match self
                .attempts(
                    up,
                    endpoint,
                    body,
                    (headers_deadline, headers_limit),
                    &mut resends,
                    fallback,
                )
                .await
            {
                Ok((response, span)) => {
                    return Ok(Sent {
                        response,
                        span,
                        upstream: Arc::clone(up),
                        model_id: route.id.clone(),
                        permit,
                        headers_deadline,
                        deadline,
                    })
                }
                Err(Failed::Final(e)) => return Err(e),
                Err(Failed::Retryable(e)) => {
                    if fallback {
                        tracing::debug!(upstream = %up.config.name, error = %e, "failing over to the next upstream");
                    }
                    error = Some(e);
                }
            }
        }
        Err(error.unwrap_or_else(|| EngineError::UpstreamUnavailable {
            upstream: self.candidates[0].0.config.name.clone(),
            reason: "no upstream could take the request".into(),
        }))
    }

    /// Sends the request to `up`. Without a `fallback`, connection failures and 502/503 are
    /// retried with capped exponential backoff and full jitter; with one, the first such
    /// failure hands the request on (an upstream that cannot be reached is marked down at
    /// once). Each attempt is an HTTP CLIENT span (`resends` counts them across upstreams);
    /// the successful one is returned to stay open while the body is read.
    async fn attempts(
        &self,
        up: &Upstream,
        endpoint: &Endpoint,
        body: bytes::Bytes,
        (headers_deadline, headers_limit): (Instant, Duration),
        resends: &mut u32,
        fallback: bool,
    ) -> Result<(Response, OtelSpan), Failed> {
        let name = &up.config.name;
        let mut attempt: u32 = 0;
        loop {
            let span = http_client_span_to(&Method::POST, &endpoint.target);
            if *resends > 0 {
                span.set_attribute(KeyValue::new(
                    inferd_otel::semconv::HTTP_REQUEST_RESEND_COUNT,
                    i64::from(*resends),
                ));
                up.count_retry();
            }
            *resends += 1;
            let mut request = client::Request::new(Full::new(body.clone()));
            *request.method_mut() = Method::POST;
            *request.uri_mut() = endpoint.url.clone();
            let headers = request.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if let Some(authorization) = &up.authorization {
                headers.insert(AUTHORIZATION, authorization.clone());
            }
            inject_span_context(&span, headers);
            let sent = tokio::time::timeout_at(headers_deadline, up.client.send(request)).await;
            let retryable = match sent {
                Err(_elapsed) => {
                    let err = EngineError::UpstreamTimeout {
                        upstream: name.clone(),
                        what: "answer",
                        seconds: headers_limit.as_secs_f64(),
                    };
                    end_with_error(&span, &err);
                    return Err(Failed::Final(err));
                }
                Ok(Ok(response)) if response.status().is_success() => {
                    record_http_response(&span, response.status());
                    return Ok((response, span));
                }
                Ok(Ok(response)) => {
                    let status = response.status();
                    record_http_response(&span, status);
                    let err = status_error(name, up.via.as_deref(), response).await;
                    span.end();
                    if status != StatusCode::BAD_GATEWAY
                        && status != StatusCode::SERVICE_UNAVAILABLE
                    {
                        return Err(Failed::Final(err));
                    }
                    err
                }
                Ok(Err(e)) => {
                    let reason = format!("{}: {}", endpoint.url, describe(&e));
                    let err = if e.is_connect() {
                        EngineError::UpstreamUnavailable {
                            upstream: name.clone(),
                            reason,
                        }
                    } else {
                        EngineError::UpstreamFailed {
                            upstream: name.clone(),
                            reason,
                        }
                    };
                    end_with_error(&span, &err);
                    if !e.is_connect() {
                        return Err(Failed::Final(err));
                    }
                    err
                }
            };
            if fallback || attempt >= up.config.max_retries {
                if let EngineError::UpstreamUnavailable { reason, .. } = &retryable {
                    up.mark_unhealthy(reason);
                }
                return Err(Failed::Retryable(retryable));
            }
            let backoff = backoff(attempt);
            if Instant::now() + backoff >= headers_deadline {
                return Err(Failed::Retryable(retryable));
            }
            tracing::debug!(upstream = %name, attempt, error = %retryable, "retrying upstream call");
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }
}

/// Full-jitter exponential backoff: a random wait up to `min(cap, base * 2^attempt)`.
fn backoff(attempt: u32) -> Duration {
    let ceiling = RETRY_BASE
        .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
        .min(RETRY_CAP);
    ceiling.mul_f64(fastrand::f64())
}

/// The error an upstream's non-2xx answer stands for; `via` is the forward proxy the call went
/// through, if any.
async fn status_error(upstream: &str, via: Option<&str>, response: Response) -> EngineError {
    let status = response.status();
    if let (Some(proxy), StatusCode::PROXY_AUTHENTICATION_REQUIRED) = (via, status) {
        // The proxy's business, not the client's: never passed through as a 407.
        return EngineError::UpstreamStatus {
            upstream: upstream.to_owned(),
            status: StatusCode::BAD_GATEWAY.as_u16(),
            message: proxy_auth_message(proxy),
            code: None,
            param: None,
        };
    }
    // Redirects are not followed (a POST is not re-sent elsewhere); say where it pointed.
    let redirect = status.is_redirection().then(|| {
        let to = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or("(no Location header)");
        format!(
            "it redirects to {to}; inferd does not follow redirects, so configure the \
             upstream's URL as the address it redirects to"
        )
    });
    let status = status.as_u16();
    let body = client::read_prefix(response.into_body(), MAX_ERROR_BODY).await;
    let (message, code, param) = answer::error_from_body(&body);
    let message = redirect.unwrap_or(message);
    EngineError::UpstreamStatus {
        upstream: upstream.to_owned(),
        status,
        message,
        code,
        param,
    }
}

/// What a 407 from the proxy in front of an upstream means.
pub(crate) fn proxy_auth_message(proxy: &str) -> String {
    format!(
        "the proxy {proxy} asks for credentials (407 Proxy Authentication Required): give them \
         in the proxy URL, http://user:password@host:port"
    )
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
                api: Api::Chat,
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

    #[test]
    fn backoff_grows_and_stays_under_its_cap() {
        for attempt in 0..40 {
            let ceiling = RETRY_BASE
                .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
                .min(RETRY_CAP);
            let wait = backoff(attempt);
            assert!(wait <= ceiling && wait <= RETRY_CAP, "{attempt}: {wait:?}");
        }
    }
}
