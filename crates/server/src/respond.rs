//! Starts a validated request's generation (`inferd_engine::generation`: the model, the
//! observers, the backend) and shapes the answer: one JSON body, or an SSE stream of chunks
//! ending in `data: [DONE]`. Shared by the chat and text completion routes, which differ only
//! in the JSON they put around the text.

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use inferd_engine::generation::{self, Asked, Failed, StartError};
use inferd_engine::hooks::ActiveGeneration;
use inferd_engine::{FinishReason, GenerationEvent, GenerationStream, Lease, Route, Usage};
use inferd_openai::{
    Api, ChatChoice, ChatCompletion, ChatCompletionChunk, ChunkChoice, Completion,
    CompletionChoice, CompletionChunk, Message, PromptTokensDetails, UsageBody,
};
use serde::Serialize;

use crate::access::AccessFacts;
use crate::error::ApiError;
use crate::validation::ValidRequest;
use crate::AppState;

/// Identity of one response, repeated in every chunk.
#[derive(Debug, Clone)]
struct ResponseMeta {
    /// The endpoint answering (embeddings are only ever passed through).
    api: Api,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    /// A passed-through request: the upstream's answer goes on as it is (see
    /// [`GenerationEvent::Raw`]), nothing is shaped here.
    raw: bool,
    /// Where the token counts go for the access line.
    access: AccessFacts,
}

/// Runs `request` and answers as `api`; `route` is its model's route when the caller already
/// looked it up. Past the shutdown deadline a request not yet answered gets 503
/// `shutting_down` (a stream, an error event).
pub async fn generate(
    state: &AppState,
    api: Api,
    request: ValidRequest,
    route: Option<Route>,
    access: AccessFacts,
) -> Result<Response, ApiError> {
    tokio::select! {
        answer = answer(state, api, request, route, access) => answer,
        () = state.lifecycle.stopped() => Err(ApiError::shutting_down()),
    }
}

async fn answer(
    state: &AppState,
    api: Api,
    request: ValidRequest,
    route: Option<Route>,
    access: AccessFacts,
) -> Result<Response, ApiError> {
    access.set_model(&request.model);
    let asked = Asked {
        api,
        model: request.model.clone(),
        route: route.unwrap_or_else(|| state.registry.route(&request.model)),
        request: request.generation,
        stream: request.stream,
        capture_prompt: state.config.capture_content,
    };
    let started = match generation::start(&state.registry, &state.hooks, asked).await {
        Ok(started) => started,
        Err(Failed { observed, error }) => {
            let error = match error {
                StartError::Lookup(e) => ApiError::from_lookup(e),
                StartError::Engine(e) => ApiError::from_engine(e, api.prompt_param()),
            };
            return Err(fail(observed, error));
        }
    };
    let meta = ResponseMeta {
        api,
        id: started.response_id,
        created: inferd_openai::unix_timestamp(),
        model: request.model,
        include_usage: request.include_usage,
        raw: started.raw,
        access,
    };
    if request.stream {
        let stopping = state.lifecycle.clone();
        Ok(Sse::new(sse_events(
            meta,
            started.events,
            started.observed,
            started.lease,
            stopping,
        ))
        .keep_alive(KeepAlive::default())
        .into_response())
    } else {
        collect(meta, started.events, started.observed, started.lease).await
    }
}

/// Reports `error` to the observers and hands it back.
fn fail(observed: ActiveGeneration, error: ApiError) -> ApiError {
    observed.fail(error.code.unwrap_or(error.kind), &error.message);
    error
}

