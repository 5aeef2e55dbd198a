//! What a local engine's sequence reports become: the `model.queue` span (from enqueue to
//! admission into a slot) and the `model.infer` span (while the sequence holds its slot),
//! children of the generation span, with the engine's log lines (`first_token`, `finished`,
//! `generation_timeout`, `generation failed`), each written once, inside `model.infer`, and
//! recorded there as a span event.
//!
//! Registered with telemetry off too: the spans are then nothing (the parent holds no span)
//! and the lines are still written, as every log line is.

use inferd_engine::hooks::{Observer, SequenceCall, SequenceFinished, SequenceQueued};
use inferd_otel::semconv as sc;
use inferd_otel::{log_event, span_builder, OtelSpan};
use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue};

/// The `span` of log lines written inside `model.queue` and `model.infer`.
const QUEUE_LABEL: &str = "queue";
const INFER_LABEL: &str = "infer";

/// Makes the engine's spans and lines from its sequence reports.
#[derive(Debug, Default)]
pub struct EngineSpans;

impl Observer for EngineSpans {
    fn sequence_queued(&self, queued: &SequenceQueued<'_>) -> Option<Box<dyn SequenceCall>> {
        let queue = OtelSpan::start_child_with(queued.parent, QUEUE_LABEL, || {
            span_builder(
                sc::SPAN_MODEL_QUEUE,
                SpanKind::Internal,
                vec![KeyValue::new(
                    sc::INFERD_QUEUE_POSITION,
                    i64::try_from(queued.position).unwrap_or(i64::MAX),
                )],
            )
        });
        Some(Box::new(SequenceSpans {
            parent: queued.parent.clone(),
            queue,
            infer: OtelSpan::none(),
        }))
    }

    /// Batch runs are the tracing plugin's (`model.batch`).
    fn observes_batch_runs(&self) -> bool {
        false
    }
}

/// One sequence's spans.
struct SequenceSpans {
    /// The generation's context, parent of both spans.
    parent: Context,
    queue: OtelSpan,
    infer: OtelSpan,
}

impl SequenceCall for SequenceSpans {
    fn admitted(&mut self) {
        self.queue.end();
        self.infer = OtelSpan::start_child_with(&self.parent, INFER_LABEL, || {
            span_builder(sc::SPAN_MODEL_INFER, SpanKind::Internal, Vec::new())
        });
    }

    fn first_token(&mut self) {
        log_event!(self.infer, INFO, "first_token");
    }

    fn timed_out(&mut self) {
        log_event!(self.infer, INFO, "generation_timeout");
    }

    fn finished(&mut self, finished: &SequenceFinished) {
        log_event!(
            self.infer,
            INFO,
            "finished",
            finish_reason = finished.finish_reason.as_str(),
            completion_tokens = finished.usage.completion_tokens,
            cached_tokens = finished.usage.cached_tokens,
        );
    }

    fn cancelled(&mut self) {
        self.infer.record_error("cancelled", "the client went away");
    }

    fn failed(&mut self, error_type: &'static str, message: &str) {
        log_event!(self.infer, ERROR, "generation failed", error = message);
        self.infer.record_error(error_type, message);
    }
}

