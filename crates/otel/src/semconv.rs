//! Every attribute, metric and span name inferd emits, declared once; docs/telemetry.md
//! documents each of them (a test below checks it).
//!
//! HTTP and error names follow the OpenTelemetry semantic conventions; GenAI names are pinned to
//! semantic-conventions v1.41 (`gen_ai.provider.name`, never the older `gen_ai.system`); inferd's
//! own names live under `inferd.` and `model.`.

// --- HTTP (stable semantic conventions) ---
/// HTTP request method, e.g. `GET`.
pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
/// The matched route template, e.g. `/v1/chat/completions`.
pub const HTTP_ROUTE: &str = "http.route";
/// HTTP response status code.
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
/// How many times an outgoing request was sent before this attempt (retries and failovers).
pub const HTTP_REQUEST_RESEND_COUNT: &str = "http.request.resend_count";
/// Path of the request URL.
pub const URL_PATH: &str = "url.path";
/// Scheme of the request URL (`http` / `https`).
pub const URL_SCHEME: &str = "url.scheme";
/// Full URL of an outgoing request (credentials removed).
pub const URL_FULL: &str = "url.full";
/// Server host name as seen by the client.
pub const SERVER_ADDRESS: &str = "server.address";
/// Server port as seen by the client.
pub const SERVER_PORT: &str = "server.port";
/// Address of the client (peer).
pub const CLIENT_ADDRESS: &str = "client.address";
/// The `User-Agent` header.
pub const USER_AGENT_ORIGINAL: &str = "user_agent.original";
/// Class of error an operation ended with (status code, exception type, `cancelled`, ...).
pub const ERROR_TYPE: &str = "error.type";
/// Exception event name and its attributes.
pub const EXCEPTION_EVENT: &str = "exception";
/// Exception message attribute.
pub const EXCEPTION_MESSAGE: &str = "exception.message";
/// Exception type attribute.
pub const EXCEPTION_TYPE: &str = "exception.type";
/// Histogram of HTTP server request durations (seconds).
pub const HTTP_SERVER_REQUEST_DURATION: &str = "http.server.request.duration";

// --- Resource ---
/// Logical service name.
pub const SERVICE_NAME: &str = "service.name";
/// Service version.
pub const SERVICE_VERSION: &str = "service.version";
/// Unique id of this process instance.
pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";
/// Host name.
pub const HOST_NAME: &str = "host.name";
/// Deployment environment (e.g. `production`).
pub const DEPLOYMENT_ENVIRONMENT_NAME: &str = "deployment.environment.name";

// --- Sampling ---
/// Set on a span that was sampled only because the request carried `X-Force-Trace: true`.
pub const INFERD_SAMPLING_FORCED: &str = "inferd.sampling.forced";

