//! W3C Trace Context (Level 2) and W3C Baggage propagation, covering what the stock
//! opentelemetry-rust propagators miss: repeated headers, all trace flags, per-entry tracestate
//! validation and entry-wise baggage limits. Malformed input starts a new trace; it never errors.

use std::collections::HashMap;

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::BaggagePropagator;

use crate::config::PropagatorConfig;
use crate::ids::traceparent_bytes;

/// The `traceparent` header.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header.
pub const TRACESTATE: &str = "tracestate";
/// The `baggage` header.
pub const BAGGAGE: &str = "baggage";
/// The Trace Context Level 2 response header.
pub const TRACERESPONSE: &str = "traceresponse";

/// Trace flags inferd understands and forwards: sampled (0x01) and random (0x02). Unknown bits
/// are zeroed as the specification requires.
const KNOWN_FLAGS: u8 = 0x03;
const MAX_TRACESTATE_MEMBERS: usize = 32;
/// W3C Baggage limits: at least this many entries and bytes are kept.
const MAX_BAGGAGE_ENTRIES: usize = 64;
const MAX_BAGGAGE_BYTES: usize = 8192;

/// W3C Trace Context propagator, Level 2.
#[derive(Debug, Default, Clone, Copy)]
pub struct TraceContextPropagator;

impl TextMapPropagator for TraceContextPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        injector.set(TRACEPARENT, format_traceparent(sc));
        let state = sc.trace_state().header();
        if !state.is_empty() {
            injector.set(TRACESTATE, state);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match extract_span_context(extractor) {
            Some(sc) => cx.with_remote_span_context(sc),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(TRACE_CONTEXT_FIELDS.as_slice())
    }
}

static TRACE_CONTEXT_FIELDS: std::sync::LazyLock<[String; 2]> =
    std::sync::LazyLock::new(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned()]);

/// `00-{trace_id}-{span_id}-{flags}` for a span context.
pub fn format_traceparent(sc: &SpanContext) -> String {
    // Only ASCII is ever written.
    String::from_utf8(traceparent(sc).to_vec()).unwrap_or_default()
}

/// [`format_traceparent`] as a header value (a `traceresponse`), without a String between.
pub fn traceparent_header(sc: &SpanContext) -> Option<HeaderValue> {
    HeaderValue::from_bytes(&traceparent(sc)).ok()
}

fn traceparent(sc: &SpanContext) -> [u8; 55] {
    traceparent_bytes(
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8() & KNOWN_FLAGS,
    )
}

fn extract_span_context(extractor: &dyn Extractor) -> Option<SpanContext> {
    // Two traceparent headers make the parent ambiguous: start a new trace.
    let values = extractor.get_all(TRACEPARENT)?;
    let [value] = values.as_slice() else {
        return None;
    };
    let (trace_id, span_id, flags) = parse_traceparent(value)?;
    let state = extractor
        .get_all(TRACESTATE)
        .map(|values| parse_tracestate(&values))
        .unwrap_or_default();
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags & KNOWN_FLAGS),
        true,
        state,
    ))
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses a traceparent value strictly; `None` for anything the specification rejects.
fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, u8)> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    if value.len() < 55 || !value.is_ascii() {
        return None;
    }
    let (version, trace_id, span_id, flags) =
        (&value[0..2], &value[3..35], &value[36..52], &value[53..55]);
    let dashes = [2, 35, 52].iter().all(|&i| value.as_bytes()[i] == b'-');
    if !dashes
        || ![version, trace_id, span_id, flags]
            .iter()
            .all(|s| is_lower_hex(s))
    {
        return None;
    }
    match version {
        "ff" => return None,
        // Version 00 has exactly four fields.
        "00" if value.len() != 55 => return None,
        // A future version may append fields after a dash.
        _ if value.len() > 55 && value.as_bytes()[55] != b'-' => return None,
        _ => {}
    }
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let span_id = SpanId::from_hex(span_id).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    Some((trace_id, span_id, u8::from_str_radix(flags, 16).ok()?))
}

