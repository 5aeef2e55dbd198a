//! The generation span: `{operation} {model}`, a child of the HTTP server span, carrying the
//! GenAI request attributes from the start (so a sampler can use them) and the response,
//! usage and latency attributes at the end. vLLM's `gen_ai.latency.*` names are set too, so
//! tools built for vLLM keep working.

use std::time::Duration;

use inferd_engine::hooks::{
    GenerationCall, GenerationEnd, GenerationFailure, GenerationStart, Observer,
};
use inferd_telemetry::semconv as sc;
use inferd_telemetry::{record_error, set_attribute};
use opentelemetry::{Array, StringValue, Value};
use tracing::Span;

/// Opens one span per generation.
#[derive(Debug, Default)]
pub struct TracingPlugin;

struct TracingCall {
    span: Span,
}

impl Observer for TracingPlugin {
    fn generation_pre_call(&self, start: &GenerationStart) -> Box<dyn GenerationCall> {
        let name = format!("{} {}", start.operation.as_str(), start.model);
        let span = tracing::info_span!("generation", otel.name = %name, otel.kind = "internal");
        set_attribute(&span, sc::GEN_AI_OPERATION_NAME, start.operation.as_str());
        set_attribute(&span, sc::GEN_AI_PROVIDER_NAME, start.provider);
        set_attribute(&span, sc::GEN_AI_REQUEST_MODEL, start.model.clone());
        set_attribute(&span, sc::INFERD_GENERATION_ID, start.generation_id.clone());
        set_attribute(&span, sc::INFERD_STREAM, start.stream);
        let p = &start.params;
        if let Some(max_tokens) = p.max_tokens {
            set_attribute(&span, sc::GEN_AI_REQUEST_MAX_TOKENS, i64::from(max_tokens));
        }
        set_attribute(
            &span,
            sc::GEN_AI_REQUEST_TEMPERATURE,
            f64::from(p.temperature),
        );
        set_attribute(&span, sc::GEN_AI_REQUEST_TOP_P, f64::from(p.top_p));
        if p.top_k > 0 {
            set_attribute(&span, sc::GEN_AI_REQUEST_TOP_K, f64::from(p.top_k));
        }
        if let Some(seed) = p.seed {
            // The attribute is an int; keep the bits of seeds above i64::MAX.
            set_attribute(&span, sc::GEN_AI_REQUEST_SEED, seed as i64);
        }
        if !p.stop.is_empty() {
            set_attribute(&span, sc::GEN_AI_REQUEST_STOP_SEQUENCES, strings(&p.stop));
        }
        if p.frequency_penalty != 0.0 {
            set_attribute(
                &span,
                sc::GEN_AI_REQUEST_FREQUENCY_PENALTY,
                f64::from(p.frequency_penalty),
            );
        }
        if p.presence_penalty != 0.0 {
            set_attribute(
                &span,
                sc::GEN_AI_REQUEST_PRESENCE_PENALTY,
                f64::from(p.presence_penalty),
            );
        }
        Box::new(TracingCall { span })
    }

    fn request_rejected(&self, error_type: &str, message: &str) {
        record_error(&Span::current(), error_type.to_owned(), message);
    }
}

impl GenerationCall for TracingCall {
    fn span(&self) -> Option<Span> {
        Some(self.span.clone())
    }

    fn first_token(&mut self, elapsed: Duration) {
        self.span
            .in_scope(|| tracing::info!(seconds = elapsed.as_secs_f64(), "first_token"));
    }

    fn post_call(self: Box<Self>, _start: &GenerationStart, end: &GenerationEnd) {
        let span = &self.span;
        set_attribute(span, sc::GEN_AI_RESPONSE_ID, end.response_id.clone());
        set_attribute(span, sc::GEN_AI_RESPONSE_MODEL, end.response_model.clone());
        set_attribute(
            span,
            sc::GEN_AI_RESPONSE_FINISH_REASONS,
            strings(&[end.finish_reason.as_str().to_owned()]),
        );
        set_attribute(
            span,
            sc::GEN_AI_USAGE_INPUT_TOKENS,
            i64::from(end.usage.prompt_tokens),
        );
        set_attribute(
            span,
            sc::GEN_AI_USAGE_OUTPUT_TOKENS,
            i64::from(end.usage.completion_tokens),
        );
        set_attribute(
            span,
            sc::GEN_AI_LATENCY_E2E,
            end.timings.duration.as_secs_f64(),
        );
        if let Some(ttft) = end.timings.time_to_first_token {
            set_attribute(span, sc::INFERD_TIME_TO_FIRST_TOKEN, ttft.as_secs_f64());
            set_attribute(
                span,
                sc::GEN_AI_LATENCY_TIME_TO_FIRST_TOKEN,
                ttft.as_secs_f64(),
            );
        }
        if let Some(tpot) = end.timings.time_per_output_token {
            set_attribute(span, sc::INFERD_TIME_PER_OUTPUT_TOKEN, tpot.as_secs_f64());
        }
        if let Some(engine) = end.engine_timings {
            set_attribute(
                span,
                sc::GEN_AI_LATENCY_TIME_IN_QUEUE,
                engine.queue.as_secs_f64(),
            );
            set_attribute(
                span,
                sc::GEN_AI_LATENCY_TIME_IN_MODEL_PREFILL,
                engine.prefill.as_secs_f64(),
            );
            set_attribute(
                span,
                sc::GEN_AI_LATENCY_TIME_IN_MODEL_DECODE,
                engine.decode.as_secs_f64(),
            );
        }
        // The span's end time is its last exit, so enter it once more as it finishes.
        span.in_scope(|| {
            tracing::info!(
                model = %end.response_model,
                finish_reason = end.finish_reason.as_str(),
                input_tokens = end.usage.prompt_tokens,
                output_tokens = end.usage.completion_tokens,
                seconds = end.timings.duration.as_secs_f64(),
                "finished"
            )
        });
    }

    fn error(self: Box<Self>, _start: &GenerationStart, failure: &GenerationFailure) {
        set_attribute(
            &self.span,
            sc::GEN_AI_LATENCY_E2E,
            failure.timings.duration.as_secs_f64(),
        );
        record_error(&self.span, failure.error_type.clone(), &failure.message);
        self.span
            .in_scope(|| tracing::info!(error.type = %failure.error_type, "failed"));
    }
}

fn strings(items: &[String]) -> Value {
    Value::Array(Array::String(
        items.iter().cloned().map(StringValue::from).collect(),
    ))
}
