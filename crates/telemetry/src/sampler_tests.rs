use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, TraceFlags, TraceState, Tracer, TracerProvider as _,
};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

use super::*;

#[derive(Clone, Copy, Debug)]
enum Parent {
    None,
    Sampled,
    Unsampled,
}

#[derive(Clone, Copy, Debug)]
enum Header {
    Absent,
    True,
    False,
    Garbage,
}

impl Header {
    fn value(self) -> Option<&'static [u8]> {
        match self {
            Header::Absent => None,
            Header::True => Some(b"TRUE"),
            Header::False => Some(b"false"),
            Header::Garbage => Some(b"yes please"),
        }
    }
}

/// Returns (sampled, has inferd.sampling.forced) for one combination.
fn decide(parent: Parent, header: Header, ratio: f64) -> (bool, bool) {
    let sampler = build_sampler(&SamplerConfig {
        parent_based: true,
        ratio,
        force_trace_header: true,
    });
    let mut cx = match parent {
        Parent::None => Context::new(),
        Parent::Sampled | Parent::Unsampled => {
            let flags = if matches!(parent, Parent::Sampled) {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from(0x0af7651916cd43dd8448eb211c80319c_u128),
                SpanId::from(0xb7ad6b7169203331_u64),
                flags,
                true,
                TraceState::default(),
            ))
        }
    };
    if header.value().is_some_and(force_trace_requested) {
        cx = with_force_trace(&cx);
    }
    let result = sampler.should_sample(
        Some(&cx),
        TraceId::from(0x1234_u128),
        "GET /",
        &SpanKind::Server,
        &[],
        &[],
    );
    let sampled = result.decision == SamplingDecision::RecordAndSample;
    let forced = result
        .attributes
        .iter()
        .any(|kv| kv.key.as_str() == semconv::INFERD_SAMPLING_FORCED);
    (sampled, forced)
}

#[test]
fn sampler_matrix() {
    use Header::*;
    use Parent::*;
    // (parent, header, ratio) -> (sampled, forced attribute)
    let cases = [
        (None, Absent, 0.0, (false, false)),
        (None, True, 0.0, (true, true)),
        (None, False, 0.0, (false, false)),
        (None, Garbage, 0.0, (false, false)),
        (None, Absent, 1.0, (true, false)),
        (None, True, 1.0, (true, false)),
        (None, False, 1.0, (true, false)),
        (None, Garbage, 1.0, (true, false)),
        (Sampled, Absent, 0.0, (true, false)),
        (Sampled, True, 0.0, (true, false)),
        (Sampled, False, 0.0, (true, false)),
        (Sampled, Garbage, 0.0, (true, false)),
        (Sampled, Absent, 1.0, (true, false)),
        (Sampled, True, 1.0, (true, false)),
        (Sampled, False, 1.0, (true, false)),
        (Sampled, Garbage, 1.0, (true, false)),
        (Unsampled, Absent, 0.0, (false, false)),
        (Unsampled, True, 0.0, (false, false)),
        (Unsampled, False, 0.0, (false, false)),
        (Unsampled, Garbage, 0.0, (false, false)),
        (Unsampled, Absent, 1.0, (false, false)),
        (Unsampled, True, 1.0, (false, false)),
        (Unsampled, False, 1.0, (false, false)),
        (Unsampled, Garbage, 1.0, (false, false)),
    ];
    for (parent, header, ratio, expected) in cases {
        assert_eq!(
            decide(parent, header, ratio),
            expected,
            "parent={parent:?} header={header:?} ratio={ratio}"
        );
    }
}

#[test]
fn force_trace_header_values() {
    assert!(force_trace_requested(b"true"));
    assert!(force_trace_requested(b"True"));
    assert!(force_trace_requested(b" TRUE "));
    assert!(!force_trace_requested(b"false"));
    assert!(!force_trace_requested(b"1"));
    assert!(!force_trace_requested(b"yes"));
    assert!(!force_trace_requested(b""));
}

#[test]
fn force_trace_header_ignored_when_disabled() {
    let sampler = build_sampler(&SamplerConfig {
        parent_based: true,
        ratio: 0.0,
        force_trace_header: false,
    });
    let cx = with_force_trace(&Context::new());
    let result = sampler.should_sample(
        Some(&cx),
        TraceId::from(1_u128),
        "x",
        &SpanKind::Server,
        &[],
        &[],
    );
    assert_eq!(result.decision, SamplingDecision::Drop);
}

#[test]
fn forced_flag_does_not_leak_to_the_next_request_and_is_recorded_on_the_span() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_sampler(build_sampler(&SamplerConfig {
            parent_based: true,
            ratio: 0.0,
            force_trace_header: true,
        }))
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("test");

    // Request 1 asks for a trace; its child span follows it.
    let forced_cx = with_force_trace(&Context::new());
    let span = tracer.start_with_context("request-1", &forced_cx);
    let cx1 = forced_cx.with_span(span);
    let child = tracer.start_with_context("child", &cx1);
    drop(child);
    drop(cx1);
    // Request 2 on the same thread, no header, starts from a fresh context.
    let span2 = tracer.start_with_context("request-2", &Context::new());
    assert!(!span2.span_context().is_sampled());
    drop(span2);
    // Even the current context of this thread does not carry the marker.
    let span3 = tracer.start("request-3");
    assert!(!span3.span_context().is_sampled());
    drop(span3);

    let spans = exporter.get_finished_spans().unwrap_or_default();
    let names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, vec!["child", "request-1"]);
    let root = spans.iter().find(|s| s.name == "request-1");
    assert!(root.is_some_and(|s| s
        .attributes
        .iter()
        .any(|kv| kv.key.as_str() == semconv::INFERD_SAMPLING_FORCED)));
}

#[test]
fn force_trace_never_overrides_a_parent_even_without_parent_based() {
    let sampler = build_sampler(&SamplerConfig {
        parent_based: false,
        ratio: 0.0,
        force_trace_header: true,
    });
    let unsampled_parent = Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(7_u128),
        SpanId::from(7_u64),
        TraceFlags::default(),
        true,
        TraceState::default(),
    ));
    let cx = with_force_trace(&unsampled_parent);
    let result = sampler.should_sample(
        Some(&cx),
        TraceId::from(7_u128),
        "x",
        &SpanKind::Server,
        &[],
        &[],
    );
    assert_eq!(result.decision, SamplingDecision::Drop);
    let cx = with_force_trace(&Context::new());
    let result = sampler.should_sample(
        Some(&cx),
        TraceId::from(7_u128),
        "x",
        &SpanKind::Server,
        &[],
        &[],
    );
    assert_eq!(result.decision, SamplingDecision::RecordAndSample);
}
