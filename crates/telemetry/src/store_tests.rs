use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::*;

fn provider(store: &TraceStore) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_span_processor(TraceStoreProcessor::new(store.clone()))
        .build()
}

/// Makes one trace of `spans` spans (a root and children); returns its trace id.
fn make_trace(provider: &SdkTracerProvider, name: &str, spans: usize) -> String {
    let tracer = provider.tracer("test");
    let root = tracer
        .span_builder(name.to_owned())
        .with_kind(SpanKind::Server)
        .start(&tracer);
    let trace_id = root.span_context().trace_id().to_string();
    let cx = Context::new().with_span(root);
    for i in 1..spans {
        let mut child = tracer.start_with_context(format!("child-{i}"), &cx);
        child.set_attribute(KeyValue::new("i", i as i64));
        child.end();
    }
    cx.span().end();
    trace_id
}

#[test]
fn stores_spans_with_their_tree_and_details() {
    let store = TraceStore::new(TraceStoreConfig {
        max_traces: 10,
        max_spans: 100,
    });
    let provider = provider(&store);
    let tracer = provider.tracer("test");
    let mut root = tracer
        .span_builder("GET /v1/models")
        .with_kind(SpanKind::Server)
        .start(&tracer);
    root.set_attribute(KeyValue::new("http.response.status_code", 500_i64));
    root.add_event("first_token", vec![KeyValue::new("n", 1_i64)]);
    root.set_status(Status::error("boom"));
    let trace_id = root.span_context().trace_id().to_string();
    let root_id = root.span_context().span_id().to_string();
    let cx = Context::new().with_span(root);
    tracer.start_with_context("model.infer", &cx).end();
    cx.span().end();

    let list = store.recent_traces(10);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].trace_id, trace_id);
    assert_eq!(list[0].root_span_name, "GET /v1/models");
    assert_eq!(list[0].span_count, 2);
    assert!(list[0].error);

    let detail = store.trace(&trace_id);
    let Some(detail) = detail else {
        panic!("trace missing")
    };
    let root = &detail.spans[0];
    assert_eq!(root.kind, "server");
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.status.code, "error");
    assert_eq!(root.attributes["http.response.status_code"], 500);
    assert_eq!(root.events[0].name, "first_token");
    let child = &detail.spans[1];
    assert_eq!(child.parent_span_id.as_deref(), Some(root_id.as_str()));
    assert!(child.end_unix_nanos >= child.start_unix_nanos);

    let json = serde_json::to_value(&detail).unwrap_or_default();
    assert_eq!(json["spans"][0]["span_id"].as_str().map(str::len), Some(16));
}

#[test]
fn links_are_stored_with_their_trace_span_and_attributes() {
    use opentelemetry::trace::{Link, SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let store = TraceStore::new(TraceStoreConfig::default());
    let provider = provider(&store);
    let tracer = provider.tracer("test");
    let linked = |trace: u128, span: u64| {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        )
    };
    let mut batch = tracer
        .span_builder("model.batch")
        .with_links(vec![
            Link::new(
                linked(1, 11),
                vec![KeyValue::new("inferd.batch.tokens", 16_i64)],
                0,
            ),
            Link::with_context(linked(2, 22)),
        ])
        .start(&tracer);
    let trace_id = batch.span_context().trace_id().to_string();
    batch.end();

    let Some(detail) = store.trace(&trace_id) else {
        panic!("trace missing")
    };
    let json = serde_json::to_value(&detail).unwrap_or_default();
    assert_eq!(
        json["spans"][0]["links"],
        serde_json::json!([
            {"trace_id": "00000000000000000000000000000001", "span_id": "000000000000000b",
             "attributes": {"inferd.batch.tokens": 16}},
            {"trace_id": "00000000000000000000000000000002", "span_id": "0000000000000016",
             "attributes": {}},
        ])
    );
}

