//! The first two hooks-bus plugins: [`tracing_plugin::TracingPlugin`] opens the generation
//! span (`chat {model}` / `text_completion {model}`) with the GenAI semantic-convention
//! attributes, and [`metrics_plugin::MetricsPlugin`] records the GenAI and inferd metrics.
//! Both are registered only when telemetry is on; with it off the bus is empty.

pub mod metrics_plugin;
pub mod tracing_plugin;

use std::sync::Arc;

use inferd_engine::hooks::{HooksBus, Observer};
use inferd_telemetry::{InferdMetrics, Mode, TelemetryGuard};

/// The hooks bus for this telemetry set-up.
pub fn hooks_for(telemetry: &TelemetryGuard) -> HooksBus {
    if telemetry.mode() == Mode::Off {
        return HooksBus::default();
    }
    let observers: Vec<Arc<dyn Observer>> = vec![
        Arc::new(tracing_plugin::TracingPlugin),
        Arc::new(metrics_plugin::MetricsPlugin::new(
            InferdMetrics::from_guard(telemetry),
        )),
    ];
    HooksBus::new(observers)
}
