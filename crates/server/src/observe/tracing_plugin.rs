//! The generation span: `{operation} {model}`, a child of the HTTP server span, carrying the
//! GenAI request attributes from the start (so a sampler can use them) and the response,
//! usage and latency attributes at the end. vLLM's `gen_ai.latency.*` names are set too, so
//! tools built for vLLM keep working. Local engines' batch runs become `model.batch` spans
//! ([`super::batch_span`]).

use std::time::Duration;

use std::sync::Arc;

use inferd_engine::hooks::{
    BatchRun, GenerationCall, GenerationEnd, GenerationFailure, GenerationStart, Observer, Redactor,
};
use inferd_engine::{ChatRole, Prompt};
use inferd_openai::Api;
use inferd_otel::semconv as sc;
use inferd_otel::{span_builder, OtelSpan, Tracer};
use opentelemetry::trace::SpanKind;
use opentelemetry::{Array, KeyValue, StringValue, Value};
use serde_json::{json, Value as JsonValue};

/// Opens one span per generation, and one per traced batch run.
#[derive(Debug)]
pub struct TracingPlugin {
    tracer: Tracer,
    capture: Option<ContentCapture>,
}

impl TracingPlugin {
    /// Spans are started with `tracer`; with `capture`, prompts and completions are recorded
    /// on them.
    pub fn new(tracer: Tracer, capture: Option<ContentCapture>) -> Self {
        Self { tracer, capture }
    }
}

/// How captured content is recorded: each message's text goes through the redactor (if any),
/// then is cut to `max_bytes` (on a character boundary, marked with `…`).
#[derive(Debug, Clone)]
pub struct ContentCapture {
    max_bytes: usize,
    redactor: Option<Arc<dyn Redactor>>,
}

impl ContentCapture {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            redactor: None,
        }
    }

    /// Adds a redaction plugin.
    pub fn with_redactor(mut self, redactor: Arc<dyn Redactor>) -> Self {
        self.redactor = Some(redactor);
        self
    }

    fn text(&self, text: &str) -> String {
        let text = match &self.redactor {
            Some(redactor) => redactor.redact(text),
            None => text.to_owned(),
        };
        if text.len() <= self.max_bytes {
            return text;
        }
        let mut cut = self.max_bytes;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &text[..cut])
    }

    /// `gen_ai.system_instructions` (if any) and `gen_ai.input.messages`, as the GenAI
    /// conventions' JSON.
    pub fn input(&self, prompt: &Prompt) -> (Option<String>, String) {
        let part = |text: &str| json!({"type": "text", "content": self.text(text)});
        match prompt {
            Prompt::Text(text) => (
                None,
                json!([{"role": "user", "parts": [part(text)]}]).to_string(),
            ),
            Prompt::Chat(messages) => {
                let system: Vec<JsonValue> = messages
                    .iter()
                    .filter(|m| m.role == ChatRole::System)
                    .map(|m| part(&m.content))
                    .collect();
                let input: Vec<JsonValue> = messages
                    .iter()
                    .filter(|m| m.role != ChatRole::System)
                    .map(|m| json!({"role": m.role.as_str(), "parts": [part(&m.content)]}))
                    .collect();
                let system = (!system.is_empty()).then(|| JsonValue::Array(system).to_string());
                (system, JsonValue::Array(input).to_string())
            }
        }
    }

    /// `gen_ai.output.messages`.
    pub fn output(&self, text: &str, finish_reason: &str) -> String {
        json!([{
            "role": "assistant",
            "parts": [{"type": "text", "content": self.text(text)}],
            "finish_reason": finish_reason,
        }])
        .to_string()
    }
}

struct TracingCall {
    span: OtelSpan,
    capture: Option<ContentCapture>,
}

/// The label of generation spans in log lines.
const GENERATION_LABEL: &str = "generation";

