//! The hooks-bus plugins: [`tracing_plugin::TracingPlugin`] opens the generation span
//! (`chat {model}` / `text_completion {model}`) with the GenAI semantic-convention attributes
//! and records local engines' batch runs as `model.batch` spans,
//! [`metrics_plugin::MetricsPlugin`] records the GenAI and inferd metrics, local engines'
//! state included, and [`engine_spans::EngineSpans`] makes a local engine's `model.queue` and
//! `model.infer` spans and its log lines from its sequence reports. The first two are
//! registered only when telemetry is on; the third always (it writes log lines, and with
//! telemetry off its spans are nothing). It also makes the `model.load` and `model.unload`
//! spans and lines from the registry's reports. [`artifact_spans::ArtifactSpans`] is the
//! artifact store's observer (not on the bus: the store sits below the engine): it makes the
//! `model.artifacts.*` spans, the CLIENT spans of downloads and the store's lines, always
//! registered. docs/telemetry.md lists what they emit.

pub mod artifact_spans;
mod batch_span;
mod engine_metrics;
pub mod engine_spans;
pub mod metrics_plugin;
pub mod redact;
pub mod tracing_plugin;
mod upstream_metrics;

pub use upstream_metrics::{observe_jobs, observe_upstreams};

use std::sync::Arc;

use inferd_engine::hooks::{HooksBus, Observer, Redactor};
use inferd_telemetry::{InferdMetrics, TelemetryGuard};

/// The hooks bus for this telemetry set-up. With content capture on, captured messages go
/// through `redactor` (if any) and are cut to `capture_max_bytes` each.
pub fn hooks_for(
    telemetry: &TelemetryGuard,
    capture_max_bytes: usize,
    redactor: Option<Arc<dyn Redactor>>,
) -> HooksBus {
    let Some(tracer) = telemetry.tracer() else {
        return HooksBus::new(vec![Arc::new(engine_spans::EngineSpans::new(None))]);
    };
    let engine_spans: Arc<dyn Observer> =
        Arc::new(engine_spans::EngineSpans::new(Some(tracer.clone())));
    let capture = telemetry.capture_message_content().then(|| {
        let capture = tracing_plugin::ContentCapture::new(capture_max_bytes);
        match redactor {
            Some(redactor) => capture.with_redactor(redactor),
            None => capture,
        }
    });
    let observers: Vec<Arc<dyn Observer>> = vec![
        engine_spans,
        Arc::new(tracing_plugin::TracingPlugin::new(tracer, capture)),
        Arc::new(metrics_plugin::MetricsPlugin::new(
            InferdMetrics::from_guard(telemetry),
        )),
    ];
    HooksBus::new(observers)
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use inferd_engine::hooks::{BatchMember, BatchPhase, BatchRun, EngineLoad};
    use inferd_otel::semconv as sc;
    use inferd_telemetry::{build_with_writer, Mode, TelemetryConfig};
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    #[test]
    fn engine_reports_on_the_bus_reach_the_span_store_and_the_metrics() {
        let config = TelemetryConfig {
            mode: Mode::Local,
            ..TelemetryConfig::default()
        };
        let guard = match build_with_writer(&config, std::io::sink, false) {
            Ok((guard, _)) => guard,
            Err(e) => panic!("{e}"),
        };
        let bus = hooks_for(&guard, 1024, None);
        let member = |trace: u128| BatchMember {
            generation: SpanContext::new(
                TraceId::from(trace),
                SpanId::from(1u64),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            tokens: 1,
        };
        let members = [member(1), member(2)];
        bus.batch_run(&BatchRun {
            model: "llama",
            phase: BatchPhase::Decode,
            members: &members,
            steps: 3,
            tokens: 6,
            started_at: SystemTime::now(),
            duration: Duration::from_millis(30),
        });
        bus.engine_load(
            "llama",
            &EngineLoad {
                slots: 4,
                running: 2,
                waiting: 0,
                queue_limit: 8,
                kv_cells: 100,
                kv_cells_running: 10,
                kv_cells_cached: 0,
            },
        );

        let store = guard.trace_store().unwrap_or_else(|| panic!("no store"));
        let roots: Vec<String> = store
            .recent_traces(10)
            .into_iter()
            .map(|t| t.root_span_name)
            .collect();
        assert_eq!(roots, [sc::SPAN_MODEL_BATCH]);
        let text = super::test_support::rendered(&guard);
        for line in [
            "inferd_batch_size_count{gen_ai_request_model=\"llama\",inferd_batch_phase=\"decode\"} 1",
            "inferd_requests_running{gen_ai_request_model=\"llama\"} 2",
            "inferd_kv_cache_usage_ratio{gen_ai_request_model=\"llama\"} 0.1",
        ] {
            assert!(text.contains(line), "no `{line}` in\n{text}");
        }
    }
}