// --- GenAI (semantic conventions v1.41) ---
/// Operation name (`chat`, `text_completion`, `embeddings`).
pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
/// Provider name (replaces the old `gen_ai.system`).
pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
/// Requested model.
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
/// Requested max tokens.
pub const GEN_AI_REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
/// Requested temperature.
pub const GEN_AI_REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
/// Requested top_p.
pub const GEN_AI_REQUEST_TOP_P: &str = "gen_ai.request.top_p";
/// Requested top_k.
pub const GEN_AI_REQUEST_TOP_K: &str = "gen_ai.request.top_k";
/// Requested seed.
pub const GEN_AI_REQUEST_SEED: &str = "gen_ai.request.seed";
/// Requested stop sequences.
pub const GEN_AI_REQUEST_STOP_SEQUENCES: &str = "gen_ai.request.stop_sequences";
/// Requested frequency penalty.
pub const GEN_AI_REQUEST_FREQUENCY_PENALTY: &str = "gen_ai.request.frequency_penalty";
/// Requested presence penalty.
pub const GEN_AI_REQUEST_PRESENCE_PENALTY: &str = "gen_ai.request.presence_penalty";
/// Response id.
pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
/// Model that produced the response.
pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
/// Finish reasons of the response.
pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
/// Input token count.
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// Output token count.
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// Input tokens served from a cache (for inferd, the prompt cache) instead of being processed.
pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
/// Token type (`input` / `output`) on the token usage histogram.
pub const GEN_AI_TOKEN_TYPE: &str = "gen_ai.token.type";
/// Captured input messages (opt-in).
pub const GEN_AI_INPUT_MESSAGES: &str = "gen_ai.input.messages";
/// Captured output messages (opt-in).
pub const GEN_AI_OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
/// Captured system instructions (opt-in).
pub const GEN_AI_SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";
/// vLLM-compatible timing: time in queue (s).
pub const GEN_AI_LATENCY_TIME_IN_QUEUE: &str = "gen_ai.latency.time_in_queue";
/// vLLM-compatible timing: prefill (s).
pub const GEN_AI_LATENCY_TIME_IN_MODEL_PREFILL: &str = "gen_ai.latency.time_in_model_prefill";
/// vLLM-compatible timing: decode (s).
pub const GEN_AI_LATENCY_TIME_IN_MODEL_DECODE: &str = "gen_ai.latency.time_in_model_decode";
/// vLLM-compatible timing: time to first token (s).
pub const GEN_AI_LATENCY_TIME_TO_FIRST_TOKEN: &str = "gen_ai.latency.time_to_first_token";
/// vLLM-compatible timing: end to end (s).
pub const GEN_AI_LATENCY_E2E: &str = "gen_ai.latency.e2e";
/// Whether the client asked for a streamed response.
pub const GEN_AI_REQUEST_STREAM: &str = "gen_ai.request.stream";
/// Time to the first chunk of the response on the generation span (s), streamed or not.
pub const GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";
/// Metric: server request duration (s).
pub const GEN_AI_SERVER_REQUEST_DURATION: &str = "gen_ai.server.request.duration";
/// Metric: server time to first token (s).
pub const GEN_AI_SERVER_TIME_TO_FIRST_TOKEN: &str = "gen_ai.server.time_to_first_token";
/// Metric: server time per output token (s).
pub const GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN: &str = "gen_ai.server.time_per_output_token";
/// Metric: token usage ({token}).
pub const GEN_AI_CLIENT_TOKEN_USAGE: &str = "gen_ai.client.token.usage";
/// Metric: an upstream's time to the first chunk of a streamed answer (s).
pub const GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK: &str =
    "gen_ai.client.operation.time_to_first_chunk";
/// Metric: mean time between the chunks of an upstream's streamed answer after the first (s).
pub const GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK: &str =
    "gen_ai.client.operation.time_per_output_chunk";
/// Metric: upstream call duration (s).
pub const GEN_AI_CLIENT_OPERATION_DURATION: &str = "gen_ai.client.operation.duration";

