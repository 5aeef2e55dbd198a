use http::header::HeaderName;
use http::HeaderValue;
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::trace::{Span as _, SpanKind, Tracer, TracerProvider as _};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use inferd_otel::{span_builder, OtelSpan};

use super::*;
use crate::config::SamplerConfig;
use crate::sampler::build_sampler;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const SPAN_ID: &str = "b7ad6b7169203331";

/// Headers from `(name, value)` pairs in order, names in any case as a client may send them;
/// values that are not valid header values are skipped.
pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            map.append(k, v);
        }
    }
    map
}

fn all() -> Propagators {
    Propagators::new(&PropagatorConfig::default())
}

fn parent_of(map: &HeaderMap) -> SpanContext {
    all().extract_headers(map).span().span_context().clone()
}

/// A tracer with inferd's sampler for `ratio` (parent-based, as configured by default) and
/// the SDK's default id generator, as the tracer provider inferd builds.
pub(super) fn tracer(ratio: f64) -> SdkTracer {
    let config = SamplerConfig {
        ratio,
        ..SamplerConfig::default()
    };
    SdkTracerProvider::builder()
        .with_sampler(build_sampler(&config))
        .build()
        .tracer("propagation-test")
}

/// What inferd sends onward for a request with `incoming` headers: the SERVER span continues
/// the caller's context, and each of `calls` CLIENT spans inside it injects its own.
pub(super) fn relay_with(tracer: &SdkTracer, incoming: &HeaderMap, calls: usize) -> Vec<HeaderMap> {
    let p = all();
    let parent = p.extract_headers(incoming);
    let tracer = &inferd_otel::Tracer::new(tracer.clone());
    let server = OtelSpan::start(
        tracer,
        &parent,
        "HTTP request",
        span_builder("POST /test", SpanKind::Server, Vec::new()),
    );
    let Some(server_cx) = server.context() else {
        panic!("no server span")
    };
    let outgoing = (0..calls)
        .map(|_| {
            let client = OtelSpan::start(
                tracer,
                server_cx,
                "HTTP client request",
                span_builder("POST", SpanKind::Client, Vec::new()),
            );
            let mut headers = HeaderMap::new();
            if let Some(cx) = client.context() {
                p.inject_headers(cx, &mut headers);
            }
            client.end();
            headers
        })
        .collect();
    server.end();
    outgoing
}

/// [`relay_with`] for one call, with every new trace sampled.
pub(super) fn relay(incoming: &HeaderMap) -> HeaderMap {
    relay_with(&tracer(1.0), incoming, 1)
        .pop()
        .unwrap_or_default()
}

/// A header's only value as text (`None` when absent).
pub(super) fn header<'a>(map: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = map.get_all(name).iter();
    let value = values.next()?.to_str().ok();
    assert!(values.next().is_none(), "{name} sent twice: {map:?}");
    value
}

/// The trace id, span id and flags of an outgoing traceparent.
fn sent_traceparent(map: &HeaderMap) -> (String, String, u8) {
    let Some(tp) = header(map, TRACEPARENT) else {
        panic!("no traceparent sent: {map:?}")
    };
    let Some((trace_id, span_id, flags)) = parse_traceparent(tp) else {
        panic!("invalid traceparent sent: {tp}")
    };
    assert!(tp.starts_with("00-"), "{tp}");
    (trace_id.to_string(), span_id.to_string(), flags)
}

#[test]
fn valid_traceparent_is_extracted_with_all_known_flags() {
    let sc = parent_of(&headers(&[(
        TRACEPARENT,
        &format!("00-{TRACE_ID}-{SPAN_ID}-03"),
    )]));
    assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
    assert_eq!(sc.trace_id().to_string(), TRACE_ID);
    assert_eq!(sc.span_id().to_string(), SPAN_ID);
    assert_eq!(sc.trace_flags().to_u8(), 0x03, "the random flag is kept");
    let sc = parent_of(&headers(&[(
        TRACEPARENT,
        &format!("00-{TRACE_ID}-{SPAN_ID}-ff"),
    )]));
    assert_eq!(sc.trace_flags().to_u8(), 0x03, "unknown flags are zeroed");
}

