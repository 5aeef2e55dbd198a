//! What the engine's reports become: the spans of a local engine's sequences, `model.queue`
//! (from enqueue to admission into a slot) and `model.infer` (while the sequence holds its
//! slot), children of the generation span, with the engine's lines (`first_token`,
//! `finished`, `generation_timeout`, `generation failed`) written inside `model.infer`; and the
//! registry's `model.load` and `model.unload` spans, with their lines (`model loaded`, `model
//! ready`, `model failed to load`, `model unloaded`). Each line is written once, inside its
//! span, and recorded there as a span event.
//!
//! Registered with telemetry off too: the spans are then nothing (no tracer, and the parent
//! holds no span) and the lines are still written, as every log line is.

use inferd_engine::hooks::{
    EngineStarted, LoadCall, LoadStarted, ModelLoad, ModelUnload, Observer, SequenceCall,
    SequenceFinished, SequenceQueued, UnloadCall, UnloadStarted,
};
use inferd_otel::semconv as sc;
use inferd_otel::{log_event, span_builder, OtelSpan, Tracer};
use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue};

/// The `span` of log lines written inside `model.queue`, `model.infer`, `model.load` and
/// `model.unload`.
const QUEUE_LABEL: &str = "queue";
const INFER_LABEL: &str = "infer";
const LOAD_LABEL: &str = "load";
const UNLOAD_LABEL: &str = "unload";

/// Makes the engine's spans and lines from its reports.
#[derive(Debug, Default)]
pub struct EngineSpans {
    /// Starts loads and unloads, which may begin outside any span (a load at start-up is a
    /// trace of its own); none when telemetry is off.
    tracer: Option<Tracer>,
}

impl EngineSpans {
    pub fn new(tracer: Option<Tracer>) -> Self {
        Self { tracer }
    }
}

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
            admitted: false,
        }))
    }

    fn model_load_started(&self, started: &LoadStarted<'_>) -> Option<Box<dyn LoadCall>> {
        let span = OtelSpan::start_opt(self.tracer.as_ref(), started.parent, LOAD_LABEL, || {
            span_builder(
                sc::SPAN_MODEL_LOAD,
                SpanKind::Internal,
                vec![
                    KeyValue::new(sc::INFERD_MODEL_ID, started.model_id.to_owned()),
                    KeyValue::new(sc::INFERD_MODEL_FORMAT, "gguf"),
                ],
            )
        });
        Some(Box::new(ModelSpan(span)))
    }

    fn model_unload_started(&self, started: &UnloadStarted<'_>) -> Option<Box<dyn UnloadCall>> {
        let span = OtelSpan::start_opt(self.tracer.as_ref(), started.parent, UNLOAD_LABEL, || {
            span_builder(
                sc::SPAN_MODEL_UNLOAD,
                SpanKind::Internal,
                vec![
                    KeyValue::new(sc::INFERD_MODEL_ID, started.model_id.to_owned()),
                    KeyValue::new(sc::INFERD_MODEL_UNLOAD_REASON, started.reason),
                ],
            )
        });
        Some(Box::new(ModelSpan(span)))
    }

    /// Batch runs are the tracing plugin's (`model.batch`).
    fn observes_batch_runs(&self) -> bool {
        false
    }
}

/// `model.load` or `model.unload`, ended when the load or unload is (or when nobody waits for
/// it any more, or the unload was refused).
struct ModelSpan(OtelSpan);

impl LoadCall for ModelSpan {
    fn context(&self) -> Option<&Context> {
        self.0.context()
    }

    fn engine_started(&mut self, engine: &EngineStarted) {
        log_event!(
            self.0,
            INFO,
            "model loaded",
            model = engine.model_id.as_str(),
            path = engine.path.as_str(),
            context_length = engine.context_length,
            threads = engine.threads,
            parallel = engine.parallel,
            prefill_chunk = engine.prefill_chunk,
            has_chat_template = engine.has_chat_template,
        );
    }

    fn finished(self: Box<Self>, load: &ModelLoad) {
        let span = &self.0;
        span.set_attribute(KeyValue::new(
            sc::INFERD_MODEL_LOAD_DURATION,
            load.duration.as_secs_f64(),
        ));
        match &load.result {
            Ok(()) => log_event!(
                span,
                INFO,
                "model ready",
                model = load.model_id.as_str(),
                seconds = load.duration.as_secs_f64(),
                source = load.source,
            ),
            Err(failed) => {
                log_event!(
                    span,
                    ERROR,
                    "model failed to load",
                    model = load.model_id.as_str(),
                    error = failed.message.as_str(),
                );
                span.record_error(failed.error_type, &failed.message);
            }
        }
    }
}

impl UnloadCall for ModelSpan {
    fn context(&self) -> Option<&Context> {
        self.0.context()
    }

    fn finished(self: Box<Self>, unload: &ModelUnload) {
        log_event!(
            self.0,
            INFO,
            "model unloaded",
            model = unload.model_id.as_str(),
            reason = unload.reason,
        );
    }
}