// --- inferd's own ---
/// Id of one generation.
pub const INFERD_GENERATION_ID: &str = "inferd.generation.id";
/// Time per output token on the generation span (s).
pub const INFERD_TIME_PER_OUTPUT_TOKEN: &str = "inferd.time_per_output_token";
/// Position in the engine queue.
pub const INFERD_QUEUE_POSITION: &str = "inferd.queue.position";
/// Sequences in one batch run: an attribute of `model.batch`, and the name of the histogram
/// of it (one name, two uses, as `http.request.body.size` is both).
pub const INFERD_BATCH_SIZE: &str = "inferd.batch.size";
/// Tokens a batch run decoded, all members together (on a link: that member's).
pub const INFERD_BATCH_TOKENS: &str = "inferd.batch.tokens";
/// llama.cpp decode steps in a batch run.
pub const INFERD_BATCH_STEPS: &str = "inferd.batch.steps";
/// `prefill` (a step holding a prompt chunk) or `decode` (decode-only steps).
pub const INFERD_BATCH_PHASE: &str = "inferd.batch.phase";
/// `inferd bench`: name of the stage a request belongs to.
pub const INFERD_BENCH_STAGE: &str = "inferd.bench.stage";
/// `inferd bench`: position of the stage in the run (0 is the warm-up).
pub const INFERD_BENCH_STAGE_INDEX: &str = "inferd.bench.stage_index";
/// `inferd bench`: the stage's load, e.g. `rate 2/s poisson` or `concurrency 4`.
pub const INFERD_BENCH_LOAD: &str = "inferd.bench.load";
/// `inferd bench`: how late a request was sent against its schedule (s).
pub const INFERD_BENCH_SCHEDULE_LAG: &str = "inferd.bench.schedule_lag";
/// Model file format (e.g. `gguf`).
pub const INFERD_MODEL_FORMAT: &str = "inferd.model.format";
/// Model id.
pub const INFERD_MODEL_ID: &str = "inferd.model.id";
/// Where model artifacts came from (`local_cache`, `http`, `s3`, ...).
pub const INFERD_MODEL_ARTIFACTS_SOURCE: &str = "inferd.model.artifacts.source";
/// The `inferd.model.artifacts.source` of a model file found on local disk (a local path or
/// a cache hit).
pub const INFERD_MODEL_ARTIFACTS_SOURCE_LOCAL_CACHE: &str = "local_cache";
/// Size of the model artifacts in bytes.
pub const INFERD_MODEL_ARTIFACTS_BYTES: &str = "inferd.model.artifacts.bytes";
/// Why a model was unloaded (`admin`, `evicted`), on `model.unload`.
pub const INFERD_MODEL_UNLOAD_REASON: &str = "inferd.model.unload.reason";
/// Span names of the model lifecycle.
pub const SPAN_MODEL_QUEUE: &str = "model.queue";
/// Prefill and decode span.
pub const SPAN_MODEL_INFER: &str = "model.infer";
/// One batched engine step.
pub const SPAN_MODEL_BATCH: &str = "model.batch";
/// Model load.
pub const SPAN_MODEL_LOAD: &str = "model.load";
/// Artifact load from the local cache.
pub const SPAN_MODEL_ARTIFACTS_LOAD: &str = "model.artifacts.load";
/// Artifact download.
pub const SPAN_MODEL_ARTIFACTS_DOWNLOAD: &str = "model.artifacts.download";
/// Model unload.
pub const SPAN_MODEL_UNLOAD: &str = "model.unload";
/// Metric: loaded models.
pub const INFERD_MODELS_LOADED: &str = "inferd.models.loaded";
/// Metric: model loads.
pub const INFERD_MODEL_LOADS: &str = "inferd.model.loads";
/// Metric: model unloads.
pub const INFERD_MODEL_UNLOADS: &str = "inferd.model.unloads";
/// Metric: model load duration (s); also the attribute of `model.load` with that span's
/// load time (one name, two uses, as `inferd.batch.size`).
pub const INFERD_MODEL_LOAD_DURATION: &str = "inferd.model.load.duration";
/// Metric: active requests.
pub const INFERD_REQUESTS_ACTIVE: &str = "inferd.requests.active";
/// Metric: queue size.
pub const INFERD_QUEUE_SIZE: &str = "inferd.queue.size";
/// Metric: most requests a local engine's queue holds (`--max-queue`).
pub const INFERD_QUEUE_LIMIT: &str = "inferd.queue.limit";
/// Metric: whether an upstream answered its last probe or call (1) or not (0).
pub const INFERD_UPSTREAM_HEALTHY: &str = "inferd.upstream.healthy";
/// Metric: calls sent to an upstream again after a failure (retries and failovers).
pub const INFERD_UPSTREAM_RETRIES: &str = "inferd.upstream.retries";
/// The upstream's configured name, on the upstream metrics.
pub const INFERD_UPSTREAM_NAME: &str = "inferd.upstream.name";
/// Metric: batch lines this process finished, by `inferd.jobs.outcome`.
pub const INFERD_JOBS_LINES: &str = "inferd.jobs.lines";
/// Metric: batch lines this process is running (at most `--batch-concurrency`).
pub const INFERD_JOBS_RUNNING: &str = "inferd.jobs.running";
/// How a batch line ended: `completed` (a 2xx answer) or `failed`.
pub const INFERD_JOBS_OUTCOME: &str = "inferd.jobs.outcome";
/// Counter: batch lines this process took up again after a worker stopped without finishing.
pub const INFERD_JOBS_RETRIED: &str = "inferd.jobs.retried";
/// Gauge: batch lines waiting in the queue (not taken by any worker).
pub const INFERD_JOBS_QUEUED: &str = "inferd.jobs.queued";
/// Gauge: seconds since the oldest batch line not yet finished was queued.
pub const INFERD_JOBS_OLDEST_AGE: &str = "inferd.jobs.oldest_age";
/// Metric: sequences holding an engine slot (vLLM `num_requests_running`).
pub const INFERD_REQUESTS_RUNNING: &str = "inferd.requests.running";
/// Metric: share of the KV cache held by running sequences, 0 to 1 (vLLM
/// `kv_cache_usage_perc`, llama-server `kv_cache_usage_ratio`).
pub const INFERD_KV_CACHE_USAGE: &str = "inferd.kv_cache.usage";
/// Metric: prompt tokens of local generations (vLLM `prompt_tokens`).
pub const INFERD_PROMPT_TOKENS: &str = "inferd.prompt_tokens";
/// Metric: tokens generated by local generations (vLLM `generation_tokens`).
pub const INFERD_GENERATION_TOKENS: &str = "inferd.generation_tokens";
/// Metric: local generations that reused part of their prompt from the prompt cache.
pub const INFERD_PROMPT_CACHE_HITS: &str = "inferd.prompt_cache.hits";
/// Metric: prompt tokens reused from the prompt cache (vLLM `prefix_cache_hits`, in tokens).
pub const INFERD_PROMPT_CACHE_HIT_TOKENS: &str = "inferd.prompt_cache.hit_tokens";
/// Metric: time a local generation waited for an engine slot (s).
pub const INFERD_REQUEST_QUEUE_TIME: &str = "inferd.request.queue_time";
/// Metric: time a local generation spent processing its prompt (s).
pub const INFERD_REQUEST_PREFILL_TIME: &str = "inferd.request.prefill_time";
/// Metric: time a local generation spent generating after its first token (s).
pub const INFERD_REQUEST_DECODE_TIME: &str = "inferd.request.decode_time";
/// Metric: errors.
pub const INFERD_ERRORS: &str = "inferd.errors";
/// The value that stands for any value outside a known set (unknown model names on metrics).
pub const OTHER_VALUE: &str = "_OTHER";
/// Metric: requests to /v1/* refused for their API key (401, 429), by error.type.
pub const INFERD_API_KEY_REJECTIONS: &str = "inferd.api_key.rejections";
/// Attribute on `inferd.api_key.rejections` (for a known key): the key's id, the first eight
/// hex digits of its SHA-256, never the key.
pub const INFERD_API_KEY_ID: &str = "inferd.api_key.id";
/// How a request's response ended, on its access line: `complete`, `client_closed`,
/// `body_error`.
pub const INFERD_REQUEST_OUTCOME: &str = "inferd.request.outcome";
/// Metric: telemetry items dropped because export failed.
pub const INFERD_TELEMETRY_DROPPED: &str = "inferd.telemetry.dropped";
/// Attribute on `inferd.telemetry.dropped`: `spans`, `metrics` or `logs`.
pub const SIGNAL: &str = "signal";