impl Observer for TracingPlugin {
    fn generation_pre_call(&self, start: &GenerationStart) -> Option<Box<dyn GenerationCall>> {
        let operation = start.api.operation_name();
        let mut name = String::with_capacity(operation.len() + 1 + start.model.len());
        name.push_str(operation);
        // An unknown model's name stays out of the span name (it stays an attribute).
        if start.model_known {
            name.push(' ');
            name.push_str(&start.model);
        }
        // Embeddings sample nothing: no temperature, top_p or output tokens to report.
        let sampling = start.api != Api::Embeddings;
        let p = &start.params;
        // The request attributes are given when the span starts, where a sampler sees them.
        // The span keeps this Vec: room for the response attributes too (post_call).
        let mut attributes = Vec::with_capacity(32);
        attributes.extend([
            KeyValue::new(sc::GEN_AI_OPERATION_NAME, start.api.operation_name()),
            KeyValue::new(sc::GEN_AI_PROVIDER_NAME, start.provider.clone()),
            KeyValue::new(sc::GEN_AI_REQUEST_MODEL, start.model.clone()),
            KeyValue::new(sc::INFERD_GENERATION_ID, start.generation_id.clone()),
            KeyValue::new(sc::GEN_AI_REQUEST_STREAM, start.stream),
        ]);
        if let Some((address, port)) = &start.server {
            attributes.extend([
                KeyValue::new(sc::SERVER_ADDRESS, address.clone()),
                KeyValue::new(sc::SERVER_PORT, i64::from(*port)),
            ]);
        }
        if sampling {
            if let Some(max_tokens) = p.max_tokens {
                attributes.push(KeyValue::new(
                    sc::GEN_AI_REQUEST_MAX_TOKENS,
                    i64::from(max_tokens),
                ));
            }
            attributes.extend([
                KeyValue::new(sc::GEN_AI_REQUEST_TEMPERATURE, f64::from(p.temperature)),
                KeyValue::new(sc::GEN_AI_REQUEST_TOP_P, f64::from(p.top_p)),
            ]);
            if p.top_k > 0 {
                attributes.push(KeyValue::new(sc::GEN_AI_REQUEST_TOP_K, f64::from(p.top_k)));
            }
        }
        if let Some(seed) = p.seed {
            // The attribute is an int; keep the bits of seeds above i64::MAX.
            attributes.push(KeyValue::new(sc::GEN_AI_REQUEST_SEED, seed as i64));
        }
        if p.frequency_penalty != 0.0 {
            attributes.push(KeyValue::new(
                sc::GEN_AI_REQUEST_FREQUENCY_PENALTY,
                f64::from(p.frequency_penalty),
            ));
        }
        if p.presence_penalty != 0.0 {
            attributes.push(KeyValue::new(
                sc::GEN_AI_REQUEST_PRESENCE_PENALTY,
                f64::from(p.presence_penalty),
            ));
        }
        if !p.stop.is_empty() {
            attributes.push(KeyValue::new(
                sc::GEN_AI_REQUEST_STOP_SEQUENCES,
                strings(&p.stop),
            ));
        }
        let capture = self.capture.clone();
        if let (Some(capture), Some(prompt)) = (&capture, &start.captured_prompt) {
            let (system, input) = capture.input(prompt);
            if let Some(system) = system {
                attributes.push(KeyValue::new(sc::GEN_AI_SYSTEM_INSTRUCTIONS, system));
            }
            attributes.push(KeyValue::new(sc::GEN_AI_INPUT_MESSAGES, input));
        }
        // A call to a remote upstream is a GenAI client call.
        let kind = if start.server.is_some() {
            SpanKind::Client
        } else {
            SpanKind::Internal
        };
        let span = OtelSpan::start(
            &self.tracer,
            &opentelemetry::Context::current(),
            GENERATION_LABEL,
            span_builder(name, kind, attributes),
        );
        Some(Box::new(TracingCall { span, capture }))
    }

    fn request_rejected(&self, error_type: &str, message: &str) {
        OtelSpan::current().record_client_error(error_type.to_owned(), message);
    }

    fn batch_run(&self, run: &BatchRun<'_>) {
        super::batch_span::record(&self.tracer, run);
    }
}

impl GenerationCall for TracingCall {
    fn span(&self) -> Option<&OtelSpan> {
        Some(&self.span)
    }

    /// An event only: the log has the access line (and a local engine's own `first_token`).
    fn first_token(&mut self, elapsed: Duration) {
        self.span.add_event_with("first_token", |fields| {
            fields.push(KeyValue::new("seconds", elapsed.as_secs_f64()));
        });
    }

    fn server_changed(&mut self, address: &str, port: u16) {
        self.span.set_attributes(vec![
            KeyValue::new(sc::SERVER_ADDRESS, address.to_owned()),
            KeyValue::new(sc::SERVER_PORT, i64::from(port)),
        ]);
    }

