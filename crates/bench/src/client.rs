//! One request, timed from the client's clock: the send, each SSE chunk that carries text, and
//! the end of the response. Token counts come from the server's `usage` when it sends one, else
//! text chunks are counted.

use std::time::{Duration, Instant};

use bytes::Bytes;
use inferd_openai::Api;
use inferd_otel::OtelSpan;
use serde::Deserialize;
use serde_json::json;

use crate::config::Plan;
use crate::dataset::Prompt;

/// The server end of a run: one pooled HTTP client and the endpoint.
#[derive(Debug, Clone)]
pub struct Target {
    /// Shared by every request (keep-alive connection pool).
    pub client: reqwest::Client,
    /// Full URL of the endpoint.
    pub endpoint: String,
    /// Endpoint kind.
    pub api: Api,
    /// Model id sent.
    pub model: String,
    /// Whether responses stream.
    pub stream: bool,
    /// Limit for one request.
    pub timeout: Duration,
}

impl Target {
    /// The target of `plan`.
    pub fn new(plan: &Plan, client: reqwest::Client) -> Target {
        Target {
            client,
            endpoint: format!("{}{}", plan.url, plan.api.path()),
            api: plan.api,
            model: plan.model.clone(),
            stream: plan.stream,
            timeout: plan.timeout,
        }
    }
}

/// A request body built once before the run, so sending costs no JSON encoding.
#[derive(Debug, Clone)]
pub struct PreparedRequest {
    /// The JSON body.
    pub body: Bytes,
    /// Input tokens estimated from the prompt (used when the server sends no usage).
    pub input_tokens: u32,
    /// `max_tokens` sent, if any.
    pub max_tokens: Option<u32>,
}

impl PreparedRequest {
    /// The request for `prompt` under `plan`.
    pub fn new(plan: &Plan, prompt: &Prompt) -> PreparedRequest {
        let max_tokens = plan.max_tokens.or(prompt.max_tokens);
        let text = match plan.api {
            Api::Chat => json!(prompt.messages),
            Api::Completions | Api::Embeddings => json!(prompt.text()),
        };
        let mut body = json!({"model": plan.model, plan.api.prompt_param(): text});
        if let Some(object) = body.as_object_mut() {
            if let Some(n) = max_tokens {
                object.insert("max_tokens".into(), n.into());
            }
            if plan.stream {
                object.insert("stream".into(), true.into());
                object.insert("stream_options".into(), json!({"include_usage": true}));
            }
            if plan.ignore_eos {
                object.insert("ignore_eos".into(), true.into());
            }
        }
        PreparedRequest {
            body: Bytes::from(body.to_string()),
            input_tokens: prompt.input_tokens,
            max_tokens,
        }
    }
}

/// What one request measured. Times are seconds on the client's clock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// How late the send was against its schedule.
    pub schedule_lag: f64,
    /// Send to first text chunk (streaming only).
    pub ttft: Option<f64>,
    /// Send to the end of the response.
    pub e2e: f64,
    /// Gaps between consecutive text chunks.
    pub itl: Vec<f64>,
    /// Input tokens (server usage, else estimated).
    pub input_tokens: u64,
    /// Output tokens (server usage, else text chunks).
    pub output_tokens: u64,
    /// Whether the counts came from the server's usage.
    pub usage_reported: bool,
    /// `finish_reason` of the first choice.
    pub finish_reason: Option<String>,
    /// `model` of the response.
    pub response_model: Option<String>,
    /// `id` of the response.
    pub response_id: Option<String>,
    /// HTTP status, when a response came.
    pub status: Option<u16>,
    /// Error kind when the request failed (`connect`, `timeout`, `http_503`, ...).
    pub error: Option<String>,
    /// The error's message.
    pub error_message: Option<String>,
}

impl Outcome {
    /// Time per output token after the first: (e2e − TTFT) / (output tokens − 1).
    pub fn tpot(&self) -> Option<f64> {
        let ttft = self.ttft?;
        (self.output_tokens > 1).then(|| (self.e2e - ttft) / (self.output_tokens - 1) as f64)
    }

    fn fail(&mut self, kind: impl Into<String>, message: impl Into<String>) {
        self.error = Some(kind.into());
        self.error_message = Some(message.into());
    }
}

#[derive(Debug, Deserialize)]
struct Usage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    delta: Option<Delta>,
    message: Option<Delta>,
    text: Option<String>,
    finish_reason: Option<String>,
}

