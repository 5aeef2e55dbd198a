//! GenAI and inferd metrics for every generation, whatever the sampling: request duration,
//! time to first token, time per output token, token usage by type, active requests, errors;
//! for local generations also the engine's token counters, prompt-cache hits and queue,
//! prefill and decode times; and the local engines' own state ([`super::engine_metrics`]).

use std::sync::Arc;

use inferd_engine::hooks::{
    BatchRun, EngineLoad, GenerationCall, GenerationEnd, GenerationFailure, GenerationStart,
    GenerationTimings, ModelLoad, ModelUnload, Observer,
};
use inferd_openai::Api;
use inferd_otel::semconv as sc;
use inferd_telemetry::InferdMetrics;
use opentelemetry::metrics::{BoundCounter, BoundHistogram, BoundUpDownCounter};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::KeyValue;

use super::engine_metrics::EngineMetrics;
use inferd_telemetry::BoundCache;

/// Most attribute sets kept bound (see [`Bound`]); past it, generations record unbound.
const MAX_BOUND_SETS: usize = 256;

/// Records the metrics of docs/telemetry.md for each generation.
#[derive(Debug)]
pub struct MetricsPlugin {
    metrics: InferdMetrics,
    bound: Arc<BoundCache<String, Bound>>,
    engines: EngineMetrics,
}

impl MetricsPlugin {
    pub fn new(metrics: InferdMetrics) -> Self {
        Self {
            engines: EngineMetrics::new(metrics.clone()),
            metrics,
            bound: Arc::new(BoundCache::new(MAX_BOUND_SETS)),
        }
    }
}

/// The instruments a successful generation records, bound to their attribute sets, so that
/// recording skips the SDK's lookup of the attribute set (a SipHash of every key and value, on
/// each of ~7 measurements). One per (operation, model, provider, upstream address) that
/// finished a generation: bounded by the models served, as only successes create them.
struct Bound {
    api: Api,
    provider: Arc<str>,
    address: Option<Arc<str>>,
    requests_active: BoundUpDownCounter<i64>,
    request_duration: BoundHistogram<f64>,
    time_to_first_token: BoundHistogram<f64>,
    time_per_output_token: BoundHistogram<f64>,
    /// The client metrics of a call to a remote upstream.
    client: Option<ClientBound>,
    /// The engine's measures, for a local model.
    local: Option<LocalBound>,
}

/// What a call to a remote upstream adds: the GenAI client metrics. Tokens are counted by
/// `gen_ai.client.token.usage` only where inferd is the client; the process that runs the
/// model counts them in `inferd.prompt_tokens` / `inferd.generation_tokens`, so a fleet of
/// inferd processes (a gateway in front of others) counts each token once in each family.
struct ClientBound {
    duration: BoundHistogram<f64>,
    input_tokens: BoundHistogram<u64>,
    output_tokens: BoundHistogram<u64>,
    time_to_first_chunk: BoundHistogram<f64>,
    time_per_output_chunk: BoundHistogram<f64>,
}

impl ClientBound {
    fn new(m: &InferdMetrics, start: &GenerationStart, model: &KeyValue, address: &str) -> Self {
        let tokens = |kind: &'static str| {
            m.gen_ai_client_token_usage
                .bind(&token_attributes(start, model, kind))
        };
        let attrs = client_attributes(start, address, None);
        Self {
            duration: m.gen_ai_client_operation_duration.bind(&attrs),
            input_tokens: tokens("input"),
            output_tokens: tokens("output"),
            time_to_first_chunk: m.gen_ai_client_time_to_first_chunk.bind(&attrs),
            time_per_output_chunk: m.gen_ai_client_time_per_output_chunk.bind(&attrs),
        }
    }

    fn record(&self, start: &GenerationStart, end: &GenerationEnd) {
        self.duration.record(end.timings.duration.as_secs_f64());
        self.input_tokens.record(u64::from(end.usage.prompt_tokens));
        // Embeddings produce no tokens.
        if start.api != Api::Embeddings {
            self.output_tokens
                .record(u64::from(end.usage.completion_tokens));
        }
        // Chunk times exist only for a streamed answer (the bus takes none from a whole one).
        if let Some(ttfc) = end.timings.time_to_first_token {
            self.time_to_first_chunk.record(ttfc.as_secs_f64());
        }
        if let Some(tpoc) = end.timings.time_per_output_chunk {
            self.time_per_output_chunk.record(tpoc.as_secs_f64());
        }
    }
}