/// Joins repeated tracestate headers with ",", drops invalid members and duplicate keys
/// (the first wins); more than 32 valid members discards the whole list.
fn parse_tracestate(values: &[&str]) -> TraceState {
    let mut members: Vec<(&str, &str)> = Vec::new();
    for member in values.iter().flat_map(|v| v.split(',')) {
        let member = member.trim_matches(|c| c == ' ' || c == '\t');
        if member.is_empty() {
            continue;
        }
        let Some((key, value)) = member.split_once('=') else {
            continue;
        };
        if valid_tracestate_key(key)
            && valid_tracestate_value(value)
            && !members.iter().any(|(k, _)| *k == key)
        {
            members.push((key, value));
        }
    }
    if members.len() > MAX_TRACESTATE_MEMBERS {
        return TraceState::default();
    }
    TraceState::from_key_value(members).unwrap_or_default()
}

fn key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
}

fn valid_tracestate_key(key: &str) -> bool {
    let b = key.as_bytes();
    match key.split_once('@') {
        None => {
            (1..=256).contains(&b.len())
                && b[0].is_ascii_lowercase()
                && b.iter().all(|&c| key_char(c))
        }
        Some((tenant, system)) => {
            let (t, s) = (tenant.as_bytes(), system.as_bytes());
            (1..=241).contains(&t.len())
                && (t[0].is_ascii_lowercase() || t[0].is_ascii_digit())
                && t.iter().all(|&c| key_char(c))
                && (1..=14).contains(&s.len())
                && s[0].is_ascii_lowercase()
                && s.iter().all(|&c| key_char(c))
        }
    }
}

fn valid_tracestate_value(value: &str) -> bool {
    let b = value.as_bytes();
    (1..=256).contains(&b.len())
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && b.last().is_some_and(|&c| c != b' ')
}

/// W3C Baggage propagator: repeated headers are joined, invalid entries dropped, and whole
/// entries past 64 entries / 8192 bytes dropped (never cut).
#[derive(Debug, Default)]
pub struct BaggageLimitsPropagator {
    stock: BaggagePropagator,
}