/// Waits for the whole generation and returns one JSON body.
async fn collect(
    meta: ResponseMeta,
    mut generation: GenerationStream,
    mut observed: ActiveGeneration,
    // Keeps the model loaded until the answer is complete.
    _lease: Lease,
) -> Result<Response, ApiError> {
    let mut text = String::new();
    let mut raw_answer: Option<String> = None;
    let (finish_reason, usage, timings) = loop {
        match generation.next().await {
            Some(Ok(GenerationEvent::Delta(delta))) => {
                observed.token(&delta);
                text.push_str(&delta);
            }
            Some(Ok(GenerationEvent::Raw { json, output })) => {
                if output {
                    observed.token("");
                }
                raw_answer = Some(json);
            }
            Some(Ok(GenerationEvent::Finished {
                finish_reason,
                usage,
                timings,
            })) => break (finish_reason, usage, timings),
            Some(Err(err)) => {
                let error = ApiError::from_engine(err, meta.api.prompt_param());
                return Err(fail(observed, error));
            }
            None => {
                let error = ApiError::internal("the engine stopped before finishing");
                return Err(fail(observed, error));
            }
        }
    };
    meta.access
        .set_tokens(usage.prompt_tokens, usage.completion_tokens);
    observed.finish(
        meta.id.clone(),
        meta.model.clone(),
        finish_reason,
        usage,
        timings,
    );
    if let Some(json) = raw_answer {
        return Ok((
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            json,
        )
            .into_response());
    }
    let usage = usage_body(usage);
    let body = match meta.api {
        Api::Chat => axum::Json(ChatCompletion {
            id: meta.id,
            object: "chat.completion",
            created: meta.created,
            model: meta.model,
            choices: vec![ChatChoice {
                index: 0,
                message: Message {
                    role: Some("assistant"),
                    content: Some(text.into()),
                },
                logprobs: None,
                finish_reason: finish_reason.as_str(),
            }],
            usage,
            system_fingerprint: None,
        })
        .into_response(),
        Api::Completions => axum::Json(Completion {
            id: meta.id,
            object: "text_completion",
            created: meta.created,
            model: meta.model,
            choices: vec![CompletionChoice {
                index: 0,
                text,
                logprobs: None,
                finish_reason: Some(finish_reason.as_str()),
            }],
            usage,
            system_fingerprint: None,
        })
        .into_response(),
        // Embeddings are always passed through: their answer was returned above.
        Api::Embeddings => {
            return Err(ApiError::internal(
                "the upstream's embeddings answer was missing",
            ))
        }
    };
    Ok(body)
}

/// What the SSE stream still has to do.
struct StreamState {
    meta: ResponseMeta,
    generation: GenerationStream,
    /// Taken when the generation ends, so `None` means there is nothing more to read;
    /// dropped with the stream otherwise (= cancelled).
    observed: Option<ActiveGeneration>,
    pending: std::collections::VecDeque<Event>,
    /// Keeps the model loaded while the stream lasts.
    _lease: Lease,
    /// Ends the stream at the shutdown deadline.
    lifecycle: crate::lifecycle::Lifecycle,
}

/// The SSE events of a streaming response. Dropping the stream (the client went away) drops
/// the generation, which stops the engine at its next token.
fn sse_events(
    meta: ResponseMeta,
    generation: GenerationStream,
    observed: ActiveGeneration,
    lease: Lease,
    lifecycle: crate::lifecycle::Lifecycle,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let mut pending = std::collections::VecDeque::new();
    // A passed-through answer has the upstream's own first chunk.
    if meta.api == Api::Chat && !meta.raw {
        pending.push_back(chunk_event(&meta, Piece::Role));
    }
    let state = StreamState {
        meta,
        generation,
        observed: Some(observed),
        pending,
        _lease: lease,
        lifecycle,
    };
    stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.pending.pop_front() {
                return Some((Ok(event), st));
            }
            // The generation has ended once its observer was taken: the stream is over.
            st.observed.as_ref()?;
            let next = tokio::select! {
                next = st.generation.next() => next,
                () = st.lifecycle.stopped() => {
                    let mut api = ApiError::shutting_down();
                    if let Some(observed) = st.observed.take() {
                        api = fail(observed, api);
                    }
                    st.pending.push_back(json_event(&api.body()));
                    st.pending.push_back(Event::default().data("[DONE]"));
                    continue;
                }
            };
            match next {
                Some(Ok(GenerationEvent::Delta(text))) => {
                    if let Some(observed) = st.observed.as_mut() {
                        observed.token(&text);
                    }
                    st.pending
                        .push_back(chunk_event(&st.meta, Piece::Text(text)));
                }
                Some(Ok(GenerationEvent::Raw { json, output })) => {
                    if output {
                        if let Some(observed) = st.observed.as_mut() {
                            observed.token("");
                        }
                    }
                    st.pending.push_back(Event::default().data(json));
                }
                Some(Ok(GenerationEvent::Finished {
                    finish_reason,
                    usage,
                    timings,
                })) => {
                    st.meta
                        .access
                        .set_tokens(usage.prompt_tokens, usage.completion_tokens);
                    if let Some(observed) = st.observed.take() {
                        observed.finish(
                            st.meta.id.clone(),
                            st.meta.model.clone(),
                            finish_reason,
                            usage,
                            timings,
                        );
                    }
                    // A passed-through answer had its finish (and usage) chunks already.
                    if !st.meta.raw {
                        st.pending
                            .push_back(chunk_event(&st.meta, Piece::Finish(finish_reason)));
                        if st.meta.include_usage {
                            st.pending
                                .push_back(chunk_event(&st.meta, Piece::Usage(usage)));
                        }
                    }
                    st.pending.push_back(Event::default().data("[DONE]"));
                }
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "generation failed mid-stream");
                    let mut api = ApiError::from_engine(err, st.meta.api.prompt_param());
                    if let Some(observed) = st.observed.take() {
                        api = fail(observed, api);
                    }
                    st.pending.push_back(json_event(&api.body()));
                    st.pending.push_back(Event::default().data("[DONE]"));
                }
                None => {
                    let mut api = ApiError::internal("the engine stopped before finishing");
                    if let Some(observed) = st.observed.take() {
                        api = fail(observed, api);
                    }
                    st.pending.push_back(json_event(&api.body()));
                }
            }
        }
    })
}