/// What a local generation adds (by model): the counters and times vLLM and llama-server
/// operators know.
struct LocalBound {
    prompt_tokens: BoundCounter<u64>,
    generation_tokens: BoundCounter<u64>,
    cache_hits: BoundCounter<u64>,
    cache_hit_tokens: BoundCounter<u64>,
    queue_time: BoundHistogram<f64>,
    prefill_time: BoundHistogram<f64>,
    decode_time: BoundHistogram<f64>,
}

impl LocalBound {
    fn new(m: &InferdMetrics, model: &KeyValue) -> Self {
        let model = std::slice::from_ref(model);
        Self {
            prompt_tokens: m.prompt_tokens.bind(model),
            generation_tokens: m.generation_tokens.bind(model),
            cache_hits: m.prompt_cache_hits.bind(model),
            cache_hit_tokens: m.prompt_cache_hit_tokens.bind(model),
            queue_time: m.request_queue_time.bind(model),
            prefill_time: m.request_prefill_time.bind(model),
            decode_time: m.request_decode_time.bind(model),
        }
    }

    fn record(&self, end: &GenerationEnd) {
        let usage = &end.usage;
        self.prompt_tokens.add(u64::from(usage.prompt_tokens));
        self.generation_tokens
            .add(u64::from(usage.completion_tokens));
        // Added even when 0, so the series exist before the first hit.
        self.cache_hits.add(u64::from(usage.cached_tokens > 0));
        self.cache_hit_tokens.add(u64::from(usage.cached_tokens));
        if let Some(t) = end.engine_timings {
            self.queue_time.record(t.queue.as_secs_f64());
            self.prefill_time.record(t.prefill.as_secs_f64());
            self.decode_time.record(t.decode.as_secs_f64());
        }
    }
}

/// [`LocalBound::record`] for a generation past the bound cache.
fn record_local_unbound(m: &InferdMetrics, model: &KeyValue, end: &GenerationEnd) {
    let model = std::slice::from_ref(model);
    let usage = &end.usage;
    m.prompt_tokens.add(u64::from(usage.prompt_tokens), model);
    m.generation_tokens
        .add(u64::from(usage.completion_tokens), model);
    m.prompt_cache_hits
        .add(u64::from(usage.cached_tokens > 0), model);
    m.prompt_cache_hit_tokens
        .add(u64::from(usage.cached_tokens), model);
    if let Some(t) = end.engine_timings {
        m.request_queue_time.record(t.queue.as_secs_f64(), model);
        m.request_prefill_time
            .record(t.prefill.as_secs_f64(), model);
        m.request_decode_time.record(t.decode.as_secs_f64(), model);
    }
}

/// Whether a generation runs in this process (a local engine), not on an upstream.
fn is_local(start: &GenerationStart) -> bool {
    start.server.is_none()
}

impl Bound {
    fn new(m: &InferdMetrics, start: &GenerationStart) -> Self {
        let model = KeyValue::new(sc::GEN_AI_REQUEST_MODEL, start.model.clone());
        let attrs = generation_attributes(start, &model);
        Self {
            api: start.api,
            provider: start.provider.clone(),
            address: start.server.as_ref().map(|(address, _)| address.clone()),
            requests_active: m.requests_active.bind(std::slice::from_ref(&model)),
            request_duration: m.gen_ai_server_request_duration.bind(&attrs),
            time_to_first_token: m.gen_ai_server_time_to_first_token.bind(&attrs),
            time_per_output_token: m.gen_ai_server_time_per_output_token.bind(&attrs),
            client: start
                .server
                .as_ref()
                .map(|(address, _)| ClientBound::new(m, start, &model, address)),
            local: is_local(start).then(|| LocalBound::new(m, &model)),
        }
    }

    fn serves(&self, start: &GenerationStart) -> bool {
        self.api == start.api
            && self.provider == start.provider
            && self.address.as_deref() == start.server.as_ref().map(|(a, _)| &**a)
    }
}

struct MetricsCall {
    metrics: InferdMetrics,
    bound: Arc<BoundCache<String, Bound>>,
    /// The bound set found at the start (the model has finished a generation before).
    set: Option<Arc<Bound>>,
    model: KeyValue,
    /// The sampled span the generation started in, when exemplars are kept: the latency
    /// measurements point at its trace.
    exemplar_span: Option<SpanContext>,
}

