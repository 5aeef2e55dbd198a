//! Every metric inferd emits (docs/telemetry.md, "Metrics"), declared once with its unit, description
//! and bucket boundaries. When telemetry is off the instruments come from a no-op meter, so
//! recording costs nothing and callers need no `if`.

use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, MeterProvider as _, UpDownCounter};

use std::sync::Arc;

use crate::exemplars::Exemplars;
use crate::setup::TelemetryGuard;
use inferd_otel::semconv;

/// inferd's instruments. Cheap to clone; clones record into the same instruments.
#[derive(Debug, Clone)]
pub struct InferdMetrics {
    /// `gen_ai.server.request.duration` (s): gen_ai.operation.name, gen_ai.request.model, error.type.
    pub gen_ai_server_request_duration: Histogram<f64>,
    /// `gen_ai.server.time_to_first_token` (s): gen_ai.operation.name, gen_ai.request.model.
    pub gen_ai_server_time_to_first_token: Histogram<f64>,
    /// `gen_ai.server.time_per_output_token` (s): gen_ai.operation.name, gen_ai.request.model.
    pub gen_ai_server_time_per_output_token: Histogram<f64>,
    /// `gen_ai.client.token.usage` ({token}): gen_ai.token.type, gen_ai.request.model.
    pub gen_ai_client_token_usage: Histogram<u64>,
    /// `gen_ai.client.operation.duration` (s): gen_ai.provider.name, gen_ai.request.model,
    /// server.address, error.type.
    pub gen_ai_client_operation_duration: Histogram<f64>,
    /// `gen_ai.client.operation.time_to_first_chunk` (s): as the operation duration, streamed
    /// upstream answers only.
    pub gen_ai_client_time_to_first_chunk: Histogram<f64>,
    /// `gen_ai.client.operation.time_per_output_chunk` (s): as the operation duration,
    /// streamed upstream answers with at least two chunks.
    pub gen_ai_client_time_per_output_chunk: Histogram<f64>,
    /// `inferd.models.loaded` ({model}).
    pub models_loaded: UpDownCounter<i64>,
    /// `inferd.model.loads` ({load}): inferd.model.id, inferd.model.artifacts.source.
    pub model_loads: Counter<u64>,
    /// `inferd.model.unloads` ({load}): inferd.model.id.
    pub model_unloads: Counter<u64>,
    /// `inferd.model.load.duration` (s): inferd.model.id, inferd.model.artifacts.source.
    pub model_load_duration: Histogram<f64>,
    /// `inferd.requests.active` ({request}): gen_ai.request.model.
    pub requests_active: UpDownCounter<i64>,
    /// `inferd.queue.size` ({request}): gen_ai.request.model.
    pub queue_size: UpDownCounter<i64>,
    /// `inferd.queue.limit` ({request}): gen_ai.request.model. A local engine's `--max-queue`.
    pub queue_limit: Gauge<u64>,
    /// `inferd.errors` ({error}): error.type.
    pub errors: Counter<u64>,
    /// `inferd.requests.running` ({request}): gen_ai.request.model. Sequences holding a slot
    /// of a local engine (the engine reports the count when it changes).
    pub requests_running: Gauge<u64>,
    /// `inferd.kv_cache.usage` (1): gen_ai.request.model. Share of a local engine's KV cache
    /// held by running sequences.
    pub kv_cache_usage: Gauge<f64>,
    /// `inferd.batch.size` ({sequence}): gen_ai.request.model, inferd.batch.phase. One
    /// measurement per batch run.
    pub batch_size: Histogram<u64>,
    /// `inferd.prompt_tokens` ({token}): gen_ai.request.model. Local generations only.
    pub prompt_tokens: Counter<u64>,
    /// `inferd.generation_tokens` ({token}): gen_ai.request.model. Local generations only.
    pub generation_tokens: Counter<u64>,
    /// `inferd.prompt_cache.hits` ({request}): gen_ai.request.model. Local generations that
    /// reused part of their prompt.
    pub prompt_cache_hits: Counter<u64>,
    /// `inferd.prompt_cache.hit_tokens` ({token}): gen_ai.request.model. Prompt tokens reused.
    pub prompt_cache_hit_tokens: Counter<u64>,
    /// `inferd.request.queue_time` (s): gen_ai.request.model. Local generations only.
    pub request_queue_time: Histogram<f64>,
    /// `inferd.request.prefill_time` (s): gen_ai.request.model. Local generations only.
    pub request_prefill_time: Histogram<f64>,
    /// `inferd.request.decode_time` (s): gen_ai.request.model. Local generations only.
    pub request_decode_time: Histogram<f64>,
    /// `inferd.api_key.rejections` ({request}): error.type, inferd.api_key.id (known keys).
    pub api_key_rejections: Counter<u64>,
    /// Where measurements made in a sampled trace leave exemplars for `/metrics` (none when
    /// Prometheus metrics are off).
    pub exemplars: Option<Arc<Exemplars>>,
}

