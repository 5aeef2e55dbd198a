//! The `model.batch` span: one per batch run of a local engine (one prefill step, or a run of
//! decode steps with the same members), with its real start and end, **linked** to the
//! generation span of every member. OpenTelemetry's batch pattern: with several members the
//! span is the root of its own trace (a step belongs to no one request), with one it is that
//! member's child.
//!
//! A run is traced only when a member's generation was sampled; otherwise nothing is built,
//! so unsampled requests cost a scan of the members' trace flags.

use inferd_engine::hooks::{BatchMember, BatchRun};
use inferd_otel::semconv as sc;
use inferd_otel::{span_builder, Tracer};
use inferd_telemetry::with_force_trace;
use opentelemetry::trace::{Link, SpanKind, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};

/// Records `run` as a `model.batch` span if any member was sampled.
pub(crate) fn record(tracer: &Tracer, run: &BatchRun<'_>) {
    if !run.members.iter().any(sampled) {
        return;
    }
    let parent = match run.members {
        // One member: the step was its own work.
        [only] => Context::new().with_remote_span_context(only.generation.clone()),
        // Several: a new trace, which must be kept although the ratio sampler may drop new
        // roots, since a member's trace is sampled and links here. The force-trace marker is
        // how a new root is sampled regardless of the ratio (it also marks the span
        // `inferd.sampling.forced=true` when the ratio alone would have dropped it).
        _ => with_force_trace(&Context::new()),
    };
    let attributes = vec![
        KeyValue::new(sc::GEN_AI_REQUEST_MODEL, run.model.to_owned()),
        KeyValue::new(sc::INFERD_BATCH_PHASE, run.phase.as_str()),
        KeyValue::new(
            sc::INFERD_BATCH_SIZE,
            i64::try_from(run.members.len()).unwrap_or(i64::MAX),
        ),
        KeyValue::new(
            sc::INFERD_BATCH_TOKENS,
            i64::try_from(run.tokens).unwrap_or(i64::MAX),
        ),
        KeyValue::new(sc::INFERD_BATCH_STEPS, i64::from(run.steps)),
    ];
    let links = run
        .members
        .iter()
        .filter(|m| m.generation.is_valid())
        .map(|m| {
            Link::new(
                m.generation.clone(),
                vec![KeyValue::new(sc::INFERD_BATCH_TOKENS, i64::from(m.tokens))],
                0,
            )
        })
        .collect();
    let mut builder = span_builder(sc::SPAN_MODEL_BATCH, SpanKind::Internal, attributes);
    builder.links = Some(links);
    builder.start_time = Some(run.started_at);
    tracer.record_finished(builder, &parent, run.started_at + run.duration);
}