impl MetricsCall {
    /// Leaves the generation's latencies as exemplars of their histograms' series.
    fn record_exemplars(&self, start: &GenerationStart, timings: &GenerationTimings) {
        let (Some(exemplars), Some(sc)) = (&self.metrics.exemplars, &self.exemplar_span) else {
            return;
        };
        let attrs = generation_attributes(start, &self.model);
        let measured = [
            (sc::GEN_AI_SERVER_REQUEST_DURATION, Some(timings.duration)),
            (
                sc::GEN_AI_SERVER_TIME_TO_FIRST_TOKEN,
                timings.time_to_first_token,
            ),
            (
                sc::GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN,
                timings.time_per_output_token,
            ),
        ];
        for (metric, value) in measured {
            if let Some(value) = value {
                exemplars.record(metric, &attrs, value.as_secs_f64(), sc);
            }
        }
    }
}

impl Observer for MetricsPlugin {
    fn generation_pre_call(&self, start: &GenerationStart) -> Option<Box<dyn GenerationCall>> {
        // A name the client made up is one label value for all of them (the semantic
        // conventions' `_OTHER`), so clients cannot grow the series.
        let model = if start.model_known {
            KeyValue::new(sc::GEN_AI_REQUEST_MODEL, start.model.clone())
        } else {
            KeyValue::new(sc::GEN_AI_REQUEST_MODEL, sc::OTHER_VALUE)
        };
        // Only a finished generation binds a set (a request for a model that does not exist
        // must not); until then the +1 is recorded unbound, into the same series.
        let set = self.bound.existing(&*start.model, |b| b.serves(start));
        match &set {
            Some(set) => set.requests_active.add(1),
            None => self
                .metrics
                .requests_active
                .add(1, std::slice::from_ref(&model)),
        }
        let exemplar_span = self.metrics.exemplars.as_ref().and_then(|_| {
            let cx = opentelemetry::Context::current();
            let span = cx.span();
            let sc = span.span_context();
            sc.is_sampled().then(|| sc.clone())
        });
        Some(Box::new(MetricsCall {
            exemplar_span,
            metrics: self.metrics.clone(),
            bound: Arc::clone(&self.bound),
            set,
            model,
        }))
    }

    fn queue_changed(&self, model: &str, delta: i64) {
        self.metrics.queue_size.add(
            delta,
            &[KeyValue::new(sc::GEN_AI_REQUEST_MODEL, model.to_owned())],
        );
    }

    fn request_rejected(&self, error_type: &str, _message: &str) {
        self.metrics
            .errors
            .add(1, &[KeyValue::new(sc::ERROR_TYPE, error_type.to_owned())]);
    }

    fn batch_run(&self, run: &BatchRun<'_>) {
        self.engines.batch_run(run);
    }

    fn engine_load(&self, model: &str, load: &EngineLoad) {
        self.engines.engine_load(model, load);
    }

    fn model_unloaded(&self, unload: &ModelUnload) {
        self.engines.model_unloaded(&unload.model_id);
        self.metrics.model_unloads.add(
            1,
            &[
                KeyValue::new(sc::INFERD_MODEL_ID, unload.model_id.clone()),
                KeyValue::new(sc::INFERD_MODEL_UNLOAD_REASON, unload.reason),
            ],
        );
        self.metrics.models_loaded.add(-1, &[]);
    }

    fn model_loaded(&self, load: &ModelLoad) {
        let m = &self.metrics;
        let attrs = [
            KeyValue::new(sc::INFERD_MODEL_ID, load.model_id.clone()),
            KeyValue::new(sc::INFERD_MODEL_ARTIFACTS_SOURCE, load.source),
        ];
        match &load.result {
            Ok(()) => {
                m.model_loads.add(1, &attrs);
                m.model_load_duration
                    .record(load.duration.as_secs_f64(), &attrs);
                m.models_loaded.add(1, &[]);
            }
            Err(_) => m
                .errors
                .add(1, &[KeyValue::new(sc::ERROR_TYPE, "model_load_failed")]),
        }
    }
}

