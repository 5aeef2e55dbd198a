//! Property tests of the W3C Trace Context and Baggage parsers. `traceparent`, `tracestate` and
//! `baggage` are read from every client request, so whatever bytes arrive, extraction must not
//! panic, must keep the specification's limits (32 tracestate members, 64 baggage entries,
//! 8192 bytes) and must reject what the specification rejects; and what inferd injects into an
//! outgoing request must be extracted again unchanged.
//!
//! Inputs are built from valid-looking structure with mutations (replaced, inserted and deleted
//! characters, upper case, non-ASCII, control characters, padding), long members and
//! duplicates, not only uniform random text.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use http::HeaderValue;
use inferd_testkit::{config, re};
use opentelemetry::baggage::{Baggage, BaggageExt};
use proptest::prelude::*;

use super::*;

fn all() -> Propagators {
    Propagators::new(&PropagatorConfig::default())
}

/// Headers from `(name, value)` pairs; values that are not valid header values are skipped.
fn header_map(pairs: &[(&'static str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(value) {
            map.append(*name, value);
        }
    }
    map
}

/// Lower-case ASCII letters.
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
/// The characters of a tracestate key without `@` after the first.
const KEY_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_-*/";
/// Every character a tracestate key may have after the first.
const KEY_CHARS_AT: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_-*/@";
/// Printable ASCII but `,` and `=`: tracestate value characters.
const VALUE_CHARS: &[u8] = b" !\"#$%&'()*+-./0123456789:;<>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ\
    [\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";

/// A long string: `first` then characters of `rest`, `len` in all, drawn from a seed. Long
/// strings are built this way because a regex strategy costs a tree node per character, which
/// a debug build cannot afford 10,000 times.
fn long_text(
    first: &'static [u8],
    rest: &'static [u8],
    len: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = String> {
    (len, any::<u64>()).prop_map(move |(len, mut seed)| {
        let mut pick = |set: &[u8]| {
            // xorshift64
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            set[(seed % set.len() as u64) as usize] as char
        };
        let mut text = String::with_capacity(len);
        if len > 0 {
            text.push(pick(first));
        }
        while text.len() < len {
            text.push(pick(rest));
        }
        text
    })
}

// ---------------------------------------------------------------------------------------------
// traceparent

/// Characters that break a traceparent in interesting ways.
const NASTY: &[char] = &[
    'A', 'F', 'g', 'z', '0', 'f', '-', '_', ' ', '\t', '\n', '\0', '\u{7f}', 'é', '€', '😀',
];

#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, char),
    Insert(usize, char),
    Delete(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let c = prop::sample::select(NASTY);
    prop_oneof![
        (any::<usize>(), c.clone()).prop_map(|(i, c)| Edit::Replace(i, c)),
        (any::<usize>(), c).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let n = chars.len();
        match *e {
            Edit::Replace(i, c) if n > 0 => chars[i % n] = c,
            Edit::Insert(i, c) => chars.insert(i % (n + 1), c),
            Edit::Delete(i) if n > 0 => {
                chars.remove(i % n);
            }
            Edit::Truncate(i) => chars.truncate(i % (n + 1)),
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// A traceparent that is valid, or nearly: versions 00, ff and future ones, all-zero ids,
/// trailing fields, padding, and up to three character edits.
fn traceparent_text() -> impl Strategy<Value = String> {
    let version =
        prop_oneof![4 => Just("00".to_owned()), 1 => Just("ff".to_owned()), 2 => re("[0-9a-f]{2}")];
    let trace_id = prop_oneof![6 => re("[0-9a-f]{32}"), 1 => Just("0".repeat(32))];
    let span_id = prop_oneof![6 => re("[0-9a-f]{16}"), 1 => Just("0".repeat(16))];
    let flags = re("[0-9a-f]{2}");
    let suffix =
        prop_oneof![6 => Just(String::new()), 1 => re("-[ -~]{0,12}"), 1 => re("[ -~]{1,6}")];
    let pad = prop_oneof![Just(""), Just(" "), Just("\t"), Just(" \t ")];
    let edits = prop_oneof![2 => Just(Vec::new()), 3 => prop::collection::vec(edit(), 1..4)];
    (
        (version, trace_id, span_id, flags, suffix),
        pad.clone(),
        pad,
        edits,
    )
        .prop_map(|((v, t, s, f, x), before, after, edits)| {
            apply(&format!("{before}{v}-{t}-{s}-{f}{x}{after}"), &edits)
        })
}

/// The specification's traceparent rules, written independently of the parser: split on `-`.
fn traceparent_model(value: &str) -> Option<(String, String, u8)> {
    let value = value.trim_matches([' ', '\t']);
    if !value.is_ascii() {
        return None;
    }
    let fields: Vec<&str> = value.split('-').collect();
    if fields.len() < 4 {
        return None;
    }
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let (version, trace_id, span_id, flags) = (fields[0], fields[1], fields[2], fields[3]);
    if !(hex(version, 2) && hex(trace_id, 32) && hex(span_id, 16) && hex(flags, 2)) {
        return None;
    }
    if version == "ff" || (version == "00" && fields.len() != 4) {
        return None;
    }
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    if zero(trace_id) || zero(span_id) {
        return None;
    }
    Some((
        trace_id.to_owned(),
        span_id.to_owned(),
        u8::from_str_radix(flags, 16).ok()?,
    ))
}

/// A span context of this process (a span inferd made).
fn span_context(trace_id: u128, span_id: u64, flags: u8, state: TraceState) -> SpanContext {
    SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        TraceFlags::new(flags),
        false,
        state,
    )
}

/// A span context received from another process.
fn remote_span_context(trace_id: u128, span_id: u64, flags: u8, state: TraceState) -> SpanContext {
    SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        TraceFlags::new(flags),
        true,
        state,
    )
}

// ---------------------------------------------------------------------------------------------
// tracestate

/// A tracestate key from the simple grammar `[a-z][a-z0-9_\-*/]{0,255}`, short or long.
fn simple_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => re("[a-z][a-z0-9_*/-]{0,8}"),
        1 => long_text(LOWER, KEY_CHARS, 240..=256),
    ]
}

