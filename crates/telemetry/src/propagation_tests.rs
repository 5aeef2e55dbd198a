use http::HeaderValue;
use opentelemetry::trace::{Span as _, Tracer, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::*;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const SPAN_ID: &str = "b7ad6b7169203331";

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        if let Ok(v) = HeaderValue::from_str(v) {
            map.append(*k, v);
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
fn tracestate_headers_are_joined_and_invalid_entries_dropped() {
    let tp = format!("00-{TRACE_ID}-{SPAN_ID}-01");
    let sc = parent_of(&headers(&[
        (TRACEPARENT, &tp),
        (TRACESTATE, "foo=1, Bad=x"),
        (TRACESTATE, "bar@vendor=2,baz=,foo=dup,qux=a=b,t@x=3"),
    ]));
    assert_eq!(sc.trace_state().header(), "foo=1,bar@vendor=2,t@x=3");
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
fn tracestate_key_rules() {
    assert!(valid_tracestate_key("a"));
    assert!(valid_tracestate_key("0tenant@sys"));
    assert!(valid_tracestate_key(&"a".repeat(256)));
    assert!(!valid_tracestate_key(&"a".repeat(257)));
    assert!(!valid_tracestate_key("1simple"));
    assert!(!valid_tracestate_key("t@1sys"));
    assert!(!valid_tracestate_key("t@systemnametoolong"));
    assert!(!valid_tracestate_key("a@b@c"));
    assert!(!valid_tracestate_value("ends-with-space "));
    assert!(!valid_tracestate_value(&"v".repeat(257)));
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
