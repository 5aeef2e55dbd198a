//! GenAI and inferd metrics for every generation, whatever the sampling: request duration,
//! time to first token, time per output token, token usage by type, active requests, errors.

use inferd_engine::hooks::{
    GenerationCall, GenerationEnd, GenerationFailure, GenerationStart, ModelLoad, ModelUnload,
    Observer, Operation,
};
use inferd_telemetry::semconv as sc;
use inferd_telemetry::InferdMetrics;
use opentelemetry::KeyValue;

/// Records the metrics of TELEMETRY.md for each generation.
#[derive(Debug)]
pub struct MetricsPlugin {
    metrics: InferdMetrics,
}

impl MetricsPlugin {
    pub fn new(metrics: InferdMetrics) -> Self {
        Self { metrics }
    }
}

struct MetricsCall {
    metrics: InferdMetrics,
    model: KeyValue,
}

impl Observer for MetricsPlugin {
    fn generation_pre_call(&self, start: &GenerationStart) -> Box<dyn GenerationCall> {
        let model = KeyValue::new(sc::GEN_AI_REQUEST_MODEL, start.model.clone());
        self.metrics
            .requests_active
            .add(1, std::slice::from_ref(&model));
        Box::new(MetricsCall {
            metrics: self.metrics.clone(),
            model,
        })
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

    fn model_unloaded(&self, unload: &ModelUnload) {
        self.metrics.model_unloads.add(
            1,
            &[
                KeyValue::new(sc::MODEL_ID, unload.model_id.clone()),
                KeyValue::new(sc::MODEL_UNLOAD_REASON, unload.reason),
            ],
        );
        self.metrics.models_loaded.add(-1, &[]);
    }

    fn model_loaded(&self, load: &ModelLoad) {
        let m = &self.metrics;
        let attrs = [
            KeyValue::new(sc::MODEL_ID, load.model_id.clone()),
            KeyValue::new(sc::MODEL_ARTIFACTS_SOURCE, load.source),
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
        let m = &self.metrics;
        m.requests_active.add(-1, std::slice::from_ref(&self.model));
        let attrs = [
            KeyValue::new(sc::GEN_AI_OPERATION_NAME, start.operation.as_str()),
            self.model.clone(),
        ];
        m.gen_ai_server_request_duration
            .record(end.timings.duration.as_secs_f64(), &attrs);
        client_call_duration(m, start, end.timings.duration, None);
        if let Some(ttft) = end.timings.time_to_first_token {
            m.gen_ai_server_time_to_first_token
                .record(ttft.as_secs_f64(), &attrs);
        }
        if let Some(tpot) = end.timings.time_per_output_token {
            m.gen_ai_server_time_per_output_token
                .record(tpot.as_secs_f64(), &attrs);
        }
        let embeddings = start.operation == Operation::Embeddings;
        for (kind, tokens) in [
            ("input", Some(end.usage.prompt_tokens)),
            // Embeddings produce no tokens.
            (
                "output",
                (!embeddings).then_some(end.usage.completion_tokens),
            ),
        ] {
            let Some(tokens) = tokens else { continue };
            m.gen_ai_client_token_usage.record(
                u64::from(tokens),
                &[
                    KeyValue::new(sc::GEN_AI_TOKEN_TYPE, kind),
                    self.model.clone(),
                ],
            );
        }
    }

    fn error(self: Box<Self>, start: &GenerationStart, failure: &GenerationFailure) {
        let m = &self.metrics;
        m.requests_active.add(-1, std::slice::from_ref(&self.model));
        let error_type = KeyValue::new(sc::ERROR_TYPE, failure.error_type.clone());
        m.gen_ai_server_request_duration.record(
            failure.timings.duration.as_secs_f64(),
            &[
                KeyValue::new(sc::GEN_AI_OPERATION_NAME, start.operation.as_str()),
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
    let mut attrs = vec![
        KeyValue::new(sc::GEN_AI_OPERATION_NAME, start.operation.as_str()),
        KeyValue::new(sc::GEN_AI_PROVIDER_NAME, start.provider.clone()),
        KeyValue::new(sc::GEN_AI_REQUEST_MODEL, start.model.clone()),
        KeyValue::new(sc::SERVER_ADDRESS, address.clone()),
    ];
    if let Some(error_type) = error_type {
        attrs.push(KeyValue::new(sc::ERROR_TYPE, error_type));
    }
    m.gen_ai_client_operation_duration
        .record(duration.as_secs_f64(), &attrs);
}