#[test]
fn malformed_traceparent_starts_a_new_trace() {
    let cases = [
        format!("ff-{TRACE_ID}-{SPAN_ID}-01"),
        format!("00-{}-{SPAN_ID}-01", "0".repeat(32)),
        format!("00-{TRACE_ID}-{}-01", "0".repeat(16)),
        format!("00-{}-{SPAN_ID}-01", TRACE_ID.to_uppercase()),
        format!("00-{TRACE_ID}-{}-01", SPAN_ID.to_uppercase()),
        format!("00-{TRACE_ID}-{SPAN_ID}-0A"),
        format!("00-{TRACE_ID}a-{SPAN_ID}-01"),
        format!("00-{TRACE_ID}-{SPAN_ID}a-01"),
        format!("00-{TRACE_ID}-{SPAN_ID}-01-extra"),
        format!("0-{TRACE_ID}-{SPAN_ID}-01"),
        format!("00_{TRACE_ID}_{SPAN_ID}_01"),
        format!("00-{TRACE_ID}-{SPAN_ID}-1"),
        format!("01-{TRACE_ID}-{SPAN_ID}-01x"),
        "garbage".to_owned(),
        String::new(),
    ];
    for case in cases {
        assert!(
            !parent_of(&headers(&[(TRACEPARENT, &case)])).is_valid(),
            "{case:?} accepted"
        );
    }
}

#[test]
fn future_version_with_extra_fields_is_accepted() {
    let sc = parent_of(&headers(&[(
        TRACEPARENT,
        &format!("cc-{TRACE_ID}-{SPAN_ID}-01-what-the-future"),
    )]));
    assert!(sc.is_valid());
}

#[test]
fn two_traceparent_headers_start_a_new_trace() {
    let tp = format!("00-{TRACE_ID}-{SPAN_ID}-01");
    assert!(!parent_of(&headers(&[(TRACEPARENT, &tp), (TRACEPARENT, &tp)])).is_valid());
}

#[test]
fn a_second_traceparent_that_is_not_ascii_still_makes_the_parent_ambiguous() {
    let mut map = headers(&[(TRACEPARENT, &format!("00-{TRACE_ID}-{SPAN_ID}-01"))]);
    let Ok(junk) = HeaderValue::from_bytes(b"00-\xe9t\xe9") else {
        panic!("obs-text is a valid header value")
    };
    map.append(TRACEPARENT, junk);
    assert!(!parent_of(&map).is_valid());
}

#[test]
fn tracestate_headers_are_joined_in_order_with_empty_members_and_ows_allowed() {
    let tp = format!("00-{TRACE_ID}-{SPAN_ID}-01");
    let sc = parent_of(&headers(&[
        (TRACEPARENT, &tp),
        (TRACESTATE, "foo=1, \t,bar@vendor=2"),
        (TRACESTATE, ""),
        (TRACESTATE, ",,t@x=3 ,\tfoo=dup"),
    ]));
    assert_eq!(
        sc.trace_state().header(),
        "foo=1,bar@vendor=2,t@x=3",
        "of a duplicated key the first member is kept"
    );
}

#[test]
fn one_malformed_tracestate_member_drops_the_whole_list_but_keeps_the_parent() {
    let tp = format!("00-{TRACE_ID}-{SPAN_ID}-01");
    let long_value = format!("k={}", "v".repeat(257));
    let long_key = format!("{}=1", "k".repeat(257));
    for bad in [
        "foo=,bar=3",
        "Bad=x,bar=3",
        "bar=3,qux=a=b",
        "bar=3,novalue",
        "bar=3,=1",
        "@foo=1,bar=2",
        "foo =1,bar=2",
        "foo.bar=1,bar=2",
        "bar=3,foo=a\tb",
        long_value.as_str(),
        long_key.as_str(),
    ] {
        let map = headers(&[(TRACEPARENT, &tp), (TRACESTATE, "ok=1"), (TRACESTATE, bad)]);
        let sc = parent_of(&map);
        assert!(sc.is_valid(), "{bad:?}: the parent is kept");
        assert_eq!(sc.trace_state().header(), "", "{bad:?} kept a list");
        assert_eq!(
            header(&relay(&map), TRACESTATE),
            None,
            "{bad:?}: a tracestate went out"
        );
    }
    // A line that is not visible ASCII spoils the list too.
    let mut map = headers(&[(TRACEPARENT, &tp), (TRACESTATE, "ok=1")]);
    let Ok(junk) = HeaderValue::from_bytes(b"caf\xe9=1") else {
        panic!("obs-text is a valid header value")
    };
    map.append(TRACESTATE, junk);
    assert_eq!(parent_of(&map).trace_state().header(), "");
}

#[test]
fn tracestate_over_32_members_is_discarded_but_the_parent_kept() {
    let tp = format!("00-{TRACE_ID}-{SPAN_ID}-01");
    let ok: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
    let sc = parent_of(&headers(&[(TRACEPARENT, &tp), (TRACESTATE, &ok.join(","))]));
    assert_eq!(sc.trace_state().header().split(',').count(), 32);
    let too_many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    let sc = parent_of(&headers(&[
        (TRACEPARENT, &tp),
        (TRACESTATE, &too_many.join(",")),
    ]));
    assert!(sc.is_valid());
    assert_eq!(sc.trace_state().header(), "");
}