#[test]
fn oldest_trace_is_evicted_first_by_trace_capacity() {
    let store = TraceStore::new(TraceStoreConfig {
        max_traces: 2,
        max_spans: 100,
    });
    let provider = provider(&store);
    let first = make_trace(&provider, "a", 1);
    let second = make_trace(&provider, "b", 1);
    let third = make_trace(&provider, "c", 1);
    let ids: Vec<_> = store
        .recent_traces(10)
        .into_iter()
        .map(|t| t.trace_id)
        .collect();
    assert_eq!(ids, vec![third, second]);
    assert!(store.trace(&first).is_none());
}

#[test]
fn oldest_trace_is_evicted_first_by_span_capacity() {
    let store = TraceStore::new(TraceStoreConfig {
        max_traces: 100,
        max_spans: 5,
    });
    let provider = provider(&store);
    let first = make_trace(&provider, "a", 3);
    let second = make_trace(&provider, "b", 2);
    assert_eq!(store.len(), (2, 5));
    let third = make_trace(&provider, "c", 2);
    assert!(store.trace(&first).is_none());
    assert!(store.trace(&second).is_some() && store.trace(&third).is_some());
    assert_eq!(store.len(), (2, 4));
    // A trace larger than the whole store keeps only what fits.
    let huge = make_trace(&provider, "d", 9);
    assert_eq!(store.len(), (1, 5));
    assert_eq!(store.trace(&huge).map(|t| t.spans.len()), Some(5));
}

#[test]
fn unsampled_spans_are_not_stored() {
    let store = TraceStore::new(TraceStoreConfig::default());
    let provider = SdkTracerProvider::builder()
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff)
        .with_span_processor(TraceStoreProcessor::new(store.clone()))
        .build();
    make_trace(&provider, "dropped", 2);
    assert!(store.is_empty());
    assert!(store.trace("not-hex").is_none());
}

#[test]
fn array_attributes_are_json_arrays() {
    let attrs = attributes(&[
        KeyValue::new(
            "gen_ai.response.finish_reasons",
            opentelemetry::Value::Array(vec![opentelemetry::StringValue::from("stop")].into()),
        ),
        KeyValue::new(
            "n",
            opentelemetry::Value::Array(opentelemetry::Array::I64(vec![1, 2])),
        ),
    ]);
    assert_eq!(
        attrs["gen_ai.response.finish_reasons"],
        serde_json::json!(["stop"])
    );
    assert_eq!(attrs["n"], serde_json::json!([1, 2]));
}

#[test]
fn trace_id_hashing_spreads_ids_a_caller_could_choose() {
    let hashing = TraceIdHashing::default();
    // Ids counting up in the low half, or in the high half only: 4096 of them into 4096
    // buckets. Random hashes fill about 2590 (1 - 1/e); a hash ignoring either half, one.
    for shift in [0u32, 64] {
        let buckets: std::collections::HashSet<u64> = (1..=4096u128)
            .map(|i| hashing.hash_one(TraceId::from(i << shift)) % 4096)
            .collect();
        assert!(
            buckets.len() > 2300,
            "shift {shift}: {} buckets",
            buckets.len()
        );
    }
    // Each store draws its own keys, so a colliding set found against one store is not one
    // against the next.
    let id = TraceId::from(0x0123_4567_89ab_cdef_u128);
    assert_ne!(
        TraceIdHashing::default().hash_one(id),
        TraceIdHashing::default().hash_one(id)
    );
}