/// A value the specification accepts: printable ASCII but `,` and `=`, not ending in a space.
fn valid_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => re(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,12}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"),
        1 => long_text(VALUE_CHARS, VALUE_CHARS, 250..=256)
            .prop_map(|v| {
                let v = v.trim_end();
                format!("{}~", &v[..v.len().min(255)])
            }),
    ]
}

/// Any key, valid or not: simple, the older grammar's `tenant@system` with both parts around
/// that grammar's length limits, `@` anywhere (several, first, last), upper case, over-long,
/// unicode and control characters.
fn any_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => simple_key(),
        3 => re("[a-z0-9][a-z0-9_*/-]{0,12}@[a-z][a-z0-9_*/-]{0,15}"),
        1 => (long_text(KEY_CHARS, KEY_CHARS, 238..=243), re("[a-z][a-z0-9_*/-]{0,3}"))
            .prop_map(|(t, s)| format!("{t}@{s}")),
        2 => re("[a-z0-9@_-][a-z0-9_*/@-]{0,16}"),
        1 => long_text(KEY_CHARS, KEY_CHARS_AT, 254..=258),
        1 => re("[a-z0-9@]{0,8}"),
        1 => re("[a-zA-Z0-9_*/@ -]{1,8}"),
        1 => long_text(LOWER, LOWER, 255..=258),
        1 => re("\\PC{0,6}"),
        1 => re("[\\x00-\\x1f\\x7f]{1,3}"),
    ]
}

fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => valid_value(),
        1 => Just(String::new()),
        1 => re("[ -~]{0,6} "),
        1 => long_text(VALUE_CHARS, b" -~,=", 255..=258),
        1 => re("\\PC{1,6}"),
        1 => re("[\\x00-\\x1f\\x7f]{1,3}"),
    ]
}

/// One list member: `key=value`, or something that is not a member at all.
fn tracestate_member() -> impl Strategy<Value = String> {
    let ows = prop_oneof![Just(""), Just(" "), Just("\t"), Just(" \t")];
    prop_oneof![
        8 => (ows.clone(), any_key(), any_value(), ows)
            .prop_map(|(a, k, v, b)| format!("{a}{k}={v}{b}")),
        1 => Just(String::new()),
        1 => re("[ -~]{0,10}"),
        1 => (any_key(), any_value(), any_value()).prop_map(|(k, v, w)| format!("{k}={v}={w}")),
    ]
}