impl Drop for ModelSpan {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// One sequence's spans.
struct SequenceSpans {
    /// The generation's context, parent of both spans.
    parent: Context,
    queue: OtelSpan,
    infer: OtelSpan,
    /// Whether the sequence took a slot (`infer` may be none with telemetry off).
    admitted: bool,
}

impl SequenceCall for SequenceSpans {
    fn admitted(&mut self) {
        self.admitted = true;
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
        if self.admitted {
            self.infer.record_error("cancelled", "the client went away");
        } else {
            self.queue.record_error(
                "cancelled",
                "the client went away while the request was queued",
            );
        }
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
        let bus = HooksBus::new(vec![Arc::new(EngineSpans::default())]);
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
    fn a_failed_sequence_marks_its_infer_span_and_one_never_admitted_ends_its_queue_span_marked_if_its_client_left(
    ) {
        let guard = super::super::test_support::local();
        let generation = generation(&guard);
        let parent = generation.context().expect("span").clone();
        let bus = HooksBus::new(vec![Arc::new(EngineSpans::default())]);
        let mut failed = bus.sequence_queued(&queued(&parent, 0));
        failed.admitted();
        failed.failed("inference_error", "decode failed");
        drop(failed);
        // Refused as overloaded: dropped before admission.
        drop(bus.sequence_queued(&queued(&parent, 1)));
        // The client left while queued.
        let mut left = bus.sequence_queued(&queued(&parent, 2));
        left.cancelled();
        drop(left);
        generation.end();

        let spans = spans(&guard, &generation);
        let infer = named(&spans, "model.infer");
        assert_eq!(infer.len(), 1, "{spans:?}");
        assert_eq!(infer[0].status.code, "error");
        assert_eq!(infer[0].attributes["error.type"], "inference_error");
        let events: Vec<&str> = infer[0].events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(events, ["generation failed", "exception"]);
        let queues = named(&spans, "model.queue");
        assert_eq!(queues.len(), 3, "every queue span ended");
        let at = |position: i64| {
            queues
                .iter()
                .find(|s| s.attributes["inferd.queue.position"] == position)
                .expect("a queue span at that position")
        };
        let left = at(2);
        assert_eq!(left.status.code, "error");
        assert_eq!(left.attributes["error.type"], "cancelled");
        assert_ne!(at(1).status.code, "error");
    }

    #[test]
    fn loads_and_unloads_reported_on_the_bus_become_spans_with_their_events() {
        let guard = super::super::test_support::local();
        let bus = HooksBus::new(vec![Arc::new(EngineSpans::new(guard.tracer()))]);
        let root = Context::new();
        let started = |model_id| LoadStarted {
            model_id,
            parent: &root,
        };
        let mut ready = bus.model_load_started(&started("a"));
        let load_cx = ready.context().clone();
        assert!(load_cx.has_active_span(), "the load runs in its span");
        ready.engine_started(&EngineStarted {
            model_id: "a".into(),
            path: "/m/a.gguf".into(),
            context_length: 512,
            threads: 2,
            parallel: 4,
            prefill_chunk: 256,
            has_chat_template: true,
        });
        ready.finished(&ModelLoad {
            model_id: "a".into(),
            source: "local_cache",
            duration: std::time::Duration::from_millis(20),
            result: Ok(()),
        });
        bus.model_load_started(&started("b")).finished(&ModelLoad {
            model_id: "b".into(),
            source: "download",
            duration: std::time::Duration::from_millis(5),
            result: Err(inferd_engine::hooks::LoadFailed {
                error_type: "load_error",
                message: "not a GGUF file".into(),
            }),
        });
        let load_parent = load_cx.clone();
        bus.model_unload_started(&UnloadStarted {
            model_id: "a",
            reason: "admin",
            parent: &load_parent,
        })
        .finished(&ModelUnload {
            model_id: "a".into(),
            reason: "admin",
        });

        let store = guard.trace_store().unwrap_or_else(|| panic!("no store"));
        let trace = |cx: &Context| {
            store
                .trace(&cx.span().span_context().trace_id().to_string())
                .expect("trace")
                .spans
        };
        let spans = trace(&load_cx);
        let load = named(&spans, "model.load")[0];
        assert!(load.parent_span_id.is_none(), "a start-up load is a root");
        assert_eq!(load.attributes[sc::INFERD_MODEL_ID], "a");
        assert_eq!(load.attributes[sc::INFERD_MODEL_LOAD_DURATION], 0.02);
        let events: Vec<&str> = load.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(events, ["model loaded", "model ready"]);
        assert_eq!(load.events[0].attributes["parallel"], 4);
        let unload = named(&spans, "model.unload")[0];
        assert_eq!(unload.parent_span_id.as_ref(), Some(&load.span_id));
        assert_eq!(unload.attributes[sc::INFERD_MODEL_UNLOAD_REASON], "admin");
        assert_eq!(unload.events[0].name, "model unloaded");

        let failed = store
            .recent_traces(10)
            .into_iter()
            .find(|t| t.error)
            .expect("the failed load's trace");
        let failed = store.trace(&failed.trace_id).expect("trace").spans;
        assert_eq!(failed[0].name, "model.load");
        assert_eq!(failed[0].attributes["error.type"], "load_error");
        assert_eq!(failed[0].events[0].name, "model failed to load");
    }

    #[test]
    fn the_engine_spans_plugin_alone_builds_no_batch_reports() {
        let alone = HooksBus::new(vec![Arc::new(EngineSpans::default())]);
        assert!(!alone.observes_batch_runs());
        let guard = super::super::test_support::local();
        assert!(super::super::hooks_for(&guard, 1024, None).observes_batch_runs());
    }
}