impl Choice {
    fn text_len(&self) -> usize {
        let delta = self.delta.as_ref().or(self.message.as_ref());
        delta
            .and_then(|d| d.content.as_deref())
            .or(self.text.as_deref())
            .map_or(0, str::len)
    }
}

/// A chunk of a stream, or a whole non-streamed response.
#[derive(Debug, Deserialize)]
struct Chunk {
    id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
    error: Option<serde_json::Value>,
}

/// Reads SSE `data:` payloads out of arbitrarily split byte chunks.
#[derive(Debug, Default)]
pub struct SseLines {
    buffer: Vec<u8>,
}

impl SseLines {
    /// Feeds bytes; calls `on_data` with each complete `data:` payload.
    pub fn feed(&mut self, bytes: &[u8], mut on_data: impl FnMut(&[u8])) {
        self.buffer.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(at) = self.buffer[start..].iter().position(|&b| b == b'\n') {
            let line = &self.buffer[start..start + at];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(data) = line.strip_prefix(b"data:") {
                on_data(data.strip_prefix(b" ").unwrap_or(data));
            }
            start += at + 1;
        }
        self.buffer.drain(..start);
    }
}

/// Sends `request` and measures it. Failures are recorded in the outcome, never returned.
pub async fn execute(
    target: &Target,
    request: &PreparedRequest,
    due: Instant,
    span: &OtelSpan,
) -> Outcome {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    inferd_otel::inject_span_context(span, &mut headers);
    let sent = Instant::now();
    let mut outcome = Outcome {
        schedule_lag: sent.saturating_duration_since(due).as_secs_f64(),
        ..Outcome::default()
    };
    let response = target
        .client
        .post(&target.endpoint)
        .headers(headers)
        .body(request.body.clone())
        .timeout(target.timeout)
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            outcome.e2e = sent.elapsed().as_secs_f64();
            outcome.fail(transport_error_kind(&e), error_chain(&e));
            return outcome;
        }
    };
    let status = response.status();
    outcome.status = Some(status.as_u16());
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        outcome.e2e = sent.elapsed().as_secs_f64();
        outcome.fail(format!("http_{}", status.as_u16()), error_message(&body));
        return outcome;
    }
    if target.stream {
        read_stream(response, sent, request, &mut outcome).await;
    } else {
        read_whole(response, sent, request, &mut outcome).await;
    }
    outcome
}

async fn read_stream(
    mut response: reqwest::Response,
    sent: Instant,
    request: &PreparedRequest,
    outcome: &mut Outcome,
) {
    let mut lines = SseLines::default();
    let mut last_text: Option<Instant> = None;
    let mut text_chunks = 0u64;
    let mut done = false;
    let mut usage: Option<Usage> = None;
    let mut bad: Option<(String, String)> = None;
    loop {
        let bytes = match response.chunk().await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => break,
            Err(e) => {
                bad = Some((transport_error_kind(&e), error_chain(&e)));
                break;
            }
        };
        let now = Instant::now();
        lines.feed(&bytes, |data| {
            if done || bad.is_some() {
                return;
            }
            if data.trim_ascii() == b"[DONE]" {
                done = true;
                return;
            }
            let chunk: Chunk = match serde_json::from_slice(data) {
                Ok(c) => c,
                Err(e) => {
                    bad = Some(("invalid_response".into(), format!("bad SSE chunk: {e}")));
                    return;
                }
            };
            if let Some(error) = &chunk.error {
                bad = Some(("stream_error".into(), error_message(&error.to_string())));
                return;
            }
            if outcome.response_id.is_none() {
                outcome.response_id = chunk.id;
                outcome.response_model = chunk.model;
            }
            let mut has_text = false;
            for choice in &chunk.choices {
                has_text |= choice.text_len() > 0;
                if let Some(reason) = &choice.finish_reason {
                    outcome.finish_reason.get_or_insert_with(|| reason.clone());
                }
            }
            if has_text {
                text_chunks += 1;
                match last_text {
                    None => outcome.ttft = Some(now.duration_since(sent).as_secs_f64()),
                    Some(prev) => outcome.itl.push(now.duration_since(prev).as_secs_f64()),
                }
                last_text = Some(now);
            }
            if chunk.usage.is_some() {
                usage = chunk.usage;
            }
        });
        if done || bad.is_some() {
            break;
        }
    }
    outcome.e2e = sent.elapsed().as_secs_f64();
    if let Some((kind, message)) = bad {
        outcome.fail(kind, message);
    } else if !done && outcome.finish_reason.is_none() {
        outcome.fail("incomplete", "the stream ended before [DONE]");
    }
    apply_usage(outcome, usage, request, text_chunks);
}