/// A key the Level 2 grammar accepts: simple, with `@` anywhere after the first character,
/// up to the 256-character limit.
fn valid_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => simple_key(),
        3 => re("[a-z0-9][a-z0-9_*/@-]{0,16}"),
        1 => long_text(b"abcdefghijklmnopqrstuvwxyz0123456789", KEY_CHARS_AT, 250..=256),
    ]
}

/// 1 to 3 tracestate header values of up to 19 members each (some duplicates): half the
/// time any members, half the time only valid ones and empty ones, around the 32 limit.
fn tracestate_headers() -> impl Strategy<Value = Vec<String>> {
    // A duplicate of an earlier key gets the same key from a tiny alphabet.
    let duplicate = || re("[ab]=[xy]");
    let member = prop_oneof![6 => tracestate_member(), 1 => duplicate()];
    let ows = prop_oneof![Just(""), Just(" "), Just("\t"), Just(" \t")];
    let valid = prop_oneof![
        8 => (ows.clone(), valid_key(), valid_value(), ows.clone())
            .prop_map(|(a, k, v, b)| format!("{a}{k}={v}{b}")),
        1 => duplicate(),
        1 => ows.prop_map(str::to_owned),
    ];
    let headers = |member: BoxedStrategy<String>| {
        prop::collection::vec(prop::collection::vec(member, 0..20), 1..4)
            .prop_map(|headers| headers.into_iter().map(|m| m.join(",")).collect())
    };
    prop_oneof![headers(member.boxed()), headers(valid.boxed())]
}

/// The list the header values make when every non-empty member passes the parser's own key
/// and value rules and there are at most 32 of them, first member of each key: what
/// `parse_tracestate` must return whatever the key grammar is. Anything else: no list.
fn tracestate_model(values: &[&str]) -> String {
    let mut members: Vec<(&str, &str)> = Vec::new();
    let mut count = 0;
    for member in values.iter().flat_map(|v| v.split(',')) {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        count += 1;
        let Some((key, value)) = member.split_once('=') else {
            return String::new();
        };
        if !valid_tracestate_key(key) || !valid_tracestate_value(value) {
            return String::new();
        }
        if !members.iter().any(|(k, _)| *k == key) {
            members.push((key, value));
        }
    }
    if count > MAX_TRACESTATE_MEMBERS {
        return String::new();
    }
    members
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// 1 to 32 members with distinct simple keys and valid values.
fn simple_tracestate() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::btree_map(simple_key(), valid_value(), 1..=32).prop_flat_map(|map| {
        let members: Vec<(String, String)> = map.into_iter().collect();
        Just(members).prop_shuffle()
    })
}

fn member_count(header: &str) -> usize {
    if header.is_empty() {
        0
    } else {
        header.split(',').count()
    }
}

// ---------------------------------------------------------------------------------------------
// baggage

/// An RFC 7230 token, the baggage key grammar.
fn token() -> impl Strategy<Value = String> {
    re("[!#$%&'*+.^_`|~0-9A-Za-z-]{1,16}")
}

/// A baggage value: any text, with the characters the baggage grammar reserves, escapes and
/// surrounding whitespace more often than chance would give them.
fn baggage_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => re("(?s).{0,16}"),
        1 => re("[a-zA-Z0-9 ,;=\"%\\\\]{0,16}"),
        1 => re("\\s[a-z%]{1,4}\\s"),
        1 => re("%[0-9a-fA-F]{2}"),
    ]
}

fn baggage_metadata() -> impl Strategy<Value = String> {
    prop_oneof![3 => Just(String::new()), 1 => re("[a-z0-9=;]{1,8}")]
}