/// Recommended bucket boundaries (seconds) for HTTP duration histograms.
pub const HTTP_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Recommended buckets (seconds) for `gen_ai.server.request.duration` and
/// `gen_ai.client.operation.duration`.
pub const GEN_AI_DURATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// Recommended buckets (seconds) for `gen_ai.server.time_to_first_token`.
pub const GEN_AI_TIME_TO_FIRST_TOKEN_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Recommended buckets (seconds) for `gen_ai.server.time_per_output_token`.
pub const GEN_AI_TIME_PER_OUTPUT_TOKEN_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];
/// Buckets ({sequence}) for `inferd.batch.size`: powers of two up to 64 slots.
pub const INFERD_BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
/// Recommended buckets ({token}) for `gen_ai.client.token.usage`.
pub const GEN_AI_TOKEN_USAGE_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// Messaging system of a batch queue span: `inferd` for the embedded queue, `redis` when the
/// lines are on a Redis Stream (`--jobs-redis`).
pub const MESSAGING_SYSTEM: &str = "messaging.system";
/// The `messaging.system` value of the Redis Streams batch queue.
pub const MESSAGING_SYSTEM_REDIS: &str = "redis";
/// Messaging operation type (`process` for a consumed batch line, `send` for enqueueing a
/// batch's lines).
pub const MESSAGING_OPERATION_TYPE: &str = "messaging.operation.type";
/// Messaging operation name (`process`).
pub const MESSAGING_OPERATION_NAME: &str = "messaging.operation.name";
/// Queue a message came from (`batches`; with Redis, the stream key `inferd:batch-lines`).
pub const MESSAGING_DESTINATION_NAME: &str = "messaging.destination.name";
/// How many messages one send put on the queue (the lines of a batch).
pub const MESSAGING_BATCH_MESSAGE_COUNT: &str = "messaging.batch.message_count";
/// Id of the message: a batch line's `custom_id`.
pub const MESSAGING_MESSAGE_ID: &str = "messaging.message.id";
/// Id of the batch a line belongs to.
pub const INFERD_BATCH_ID: &str = "inferd.batch.id";
/// The CONSUMER span of one batch line (`process batches`, as the messaging conventions
/// name a span: operation then destination).
pub const SPAN_PROCESS_BATCHES: &str = "process batches";
/// The PRODUCER span of putting a batch's lines on the Redis Stream (`send batches`).
pub const SPAN_SEND_BATCHES: &str = "send batches";