impl InferdMetrics {
    /// Instruments on `meter`.
    pub fn new(meter: &Meter) -> Self {
        let seconds = |name: &'static str, description: &'static str, buckets: &[f64]| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(buckets.to_vec())
                .build()
        };
        let tokens = |name: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit("{token}")
                .with_description(description)
                .build()
        };
        InferdMetrics {
            gen_ai_server_request_duration: seconds(
                semconv::GEN_AI_SERVER_REQUEST_DURATION,
                "Time to serve a generation request",
                semconv::GEN_AI_DURATION_BUCKETS,
            ),
            gen_ai_server_time_to_first_token: seconds(
                semconv::GEN_AI_SERVER_TIME_TO_FIRST_TOKEN,
                "Time from request to the first output token",
                semconv::GEN_AI_TIME_TO_FIRST_TOKEN_BUCKETS,
            ),
            gen_ai_server_time_per_output_token: seconds(
                semconv::GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN,
                "Time per output token after the first",
                semconv::GEN_AI_TIME_PER_OUTPUT_TOKEN_BUCKETS,
            ),
            gen_ai_client_token_usage: meter
                .u64_histogram(semconv::GEN_AI_CLIENT_TOKEN_USAGE)
                .with_unit("{token}")
                .with_description("Tokens used, by gen_ai.token.type")
                .with_boundaries(semconv::GEN_AI_TOKEN_USAGE_BUCKETS.to_vec())
                .build(),
            gen_ai_client_operation_duration: seconds(
                semconv::GEN_AI_CLIENT_OPERATION_DURATION,
                "Duration of calls to upstream model servers",
                semconv::GEN_AI_DURATION_BUCKETS,
            ),
            gen_ai_client_time_to_first_chunk: seconds(
                semconv::GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
                "Time from an upstream call to the first chunk of its streamed answer",
                semconv::GEN_AI_TIME_TO_FIRST_TOKEN_BUCKETS,
            ),
            gen_ai_client_time_per_output_chunk: seconds(
                semconv::GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK,
                "Time between the chunks of an upstream's streamed answer after the first",
                semconv::GEN_AI_TIME_PER_OUTPUT_TOKEN_BUCKETS,
            ),
            models_loaded: meter
                .i64_up_down_counter(semconv::INFERD_MODELS_LOADED)
                .with_unit("{model}")
                .with_description("Models currently loaded")
                .build(),
            model_loads: meter
                .u64_counter(semconv::INFERD_MODEL_LOADS)
                .with_unit("{load}")
                .with_description("Model loads")
                .build(),
            model_unloads: meter
                .u64_counter(semconv::INFERD_MODEL_UNLOADS)
                .with_unit("{load}")
                .with_description("Model unloads")
                .build(),
            model_load_duration: seconds(
                semconv::INFERD_MODEL_LOAD_DURATION,
                "Time to load a model",
                semconv::GEN_AI_DURATION_BUCKETS,
            ),
            requests_active: meter
                .i64_up_down_counter(semconv::INFERD_REQUESTS_ACTIVE)
                .with_unit("{request}")
                .with_description("Requests being served")
                .build(),
            queue_limit: meter
                .u64_gauge(semconv::INFERD_QUEUE_LIMIT)
                .with_unit("{request}")
                .with_description("Most requests a local engine's queue holds")
                .build(),
            queue_size: meter
                .i64_up_down_counter(semconv::INFERD_QUEUE_SIZE)
                .with_unit("{request}")
                .with_description("Requests waiting for an engine slot")
                .build(),
            errors: meter
                .u64_counter(semconv::INFERD_ERRORS)
                .with_unit("{error}")
                .with_description("Errors, by error.type")
                .build(),
            requests_running: meter
                .u64_gauge(semconv::INFERD_REQUESTS_RUNNING)
                .with_unit("{request}")
                .with_description("Sequences holding a slot of a local engine")
                .build(),
            kv_cache_usage: meter
                .f64_gauge(semconv::INFERD_KV_CACHE_USAGE)
                .with_unit("1")
                .with_description("Share of a local engine's KV cache held by running sequences")
                .build(),
            batch_size: meter
                .u64_histogram(semconv::INFERD_BATCH_SIZE)
                .with_unit("{sequence}")
                .with_description(
                    "Sequences per batch run of a local engine, by inferd.batch.phase",
                )
                .with_boundaries(semconv::INFERD_BATCH_SIZE_BUCKETS.to_vec())
                .build(),
            prompt_tokens: tokens(
                semconv::INFERD_PROMPT_TOKENS,
                "Prompt tokens of local generations",
            ),
            generation_tokens: tokens(
                semconv::INFERD_GENERATION_TOKENS,
                "Tokens generated by local generations",
            ),
            prompt_cache_hits: meter
                .u64_counter(semconv::INFERD_PROMPT_CACHE_HITS)
                .with_unit("{request}")
                .with_description(
                    "Local generations that reused part of their prompt from the prompt cache",
                )
                .build(),
            prompt_cache_hit_tokens: tokens(
                semconv::INFERD_PROMPT_CACHE_HIT_TOKENS,
                "Prompt tokens reused from the prompt cache",
            ),
            // Queue and prefill make up the time to first token: its buckets.
            request_queue_time: seconds(
                semconv::INFERD_REQUEST_QUEUE_TIME,
                "Time a local generation waited for an engine slot",
                semconv::GEN_AI_TIME_TO_FIRST_TOKEN_BUCKETS,
            ),
            request_prefill_time: seconds(
                semconv::INFERD_REQUEST_PREFILL_TIME,
                "Time a local generation spent processing its prompt",
                semconv::GEN_AI_TIME_TO_FIRST_TOKEN_BUCKETS,
            ),
            request_decode_time: seconds(
                semconv::INFERD_REQUEST_DECODE_TIME,
                "Time a local generation spent generating after its first token",
                semconv::GEN_AI_DURATION_BUCKETS,
            ),
            api_key_rejections: meter
                .u64_counter(semconv::INFERD_API_KEY_REJECTIONS)
                .with_unit("{request}")
                .with_description(
                    "Requests refused for their API key: missing, invalid or over its limits",
                )
                .build(),
            exemplars: None,
        }
    }

    /// Instruments of a running telemetry, or no-op instruments when it is off.
    pub fn from_guard(guard: &TelemetryGuard) -> Self {
        let mut metrics = match guard.meter() {
            Some(meter) => Self::new(&meter),
            None => Self::new(&opentelemetry::metrics::NoopMeterProvider::new().meter("inferd")),
        };
        metrics.exemplars = guard.prometheus_metrics().map(|p| p.exemplars());
        metrics
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::KeyValue;

    use super::*;
    use crate::config::Mode;
    use crate::setup::build_for_test;

    #[test]
    fn instruments_record_and_render_with_their_units() {
        let _serial = crate::serial_dispatch();
        let (guard, _) = build_for_test(Mode::Local);
        let m = InferdMetrics::from_guard(&guard);
        let model = [KeyValue::new(semconv::GEN_AI_REQUEST_MODEL, "smollm2-135m")];
        m.gen_ai_server_time_to_first_token.record(0.03, &model);
        m.gen_ai_client_token_usage.record(
            12,
            &[
                KeyValue::new(semconv::GEN_AI_TOKEN_TYPE, "input"),
                model[0].clone(),
            ],
        );
        m.requests_active.add(1, &model);
        m.errors
            .add(1, &[KeyValue::new(semconv::ERROR_TYPE, "timeout")]);
        let text = guard
            .prometheus_metrics()
            .map(|p| p.render())
            .and_then(Result::ok)
            .unwrap_or_default();
        assert!(text.contains("gen_ai_server_time_to_first_token_seconds_bucket{gen_ai_request_model=\"smollm2-135m\",le=\"0.04\"} 1"), "{text}");
        assert!(text.contains("gen_ai_client_token_usage_count{gen_ai_request_model=\"smollm2-135m\",gen_ai_token_type=\"input\"} 1"), "{text}");
        assert!(
            text.contains("inferd_requests_active{gen_ai_request_model=\"smollm2-135m\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("inferd_errors_total{error_type=\"timeout\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn engine_instruments_render_under_the_names_operators_know() {
        let _serial = crate::serial_dispatch();
        let (guard, _) = build_for_test(Mode::Local);
        let m = InferdMetrics::from_guard(&guard);
        let model = [KeyValue::new(semconv::GEN_AI_REQUEST_MODEL, "llama")];
        m.requests_running.record(2, &model);
        m.kv_cache_usage.record(0.5, &model);
        m.batch_size.record(
            3,
            &[
                model[0].clone(),
                KeyValue::new(semconv::INFERD_BATCH_PHASE, "decode"),
            ],
        );
        m.prompt_tokens.add(10, &model);
        m.generation_tokens.add(5, &model);
        m.prompt_cache_hits.add(1, &model);
        m.prompt_cache_hit_tokens.add(6, &model);
        m.request_queue_time.record(0.002, &model);
        m.request_prefill_time.record(0.02, &model);
        m.request_decode_time.record(1.5, &model);
        let text = guard
            .prometheus_metrics()
            .map(|p| p.render())
            .and_then(Result::ok)
            .unwrap_or_default();
        for line in [
            "inferd_requests_running{gen_ai_request_model=\"llama\"} 2",
            "inferd_kv_cache_usage_ratio{gen_ai_request_model=\"llama\"} 0.5",
            "inferd_batch_size_bucket{gen_ai_request_model=\"llama\",inferd_batch_phase=\"decode\",le=\"2\"} 0",
            "inferd_batch_size_bucket{gen_ai_request_model=\"llama\",inferd_batch_phase=\"decode\",le=\"4\"} 1",
            "inferd_batch_size_bucket{gen_ai_request_model=\"llama\",inferd_batch_phase=\"decode\",le=\"64\"} 1",
            "inferd_prompt_tokens_total{gen_ai_request_model=\"llama\"} 10",
            "inferd_generation_tokens_total{gen_ai_request_model=\"llama\"} 5",
            "inferd_prompt_cache_hits_total{gen_ai_request_model=\"llama\"} 1",
            "inferd_prompt_cache_hit_tokens_total{gen_ai_request_model=\"llama\"} 6",
            "inferd_request_queue_time_seconds_bucket{gen_ai_request_model=\"llama\",le=\"0.005\"} 1",
            "inferd_request_prefill_time_seconds_count{gen_ai_request_model=\"llama\"} 1",
            "inferd_request_decode_time_seconds_bucket{gen_ai_request_model=\"llama\",le=\"2.56\"} 1",
        ] {
            assert!(text.contains(line), "no `{line}` in\n{text}");
        }
    }

    #[test]
    fn instruments_are_no_ops_when_off() {
        let _serial = crate::serial_dispatch();
        let (guard, _) = build_for_test(Mode::Off);
        let m = InferdMetrics::from_guard(&guard);
        m.errors.add(1, &[]);
        m.gen_ai_server_request_duration.record(1.0, &[]);
        assert!(guard.prometheus_metrics().is_none());
    }
}
