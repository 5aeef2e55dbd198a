//! The W3C Trace Context test suite (github.com/w3c/trace-context, `test/test.py`) at
//! `SPEC_LEVEL=2` and `STRICT_LEVEL=2`, case by case, each test named as the suite names it.
//!
//! The suite sends a request to a service and reads the `traceparent` and `tracestate` of the
//! call the service makes onward. Here the service is inferd's propagation with its sampler:
//! the caller's headers are extracted, a SERVER span continues them, a CLIENT span inside it
//! injects its context, and that is read back with the suite's own checks: exactly one
//! `traceparent` in the suite's format, every `tracestate` member in the suite's grammar.

use http::HeaderMap;

use super::tests::{header, headers, relay_with, tracer};
use super::{TRACEPARENT, TRACESTATE};

const TRACE_ID: &str = "12345678901234567890123456789012";
const PARENT_ID: &str = "1234567890123456";

/// An outgoing `traceparent` as the suite reads it.
#[derive(Debug)]
struct Traceparent {
    trace_id: String,
    parent_id: String,
    trace_flags: u8,
}

/// An outgoing `tracestate` as the suite reads it: members in order, first of each key.
#[derive(Debug, Default)]
struct Tracestate(Vec<(String, String)>);

impl Tracestate {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn text(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The suite's `get_traceparent`: exactly one header, `version-trace_id-parent_id-flags`.
fn get_traceparent(sent: &HeaderMap) -> Traceparent {
    let values: Vec<_> = sent.get_all(TRACEPARENT).iter().collect();
    assert_eq!(values.len(), 1, "expect one traceparent header: {sent:?}");
    let Ok(value) = values[0].to_str() else {
        panic!("traceparent is not ASCII: {sent:?}")
    };
    let fields: Vec<&str> = value.split('-').collect();
    let [version, trace_id, parent_id, flags] = fields.as_slice() else {
        panic!("traceparent {value:?} is not four fields")
    };
    assert!(lower_hex(version, 2) && *version != "ff", "{value}");
    assert!(
        lower_hex(trace_id, 32) && *trace_id != "0".repeat(32),
        "{value}"
    );
    assert!(
        lower_hex(parent_id, 16) && *parent_id != "0".repeat(16),
        "{value}"
    );
    assert!(lower_hex(flags, 2), "{value}");
    Traceparent {
        trace_id: (*trace_id).to_owned(),
        parent_id: (*parent_id).to_owned(),
        trace_flags: u8::from_str_radix(flags, 16).unwrap_or_default(),
    }
}

/// The suite's key grammar: `[0-9a-z][_0-9a-z\-\*\/@]{0,255}`.
fn suite_key(key: &str) -> bool {
    let b = key.as_bytes();
    (1..=256).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-*/@".contains(&c))
}

/// The suite's value grammar: `[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]`.
fn suite_value(value: &str) -> bool {
    let chr = |c: u8| matches!(c, 0x20..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e);
    let b = value.as_bytes();
    (1..=256).contains(&b.len()) && b.iter().all(|&c| chr(c)) && b[b.len() - 1] != b' '
}

/// The suite's `get_tracestate`: every header split on OWS-padded commas; a member that is
/// not `key=value` in the suite's grammar fails the test.
fn get_tracestate(sent: &HeaderMap) -> Tracestate {
    let mut state = Tracestate::default();
    for value in sent.get_all(TRACESTATE) {
        let Ok(value) = value.to_str() else {
            panic!("tracestate is not ASCII: {sent:?}")
        };
        for member in value.split(',') {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            let Some((key, value)) = member.split_once('=') else {
                panic!("illegal key-value format {member:?}")
            };
            assert!(
                suite_key(key) && suite_value(value),
                "illegal key-value format {member:?}"
            );
            if state.get(key).is_none() {
                state.0.push((key.to_owned(), value.to_owned()));
            }
        }
    }
    state
}

/// Sends `pairs` (header name, value) to the service; the onward calls' headers.
fn make_request(pairs: &[(&str, &str)], count: usize) -> Vec<HeaderMap> {
    let sent = relay_with(&tracer(1.0), &headers(pairs), count);
    assert_eq!(sent.len(), count);
    sent
}

fn make_single_request_and_get_tracecontext(pairs: &[(&str, &str)]) -> (Traceparent, Tracestate) {
    let sent = make_request(pairs, 1);
    (get_traceparent(&sent[0]), get_tracestate(&sent[0]))
}

/// The trace id of the onward call for a request with only `traceparent: value`.
fn trace_id_for(traceparent: &str) -> String {
    make_single_request_and_get_tracecontext(&[("traceparent", traceparent)])
        .0
        .trace_id
}

/// A request with a valid, unsampled traceparent and `tracestate` headers with `values`.
fn with_tracestate(values: &[&str]) -> (Traceparent, Tracestate) {
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-00");
    let mut pairs = vec![("traceparent", traceparent.as_str())];
    pairs.extend(values.iter().map(|v| ("tracestate", *v)));
    make_single_request_and_get_tracecontext(&pairs)
}

mod trace_context_test {
    use super::*;

    #[test]
    fn test_both_traceparent_and_tracestate_missing() {
        make_single_request_and_get_tracecontext(&[]);
    }

    #[test]
    fn test_traceparent_included_tracestate_missing() {
        let (traceparent, _) = make_single_request_and_get_tracecontext(&[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-01",
        )]);
        assert_eq!(traceparent.trace_id, TRACE_ID);
        assert_ne!(traceparent.parent_id, PARENT_ID);
    }

    #[test]
    fn test_traceparent_duplicated() {
        let (traceparent, _) = make_single_request_and_get_tracecontext(&[
            (
                "traceparent",
                "00-12345678901234567890123456789011-1234567890123456-01",
            ),
            (
                "traceparent",
                "00-12345678901234567890123456789012-1234567890123456-01",
            ),
        ]);
        assert_ne!(traceparent.trace_id, "12345678901234567890123456789011");
        assert_ne!(traceparent.trace_id, TRACE_ID);
    }

    #[test]
    fn test_traceparent_header_name() {
        for name in ["trace-parent", "trace.parent"] {
            let (traceparent, _) = make_single_request_and_get_tracecontext(&[(
                name,
                "00-12345678901234567890123456789012-1234567890123456-01",
            )]);
            assert_ne!(traceparent.trace_id, TRACE_ID, "{name}");
        }
    }

    #[test]
    fn test_traceparent_header_name_valid_casing() {
        for name in ["TraceParent", "TrAcEpArEnT", "TRACEPARENT"] {
            let (traceparent, _) = make_single_request_and_get_tracecontext(&[(
                name,
                "00-12345678901234567890123456789012-1234567890123456-01",
            )]);
            assert_eq!(traceparent.trace_id, TRACE_ID, "{name}");
        }
    }

    #[test]
    fn test_traceparent_version_0x00() {
        for value in [
            "00-12345678901234567890123456789012-1234567890123456-01.",
            "00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
        ] {
            assert_ne!(trace_id_for(value), TRACE_ID, "{value}");
        }
    }

    #[test]
    fn test_traceparent_version_0xcc() {
        for value in [
            "cc-12345678901234567890123456789012-1234567890123456-01",
            "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
        ] {
            assert_eq!(trace_id_for(value), TRACE_ID, "{value}");
        }
        let value =
            "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like";
        assert_ne!(trace_id_for(value), TRACE_ID);
    }

    #[test]
    fn test_traceparent_version_0xff() {
        let value = "ff-12345678901234567890123456789012-1234567890123456-01";
        assert_ne!(trace_id_for(value), TRACE_ID);
    }

    #[test]
    fn test_traceparent_version_illegal_characters() {
        for value in [
            ".0-12345678901234567890123456789012-1234567890123456-01",
            "0.-12345678901234567890123456789012-1234567890123456-01",
        ] {
            assert_ne!(trace_id_for(value), TRACE_ID, "{value}");
        }
    }

    #[test]
    fn test_traceparent_version_too_long() {
        for value in [
            "000-12345678901234567890123456789012-1234567890123456-01",
            "0000-12345678901234567890123456789012-1234567890123456-01",
        ] {
            assert_ne!(trace_id_for(value), TRACE_ID, "{value}");
        }
    }

    #[test]
    fn test_traceparent_version_too_short() {
        let value = "0-12345678901234567890123456789012-1234567890123456-01";
        assert_ne!(trace_id_for(value), TRACE_ID);
    }

    #[test]
    fn test_traceparent_trace_id_all_zero() {
        let value = "00-00000000000000000000000000000000-1234567890123456-01";
        assert_ne!(trace_id_for(value), "00000000000000000000000000000000");
    }

    #[test]
    fn test_traceparent_trace_id_illegal_characters() {
        for (value, id) in [
            (
                "00-.2345678901234567890123456789012-1234567890123456-01",
                ".2345678901234567890123456789012",
            ),
            (
                "00-1234567890123456789012345678901.-1234567890123456-01",
                "1234567890123456789012345678901.",
            ),
        ] {
            assert_ne!(trace_id_for(value), id);
        }
    }

    #[test]
    fn test_traceparent_trace_id_too_long() {
        let trace_id = trace_id_for("00-123456789012345678901234567890123-1234567890123456-01");
        assert_ne!(trace_id, "123456789012345678901234567890123");
        assert_ne!(trace_id, TRACE_ID);
        assert_ne!(trace_id, "23456789012345678901234567890123");
    }

    #[test]
    fn test_traceparent_trace_id_too_short() {
        let value = "00-1234567890123456789012345678901-1234567890123456-01";
        assert_ne!(trace_id_for(value), "1234567890123456789012345678901");
    }

    #[test]
    fn test_traceparent_parent_id_all_zero() {
        let value = "00-12345678901234567890123456789012-0000000000000000-01";
        assert_ne!(trace_id_for(value), TRACE_ID);
    }

    #[test]
    fn test_traceparent_parent_id_illegal_characters() {
        for value in [
            "00-12345678901234567890123456789012-.234567890123456-01",
            "00-12345678901234567890123456789012-123456789012345.-01",
        ] {
            assert_ne!(trace_id_for(value), TRACE_ID, "{value}");
        }
    }

    #[test]
    fn test_traceparent_parent_id_too_long() {
        let value = "00-12345678901234567890123456789012-12345678901234567-01";
        assert_ne!(trace_id_for(value), TRACE_ID);
    }

    #[test]
    fn test_traceparent_parent_id_too_short() {
        let value = "00-12345678901234567890123456789012-123456789012345-01";
        assert_ne!(trace_id_for(value), TRACE_ID);
    }

    #[test]
    fn test_traceparent_trace_flags_illegal_characters() {
        for value in [
            "00-12345678901234567890123456789012-1234567890123456-.0",
            "00-12345678901234567890123456789012-1234567890123456-0.",
        ] {
            assert_ne!(trace_id_for(value), TRACE_ID, "{value}");
        }
    }

    #[test]
    fn test_traceparent_trace_flags_too_long() {
        let value = "00-12345678901234567890123456789012-1234567890123456-001";
        assert_ne!(trace_id_for(value), TRACE_ID);
    }

    #[test]
    fn test_traceparent_trace_flags_too_short() {
        let value = "00-12345678901234567890123456789012-1234567890123456-1";
        assert_ne!(trace_id_for(value), TRACE_ID);
    }

    #[test]
    fn test_traceparent_ows_handling() {
        for value in [
            " 00-12345678901234567890123456789012-1234567890123456-01",
            "\t00-12345678901234567890123456789012-1234567890123456-01",
            "00-12345678901234567890123456789012-1234567890123456-01 ",
            "00-12345678901234567890123456789012-1234567890123456-01\t",
            "\t 00-12345678901234567890123456789012-1234567890123456-01 \t",
        ] {
            assert_eq!(trace_id_for(value), TRACE_ID, "{value:?}");
        }
    }

    #[test]
    fn test_tracestate_included_traceparent_missing() {
        let (_, tracestate1) = make_single_request_and_get_tracecontext(&[("tracestate", "foo=1")]);
        let (_, tracestate2) =
            make_single_request_and_get_tracecontext(&[("tracestate", "foo=1,bar=2")]);
        assert_eq!(tracestate1.len(), tracestate2.len());
        assert_eq!(
            tracestate1.len(),
            0,
            "a tracestate without a traceparent is ignored"
        );
    }

    #[test]
    fn test_tracestate_included_traceparent_included() {
        let (traceparent, tracestate) = with_tracestate(&["foo=1,bar=2"]);
        assert_eq!(traceparent.trace_id, TRACE_ID);
        assert_eq!(tracestate.get("foo"), Some("1"));
        assert_eq!(tracestate.get("bar"), Some("2"));
    }

    #[test]
    fn test_tracestate_header_name() {
        for name in ["trace-state", "trace.state"] {
            let (_, tracestate) = make_single_request_and_get_tracecontext(&[
                (
                    "traceparent",
                    "00-12345678901234567890123456789012-1234567890123456-00",
                ),
                (name, "foo=1"),
            ]);
            assert_eq!(tracestate.get("foo"), None, "{name}");
        }
    }

    #[test]
    fn test_tracestate_header_name_valid_casing() {
        for name in ["TraceState", "TrAcEsTaTe", "TRACESTATE"] {
            let (_, tracestate) = make_single_request_and_get_tracecontext(&[
                (
                    "traceparent",
                    "00-12345678901234567890123456789012-1234567890123456-00",
                ),
                (name, "foo=1"),
            ]);
            assert_eq!(tracestate.get("foo"), Some("1"), "{name}");
        }
    }

    #[test]
    fn test_tracestate_empty_header() {
        let (traceparent, tracestate) = with_tracestate(&[""]);
        assert_eq!(traceparent.trace_id, TRACE_ID);
        assert_eq!(tracestate.len(), 0);

        for values in [["foo=1", ""], ["", "foo=1"]] {
            let (traceparent, tracestate) = with_tracestate(&values);
            assert_eq!(traceparent.trace_id, TRACE_ID);
            assert_eq!(tracestate.get("foo"), Some("1"), "{values:?}");
        }
    }

    #[test]
    fn test_tracestate_multiple_headers_different_keys() {
        let (traceparent, tracestate) =
            with_tracestate(&["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]);
        assert_eq!(traceparent.trace_id, TRACE_ID);
        let text = tracestate.text();
        let at = |member: &str| match text.find(member) {
            Some(at) => at,
            None => panic!("{member} missing from {text}"),
        };
        assert!(at("foo=1") < at("bar=2"));
        assert!(at("bar=2") < at("rojo=1"));
        assert!(at("rojo=1") < at("congo=2"));
        assert!(at("congo=2") < at("baz=3"));
    }

    #[test]
    fn test_tracestate_duplicated_keys() {
        for values in [&["foo=1,foo=1"][..], &["foo=1", "foo=1"]] {
            let (traceparent, tracestate) = with_tracestate(values);
            assert_eq!(traceparent.trace_id, TRACE_ID);
            assert!(tracestate.text().contains("foo=1"), "{values:?}");
        }
        for values in [&["foo=1,foo=2"][..], &["foo=1", "foo=2"]] {
            let (traceparent, tracestate) = with_tracestate(values);
            assert_eq!(traceparent.trace_id, TRACE_ID);
            let text = tracestate.text();
            assert!(
                text.contains("foo=1") || text.contains("foo=2"),
                "{values:?}"
            );
        }
    }

    #[test]
    fn test_tracestate_all_allowed_characters() {
        let key_without_vendor = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let key_with_vendor = format!("{key_without_vendor}@a-z0-9_-*/");
        let value: String = (0x20u8..=0x2b)
            .chain(0x2d..=0x3c)
            .chain(0x3e..=0x7e)
            .map(char::from)
            .collect();
        for key in [key_without_vendor, key_with_vendor.as_str()] {
            let (_, tracestate) = with_tracestate(&[&format!("{key}={value}")]);
            assert_eq!(tracestate.get(key), Some(value.as_str()), "{key}");
        }
    }

    #[test]
    fn test_tracestate_ows_handling() {
        for list in [
            "foo=1 \t , \t bar=2, \t baz=3",
            "foo=1\t \t,\t \tbar=2,\t \tbaz=3",
        ] {
            let (_, tracestate) = with_tracestate(&[list]);
            assert_eq!(tracestate.get("foo"), Some("1"), "{list:?}");
            assert_eq!(tracestate.get("bar"), Some("2"), "{list:?}");
            assert_eq!(tracestate.get("baz"), Some("3"), "{list:?}");
        }
        for list in [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"] {
            let (traceparent, tracestate) = with_tracestate(&[list]);
            assert_eq!(traceparent.trace_id, TRACE_ID);
            assert_eq!(tracestate.get("foo"), Some("1"), "{list:?}");
        }
    }

    #[test]
    fn test_tracestate_key_illegal_characters() {
        for (list, key) in [
            ("foo =1", "foo "),
            ("FOO=1", "FOO"),
            ("foo.bar=1", "foo.bar"),
        ] {
            let (_, tracestate) = with_tracestate(&[list]);
            assert_eq!(tracestate.get(key), None, "{list:?}");
        }
    }

    #[test]
    fn test_tracestate_key_illegal_vendor_format() {
        let (_, tracestate) = with_tracestate(&["foo@=1,bar=2"]);
        assert_eq!(tracestate.get("foo@"), Some("1"));
        assert_eq!(tracestate.get("bar"), Some("2"));

        let (_, tracestate) = with_tracestate(&["@foo=1,bar=2"]);
        assert_eq!(tracestate.get("bar"), None);

        let (_, tracestate) = with_tracestate(&["foo@@bar=1,bar=2"]);
        assert_eq!(tracestate.get("foo@@bar"), Some("1"));
        assert_eq!(tracestate.get("bar"), Some("2"));

        let (_, tracestate) = with_tracestate(&["foo@bar@baz=1,bar=2"]);
        assert_eq!(tracestate.get("foo@bar@baz"), Some("1"));
        assert_eq!(tracestate.get("bar"), Some("2"));
    }

    #[test]
    fn test_tracestate_member_count_limit() {
        let lines = |last: &str| {
            [
                "bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,bar09=09,bar10=10".to_owned(),
                "bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,bar19=19,bar20=20".to_owned(),
                "bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,bar29=29,bar30=30".to_owned(),
                last.to_owned(),
            ]
        };
        let ok = lines("bar31=31,bar32=32");
        let ok: Vec<&str> = ok.iter().map(String::as_str).collect();
        let (_, tracestate) = with_tracestate(&ok);
        assert_eq!(tracestate.get("bar01"), Some("01"));
        assert_eq!(tracestate.len(), 32);

        let too_many = lines("bar31=31,bar32=32,bar33=33");
        let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
        let (_, tracestate) = with_tracestate(&too_many);
        assert_eq!(tracestate.get("bar01"), None);
    }

    #[test]
    fn test_tracestate_key_length_limit() {
        for key in [
            "z".repeat(256),
            format!("{}@{}", "t".repeat(241), "v".repeat(14)),
            format!("{}@v", "t".repeat(242)),
            format!("t@{}", "v".repeat(15)),
        ] {
            let (_, tracestate) = with_tracestate(&["foo=1", &format!("{key}=1")]);
            assert_eq!(tracestate.get("foo"), Some("1"), "{key}");
            assert_eq!(tracestate.get(&key), Some("1"), "{key}");
        }
        let (_, tracestate) = with_tracestate(&["foo=1", &format!("{}=1", "z".repeat(257))]);
        assert_eq!(tracestate.get("foo"), None);
    }

    #[test]
    fn test_tracestate_value_illegal_characters() {
        let (_, tracestate) = with_tracestate(&["foo=bar=baz"]);
        assert_eq!(tracestate.get("foo"), None);

        let (_, tracestate) = with_tracestate(&["foo=,bar=3"]);
        assert_eq!(tracestate.get("foo"), None);
        assert_eq!(tracestate.get("bar"), None);
    }
}

mod advanced_test {
    use std::collections::HashSet;

    use super::*;

    /// The trace ids and parent ids of `count` onward calls for one request.
    fn ids(pairs: &[(&str, &str)], count: usize) -> (HashSet<String>, HashSet<String>) {
        let mut trace_ids = HashSet::new();
        let mut parent_ids = HashSet::new();
        for sent in make_request(pairs, count) {
            let traceparent = get_traceparent(&sent);
            trace_ids.insert(traceparent.trace_id);
            parent_ids.insert(traceparent.parent_id);
        }
        (trace_ids, parent_ids)
    }

    #[test]
    fn test_multiple_requests_with_valid_traceparent() {
        let (trace_ids, parent_ids) = ids(
            &[(
                "traceparent",
                "00-12345678901234567890123456789012-1234567890123456-01",
            )],
            3,
        );
        assert_eq!(trace_ids.len(), 1);
        assert!(trace_ids.contains(TRACE_ID));
        assert_eq!(parent_ids.len(), 3);
    }

    #[test]
    fn test_multiple_requests_without_traceparent() {
        let (_, parent_ids) = ids(&[], 3);
        assert_eq!(parent_ids.len(), 3);
    }

    #[test]
    fn test_multiple_requests_with_illegal_traceparent() {
        let (trace_ids, parent_ids) = ids(
            &[(
                "traceparent",
                "00-00000000000000000000000000000000-1234567890123456-01",
            )],
            3,
        );
        assert!(!trace_ids.contains("00000000000000000000000000000000"));
        assert_eq!(parent_ids.len(), 3);
    }
}

mod trace_context_2_test {
    use super::*;

    /// The suite's `assert_bit_set(value, n)`: bit `n`, counted from 1 at the least
    /// significant.
    fn assert_bit_set(value: u8, n: u32, message: &str) {
        let bit = 1u8 << (n - 1);
        assert_eq!(
            value & bit,
            bit,
            "expected value 0x{value:02x} to have #{n}th bit set but it did not : {message}"
        );
    }

    #[test]
    fn test_propagates_random_flag() {
        let (traceparent, _) = make_single_request_and_get_tracecontext(&[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-02",
        )]);
        assert_eq!(traceparent.trace_id, TRACE_ID);
        assert_ne!(traceparent.parent_id, PARENT_ID);
        assert_bit_set(traceparent.trace_flags, 2, "random flag not set");
    }
}

/// The onward `tracestate` header as sent, for cases where the suite's reading would hide a
/// difference (whitespace, order).
#[test]
fn level_2_keys_go_onward_exactly_as_received() {
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-00");
    let sent = make_request(
        &[
            ("traceparent", &traceparent),
            ("tracestate", "foo@=1, foo@@bar=2"),
            ("tracestate", "\tt@vvvvvvvvvvvvvvv=3,,bar=4 "),
        ],
        1,
    );
    assert_eq!(
        header(&sent[0], TRACESTATE),
        Some("foo@=1,foo@@bar=2,t@vvvvvvvvvvvvvvv=3,bar=4")
    );
}
