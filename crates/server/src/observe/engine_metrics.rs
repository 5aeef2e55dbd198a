//! The metrics of local engines' own state, for [`super::metrics_plugin::MetricsPlugin`]:
//! running sequences and KV cache usage (gauges set from `engine_load` reports) and the batch
//! size histogram (one measurement per batch run). These hooks run on engine threads, so each
//! model's instruments are bound once to its attribute set and then recorded without the
//! SDK's attribute lookup or a copy of the model id.

use std::sync::Arc;

use inferd_engine::hooks::{BatchPhase, BatchRun, EngineLoad};
use inferd_otel::semconv as sc;
use inferd_telemetry::InferdMetrics;
use opentelemetry::metrics::{BoundGauge, BoundHistogram};
use opentelemetry::KeyValue;

use inferd_telemetry::BoundCache;

/// Most models whose engine series are kept bound; past it they record unbound. Only local
/// models have engines, so this is never reached in practice.
const MAX_ENGINES: usize = 256;

/// One model's engine instruments, bound to `gen_ai.request.model` (and the phase).
struct EngineSeries {
    running: BoundGauge<u64>,
    queue_limit: BoundGauge<u64>,
    kv_usage: BoundGauge<f64>,
    prefill_batch_size: BoundHistogram<u64>,
    decode_batch_size: BoundHistogram<u64>,
}

impl EngineSeries {
    fn new(m: &InferdMetrics, model: &str) -> Self {
        let model = KeyValue::new(sc::GEN_AI_REQUEST_MODEL, model.to_owned());
        let batch = |phase: BatchPhase| {
            m.batch_size.bind(&[
                model.clone(),
                KeyValue::new(sc::INFERD_BATCH_PHASE, phase.as_str()),
            ])
        };
        Self {
            running: m.requests_running.bind(std::slice::from_ref(&model)),
            queue_limit: m.queue_limit.bind(std::slice::from_ref(&model)),
            kv_usage: m.kv_cache_usage.bind(std::slice::from_ref(&model)),
            prefill_batch_size: batch(BatchPhase::Prefill),
            decode_batch_size: batch(BatchPhase::Decode),
        }
    }

    fn batch_size(&self, phase: BatchPhase) -> &BoundHistogram<u64> {
        match phase {
            BatchPhase::Prefill => &self.prefill_batch_size,
            BatchPhase::Decode => &self.decode_batch_size,
        }
    }
}

/// The engine series of every model that reported, by model id.
pub(crate) struct EngineMetrics {
    metrics: InferdMetrics,
    by_model: BoundCache<String, EngineSeries>,
}

impl std::fmt::Debug for EngineMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineMetrics").finish_non_exhaustive()
    }
}

impl EngineMetrics {
    pub(crate) fn new(metrics: InferdMetrics) -> Self {
        Self {
            metrics,
            by_model: BoundCache::new(MAX_ENGINES),
        }
    }

    /// `model`'s series, bound on its first report; `None` when the map is full.
    fn series(&self, model: &str) -> Option<Arc<EngineSeries>> {
        self.by_model
            .get_or_bind(model, |_| true, || EngineSeries::new(&self.metrics, model))
    }

    /// Sets the gauges to the engine's new state.
    pub(crate) fn engine_load(&self, model: &str, load: &EngineLoad) {
        match self.series(model) {
            Some(series) => {
                series.running.record(u64::from(load.running));
                series.kv_usage.record(load.kv_usage());
                series.queue_limit.record(u64::from(load.queue_limit));
            }
            None => {
                let attrs = [KeyValue::new(sc::GEN_AI_REQUEST_MODEL, model.to_owned())];
                self.metrics
                    .requests_running
                    .record(u64::from(load.running), &attrs);
                self.metrics.kv_cache_usage.record(load.kv_usage(), &attrs);
                self.metrics
                    .queue_limit
                    .record(u64::from(load.queue_limit), &attrs);
            }
        }
    }

    /// Records the run's size (its members) once.
    pub(crate) fn batch_run(&self, run: &BatchRun<'_>) {
        let size = u64::try_from(run.members.len()).unwrap_or(u64::MAX);
        match self.series(run.model) {
            Some(series) => series.batch_size(run.phase).record(size),
            None => self.metrics.batch_size.record(
                size,
                &[
                    KeyValue::new(sc::GEN_AI_REQUEST_MODEL, run.model.to_owned()),
                    KeyValue::new(sc::INFERD_BATCH_PHASE, run.phase.as_str()),
                ],
            ),
        }
    }