async fn read_whole(
    response: reqwest::Response,
    sent: Instant,
    request: &PreparedRequest,
    outcome: &mut Outcome,
) {
    let body = response.bytes().await;
    outcome.e2e = sent.elapsed().as_secs_f64();
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            outcome.fail(transport_error_kind(&e), error_chain(&e));
            return;
        }
    };
    let parsed: Chunk = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            outcome.fail("invalid_response", format!("response is not JSON: {e}"));
            return;
        }
    };
    outcome.response_id = parsed.id;
    outcome.response_model = parsed.model;
    let text_len = parsed.choices.first().map_or(0, Choice::text_len);
    outcome.finish_reason = parsed.choices.first().and_then(|c| c.finish_reason.clone());
    // Without usage, estimate 4 bytes a token (no chunks to count).
    let estimated = (text_len as u64).div_ceil(4);
    apply_usage(outcome, parsed.usage, request, estimated);
}

fn apply_usage(
    outcome: &mut Outcome,
    usage: Option<Usage>,
    request: &PreparedRequest,
    counted: u64,
) {
    match usage {
        Some(Usage {
            prompt_tokens,
            completion_tokens: Some(out),
        }) => {
            outcome.usage_reported = true;
            outcome.output_tokens = out;
            outcome.input_tokens = prompt_tokens.unwrap_or(u64::from(request.input_tokens));
        }
        _ => {
            outcome.output_tokens = counted;
            outcome.input_tokens = u64::from(request.input_tokens);
        }
    }
}

fn transport_error_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "stream"
    } else {
        "request"
    }
    .to_owned()
}

/// The error and its causes, `: `-separated (reqwest's top-level message alone says little).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The `error.message` of an OpenAI error body, else the body itself (cut short).
fn error_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("message"))
            .and_then(|m| m.as_str())
            .map(str::to_owned)
    });
    let mut text = message.unwrap_or_else(|| body.trim().to_owned());
    if text.len() > 300 {
        let mut cut = 300;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_payloads_survive_any_split() {
        let stream = b"data: {\"a\":1}\r\n\r\n: comment\ndata:{\"b\":2}\n\ndata: [DONE]\n\n";
        for split in 1..stream.len() {
            let mut lines = SseLines::default();
            let mut got: Vec<Vec<u8>> = Vec::new();
            for piece in stream.chunks(split) {
                lines.feed(piece, |d| got.push(d.to_vec()));
            }
            assert_eq!(
                got,
                vec![
                    b"{\"a\":1}".to_vec(),
                    b"{\"b\":2}".to_vec(),
                    b"[DONE]".to_vec()
                ],
                "split {split}"
            );
        }
    }

    #[test]
    fn tpot_divides_the_decode_time_by_the_tokens_after_the_first() {
        let o = Outcome {
            ttft: Some(0.5),
            e2e: 1.5,
            output_tokens: 11,
            ..Outcome::default()
        };
        assert_eq!(o.tpot(), Some(0.1));
        let single = Outcome {
            output_tokens: 1,
            ..o.clone()
        };
        assert_eq!(single.tpot(), None);
        let unstreamed = Outcome { ttft: None, ..o };
        assert_eq!(unstreamed.tpot(), None);
    }

    #[test]
    fn error_bodies_give_their_message() {
        assert_eq!(
            error_message(
                r#"{"error":{"message":"model `x` not found","type":"invalid_request_error"}}"#
            ),
            "model `x` not found"
        );
        assert_eq!(error_message("  plain text \n"), "plain text");
        assert!(error_message(&"é".repeat(400)).ends_with('…'));
    }

    #[test]
    fn bodies_carry_streaming_usage_and_ignore_eos() {
        let args = crate::args::BenchArgs {
            url: Some("http://h".into()),
            model: Some("m".into()),
            rate: Some(1.0),
            ignore_eos: true,
            ..Default::default()
        };
        let plan = Plan::from_args(&args).expect("plan");
        let prompt = crate::dataset::Prompt {
            messages: vec![crate::dataset::Message {
                role: "user".into(),
                content: "hi".into(),
            }],
            input_tokens: 1,
            max_tokens: Some(7),
        };
        let request = PreparedRequest::new(&plan, &prompt);
        let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json");
        assert_eq!(body["model"], "m");
        assert_eq!(body["messages"][0]["content"], "hi");
        assert_eq!(body["max_tokens"], 7);
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["ignore_eos"], true);
    }
}
