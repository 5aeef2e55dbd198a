//! The first two hooks-bus plugins: [`tracing_plugin::TracingPlugin`] opens the generation
//! span (`chat {model}` / `text_completion {model}`) with the GenAI semantic-convention
//! attributes, and [`metrics_plugin::MetricsPlugin`] records the GenAI and inferd metrics.
//! Both are registered only when telemetry is on; with it off the bus is empty.

pub mod metrics_plugin;
pub mod redact;
pub mod tracing_plugin;

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
        return HooksBus::default();
    };
    let capture = telemetry.capture_message_content().then(|| {
        let capture = tracing_plugin::ContentCapture::new(capture_max_bytes);
        match redactor {
            Some(redactor) => capture.with_redactor(redactor),
            None => capture,
        }
    });
    let observers: Vec<Arc<dyn Observer>> = vec![
        Arc::new(tracing_plugin::TracingPlugin::new(tracer, capture)),
        Arc::new(metrics_plugin::MetricsPlugin::new(
            InferdMetrics::from_guard(telemetry),
        )),
    ];
    HooksBus::new(observers)
}