/// Ends one request-like trace: a SERVER root with `route` and `status`, and, when `model` is
/// given, a generation child with usage and times; sleeps `millis` inside the root.
fn make_request(
    provider: &SdkTracerProvider,
    route: &str,
    status: i64,
    model: Option<&str>,
    millis: u64,
) -> String {
    let tracer = provider.tracer("test");
    let mut root = tracer
        .span_builder(format!("POST {route}"))
        .with_kind(SpanKind::Server)
        .start(&tracer);
    root.set_attribute(KeyValue::new(semconv::HTTP_ROUTE, route.to_owned()));
    root.set_attribute(KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, status));
    let trace_id = root.span_context().trace_id().to_string();
    let cx = Context::new().with_span(root);
    if let Some(model) = model {
        let mut generation = tracer.start_with_context(format!("chat {model}"), &cx);
        generation.set_attributes([
            KeyValue::new(semconv::GEN_AI_OPERATION_NAME, "chat"),
            KeyValue::new(semconv::GEN_AI_REQUEST_MODEL, model.to_owned()),
            KeyValue::new(semconv::GEN_AI_USAGE_INPUT_TOKENS, 10_i64),
            KeyValue::new(semconv::GEN_AI_USAGE_OUTPUT_TOKENS, 8_i64),
            KeyValue::new(semconv::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, 0.125),
            KeyValue::new(semconv::INFERD_TIME_PER_OUTPUT_TOKEN, 0.02),
        ]);
        if status >= 400 {
            generation.set_status(Status::error("failed"));
        }
        generation.end();
    }
    std::thread::sleep(Duration::from_millis(millis));
    cx.span().end();
    trace_id
}

#[test]
fn summaries_carry_route_status_model_and_the_generation_at_a_glance() {
    let store = TraceStore::new(TraceStoreConfig::default());
    let provider = provider(&store);
    let chat = make_request(&provider, "/v1/chat/completions", 200, Some("small"), 0);
    let health = make_request(&provider, "/health", 200, None, 0);
    let list = store.recent_traces(10);
    let by_id = |id: &str| {
        list.iter()
            .find(|t| t.trace_id == id)
            .unwrap_or_else(|| panic!("{id} missing"))
    };
    let chat = by_id(&chat);
    assert_eq!(chat.route.as_deref(), Some("/v1/chat/completions"));
    assert_eq!(chat.status_code, Some(200));
    assert_eq!(chat.model.as_deref(), Some("small"));
    assert_eq!((chat.input_tokens, chat.output_tokens), (Some(10), Some(8)));
    assert_eq!(chat.time_to_first_token_seconds, Some(0.125));
    assert_eq!(chat.time_per_output_token_seconds, Some(0.02));
    let health = by_id(&health);
    assert_eq!(health.route.as_deref(), Some("/health"));
    assert_eq!(health.model, None);
    assert_eq!(health.output_tokens, None);
    let json = serde_json::to_value(health).unwrap_or_default();
    assert!(json["time_to_first_token_seconds"].is_null(), "{json}");
}

#[test]
fn find_traces_filters_by_route_model_status_error_and_duration() {
    let store = TraceStore::new(TraceStoreConfig::default());
    let provider = provider(&store);
    let ok = make_request(&provider, "/v1/chat/completions", 200, Some("small"), 0);
    let slow = make_request(&provider, "/v1/chat/completions", 200, Some("big"), 30);
    let failed = make_request(&provider, "/v1/chat/completions", 404, Some("small"), 0);
    let health = make_request(&provider, "/health", 200, None, 0);
    let ids = |query: TraceQuery| -> Vec<String> {
        store
            .find_traces(&query, 10)
            .into_iter()
            .map(|t| t.trace_id)
            .collect()
    };
    assert_eq!(
        ids(TraceQuery::default()),
        [health.as_str(), failed.as_str(), slow.as_str(), ok.as_str()],
        "newest first"
    );
    assert_eq!(
        ids(TraceQuery {
            route: Some("/v1/chat/completions".into()),
            ..TraceQuery::default()
        }),
        [failed.as_str(), slow.as_str(), ok.as_str()]
    );
    assert_eq!(
        ids(TraceQuery {
            model: Some("small".into()),
            ..TraceQuery::default()
        }),
        [failed.as_str(), ok.as_str()]
    );
    assert_eq!(
        ids(TraceQuery {
            status: Some(StatusFilter::Class(4)),
            ..TraceQuery::default()
        }),
        [failed.as_str()]
    );
    assert_eq!(
        ids(TraceQuery {
            status: Some(StatusFilter::Code(200)),
            model: Some("small".into()),
            ..TraceQuery::default()
        }),
        [ok.as_str()]
    );
    assert_eq!(
        ids(TraceQuery {
            errors_only: true,
            ..TraceQuery::default()
        }),
        [failed.as_str()]
    );
    assert_eq!(
        ids(TraceQuery {
            min_duration: Some(Duration::from_millis(30)),
            ..TraceQuery::default()
        }),
        [slow.as_str()]
    );
    let slowest = ids(TraceQuery {
        order: TraceOrder::Slowest,
        ..TraceQuery::default()
    });
    assert_eq!(slowest[0], slow, "longest first");
    assert_eq!(slowest.len(), 4);
    assert_eq!(store.find_traces(&TraceQuery::default(), 2).len(), 2);
}