impl TextMapPropagator for BaggageLimitsPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.stock.inject_context(cx, injector);
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some(values) = extractor.get_all(BAGGAGE) else {
            return cx.clone();
        };
        let mut baggage = Baggage::new();
        let mut bytes = 0;
        for member in values.iter().flat_map(|v| v.split(',')) {
            let member = member.trim();
            if member.is_empty() {
                continue;
            }
            if baggage.len() >= MAX_BAGGAGE_ENTRIES || bytes + member.len() > MAX_BAGGAGE_BYTES {
                break;
            }
            if let Some((key, value, metadata)) = parse_baggage_member(member) {
                if baggage.insert_with_metadata(key, value, metadata).is_none() {
                    bytes += member.len();
                }
            }
        }
        if baggage.is_empty() {
            cx.clone()
        } else {
            cx.with_baggage(baggage)
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        self.stock.fields()
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

fn parse_baggage_member(member: &str) -> Option<(String, String, String)> {
    let (pair, metadata) = member.split_once(';').unwrap_or((member, ""));
    let (key, value) = pair.split_once('=')?;
    let key = key.trim();
    if !is_token(key) {
        return None;
    }
    let value = value.trim();
    let valid_octets = value
        .bytes()
        .all(|b| matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e));
    if !valid_octets {
        return None;
    }
    let value = percent_decode(value)?;
    Some((key.to_owned(), value, metadata.trim().to_owned()))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Two hex digits: from_str_radix alone would also take a sign (`%+1`).
            let hex = s
                .get(i + 1..i + 3)
                .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The propagators OTEL_PROPAGATORS selected, applied together.
#[derive(Debug, Default)]
pub struct Propagators {
    trace_context: Option<TraceContextPropagator>,
    baggage: Option<BaggageLimitsPropagator>,
}

impl Propagators {
    /// The propagators the configuration enables.
    pub fn new(config: &PropagatorConfig) -> Self {
        Propagators {
            trace_context: config.trace_context.then_some(TraceContextPropagator),
            baggage: config.baggage.then(BaggageLimitsPropagator::default),
        }
    }

    /// The parent context carried by HTTP headers (an empty context when none or malformed).
    pub fn extract_headers(&self, headers: &HeaderMap) -> Context {
        self.extract(&Headers(headers))
    }

    /// Writes `cx` into HTTP headers (traceparent, tracestate, baggage).
    pub fn inject_headers(&self, cx: &Context, headers: &mut HeaderMap) {
        self.inject_context(cx, &mut HeadersMut(headers));
    }

    /// The parent context carried by a string map (e.g. a queue message's metadata).
    pub fn extract_map(&self, map: &HashMap<String, String>) -> Context {
        self.extract(&LowercaseMap(map))
    }

    /// Writes `cx` into a string map.
    pub fn inject_map(&self, cx: &Context, map: &mut HashMap<String, String>) {
        self.inject_context(cx, map);
    }
}

impl TextMapPropagator for Propagators {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        if let Some(p) = &self.trace_context {
            p.inject_context(cx, injector);
        }
        if let Some(p) = &self.baggage {
            p.inject_context(cx, injector);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let mut cx = cx.clone();
        if let Some(p) = &self.trace_context {
            cx = p.extract_with_context(&cx, extractor);
        }
        if let Some(p) = &self.baggage {
            cx = p.extract_with_context(&cx, extractor);
        }
        cx
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(ALL_FIELDS.as_slice())
    }
}

static ALL_FIELDS: std::sync::LazyLock<[String; 3]> = std::sync::LazyLock::new(|| {
    [
        TRACEPARENT.to_owned(),
        TRACESTATE.to_owned(),
        BAGGAGE.to_owned(),
    ]
});

/// The header names of the propagation fields, made once: looking a header up by `&str`
/// parses and validates the name on every call.
static FIELD_NAMES: [HeaderName; 3] = [
    HeaderName::from_static(TRACEPARENT),
    HeaderName::from_static(TRACESTATE),
    HeaderName::from_static(BAGGAGE),
];

/// The header name of a propagation field, or of any other valid key.
fn header_name(key: &str) -> Option<std::borrow::Cow<'static, HeaderName>> {
    match FIELD_NAMES.iter().find(|name| name.as_str() == key) {
        Some(name) => Some(std::borrow::Cow::Borrowed(name)),
        None => HeaderName::from_bytes(key.as_bytes())
            .ok()
            .map(std::borrow::Cow::Owned),
    }
}

/// Reads HTTP headers for a propagator (as opentelemetry-http's `HeaderExtractor` does).
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(header_name(key)?.as_ref())?.to_str().ok()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let values = self.0.get_all(header_name(key)?.as_ref());
        let mut values = values.iter().peekable();
        values.peek()?;
        Some(values.filter_map(|v| v.to_str().ok()).collect())
    }
}

/// Writes HTTP headers for a propagator; a value that is not a valid header is skipped.
struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(value));
        if let (Some(name), Ok(value)) = (header_name(key), value) {
            self.0.insert(name.into_owned(), value);
        }
    }
}

/// Reads a string map with case-insensitive keys, as header names are.
struct LowercaseMap<'a>(&'a HashMap<String, String>);

impl Extractor for LowercaseMap<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Injects the current context into outgoing HTTP headers with the globally installed
/// propagator (a no-op when telemetry is off).
pub fn inject_current_into_headers(headers: &mut HeaderMap) {
    inject_into_headers(&Context::current(), headers);
}

/// Injects `cx` into outgoing HTTP headers with the globally installed propagator.
pub(crate) fn inject_into_headers(cx: &Context, headers: &mut HeaderMap) {
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(cx, &mut HeadersMut(headers));
    });
}

/// Injects the current context into a string map with the globally installed propagator.
pub fn inject_current_into_map(map: &mut HashMap<String, String>) {
    let cx = Context::current();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, map));
}

/// Extracts a parent context from a string map with the globally installed propagator.
pub fn extract_from_map(map: &HashMap<String, String>) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&LowercaseMap(map)))
}

/// Extracts a parent context from HTTP headers with the globally installed propagator.
pub fn extract_from_headers(headers: &HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)))
}

#[cfg(test)]
#[path = "propagation_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "propagation_proptests.rs"]
mod proptests;