/// Whether a member's generation span was sampled (an invalid context, telemetry off or no
/// generation span, never is).
fn sampled(member: &BatchMember) -> bool {
    member.generation.is_valid() && member.generation.is_sampled()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use inferd_engine::hooks::BatchPhase;
    use inferd_telemetry::{
        build_with_writer, Mode, SamplerConfig, SpanRecord, TelemetryConfig, TelemetryGuard,
    };
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    /// Telemetry in `local` mode, sampling `ratio` of new traces; spans land in its store.
    fn local(ratio: f64) -> TelemetryGuard {
        let config = TelemetryConfig {
            mode: Mode::Local,
            sampler: SamplerConfig {
                ratio,
                ..SamplerConfig::default()
            },
            ..TelemetryConfig::default()
        };
        match build_with_writer(&config, std::io::sink, false) {
            Ok((guard, _)) => guard,
            Err(e) => panic!("{e}"),
        }
    }

    fn tracer(guard: &TelemetryGuard) -> Tracer {
        guard.tracer().unwrap_or_else(|| panic!("no tracer"))
    }

    /// A member whose generation span is `span` of trace `trace`.
    fn member(trace: u128, span: u64, sampled: bool, tokens: u32) -> BatchMember {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        BatchMember {
            generation: SpanContext::new(
                TraceId::from(trace),
                SpanId::from(span),
                flags,
                false,
                TraceState::default(),
            ),
            tokens,
        }
    }

    fn run<'a>(members: &'a [BatchMember], phase: BatchPhase) -> BatchRun<'a> {
        BatchRun {
            model: "smollm2-135m",
            phase,
            members,
            steps: 12,
            tokens: 24,
            started_at: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            duration: Duration::from_millis(250),
        }
    }

    /// Every stored `model.batch` span.
    fn batch_spans(guard: &TelemetryGuard) -> Vec<SpanRecord> {
        let Some(store) = guard.trace_store() else {
            panic!("no trace store")
        };
        store
            .recent_traces(100)
            .iter()
            .filter_map(|t| store.trace(&t.trace_id))
            .flat_map(|t| t.spans)
            .filter(|s| s.name == sc::SPAN_MODEL_BATCH)
            .collect()
    }

    #[test]
    fn a_batch_of_two_sampled_members_is_one_root_span_linked_to_both() {
        // Ratio 0: a new root would be dropped, but a member was sampled.
        let guard = local(0.0);
        let members = [member(1, 11, true, 16), member(2, 22, true, 8)];
        record(&tracer(&guard), &run(&members, BatchPhase::Prefill));

        let spans = batch_spans(&guard);
        assert_eq!(spans.len(), 1, "{spans:?}");
        let span = &spans[0];
        assert_eq!(span.kind, "internal");
        assert_eq!(span.parent_span_id, None);
        let trace_id = &span.trace_id;
        assert!(
            ![TraceId::from(1u128), TraceId::from(2u128)]
                .iter()
                .any(|t| &t.to_string() == trace_id),
            "a batch of several is its own trace"
        );
        let a = &span.attributes;
        assert_eq!(a[sc::GEN_AI_REQUEST_MODEL], "smollm2-135m");
        assert_eq!(a[sc::INFERD_BATCH_PHASE], "prefill");
        assert_eq!(a[sc::INFERD_BATCH_SIZE], 2);
        assert_eq!(a[sc::INFERD_BATCH_TOKENS], 24);
        assert_eq!(a[sc::INFERD_BATCH_STEPS], 12);
        // Its real times, not when it was reported.
        assert_eq!(span.start_unix_nanos, 1_800_000_000 * 1_000_000_000);
        assert_eq!(span.end_unix_nanos - span.start_unix_nanos, 250 * 1_000_000);
        let links: Vec<(&str, &str, &serde_json::Value)> = span
            .links
            .iter()
            .map(|l| {
                (
                    l.trace_id.as_str(),
                    l.span_id.as_str(),
                    &l.attributes[sc::INFERD_BATCH_TOKENS],
                )
            })
            .collect();
        assert_eq!(
            links,
            vec![
                (
                    "00000000000000000000000000000001",
                    "000000000000000b",
                    &serde_json::json!(16)
                ),
                (
                    "00000000000000000000000000000002",
                    "0000000000000016",
                    &serde_json::json!(8)
                ),
            ]
        );
    }

    #[test]
    fn a_batch_with_one_sampled_member_links_every_valid_member() {
        let guard = local(1.0);
        let members = [
            member(1, 11, false, 1),
            member(2, 22, true, 1),
            // Telemetry off for that request, or no generation span: no link.
            BatchMember {
                generation: SpanContext::empty_context(),
                tokens: 1,
            },
        ];
        record(&tracer(&guard), &run(&members, BatchPhase::Decode));
        let spans = batch_spans(&guard);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].attributes[sc::INFERD_BATCH_PHASE], "decode");
        assert_eq!(spans[0].attributes[sc::INFERD_BATCH_SIZE], 3);
        let linked: Vec<&str> = spans[0].links.iter().map(|l| l.span_id.as_str()).collect();
        assert_eq!(linked, ["000000000000000b", "0000000000000016"]);
    }

    #[test]
    fn a_batch_without_a_sampled_member_makes_no_span() {
        let guard = local(1.0);
        let members = [member(1, 11, false, 4), member(2, 22, false, 4)];
        record(&tracer(&guard), &run(&members, BatchPhase::Decode));
        let alone = [member(3, 33, false, 4)];
        record(&tracer(&guard), &run(&alone, BatchPhase::Prefill));
        assert!(batch_spans(&guard).is_empty());
        assert!(guard.trace_store().is_some_and(|s| s.is_empty()));
    }

    #[test]
    fn a_batch_of_one_is_a_child_of_its_generation_span() {
        let guard = local(0.0);
        let members = [member(7, 77, true, 5)];
        record(&tracer(&guard), &run(&members, BatchPhase::Decode));
        let spans = batch_spans(&guard);
        assert_eq!(spans.len(), 1);
        let span = &spans[0];
        assert_eq!(span.trace_id, TraceId::from(7u128).to_string());
        assert_eq!(
            span.parent_span_id.as_deref(),
            Some(SpanId::from(77u64).to_string().as_str())
        );
        assert_eq!(span.attributes[sc::INFERD_BATCH_SIZE], 1);
        // Its parent's decision: not a forced root.
        assert!(!span.attributes.contains_key(sc::INFERD_SAMPLING_FORCED));
        assert_eq!(span.links.len(), 1);
    }
}