#[test]
fn status_filters_parse_codes_and_classes_and_refuse_the_rest() {
    assert_eq!("404".parse(), Ok(StatusFilter::Code(404)));
    assert_eq!("5xx".parse(), Ok(StatusFilter::Class(5)));
    assert_eq!("2XX".parse(), Ok(StatusFilter::Class(2)));
    for bad in ["", "99", "600", "6xx", "0xx", "50x", "xx", "abc", "-1"] {
        let e = bad.parse::<StatusFilter>().expect_err(bad);
        assert!(e.to_string().contains("status filter"), "{e}");
    }
}

#[test]
fn a_trace_comes_with_the_log_lines_written_in_its_spans() {
    let _serial = crate::serial_dispatch();
    use crate::config::{LogFormat, Mode, TelemetryConfig};
    use crate::spans_tests::Captured;
    use inferd_otel::{span_builder, OtelSpan};
    for format in [LogFormat::Json, LogFormat::Pretty] {
        let config = TelemetryConfig {
            mode: Mode::Local,
            log_format: format,
            ..TelemetryConfig::default()
        };
        let captured = Captured::default();
        let (guard, dispatch) = crate::setup::build_with_writer(&config, captured.clone(), false)
            .unwrap_or_else(|e| panic!("{e}"));
        let (Some(store), Some(tracer)) = (guard.trace_store().cloned(), guard.tracer()) else {
            panic!("local mode keeps traces");
        };
        let span = OtelSpan::start(
            &tracer,
            &Context::new(),
            "HTTP request",
            span_builder("GET /", SpanKind::Server, vec![]),
        );
        let Some(cx) = span.context() else {
            panic!("a started span has a context");
        };
        let trace_id = cx.span().span_context().trace_id().to_string();
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::callsite::rebuild_interest_cache();
            tracing::info!("before the request");
            span.in_scope(|| {
                tracing::info!(route = "/", "inside the request");
                crate::logs::AccessLine {
                    method: "GET",
                    route: "/",
                    path: "/",
                    status: 200,
                    seconds: 0.001,
                    model: None,
                    key_id: None,
                    input_tokens: None,
                    output_tokens: None,
                    outcome: "complete",
                }
                .write();
            });
            tracing::info!("after the request");
        });
        span.end();
        let Some(detail) = store.trace(&trace_id) else {
            panic!("{format:?}: trace missing");
        };
        assert_eq!(detail.logs.len(), 2, "{format:?}: {:?}", detail.logs);
        assert_eq!(store.logs().len().0, 2, "lines outside a span are not kept");
        assert_eq!(
            captured.text().lines().count(),
            4,
            "every line is still written"
        );
        if format == LogFormat::Json {
            assert_eq!(detail.logs[0]["message"], "inside the request");
            assert_eq!(detail.logs[0]["trace_id"], trace_id.as_str());
            assert_eq!(detail.logs[1]["target"], crate::logs::ACCESS_LOG_TARGET);
        } else {
            let first = detail.logs[0].as_str().unwrap_or_default();
            assert!(first.contains("inside the request"), "{first}");
            assert!(first.contains(&trace_id), "{first}");
        }
    }
}