#[test]
fn tracestate_key_rules_follow_the_level_2_grammar() {
    for valid in [
        "a",
        "0tenant@sys",
        "1simple",
        "foo@",
        "foo@@bar",
        "foo@bar@baz",
        "t@1sys",
        "t@systemnametoolong",
        "a_-*/@z9",
    ] {
        assert!(valid_tracestate_key(valid), "{valid:?} rejected");
    }
    assert!(valid_tracestate_key(&"a".repeat(256)));
    assert!(valid_tracestate_key(&format!("{}@v", "t".repeat(242))));
    for invalid in ["", "@foo", "_a", "Foo", "a.b", "a b", "a=b", "é"] {
        assert!(!valid_tracestate_key(invalid), "{invalid:?} accepted");
    }
    assert!(!valid_tracestate_key(&"a".repeat(257)));

    assert!(valid_tracestate_value(" leading spaces are part of it"));
    assert!(valid_tracestate_value(&"v".repeat(256)));
    for invalid in ["", "ends-with-space ", "a,b", "a=b", "tab\there", "é"] {
        assert!(!valid_tracestate_value(invalid), "{invalid:?} accepted");
    }
    assert!(!valid_tracestate_value(&"v".repeat(257)));
}

#[test]
fn level_2_tracestate_keys_reach_the_next_hop_unchanged() {
    // Keys opentelemetry's TraceState rejects (two `@`, a part after `@` of 15 characters)
    // around one it accepts.
    let list = "foo@@bar=1,t@vvvvvvvvvvvvvvv=2, bar=3,foo@bar@baz=4";
    let map = headers(&[
        (TRACEPARENT, &format!("00-{TRACE_ID}-{SPAN_ID}-01")),
        (TRACESTATE, list),
    ]);
    let sc = parent_of(&map);
    assert_eq!(
        sc.trace_state().get("bar"),
        Some("3"),
        "the span context holds what TraceState can"
    );
    let expected = "foo@@bar=1,t@vvvvvvvvvvvvvvv=2,bar=3,foo@bar@baz=4";
    assert_eq!(header(&relay(&map), TRACESTATE), Some(expected));
    // Unsampled, through a dropped span, the same.
    let map = headers(&[
        (TRACEPARENT, &format!("00-{TRACE_ID}-{SPAN_ID}-00")),
        (TRACESTATE, list),
    ]);
    assert_eq!(header(&relay(&map), TRACESTATE), Some(expected));
}

#[test]
fn a_tracestate_changed_in_this_process_goes_out_as_changed() {
    let map = headers(&[
        (TRACEPARENT, &format!("00-{TRACE_ID}-{SPAN_ID}-01")),
        (TRACESTATE, "foo@@bar=1,bar=3"),
    ]);
    let p = all();
    let cx = p.extract_headers(&map);
    let sc = cx.span().span_context().clone();
    let Ok(changed) = sc.trace_state().insert("inferd", "x") else {
        panic!("a valid key")
    };
    let mine = SpanContext::new(
        sc.trace_id(),
        SpanId::from(7),
        sc.trace_flags(),
        false,
        changed,
    );
    let mut out = HeaderMap::new();
    p.inject_headers(&cx.with_span(TestSpan(mine)), &mut out);
    assert_eq!(header(&out, TRACESTATE), Some("inferd=x,bar=3"));
}

/// A span that is only a span context (a local span some other code made).
#[derive(Debug)]
struct TestSpan(SpanContext);

impl opentelemetry::trace::Span for TestSpan {
    fn add_event_with_timestamp<T>(
        &mut self,
        _name: T,
        _timestamp: std::time::SystemTime,
        _attributes: Vec<opentelemetry::KeyValue>,
    ) where
        T: Into<std::borrow::Cow<'static, str>>,
    {
    }
    fn span_context(&self) -> &SpanContext {
        &self.0
    }
    fn is_recording(&self) -> bool {
        false
    }
    fn set_attribute(&mut self, _attribute: opentelemetry::KeyValue) {}
    fn set_status(&mut self, _status: opentelemetry::trace::Status) {}
    fn update_name<T>(&mut self, _new_name: T)
    where
        T: Into<std::borrow::Cow<'static, str>>,
    {
    }
    fn add_link(&mut self, _span_context: SpanContext, _attributes: Vec<opentelemetry::KeyValue>) {}
    fn end_with_timestamp(&mut self, _timestamp: std::time::SystemTime) {}
}