impl GenerationCall for MetricsCall {
    fn post_call(self: Box<Self>, start: &GenerationStart, end: &GenerationEnd) {
        self.record_exemplars(start, &end.timings);
        let m = &self.metrics;
        let set = match self.set {
            Some(set) => Some(set),
            None => {
                self.bound
                    .get_or_bind(&*start.model, |b| b.serves(start), || Bound::new(m, start))
            }
        };
        if let Some(b) = set {
            b.requests_active.add(-1);
            b.request_duration
                .record(end.timings.duration.as_secs_f64());
            if let Some(client) = &b.client {
                client.record(start, end);
            }
            if let Some(ttft) = end.timings.time_to_first_token {
                b.time_to_first_token.record(ttft.as_secs_f64());
            }
            if let Some(tpot) = end.timings.time_per_output_token {
                b.time_per_output_token.record(tpot.as_secs_f64());
            }
            if let Some(local) = &b.local {
                local.record(end);
            }
            return;
        }
        m.requests_active.add(-1, std::slice::from_ref(&self.model));
        let attrs = generation_attributes(start, &self.model);
        m.gen_ai_server_request_duration
            .record(end.timings.duration.as_secs_f64(), &attrs);
        if let Some((address, _)) = &start.server {
            ClientBound::new(m, start, &self.model, address).record(start, end);
        }
        if let Some(ttft) = end.timings.time_to_first_token {
            m.gen_ai_server_time_to_first_token
                .record(ttft.as_secs_f64(), &attrs);
        }
        if let Some(tpot) = end.timings.time_per_output_token {
            m.gen_ai_server_time_per_output_token
                .record(tpot.as_secs_f64(), &attrs);
        }
        if is_local(start) {
            record_local_unbound(m, &self.model, end);
        }
    }

    fn error(self: Box<Self>, start: &GenerationStart, failure: &GenerationFailure) {
        let m = &self.metrics;
        match &self.set {
            Some(set) => set.requests_active.add(-1),
            None => m.requests_active.add(-1, std::slice::from_ref(&self.model)),
        }
        let error_type = KeyValue::new(sc::ERROR_TYPE, failure.error_type.clone());
        m.gen_ai_server_request_duration.record(
            failure.timings.duration.as_secs_f64(),
            &[
                KeyValue::new(sc::GEN_AI_OPERATION_NAME, start.api.operation_name()),
                KeyValue::new(sc::GEN_AI_PROVIDER_NAME, start.provider.clone()),
                self.model.clone(),
                error_type.clone(),
            ],
        );
        client_call_duration(
            m,
            start,
            failure.timings.duration,
            Some(failure.error_type.clone()),
        );
        m.errors.add(1, &[error_type]);
    }
}

/// The attributes the GenAI server metrics require: operation, provider and model.
fn generation_attributes(start: &GenerationStart, model: &KeyValue) -> [KeyValue; 3] {
    [
        KeyValue::new(sc::GEN_AI_OPERATION_NAME, start.api.operation_name()),
        KeyValue::new(sc::GEN_AI_PROVIDER_NAME, start.provider.clone()),
        model.clone(),
    ]
}

/// The attributes of `gen_ai.client.token.usage`: the token type, operation, provider, model.
fn token_attributes(
    start: &GenerationStart,
    model: &KeyValue,
    kind: &'static str,
) -> [KeyValue; 4] {
    [
        KeyValue::new(sc::GEN_AI_TOKEN_TYPE, kind),
        KeyValue::new(sc::GEN_AI_OPERATION_NAME, start.api.operation_name()),
        KeyValue::new(sc::GEN_AI_PROVIDER_NAME, start.provider.clone()),
        model.clone(),
    ]
}

/// `gen_ai.client.operation.duration` of a call to a remote upstream.
fn client_call_duration(
    m: &InferdMetrics,
    start: &GenerationStart,
    duration: std::time::Duration,
    error_type: Option<String>,
) {
    let Some((address, _)) = &start.server else {
        return;
    };
    m.gen_ai_client_operation_duration.record(
        duration.as_secs_f64(),
        &client_attributes(start, address, error_type),
    );
}