impl Drop for SequenceSpans {
    /// The sequence left its slot (or never took one).
    fn drop(&mut self) {
        self.queue.end();
        self.infer.end();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use inferd_engine::hooks::HooksBus;
    use inferd_engine::{FinishReason, Usage};
    use inferd_telemetry::{SpanRecord, TelemetryGuard};
    use opentelemetry::trace::TraceContextExt as _;

    use super::*;

    /// A generation span (in a `local` telemetry pipeline) to hang the engine's spans under.
    fn generation(guard: &TelemetryGuard) -> OtelSpan {
        let tracer = guard.tracer().unwrap_or_else(|| panic!("no tracer"));
        OtelSpan::start(
            &tracer,
            &Context::new(),
            "generation",
            span_builder("chat m", SpanKind::Internal, Vec::new()),
        )
    }

    /// The stored spans of `generation`'s trace.
    fn spans(guard: &TelemetryGuard, generation: &OtelSpan) -> Vec<SpanRecord> {
        let trace_id = generation
            .context()
            .map(|cx| cx.span().span_context().trace_id().to_string())
            .unwrap_or_default();
        let store = guard.trace_store().unwrap_or_else(|| panic!("no store"));
        store
            .trace(&trace_id)
            .unwrap_or_else(|| panic!("no trace {trace_id}"))
            .spans
    }

    fn named<'a>(spans: &'a [SpanRecord], name: &str) -> Vec<&'a SpanRecord> {
        spans.iter().filter(|s| s.name == name).collect()
    }

    fn queued<'a>(parent: &'a Context, position: usize) -> SequenceQueued<'a> {
        SequenceQueued {
            model: "m",
            parent,
            position,
        }
    }

    #[test]
    fn a_sequence_reported_on_the_bus_becomes_queue_and_infer_spans_under_its_generation() {
        let guard = super::super::test_support::local();
        let generation = generation(&guard);
        let parent = generation.context().expect("span").clone();
        let bus = HooksBus::new(vec![Arc::new(EngineSpans)]);
        let mut observed = bus.sequence_queued(&queued(&parent, 2));
        observed.admitted();
        observed.first_token();
        observed.finished(&SequenceFinished {
            finish_reason: FinishReason::Length,
            usage: Usage {
                prompt_tokens: 5,
                completion_tokens: 3,
                cached_tokens: 1,
            },
        });
        drop(observed);
        generation.end();

        let spans = spans(&guard, &generation);
        let parent_id = named(&spans, "chat m")[0].span_id.clone();
        let (queue, infer) = (named(&spans, "model.queue"), named(&spans, "model.infer"));
        assert_eq!((queue.len(), infer.len()), (1, 1), "{spans:?}");
        let (queue, infer) = (queue[0], infer[0]);
        assert_eq!(queue.parent_span_id.as_ref(), Some(&parent_id));
        assert_eq!(infer.parent_span_id.as_ref(), Some(&parent_id));
        assert_eq!(queue.attributes[sc::INFERD_QUEUE_POSITION], 2);
        assert!(
            queue.end_unix_nanos <= infer.start_unix_nanos,
            "queue ends at admission"
        );
        let events: Vec<&str> = infer.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(events, ["first_token", "finished"]);
        assert_eq!(infer.events[1].attributes["completion_tokens"], 3);
        assert_eq!(infer.events[1].attributes["finish_reason"], "length");
    }

    #[test]
    fn a_failed_sequence_marks_its_infer_span_and_one_never_admitted_ends_its_queue_span() {
        let guard = super::super::test_support::local();
        let generation = generation(&guard);
        let parent = generation.context().expect("span").clone();
        let bus = HooksBus::new(vec![Arc::new(EngineSpans)]);
        let mut failed = bus.sequence_queued(&queued(&parent, 0));
        failed.admitted();
        failed.failed("inference_error", "decode failed");
        drop(failed);
        // Refused as overloaded: dropped before admission.
        drop(bus.sequence_queued(&queued(&parent, 1)));
        generation.end();

        let spans = spans(&guard, &generation);
        let infer = named(&spans, "model.infer");
        assert_eq!(infer.len(), 1, "{spans:?}");
        assert_eq!(infer[0].status.code, "error");
        assert_eq!(infer[0].attributes["error.type"], "inference_error");
        let events: Vec<&str> = infer[0].events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(events, ["generation failed", "exception"]);
        assert_eq!(
            named(&spans, "model.queue").len(),
            2,
            "both queue spans ended"
        );
    }

    #[test]
    fn the_engine_spans_plugin_alone_builds_no_batch_reports() {
        let alone = HooksBus::new(vec![Arc::new(EngineSpans)]);
        assert!(!alone.observes_batch_runs());
        let guard = super::super::test_support::local();
        assert!(super::super::hooks_for(&guard, 1024, None).observes_batch_runs());
    }
}