    fn post_call(self: Box<Self>, start: &GenerationStart, end: &GenerationEnd) {
        let span = &self.span;
        // Embeddings have neither a finish nor output tokens: those are left out.
        let generated = start.api != Api::Embeddings;
        let mut attributes = Vec::with_capacity(14);
        attributes.extend([
            KeyValue::new(sc::GEN_AI_RESPONSE_ID, end.response_id.clone()),
            KeyValue::new(sc::GEN_AI_RESPONSE_MODEL, end.response_model.clone()),
            KeyValue::new(
                sc::GEN_AI_USAGE_INPUT_TOKENS,
                i64::from(end.usage.prompt_tokens),
            ),
            KeyValue::new(sc::GEN_AI_LATENCY_E2E, end.timings.duration.as_secs_f64()),
        ]);
        if generated {
            attributes.extend([
                KeyValue::new(
                    sc::GEN_AI_RESPONSE_FINISH_REASONS,
                    Value::Array(Array::String(vec![StringValue::from(
                        end.finish_reason.as_str(),
                    )])),
                ),
                KeyValue::new(
                    sc::GEN_AI_USAGE_OUTPUT_TOKENS,
                    i64::from(end.usage.completion_tokens),
                ),
            ]);
        }
        // A local engine always reports its prompt cache (0 is a miss); an upstream's usage
        // may not say, so a remote 0 is left out rather than claimed.
        if start.server.is_none() || end.usage.cached_tokens > 0 {
            attributes.push(KeyValue::new(
                sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
                i64::from(end.usage.cached_tokens),
            ));
        }
        if let Some(ttft) = end.timings.time_to_first_token.map(|t| t.as_secs_f64()) {
            attributes.extend([
                KeyValue::new(sc::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, ttft),
                KeyValue::new(sc::GEN_AI_LATENCY_TIME_TO_FIRST_TOKEN, ttft),
            ]);
        }
        if let Some(tpot) = end.timings.time_per_output_token {
            attributes.push(KeyValue::new(
                sc::INFERD_TIME_PER_OUTPUT_TOKEN,
                tpot.as_secs_f64(),
            ));
        }
        if let (Some(capture), Some(output)) = (&self.capture, &end.captured_output) {
            attributes.push(KeyValue::new(
                sc::GEN_AI_OUTPUT_MESSAGES,
                capture.output(output, end.finish_reason.as_str()),
            ));
        }
        if let Some(engine) = end.engine_timings {
            attributes.extend([
                KeyValue::new(sc::GEN_AI_LATENCY_TIME_IN_QUEUE, engine.queue.as_secs_f64()),
                KeyValue::new(
                    sc::GEN_AI_LATENCY_TIME_IN_MODEL_PREFILL,
                    engine.prefill.as_secs_f64(),
                ),
                KeyValue::new(
                    sc::GEN_AI_LATENCY_TIME_IN_MODEL_DECODE,
                    engine.decode.as_secs_f64(),
                ),
            ]);
        }
        span.set_attributes(attributes);
        // An event only: the access line is the request's line.
        span.add_event_with("finished", |fields| {
            fields.extend([
                KeyValue::new("model", end.response_model.clone()),
                KeyValue::new("input_tokens", i64::from(end.usage.prompt_tokens)),
                KeyValue::new("seconds", end.timings.duration.as_secs_f64()),
            ]);
            if generated {
                fields.extend([
                    KeyValue::new("finish_reason", end.finish_reason.as_str()),
                    KeyValue::new("output_tokens", i64::from(end.usage.completion_tokens)),
                ]);
            }
        });
        span.end();
    }

    fn error(self: Box<Self>, _start: &GenerationStart, failure: &GenerationFailure) {
        let span = &self.span;
        span.set_attribute(KeyValue::new(
            sc::GEN_AI_LATENCY_E2E,
            failure.timings.duration.as_secs_f64(),
        ));
        span.record_error(failure.error_type.clone(), &failure.message);
        // An event only, as `finished` is.
        span.add_event_with("failed", |fields| {
            fields.push(KeyValue::new(sc::ERROR_TYPE, failure.error_type.clone()));
        });
        span.end();
    }
}