#[test]
fn unsampled_parent_with_the_random_flag_goes_out_with_it() {
    let out = relay(&headers(&[(
        TRACEPARENT,
        &format!("00-{TRACE_ID}-{SPAN_ID}-02"),
    )]));
    let (trace_id, span_id, flags) = sent_traceparent(&out);
    assert_eq!(trace_id, TRACE_ID);
    assert_ne!(span_id, SPAN_ID, "a span id of inferd's own");
    assert_eq!(flags, 0x02, "random kept, not sampled");
}

#[test]
fn continued_trace_keeps_the_callers_random_flag_as_it_was() {
    for (received, sent) in [("00", 0x00), ("01", 0x01), ("02", 0x02), ("03", 0x03)] {
        let out = relay(&headers(&[(
            TRACEPARENT,
            &format!("00-{TRACE_ID}-{SPAN_ID}-{received}"),
        )]));
        let (trace_id, _, flags) = sent_traceparent(&out);
        assert_eq!(trace_id, TRACE_ID);
        assert_eq!(flags, sent, "received {received}");
    }
}

#[test]
fn new_trace_goes_out_with_the_random_flag() {
    // Sampled (ratio 1) and not (ratio 0): the trace id is random either way.
    for (ratio, sent) in [(1.0, 0x03), (0.0, 0x02)] {
        let tracer = tracer(ratio);
        for incoming in [
            HeaderMap::new(),
            headers(&[(TRACEPARENT, &format!("00-{}-{SPAN_ID}-01", "0".repeat(32)))]),
        ] {
            let out = relay_with(&tracer, &incoming, 1).pop().unwrap_or_default();
            let (trace_id, _, flags) = sent_traceparent(&out);
            assert_ne!(trace_id, "0".repeat(32));
            assert_eq!(flags, sent, "ratio {ratio}");
        }
    }
}

#[test]
fn a_remote_parent_passed_on_without_a_span_goes_out_as_received() {
    for flags in ["00", "01", "02", "03"] {
        let tp = format!("00-{TRACE_ID}-{SPAN_ID}-{flags}");
        let p = all();
        let mut out = HeaderMap::new();
        p.inject_headers(
            &p.extract_headers(&headers(&[(TRACEPARENT, &tp)])),
            &mut out,
        );
        assert_eq!(header(&out, TRACEPARENT), Some(tp.as_str()));
    }
}

#[test]
fn baggage_is_extracted_from_repeated_headers() {
    let cx = all().extract_headers(&headers(&[
        (BAGGAGE, "tenant=acme,user%20id=1"),
        (BAGGAGE, "tier=gold%20plus;ttl=30, bad key=1"),
    ]));
    let b = cx.baggage();
    assert_eq!(
        b.get("tenant").map(|v| v.as_str().to_owned()),
        Some("acme".to_owned())
    );
    assert_eq!(
        b.get("tier").map(|v| v.as_str().to_owned()),
        Some("gold plus".to_owned())
    );
    // Keys are tokens and are not percent-decoded; a key with a space is invalid.
    assert!(b.get("user%20id").is_some());
    assert!(b.get("bad key").is_none() && b.get("bad").is_none());
    assert_eq!(b.len(), 3);
}

#[test]
fn baggage_keeps_64_entries_and_drops_whole_entries_past_the_limit() {
    let entries: Vec<String> = (0..70).map(|i| format!("k{i}=v{i}")).collect();
    let cx = all().extract_headers(&headers(&[(BAGGAGE, &entries.join(","))]));
    assert_eq!(cx.baggage().len(), 64);
    assert!(cx.baggage().get("k63").is_some() && cx.baggage().get("k64").is_none());

    // 8192 bytes: 4 entries of ~2 KiB fit, the fifth is dropped whole, never cut.
    let big: Vec<String> = (0..5)
        .map(|i| format!("b{i}={}", "x".repeat(2000)))
        .collect();
    let cx = all().extract_headers(&headers(&[(BAGGAGE, &big.join(","))]));
    assert_eq!(cx.baggage().len(), 4);
    assert!(cx
        .baggage()
        .iter()
        .all(|(_, (v, _))| v.as_str().len() == 2000));
}