#[cfg(test)]
mod tests {
    /// The names this module declares: every `pub const NAME: &str = "value";`.
    fn declared() -> Vec<&'static str> {
        let source = include_str!("semconv.rs");
        let code = &source[..source.find("#[cfg(test)]").unwrap_or(source.len())];
        code.split(';')
            .filter_map(|statement| {
                let start = statement.find("pub const")?;
                let statement = &statement[start..];
                statement.contains(": &str").then_some(())?;
                statement.split('"').nth(1)
            })
            .collect()
    }

    /// What docs/telemetry.md names in backticks that looks like a telemetry name: dotted,
    /// lowercase, in a namespace inferd emits (`gen_ai.request.model="_OTHER"` gives
    /// `gen_ai.request.model`).
    fn documented(doc: &str) -> Vec<&str> {
        const NAMESPACES: [&str; 13] = [
            "gen_ai.",
            "http.",
            "url.",
            "server.",
            "client.",
            "inferd.",
            "error.",
            "exception.",
            "service.",
            "host.",
            "deployment.",
            "user_agent.",
            "model.",
        ];
        doc.split('`')
            .skip(1)
            .step_by(2)
            .map(|code| code.split(['=', ' ']).next().unwrap_or_default())
            .filter(|name| NAMESPACES.iter().any(|ns| name.starts_with(ns)) && !name.ends_with('.'))
            .filter(|name| {
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._".contains(c))
            })
            .collect()
    }

    /// docs/telemetry.md, the reference, and this module, the code's one list of names, agree:
    /// each declared name is documented, each documented name is declared.
    #[test]
    fn the_telemetry_reference_documents_every_name_and_only_those() {
        let doc = include_str!("../../../docs/telemetry.md");
        let declared = declared();
        let missing: Vec<&str> = declared
            .iter()
            .copied()
            .filter(|name| {
                !doc.contains(&format!("`{name}")) && !doc.contains(&format!("\"{name}\""))
            })
            .collect();
        assert!(
            missing.is_empty(),
            "declared in semconv.rs, missing from docs/telemetry.md: {missing:?}"
        );
        let mut unknown: Vec<&str> = documented(doc)
            .into_iter()
            .filter(|name| !declared.contains(name))
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        assert!(
            unknown.is_empty(),
            "named in docs/telemetry.md, not declared in semconv.rs: {unknown:?}"
        );
    }

    /// Each name is declared once: no two constants share a value.
    #[test]
    fn names_are_unique_and_genai_uses_provider_name() {
        let mut names = declared();
        let total = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), total, "a name is declared twice");
        assert!(names.contains(&"gen_ai.provider.name"));
        assert!(!names.contains(&"gen_ai.system"));
    }
}