/// What one chunk carries.
enum Piece {
    Role,
    Text(String),
    Finish(FinishReason),
    Usage(Usage),
}

fn chunk_event(meta: &ResponseMeta, piece: Piece) -> Event {
    // OpenAI sends `"usage": null` on every chunk when usage was asked for.
    let null_usage = meta.include_usage.then_some(None);
    match meta.api {
        Api::Chat => {
            let (choices, usage) = match piece {
                Piece::Role => (
                    vec![chat_choice(
                        Message {
                            role: Some("assistant"),
                            content: Some("".into()),
                        },
                        None,
                    )],
                    null_usage,
                ),
                Piece::Text(text) => (
                    vec![chat_choice(
                        Message {
                            role: None,
                            content: Some(text.into()),
                        },
                        None,
                    )],
                    null_usage,
                ),
                Piece::Finish(reason) => (
                    vec![chat_choice(Message::default(), Some(reason.as_str()))],
                    null_usage,
                ),
                Piece::Usage(usage) => (Vec::new(), Some(Some(usage_body(usage)))),
            };
            json_event(&ChatCompletionChunk {
                id: &meta.id,
                object: "chat.completion.chunk",
                created: meta.created,
                model: &meta.model,
                system_fingerprint: None,
                choices,
                usage,
            })
        }
        // Embeddings are never streamed; shaped as text chunks should it ever happen.
        Api::Completions | Api::Embeddings => {
            let (choices, usage) = match piece {
                Piece::Role => (Vec::new(), null_usage),
                Piece::Text(text) => (vec![text_choice(text, None)], null_usage),
                Piece::Finish(reason) => (
                    vec![text_choice(String::new(), Some(reason.as_str()))],
                    null_usage,
                ),
                Piece::Usage(usage) => (Vec::new(), Some(Some(usage_body(usage)))),
            };
            json_event(&CompletionChunk {
                id: &meta.id,
                object: "text_completion",
                created: meta.created,
                model: &meta.model,
                system_fingerprint: None,
                choices,
                usage,
            })
        }
    }
}

fn chat_choice(delta: Message<'static>, finish_reason: Option<&'static str>) -> ChunkChoice {
    ChunkChoice {
        index: 0,
        delta,
        logprobs: None,
        finish_reason,
    }
}

fn text_choice(text: String, finish_reason: Option<&'static str>) -> CompletionChoice {
    CompletionChoice {
        index: 0,
        text,
        logprobs: None,
        finish_reason,
    }
}

/// The `usage` of a response.
fn usage_body(usage: Usage) -> UsageBody {
    UsageBody {
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        total_tokens: usage.total_tokens(),
        prompt_tokens_details: PromptTokensDetails {
            cached_tokens: usage.cached_tokens,
        },
    }
}

fn json_event<T: Serialize>(value: &T) -> Event {
    match serde_json::to_string(value) {
        Ok(json) => Event::default().data(json),
        // Our own types always serialize; keep the stream well-formed regardless.
        Err(e) => Event::default().data(format!(
            r#"{{"error":{{"message":"cannot encode chunk: {e}","type":"server_error","param":null,"code":"internal_error"}}}}"#
        )),
    }
}