#[test]
fn baggage_values_go_out_encoded_and_come_back_as_they_were() {
    let mut bag = Baggage::new();
    for (k, v) in [
        ("pct", "100%"),
        ("escaped", "%41"),
        ("slash", "a\\b"),
        ("list", " a, b;c=\"d\" "),
        ("text", "café"),
    ] {
        bag.insert(k, v);
    }
    bag.insert_with_metadata("meta", "1", "ttl=30");
    bag.insert_with_metadata("badmeta", "2", "a,b");
    let p = all();
    let mut out = HeaderMap::new();
    p.inject_headers(&Context::new().with_baggage(bag), &mut out);
    let Some(sent) = header(&out, BAGGAGE) else {
        panic!("no baggage sent")
    };
    assert!(
        sent.contains("pct=100%25") && sent.contains("slash=a%5Cb"),
        "{sent}"
    );
    assert!(sent.contains("meta=1;ttl=30"), "{sent}");
    assert!(
        sent.contains("badmeta=2") && !sent.contains("badmeta=2;"),
        "properties with a comma are left out: {sent}"
    );
    let back = p.extract_headers(&out);
    let b = back.baggage();
    for (k, v) in [
        ("pct", "100%"),
        ("escaped", "%41"),
        ("slash", "a\\b"),
        ("list", " a, b;c=\"d\" "),
        ("text", "café"),
        ("meta", "1"),
        ("badmeta", "2"),
    ] {
        assert_eq!(
            b.get(k).map(|v| v.as_str().to_owned()).as_deref(),
            Some(v),
            "{k}"
        );
    }
    assert_eq!(b.len(), 7);
}

#[test]
fn baggage_injector_keeps_whole_entries_within_8192_bytes() {
    let mut bag = Baggage::new();
    for i in 0..64 {
        bag.insert(format!("k{i:02}"), "%".repeat(60));
    }
    assert_eq!(bag.len(), 64);
    let mut out = HeaderMap::new();
    all().inject_headers(&Context::new().with_baggage(bag), &mut out);
    let Some(sent) = header(&out, BAGGAGE) else {
        panic!("no baggage sent")
    };
    // Each value of 60 `%` goes out as 180 bytes: not all 64 entries fit.
    let member = "k00=".len() + 180;
    let members: Vec<&str> = sent.split(',').collect();
    assert!(sent.len() <= MAX_BAGGAGE_BYTES, "{} bytes", sent.len());
    assert_eq!(members.len(), (MAX_BAGGAGE_BYTES + 1) / (member + 1));
    assert!(members.iter().all(|m| m.len() == member), "{sent}");
}

#[test]
fn round_trip_keeps_everything_but_the_parent_span_id() {
    let provider = SdkTracerProvider::builder().build();
    let tracer = provider.tracer("test");
    let incoming = headers(&[
        (TRACEPARENT, &format!("00-{TRACE_ID}-{SPAN_ID}-03")),
        (TRACESTATE, "vendor=abc,other@sys=1"),
        (BAGGAGE, "tenant=acme,tier=gold%2Cplus"),
    ]);
    let p = all();
    let parent = p.extract_headers(&incoming);
    let span = tracer.start_with_context("server", &parent);
    let own_span_id = span.span_context().span_id();
    let cx = parent.with_span(span);

    let mut outgoing = HeaderMap::new();
    p.inject_headers(&cx, &mut outgoing);
    let tp = outgoing
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(tp, format!("00-{TRACE_ID}-{own_span_id}-03"));
    assert_ne!(own_span_id.to_string(), SPAN_ID);
    assert_eq!(
        outgoing.get(TRACESTATE).and_then(|v| v.to_str().ok()),
        Some("vendor=abc,other@sys=1")
    );
    let back = p.extract_headers(&outgoing);
    let b = back.baggage();
    assert_eq!(b.len(), 2);
    assert_eq!(
        b.get("tier").map(|v| v.as_str().to_owned()),
        Some("gold,plus".to_owned())
    );

    // The same through a plain string map (queue messages).
    let mut map = HashMap::new();
    p.inject_map(&cx, &mut map);
    let from_map = p.extract_map(&map);
    assert_eq!(from_map.span().span_context().span_id(), own_span_id);
    assert_eq!(from_map.baggage().len(), 2);
}

#[test]
fn disabled_propagators_do_nothing() {
    let none = Propagators::new(&PropagatorConfig {
        trace_context: false,
        baggage: false,
    });
    let cx = none.extract_headers(&headers(&[
        (TRACEPARENT, &format!("00-{TRACE_ID}-{SPAN_ID}-01")),
        (BAGGAGE, "a=b"),
    ]));
    assert!(!cx.span().span_context().is_valid());
    assert_eq!(cx.baggage().len(), 0);
}

#[test]
fn parsed_tracestate_is_empty_when_absent() {
    assert_eq!(ReceivedTraceState::default().header(), "");
    assert_eq!(parse_tracestate(&[]).header(), "");
    assert_eq!(parse_tracestate(&["", " , \t"]).header(), "");
}
