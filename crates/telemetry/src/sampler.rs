//! The sampler: parent-based, with a root sampler that honours `X-Force-Trace: true` and
//! otherwise applies the configured ratio.
//!
//! The force flag travels as a [`ForceTrace`] marker inside the parent [`Context`] handed to the
//! span at creation, so it belongs to exactly one request: no thread-local or task-local that
//! could leak into the next request on the same worker.

use opentelemetry::trace::{SpanKind, TraceContextExt, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};

use crate::config::SamplerConfig;
use inferd_otel::semconv;

/// Marker placed in a request's parent [`Context`] when the request asked to be traced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForceTrace;

/// Returns `cx` carrying the force-trace marker.
pub fn with_force_trace(cx: &Context) -> Context {
    cx.with_value(ForceTrace)
}

/// Whether an `X-Force-Trace` header value asks for a trace: only `true`, in any case.
pub fn force_trace_requested(value: &[u8]) -> bool {
    value.trim_ascii().eq_ignore_ascii_case(b"true")
}

/// Root sampler: samples when the parent context carries [`ForceTrace`] (and forcing is
/// enabled), else by trace-id ratio. A span sampled only because of the marker gets
/// `inferd.sampling.forced=true`.
#[derive(Debug, Clone)]
pub struct ForceTraceSampler {
    ratio: Sampler,
    force_enabled: bool,
}

impl ForceTraceSampler {
    /// A root sampler sampling `ratio` of new traces, honouring the marker when `force_enabled`.
    pub fn new(ratio: f64, force_enabled: bool) -> Self {
        ForceTraceSampler {
            ratio: Sampler::TraceIdRatioBased(ratio),
            force_enabled,
        }
    }
}

impl ShouldSample for ForceTraceSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[opentelemetry::trace::Link],
    ) -> SamplingResult {
        let by_ratio =
            self.ratio
                .should_sample(parent_context, trace_id, name, span_kind, attributes, links);
        // Forcing applies to new traces only, also when this sampler is used without
        // ParentBased: a header never overrides a parent's decision.
        let forced = self.force_enabled
            && parent_context.is_some_and(|cx| {
                cx.get::<ForceTrace>().is_some() && !cx.span().span_context().is_valid()
            });
        if !forced || by_ratio.decision == SamplingDecision::RecordAndSample {
            return by_ratio;
        }
        SamplingResult {
            decision: SamplingDecision::RecordAndSample,
            attributes: vec![KeyValue::new(semconv::INFERD_SAMPLING_FORCED, true)],
            trace_state: parent_context
                .map(|cx| cx.span().span_context().trace_state().clone())
                .unwrap_or_default(),
        }
    }
}

/// Builds the sampler the configuration describes: `Sampler::parent_based(root)` (which keeps
/// the root's attributes) unless a non-parent-based sampler was chosen.
pub fn build_sampler(config: &SamplerConfig) -> Box<dyn ShouldSample> {
    let root = ForceTraceSampler::new(config.ratio, config.force_trace_header);
    if config.parent_based {
        Box::new(Sampler::parent_based(root))
    } else {
        Box::new(root)
    }
}

#[cfg(test)]
#[path = "sampler_tests.rs"]
mod tests;