    /// An unloaded model runs nothing and holds no cache: its gauges go to zero rather than
    /// keep their last value. Models that never reported (remote ones) get no series.
    pub(crate) fn model_unloaded(&self, model: &str) {
        if let Some(series) = self.by_model.existing(model, |_| true) {
            series.running.record(0);
            series.kv_usage.record(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use inferd_engine::hooks::{BatchMember, ModelUnload, Observer as _};

    use super::*;
    use crate::observe::metrics_plugin::MetricsPlugin;
    use crate::observe::test_support::{local, rendered};

    #[test]
    fn engine_state_sets_running_and_kv_usage_and_unload_zeroes_them() {
        let guard = local();
        let plugin = MetricsPlugin::new(InferdMetrics::from_guard(&guard));
        let load = |running, kv_cells_running| EngineLoad {
            slots: 4,
            running,
            waiting: 2,
            queue_limit: 64,
            kv_cells: 4096,
            kv_cells_running,
            kv_cells_cached: 512,
        };
        plugin.engine_load("llama", &load(1, 512));
        plugin.engine_load("llama", &load(3, 1024));
        let text = rendered(&guard);
        let has = |text: &str, line: &str| assert!(text.contains(line), "no `{line}` in\n{text}");
        has(&text, "# TYPE inferd_requests_running gauge");
        has(
            &text,
            "inferd_requests_running{gen_ai_request_model=\"llama\"} 3",
        );
        has(
            &text,
            "inferd_queue_limit{gen_ai_request_model=\"llama\"} 64",
        );
        has(&text, "# TYPE inferd_kv_cache_usage_ratio gauge");
        has(
            &text,
            "inferd_kv_cache_usage_ratio{gen_ai_request_model=\"llama\"} 0.25",
        );

        plugin.model_unloaded(&ModelUnload {
            model_id: "llama".into(),
            reason: "admin",
        });
        // A model without an engine gets no engine series.
        plugin.model_unloaded(&ModelUnload {
            model_id: "up-model".into(),
            reason: "admin",
        });
        let text = rendered(&guard);
        has(
            &text,
            "inferd_requests_running{gen_ai_request_model=\"llama\"} 0",
        );
        has(
            &text,
            "inferd_kv_cache_usage_ratio{gen_ai_request_model=\"llama\"} 0",
        );
        assert!(
            !text.contains("running{gen_ai_request_model=\"up-model\""),
            "{text}"
        );
    }

    #[test]
    fn each_batch_run_records_its_size_once_by_phase() {
        let guard = local();
        let plugin = MetricsPlugin::new(InferdMetrics::from_guard(&guard));
        let members = |n: usize| {
            vec![
                BatchMember {
                    generation: opentelemetry::trace::SpanContext::empty_context(),
                    tokens: 1,
                };
                n
            ]
        };
        let run = |members: &[BatchMember], phase: BatchPhase| {
            plugin.batch_run(&BatchRun {
                model: "llama",
                phase,
                members,
                steps: 40,
                tokens: 40 * members.len() as u64,
                started_at: std::time::SystemTime::now(),
                duration: Duration::from_millis(400),
            });
        };
        run(&members(3), BatchPhase::Decode);
        run(&members(1), BatchPhase::Decode);
        run(&members(2), BatchPhase::Prefill);
        let text = rendered(&guard);
        for line in [
            "# TYPE inferd_batch_size histogram",
            // Once per run, however many steps it had.
            "inferd_batch_size_count{gen_ai_request_model=\"llama\",inferd_batch_phase=\"decode\"} 2",
            "inferd_batch_size_sum{gen_ai_request_model=\"llama\",inferd_batch_phase=\"decode\"} 4",
            "inferd_batch_size_bucket{gen_ai_request_model=\"llama\",inferd_batch_phase=\"decode\",le=\"1\"} 1",
            "inferd_batch_size_bucket{gen_ai_request_model=\"llama\",inferd_batch_phase=\"decode\",le=\"4\"} 2",
            "inferd_batch_size_bucket{gen_ai_request_model=\"llama\",inferd_batch_phase=\"prefill\",le=\"2\"} 1",
        ] {
            assert!(text.contains(line), "no `{line}` in\n{text}");
        }
    }
}