/// Percent-encodes every byte of `text`, in upper or lower case hex.
fn encode_all(text: &str, upper: bool) -> String {
    text.bytes()
        .map(|b| {
            if upper {
                format!("%{b:02X}")
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

/// A baggage member as a client might send it: valid, with an encoded value, or broken.
fn baggage_member() -> impl Strategy<Value = String> {
    let ows = prop_oneof![Just(""), Just(" "), Just("\t")];
    prop_oneof![
        6 => (ows.clone(), token(), re("[a-zA-Z0-9]{0,20}"), baggage_metadata(), ows)
            .prop_map(|(a, k, v, m, b)| {
                let m = if m.is_empty() { m } else { format!(";{m}") };
                format!("{a}{k}={v}{m}{b}")
            }),
        2 => (token(), long_text(LOWER, LOWER, 300..=400)).prop_map(|(k, v)| format!("{k}={v}")),
        2 => (token(), re("\\PC{0,6}"), any::<bool>())
            .prop_map(|(k, v, upper)| format!("{k}={}", encode_all(&v, upper))),
        2 => re("[ -~]{0,16}"),
        1 => (token(), re("[%0-9a-fA-F+g-]{1,6}")).prop_map(|(k, v)| format!("{k}={v}")),
    ]
}

/// Up to 3 baggage header values of up to 80 members in all.
fn baggage_headers() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop::collection::vec(baggage_member(), 0..40), 0..3)
        .prop_map(|headers| headers.into_iter().map(|m| m.join(",")).collect())
}

/// 0 to 100 valid members with distinct keys, some long enough to reach 8192 bytes.
fn valid_baggage_members() -> impl Strategy<Value = Vec<String>> {
    let value = prop_oneof![4 => re("[a-zA-Z0-9]{0,8}"), 1 => long_text(LOWER, LOWER, 200..=600)];
    prop::collection::btree_map(token(), value, 0..100).prop_flat_map(|map| {
        let members: Vec<String> = map.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        Just(members).prop_shuffle()
    })
}

fn baggage_entries(cx: &Context) -> BTreeMap<String, (String, String)> {
    cx.baggage()
        .iter()
        .map(|(k, (v, m))| {
            (
                k.as_str().to_owned(),
                (v.as_str().to_owned(), m.as_str().to_owned()),
            )
        })
        .collect()
}

/// What may follow a `%` that is not two hex digits: nothing, one character, or two of which
/// one is not a hex digit (a sign, a space, a letter past `f`, a multi-byte character).
fn bad_escape() -> BoxedStrategy<String> {
    let any = prop::sample::select(vec![
        '0', '9', 'a', 'f', 'A', 'F', '+', '-', ' ', 'g', '%', 'é',
    ]);
    let non_hex = prop::sample::select(vec!['+', '-', ' ', 'g', 'G', '%', 'é', '\0']);
    prop_oneof![
        Just(String::new()),
        any.clone().prop_map(String::from),
        (non_hex.clone(), any.clone()).prop_map(|(a, b)| format!("{a}{b}")),
        (any, non_hex).prop_map(|(a, b)| format!("{a}{b}")),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn traceparent_parser_agrees_with_the_specification_on_mutated_input(
        text in traceparent_text(),
    ) {
        let parsed = parse_traceparent(&text)
            .map(|(t, s, f)| (t.to_string(), s.to_string(), f));
        prop_assert_eq!(parsed, traceparent_model(&text), "input {:?}", text);
    }

    #[test]
    fn traceparent_parser_never_panics_on_arbitrary_text(text in re("\\PC{0,80}|[ -~]{50,60}")) {
        let parsed = parse_traceparent(&text);
        prop_assert_eq!(
            parsed.map(|(t, s, f)| (t.to_string(), s.to_string(), f)),
            traceparent_model(&text)
        );
    }

    #[test]
    fn formatted_traceparent_parses_back_to_the_same_ids_and_known_flags(
        trace_id in 1..=u128::MAX,
        span_id in 1..=u64::MAX,
        flags in any::<u8>(),
    ) {
        let sc = span_context(trace_id, span_id, flags, TraceState::default());
        let text = format_traceparent(&sc);
        prop_assert_eq!(text.len(), 55);
        let (t, s, f) = parse_traceparent(&text)
            .ok_or_else(|| TestCaseError::fail(format!("{text} rejected")))?;
        prop_assert_eq!(t, sc.trace_id());
        prop_assert_eq!(s, sc.span_id());
        prop_assert_eq!(f, flags & KNOWN_FLAGS);
    }

    #[test]
    fn tracestate_keeps_only_valid_first_members_in_order_and_never_more_than_32(
        values in tracestate_headers(),
    ) {
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let header = parse_tracestate(&refs).header();
        let kept: Vec<&str> = header.split(',').filter(|m| !m.is_empty()).collect();
        prop_assert!(kept.len() <= MAX_TRACESTATE_MEMBERS, "{} members", kept.len());
        // Every kept member is one the key and value rules accept, the first of its key, in
        // the order sent: a subsequence of the model's list.
        let model = tracestate_model(&refs);
        let mut allowed = model.split(',');
        for member in &kept {
            prop_assert!(allowed.any(|m| m == *member), "{:?} kept from {:?}", member, values);
        }
        // What is kept re-parses to itself.
        prop_assert_eq!(parse_tracestate(&[header.as_str()]).header(), header);
    }

    #[test]
    fn tracestate_keeps_exactly_the_valid_first_members_and_never_more_than_32(
        values in tracestate_headers(),
    ) {
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let header = parse_tracestate(&refs).header();
        let count = member_count(&header);
        prop_assert!(count <= MAX_TRACESTATE_MEMBERS, "{} members", count);
        prop_assert_eq!(&header, &tracestate_model(&refs), "input {:?}", values);
        // What is kept re-parses to itself.
        prop_assert_eq!(parse_tracestate(&[header.as_str()]).header(), header);
    }

    #[test]
    fn tracestate_key_rule_is_the_level_2_grammar(key in any_key()) {
        // key = ( lcalpha / DIGIT ) 0*255 ( lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@" )
        let first = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let rest = |c: char| first(c) || "_-*/@".contains(c);
        let mut chars = key.chars();
        let expected =
            key.chars().count() <= 256 && chars.next().is_some_and(first) && chars.all(rest);
        prop_assert_eq!(valid_tracestate_key(&key), expected, "{:?}", key);
    }

    #[test]
    fn tracestate_of_simple_keys_and_valid_values_round_trips(
        members in simple_tracestate(),
        sep in prop::sample::select(vec![",", ", ", " ,\t", ",,"]),
    ) {
        let text = members
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(sep);
        let expected = members
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        prop_assert_eq!(parse_tracestate(&[text.as_str()]).header(), expected);
    }

    #[test]
    fn injected_context_is_extracted_unchanged(
        trace_id in 1..=u128::MAX,
        span_id in 1..=u64::MAX,
        flags in any::<u8>(),
        state in prop::option::of(simple_tracestate()),
        baggage in prop::collection::btree_map(
            token(),
            (baggage_value(), baggage_metadata()),
            0..8,
        ),
    ) {
        let state = TraceState::from_key_value(state.unwrap_or_default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut bag = Baggage::new();
        for (k, (v, m)) in &baggage {
            bag.insert_with_metadata(k.clone(), v.clone(), m.as_str());
        }
        // A parent passed on as it came, without a span of inferd's own.
        let sent = remote_span_context(trace_id, span_id, flags, state);
        let cx = Context::new()
            .with_remote_span_context(sent.clone())
            .with_baggage(bag);
        let p = all();
        let mut headers = HeaderMap::new();
        p.inject_headers(&cx, &mut headers);
        let back = p.extract_headers(&headers);
        let got = back.span().span_context().clone();
        prop_assert!(got.is_valid() && got.is_remote());
        prop_assert_eq!(got.trace_id(), sent.trace_id());
        prop_assert_eq!(got.span_id(), sent.span_id());
        prop_assert_eq!(got.trace_flags().to_u8(), flags & KNOWN_FLAGS);
        prop_assert_eq!(got.trace_state().header(), sent.trace_state().header());
        prop_assert_eq!(baggage_entries(&back), baggage_entries(&cx), "headers {:?}", headers);
    }

    #[test]
    fn a_span_of_a_trace_inferd_started_goes_out_with_the_random_flag(
        trace_id in 1..=u128::MAX,
        span_id in 1..=u64::MAX,
        flags in any::<u8>(),
    ) {
        let mine = span_context(trace_id, span_id, flags, TraceState::default());
        let mut headers = HeaderMap::new();
        all().inject_headers(&Context::new().with_remote_span_context(mine), &mut headers);
        let got = all().extract_headers(&headers).span().span_context().clone();
        prop_assert_eq!(got.trace_flags().to_u8(), (flags & KNOWN_FLAGS) | RANDOM);
    }

    #[test]
    fn a_span_continuing_the_callers_trace_keeps_its_flags_but_sampled(
        trace_id in 1..=u128::MAX,
        received in any::<u8>(),
        own in any::<u8>(),
        span_id in 1..=u64::MAX,
    ) {
        let caller = format_traceparent(&remote_span_context(
            trace_id,
            0x1234,
            received,
            TraceState::default(),
        ));
        let p = all();
        let parent = p.extract_headers(&header_map(&[(TRACEPARENT, caller)]));
        // Whatever flags the SDK gave inferd's span: the random flag of a span it did not
        // sample is lost there.
        let mine = span_context(trace_id, span_id, own, TraceState::default());
        let mut headers = HeaderMap::new();
        p.inject_headers(&parent.with_remote_span_context(mine), &mut headers);
        let got = p.extract_headers(&headers).span().span_context().clone();
        prop_assert_eq!(got.span_id(), SpanId::from(span_id));
        prop_assert_eq!(
            got.trace_flags().to_u8(),
            (own & SAMPLED) | (received & KNOWN_FLAGS & !SAMPLED)
        );
    }

    #[test]
    fn injected_baggage_with_percent_or_backslash_is_extracted_unchanged(
        baggage in prop::collection::btree_map(token(), re("[%\\\\a-f0-9]{1,6}"), 1..4),
    ) {
        let mut bag = Baggage::new();
        for (k, v) in &baggage {
            bag.insert(k.clone(), v.clone());
        }
        let cx = Context::new().with_baggage(bag);
        let p = all();
        let mut headers = HeaderMap::new();
        p.inject_headers(&cx, &mut headers);
        let back: BTreeMap<String, String> = baggage_entries(&p.extract_headers(&headers))
            .into_iter()
            .map(|(k, (v, _))| (k, v))
            .collect();
        prop_assert_eq!(back, baggage, "headers {:?}", headers);
    }

    #[test]
    fn extracting_arbitrary_headers_never_panics_and_keeps_the_limits(
        traceparents in prop::collection::vec(traceparent_text(), 0..3),
        tracestates in prop::collection::vec(tracestate_headers(), 0..2),
        baggages in baggage_headers(),
    ) {
        let mut pairs: Vec<(&'static str, String)> = Vec::new();
        pairs.extend(traceparents.iter().map(|v| (TRACEPARENT, v.clone())));
        pairs.extend(tracestates.into_iter().flatten().map(|v| (TRACESTATE, v)));
        pairs.extend(baggages.into_iter().map(|v| (BAGGAGE, v)));
        let headers = header_map(&pairs);
        let cx = all().extract_headers(&headers);
        let sc = cx.span().span_context().clone();

        // A parent only from exactly one traceparent that the specification accepts; a value
        // that is not visible ASCII counts as a header, and is invalid.
        let text = |name: &str| -> Vec<&str> {
            headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap_or("\u{fffd}"))
                .collect()
        };
        let sent = text(TRACEPARENT);
        let expected = match sent.as_slice() {
            [one] => traceparent_model(one),
            _ => None,
        };
        prop_assert_eq!(
            sc.is_valid().then(|| (sc.trace_id().to_string(), sc.span_id().to_string())),
            expected.as_ref().map(|(t, s, _)| (t.clone(), s.clone()))
        );
        prop_assert!(member_count(&sc.trace_state().header()) <= MAX_TRACESTATE_MEMBERS);
        // What goes on to the next hop: the whole valid list, or none.
        let mut onward = HeaderMap::new();
        all().inject_headers(&cx, &mut onward);
        let onward_state = onward
            .get(TRACESTATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let expected_state = if expected.is_some() {
            tracestate_model(&text(TRACESTATE))
        } else {
            String::new()
        };
        prop_assert_eq!(onward_state, expected_state.as_str());

        // Baggage: within the limits, and every entry is a whole member that was sent.
        let members: Vec<(String, String, String)> = headers
            .get_all(BAGGAGE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|m| parse_baggage_member(m.trim()))
            .collect();
        let entries = baggage_entries(&cx);
        prop_assert!(entries.len() <= MAX_BAGGAGE_ENTRIES);
        let bytes: usize = entries.iter().map(|(k, (v, m))| k.len() + v.len() + m.len()).sum();
        prop_assert!(bytes <= MAX_BAGGAGE_BYTES, "{} bytes", bytes);
        for (k, (v, m)) in &entries {
            prop_assert!(
                members.iter().any(|(mk, mv, mm)| mk == k && mv == v && mm == m),
                "{}={};{} was not sent", k, v, m
            );
        }
    }

    #[test]
    fn two_traceparent_headers_never_give_a_parent_even_when_one_is_not_ascii(
        trace_id in 1..=u128::MAX,
        span_id in 1..=u64::MAX,
        junk in prop::collection::vec(0x80u8..=0xff, 1..8),
        junk_first in any::<bool>(),
    ) {
        let valid = format_traceparent(&span_context(trace_id, span_id, 1, TraceState::default()));
        let valid = HeaderValue::from_str(&valid).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let junk = HeaderValue::from_bytes(&junk).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut headers = HeaderMap::new();
        let (first, second) = if junk_first { (junk, valid) } else { (valid, junk) };
        headers.append(TRACEPARENT, first);
        headers.append(TRACEPARENT, second);
        let cx = all().extract_headers(&headers);
        prop_assert!(!cx.span().span_context().is_valid(), "headers {:?}", headers);
    }

    #[test]
    fn baggage_keeps_the_longest_prefix_within_64_entries_and_8192_bytes(
        members in valid_baggage_members(),
    ) {
        let headers = header_map(&[(BAGGAGE, members.join(","))]);
        let got: Vec<String> = baggage_entries(&all().extract_headers(&headers))
            .into_keys()
            .collect();
        let mut expected = Vec::new();
        let mut bytes = 0;
        for member in &members {
            if expected.len() == MAX_BAGGAGE_ENTRIES || bytes + member.len() > MAX_BAGGAGE_BYTES {
                break;
            }
            bytes += member.len();
            expected.push(member.split_once('=').map(|(k, _)| k.to_owned()).unwrap_or_default());
        }
        expected.sort();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn baggage_member_parser_accepts_only_token_keys_and_decodes_values(
        member in prop_oneof![
            3 => baggage_member(),
            1 => re("\\PC{0,20}"),
            1 => re("[\\x00-\\x7f]{0,20}"),
        ],
    ) {
        if let Some((key, value, metadata)) = parse_baggage_member(&member) {
            let token_byte = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            prop_assert!(
                !key.is_empty() && key.bytes().all(token_byte),
                "key {:?} of {:?}", key, member
            );
            prop_assert_eq!(metadata.trim(), metadata.as_str());
            // The raw value was all baggage octets; it decodes to what was encoded.
            let raw = member.split_once(';').map_or(member.as_str(), |(p, _)| p);
            let raw = raw.split_once('=').map(|(_, v)| v.trim()).unwrap_or_default();
            prop_assert_eq!(percent_decode(raw), Some(value));
        }
    }

    #[test]
    fn percent_decoding_inverts_percent_encoding(
        text in re("\\PC{0,40}|[\\x00-\\x7f]{0,20}"),
        upper in any::<bool>(),
    ) {
        prop_assert_eq!(percent_decode(&encode_all(&text, upper)), Some(text.clone()));
        if !text.contains('%') {
            prop_assert_eq!(percent_decode(&text), Some(text.clone()));
        }
    }

    #[test]
    fn percent_decoding_rejects_a_percent_not_followed_by_two_hex_digits(
        before in re("[a-z]{0,4}"),
        escape in bad_escape(),
        after in re("[a-z]{0,4}"),
    ) {
        // `after` could complete a one-character escape; keep it from doing so.
        let after = if escape.chars().count() < 2 { "" } else { after.as_str() };
        let text = format!("{before}%{escape}{after}");
        prop_assert_eq!(percent_decode(&text), None, "{:?}", text);
    }
}