fn strings(items: &[String]) -> Value {
    Value::Array(Array::String(
        items.iter().cloned().map(StringValue::from).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::test_support::local;
    use inferd_engine::hooks::GenerationTimings;
    use inferd_engine::{ChatMessage, FinishReason, SamplingParams, Usage};
    use inferd_telemetry::SpanRecord;

    #[derive(Debug)]
    struct MaskDigits;

    impl Redactor for MaskDigits {
        fn redact(&self, text: &str) -> String {
            text.chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .collect()
        }
    }

    fn chat() -> Prompt {
        Prompt::Chat(vec![
            ChatMessage {
                role: ChatRole::System,
                content: "Be brief.".into(),
            },
            ChatMessage {
                role: ChatRole::User,
                content: "My card is 4111 1111 and I like crème brûlée".into(),
            },
        ])
    }

    #[test]
    fn captured_input_splits_system_redacts_then_truncates() {
        let capture = ContentCapture::new(24).with_redactor(Arc::new(MaskDigits));
        let (system, input) = capture.input(&chat());
        let system: JsonValue = serde_json::from_str(&system.expect("system")).expect("json");
        assert_eq!(system, json!([{"type": "text", "content": "Be brief."}]));
        let input: JsonValue = serde_json::from_str(&input).expect("json");
        assert_eq!(input[0]["role"], "user");
        let content = input[0]["parts"][0]["content"].as_str().expect("content");
        assert_eq!(content, "My card is #### #### and…");
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        let capture = ContentCapture::new(3);
        // "é" is two bytes: a cut at byte 3 would split the second one.
        assert_eq!(capture.text("éé!"), "é…");
        assert_eq!(capture.text("ab"), "ab");
    }

    #[test]
    fn captured_output_has_role_and_finish_reason() {
        let output: JsonValue =
            serde_json::from_str(&ContentCapture::new(100).output("Paris.", "stop")).expect("json");
        assert_eq!(
            output,
            json!([{"role": "assistant", "parts": [{"type": "text", "content": "Paris."}],
                    "finish_reason": "stop"}])
        );
    }

    /// The generation span of a generation of `model` (remote when `server` is given) that
    /// ended with `cached` prompt tokens from the cache.
    fn generation_span(model: &str, server: Option<(&str, u16)>, cached: u32) -> SpanRecord {
        let guard = local();
        let plugin =
            TracingPlugin::new(guard.tracer().unwrap_or_else(|| panic!("no tracer")), None);
        let start = GenerationStart {
            model_known: true,
            generation_id: "g".into(),
            api: Api::Chat,
            model: model.into(),
            provider: if server.is_some() { "vllm" } else { "inferd" }.into(),
            server: server.map(|(a, p)| (a.into(), p)),
            params: SamplingParams::default(),
            stream: false,
            captured_prompt: None,
        };
        let end = GenerationEnd {
            response_id: "r".into(),
            response_model: model.into(),
            finish_reason: FinishReason::Stop,
            usage: Usage {
                prompt_tokens: 10,
                completion_tokens: 2,
                cached_tokens: cached,
            },
            timings: GenerationTimings {
                duration: Duration::from_millis(20),
                time_to_first_token: None,
                time_per_output_token: None,
                time_per_output_chunk: None,
            },
            engine_timings: None,
            captured_output: None,
        };
        plugin
            .generation_pre_call(&start)
            .expect("a call")
            .post_call(&start, &end);
        let store = guard.trace_store().unwrap_or_else(|| panic!("no store"));
        let traces = store.recent_traces(10);
        let spans = store
            .trace(&traces[0].trace_id)
            .map(|t| t.spans)
            .unwrap_or_default();
        match spans
            .into_iter()
            .find(|s| s.name == format!("chat {model}"))
        {
            Some(span) => span,
            None => panic!("no generation span"),
        }
    }

    #[test]
    fn cache_read_tokens_are_always_on_local_generations_and_on_remote_ones_when_reported() {
        let cache_read = |span: &SpanRecord| {
            span.attributes
                .get(sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
                .cloned()
        };
        assert_eq!(
            cache_read(&generation_span("llama", None, 6)),
            Some(6.into())
        );
        // A miss of the local prompt cache is a fact worth stating.
        assert_eq!(
            cache_read(&generation_span("llama", None, 0)),
            Some(0.into())
        );
        let upstream = Some(("10.0.0.5", 8000));
        assert_eq!(
            cache_read(&generation_span("up", upstream, 3)),
            Some(3.into())
        );
        // An upstream that reports none may simply not say.
        assert_eq!(cache_read(&generation_span("up", upstream, 0)), None);
    }
}