/// The attributes of `gen_ai.client.operation.duration`.
fn client_attributes(
    start: &GenerationStart,
    address: &str,
    error_type: Option<String>,
) -> Vec<KeyValue> {
    let mut attrs = vec![
        KeyValue::new(sc::GEN_AI_OPERATION_NAME, start.api.operation_name()),
        KeyValue::new(sc::GEN_AI_PROVIDER_NAME, start.provider.clone()),
        KeyValue::new(sc::GEN_AI_REQUEST_MODEL, start.model.clone()),
        KeyValue::new(sc::SERVER_ADDRESS, address.to_owned()),
    ];
    if let Some((_, port)) = &start.server {
        attrs.push(KeyValue::new(sc::SERVER_PORT, i64::from(*port)));
    }
    if let Some(error_type) = error_type {
        attrs.push(KeyValue::new(sc::ERROR_TYPE, error_type));
    }
    attrs
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use inferd_engine::{EngineTimings, FinishReason, SamplingParams, Usage};

    use super::*;
    use crate::observe::test_support::{local, rendered};

    fn start(model: &str, server: Option<(&str, u16)>) -> GenerationStart {
        GenerationStart {
            model_known: true,
            generation_id: "g".into(),
            api: Api::Chat,
            model: model.into(),
            provider: "openai".into(),
            server: server.map(|(a, p)| (a.into(), p)),
            params: SamplingParams::default(),
            stream: false,
            captured_prompt: None,
        }
    }

    fn end() -> GenerationEnd {
        GenerationEnd {
            response_id: "r".into(),
            response_model: "m".into(),
            finish_reason: FinishReason::Stop,
            usage: Usage {
                prompt_tokens: 7,
                completion_tokens: 3,
                cached_tokens: 0,
            },
            timings: GenerationTimings {
                duration: Duration::from_millis(20),
                time_to_first_token: Some(Duration::from_millis(5)),
                time_per_output_token: Some(Duration::from_millis(2)),
                time_per_output_chunk: None,
            },
            engine_timings: None,
            captured_output: None,
        }
    }

    #[test]
    fn bound_and_unbound_generations_count_in_the_same_series() {
        let guard = local();
        let plugin = MetricsPlugin::new(InferdMetrics::from_guard(&guard));
        let remote = start("up-model", Some(("10.0.0.5", 8000)));
        // Three successes (the first binds, the next two use the bound set) and a failure
        // (never bound) of the same model.
        for _ in 0..3 {
            plugin
                .generation_pre_call(&remote)
                .expect("a call")
                .post_call(&remote, &end());
        }
        let failure = GenerationFailure {
            error_type: "upstream_unavailable".into(),
            message: "down".into(),
            timings: end().timings,
        };
        plugin
            .generation_pre_call(&remote)
            .expect("a call")
            .error(&remote, &failure);
        let text = rendered(&guard);
        let has = |line: &str| assert!(text.contains(line), "no `{line}` in\n{text}");
        has("gen_ai_server_request_duration_seconds_count{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"up-model\"} 3");
        has("gen_ai_server_time_to_first_token_seconds_count{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"up-model\"} 3");
        has("gen_ai_client_token_usage_sum{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"up-model\",gen_ai_token_type=\"input\"} 21");
        has("gen_ai_client_token_usage_sum{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"up-model\",gen_ai_token_type=\"output\"} 9");
        has("gen_ai_client_operation_duration_seconds_count{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"up-model\",server_address=\"10.0.0.5\",server_port=\"8000\"} 3");
        has("gen_ai_client_operation_time_to_first_chunk_seconds_count{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"up-model\",server_address=\"10.0.0.5\",server_port=\"8000\"} 3");
        // No chunk came after the first: no time between chunks.
        assert!(
            !text.lines().any(|l| l
                .starts_with("gen_ai_client_operation_time_per_output_chunk_seconds_count{")
                && !l.ends_with(" 0")),
            "{text}"
        );
        has("gen_ai_client_operation_duration_seconds_count{error_type=\"upstream_unavailable\",gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"up-model\",server_address=\"10.0.0.5\",server_port=\"8000\"} 1");
        // +1 unbound at the start, -1 bound or unbound at the end: back to zero.
        has("inferd_requests_active{gen_ai_request_model=\"up-model\"} 0");

        // Started unbound before the set existed, finished bound, and the other way round:
        // the one series counts each in flight once and returns to zero.
        let other = start("other-model", None);
        let early = plugin.generation_pre_call(&other).expect("a call");
        plugin
            .generation_pre_call(&other)
            .expect("a call")
            .post_call(&other, &end());
        let late = plugin.generation_pre_call(&other).expect("a call");
        let active =
            |n: u32| format!("inferd_requests_active{{gen_ai_request_model=\"other-model\"}} {n}");
        let text = rendered(&guard);
        assert!(text.contains(&active(2)), "{text}");
        early.post_call(&other, &end());
        late.error(&other, &failure);
        let text = rendered(&guard);
        assert!(text.contains(&active(0)), "{text}");
        assert!(text.contains("gen_ai_server_request_duration_seconds_count{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"other-model\"} 2"), "{text}");
    }

    #[test]
    fn a_full_cache_falls_back_to_unbound_recording() {
        let guard = local();
        let plugin = MetricsPlugin::new(InferdMetrics::from_guard(&guard));
        for i in 0..MAX_BOUND_SETS + 2 {
            let s = start(&format!("m{i}"), None);
            plugin
                .generation_pre_call(&s)
                .expect("a call")
                .post_call(&s, &end());
        }
        let (models, cached) = plugin.bound.counts();
        assert_eq!(cached, MAX_BOUND_SETS);
        // The models past the limit left nothing behind.
        assert_eq!(models, MAX_BOUND_SETS);
        let last = MAX_BOUND_SETS + 1;
        let text = rendered(&guard);
        let line = format!("gen_ai_server_request_duration_seconds_count{{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"m{last}\"}} 1");
        assert!(text.contains(&line), "no `{line}`");
        let active = format!("inferd_requests_active{{gen_ai_request_model=\"m{last}\"}} 0");
        assert!(text.contains(&active), "no `{active}`");
    }

    /// A local generation's end: 12 prompt tokens of which `cached` came from the prompt
    /// cache, 4 generated, and the engine's times.
    fn local_end(cached: u32) -> GenerationEnd {
        GenerationEnd {
            usage: Usage {
                prompt_tokens: 12,
                completion_tokens: 4,
                cached_tokens: cached,
            },
            engine_timings: Some(EngineTimings {
                queue: Duration::from_millis(30),
                prefill: Duration::from_millis(7),
                decode: Duration::from_millis(120),
            }),
            ..end()
        }
    }

    #[test]
    fn local_generations_count_tokens_cache_hits_and_engine_times() {
        let guard = local();
        let plugin = MetricsPlugin::new(InferdMetrics::from_guard(&guard));
        let llama = start("llama", None);
        // The first binds the model's set, the second uses it.
        for cached in [8, 0] {
            plugin
                .generation_pre_call(&llama)
                .expect("a call")
                .post_call(&llama, &local_end(cached));
        }
        // A remote model's generations are the upstream's to count.
        let remote = start("up-model", Some(("10.0.0.5", 8000)));
        plugin
            .generation_pre_call(&remote)
            .expect("a call")
            .post_call(&remote, &local_end(8));

        let text = rendered(&guard);
        let has = |line: &str| assert!(text.contains(line), "no `{line}` in\n{text}");
        has("inferd_prompt_tokens_total{gen_ai_request_model=\"llama\"} 24");
        has("inferd_generation_tokens_total{gen_ai_request_model=\"llama\"} 8");
        has("inferd_prompt_cache_hits_total{gen_ai_request_model=\"llama\"} 1");
        has("inferd_prompt_cache_hit_tokens_total{gen_ai_request_model=\"llama\"} 8");
        has("inferd_request_queue_time_seconds_count{gen_ai_request_model=\"llama\"} 2");
        has("inferd_request_queue_time_seconds_sum{gen_ai_request_model=\"llama\"} 0.06");
        has("inferd_request_prefill_time_seconds_bucket{gen_ai_request_model=\"llama\",le=\"0.01\"} 2");
        has("inferd_request_decode_time_seconds_sum{gen_ai_request_model=\"llama\"} 0.24");
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("inferd_prompt") && l.contains("up-model")),
            "{text}"
        );
        // The model's tokens are counted once, by the process that runs it: the client
        // metric is the upstream call's.
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("gen_ai_client_token_usage") && l.contains("llama")),
            "{text}"
        );
        has("gen_ai_client_token_usage_sum{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"up-model\",gen_ai_token_type=\"input\"} 12");
    }

    #[test]
    fn local_generations_past_the_bound_cache_record_the_same_series() {
        let guard = local();
        let plugin = MetricsPlugin::new(InferdMetrics::from_guard(&guard));
        for i in 0..MAX_BOUND_SETS {
            let s = start(&format!("m{i}"), Some(("10.0.0.5", 8000)));
            plugin
                .generation_pre_call(&s)
                .expect("a call")
                .post_call(&s, &end());
        }
        let llama = start("llama", None);
        plugin
            .generation_pre_call(&llama)
            .expect("a call")
            .post_call(&llama, &local_end(3));
        let text = rendered(&guard);
        for line in [
            "inferd_prompt_tokens_total{gen_ai_request_model=\"llama\"} 12",
            "inferd_prompt_cache_hits_total{gen_ai_request_model=\"llama\"} 1",
            "inferd_prompt_cache_hit_tokens_total{gen_ai_request_model=\"llama\"} 3",
            "inferd_request_prefill_time_seconds_count{gen_ai_request_model=\"llama\"} 1",
        ] {
            assert!(text.contains(line), "no `{line}` in\n{text}");
        }
    }
}
