//! The `tracestate` header as W3C Trace Context Level 2 defines it: one list of up to 32
//! `key=value` members over all the header lines, dropped whole when any member is malformed.
//! opentelemetry's `TraceState` checks keys against the older `tenant@system` grammar, so it
//! cannot hold every valid list; the list as received is then kept beside it.

use opentelemetry::trace::TraceState;

/// Most list members a tracestate may have; a list with more is dropped whole.
pub(super) const MAX_TRACESTATE_MEMBERS: usize = 32;
/// Longest key and longest value, in characters.
const MAX_KEY_LEN: usize = 256;
const MAX_VALUE_LEN: usize = 256;

/// A tracestate list that passed the Level 2 rules: empty members and OWS removed, the first
/// member of each key kept. Empty when the header was absent or dropped.
#[derive(Debug, Default)]
pub(super) struct ReceivedTraceState {
    /// The members opentelemetry's `TraceState` accepts, in order: what the span contexts of
    /// the trace carry.
    view: TraceState,
    /// The whole list, `,`-joined, when `view` misses some of its members.
    full: Option<String>,
}

impl ReceivedTraceState {
    /// The whole list as a header value (empty when there is none).
    #[cfg(test)]
    pub(super) fn header(&self) -> String {
        match &self.full {
            Some(full) => full.clone(),
            None => self.view.header(),
        }
    }

    /// Splits into the view and, when the view misses members, the whole list.
    pub(super) fn into_parts(self) -> (TraceState, Option<String>) {
        (self.view, self.full)
    }
}

/// Joins repeated tracestate header values into one list (RFC 9110 field order) and checks it:
/// one malformed member, or more than 32 members, drops the whole list; empty members are
/// allowed; of duplicated keys the first member is kept.
pub(super) fn parse_tracestate(values: &[&str]) -> ReceivedTraceState {
    let mut members: Vec<(&str, &str)> = Vec::new();
    let mut count = 0;
    for member in values.iter().flat_map(|v| v.split(',')) {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        count += 1;
        let Some((key, value)) = member.split_once('=') else {
            return ReceivedTraceState::default();
        };
        if count > MAX_TRACESTATE_MEMBERS
            || !valid_tracestate_key(key)
            || !valid_tracestate_value(value)
        {
            return ReceivedTraceState::default();
        }
        if !members.iter().any(|(k, _)| *k == key) {
            members.push((key, value));
        }
    }
    if let Ok(view) = TraceState::from_key_value(members.iter().copied()) {
        return ReceivedTraceState { view, full: None };
    }
    // Some keys are valid at Level 2 only (`a@b@c`, a part after `@` longer than 13 characters
    // or not starting with a letter or digit): the view holds the others.
    let held = members
        .iter()
        .filter(|member| TraceState::from_key_value([**member]).is_ok());
    let full = members
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    ReceivedTraceState {
        view: TraceState::from_key_value(held.copied()).unwrap_or_default(),
        full: Some(full),
    }
}

/// A key character after the first: `a-z 0-9 _ - * / @`.
fn key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
}

/// `key = ( lcalpha / DIGIT ) 0*255 ( keychar )`: `@` is an ordinary key character at Level 2.
pub(super) fn valid_tracestate_key(key: &str) -> bool {
    let b = key.as_bytes();
    (1..=MAX_KEY_LEN).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| key_char(c))
}

/// `value = 0*255(chr) nblk-chr`: printable ASCII but `,` and `=`, not ending in a space.
pub(super) fn valid_tracestate_value(value: &str) -> bool {
    let b = value.as_bytes();
    (1..=MAX_VALUE_LEN).contains(&b.len())
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && b.last().is_some_and(|&c| c != b' ')
}
