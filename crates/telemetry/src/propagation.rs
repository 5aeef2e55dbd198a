//! W3C Trace Context (Level 2) and W3C Baggage propagation, covering what the stock
//! opentelemetry-rust propagators miss: repeated headers, all trace flags (the random flag kept
//! where the SDK drops it), the Level 2 tracestate grammar, entry-wise baggage limits and
//! baggage values encoded so they come back as sent. Malformed input starts a new trace; it
//! never errors.

use std::collections::HashMap;

use http::header::HeaderValue;
use http::HeaderMap;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;

use inferd_otel::propagate::{Headers, HeadersMut, LowercaseMap, BAGGAGE, TRACEPARENT, TRACESTATE};

use crate::config::PropagatorConfig;
use inferd_otel::ids::traceparent_bytes;

#[path = "propagation_baggage.rs"]
mod baggage;
#[path = "propagation_tracestate.rs"]
mod tracestate;

pub(crate) use baggage::percent_decode;
pub use baggage::BaggageLimitsPropagator;
#[cfg(test)]
use baggage::{parse_baggage_member, MAX_BAGGAGE_BYTES, MAX_BAGGAGE_ENTRIES};
use tracestate::parse_tracestate;
#[cfg(test)]
use tracestate::{
    valid_tracestate_key, valid_tracestate_value, ReceivedTraceState, MAX_TRACESTATE_MEMBERS,
};

/// The sampled trace flag.
const SAMPLED: u8 = 0x01;
/// The random trace flag: the trace id's right-most 7 bytes were drawn at random.
const RANDOM: u8 = 0x02;
/// Trace flags inferd understands and forwards. Unknown bits are zeroed as the specification
/// requires.
const KNOWN_FLAGS: u8 = SAMPLED | RANDOM;

/// What the caller's `traceparent` and `tracestate` said, kept in the extracted context for
/// what inferd sends onward in the same trace. The SDK gives a span it does not sample default
/// flags (the random flag lost), and opentelemetry's `TraceState` cannot hold every key the
/// Level 2 grammar allows.
#[derive(Debug)]
struct Inbound {
    trace_id: TraceId,
    /// The flags received, unknown bits zeroed.
    flags: u8,
    /// The whole tracestate list, with the view of it the span contexts carry, when that view
    /// misses some members.
    tracestate: Option<(String, TraceState)>,
}

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
        let inbound = cx
            .get::<Inbound>()
            .filter(|inbound| inbound.trace_id == sc.trace_id());
        let flags = outgoing_flags(sc, inbound);
        injector.set(TRACEPARENT, traceparent_text(sc, flags));
        let state = sc.trace_state();
        let header = match inbound.and_then(|inbound| inbound.tracestate.as_ref()) {
            // The list as received, unless something in this process changed the view of it.
            Some((full, view)) if view == state => full.clone(),
            _ => state.header(),
        };
        if !header.is_empty() {
            injector.set(TRACESTATE, header);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match extract_span_context(extractor) {
            Some((sc, inbound)) => cx.with_remote_span_context(sc).with_value(inbound),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(TRACE_CONTEXT_FIELDS.as_slice())
    }
}

static TRACE_CONTEXT_FIELDS: std::sync::LazyLock<[String; 2]> =
    std::sync::LazyLock::new(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned()]);

/// The flags of an outgoing `traceparent` for `sc`. The sampled flag is this process's
/// decision; the others are kept as received for the caller's trace (the SDK zeroes them on a
/// span it does not sample), and a trace this process started gets the random flag: the SDK's
/// default `RandomIdGenerator`, the one inferd's tracer provider uses, draws every trace id
/// uniformly at random. A remote span context (a parent passed on without a span of its own)
/// goes out as it came.
fn outgoing_flags(sc: &SpanContext, inbound: Option<&Inbound>) -> u8 {
    let own = sc.trace_flags().to_u8() & KNOWN_FLAGS;
    if sc.is_remote() {
        return own;
    }
    match inbound {
        Some(inbound) => (own & SAMPLED) | (inbound.flags & !SAMPLED),
        None => own | RANDOM,
    }
}

/// `00-{trace_id}-{span_id}-{flags}` for a span context, with its own flags.
pub fn format_traceparent(sc: &SpanContext) -> String {
    traceparent_text(sc, sc.trace_flags().to_u8())
}

/// The `traceresponse` of the span current in `cx` (a SERVER span): its ids, with the flags
/// a call onward would carry (the caller's `random` kept, set for a trace started here), as a
/// header value without a String between. `None` for an invalid span context.
pub fn traceresponse_header(cx: &Context) -> Option<HeaderValue> {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    let inbound = cx
        .get::<Inbound>()
        .filter(|inbound| inbound.trace_id == sc.trace_id());
    HeaderValue::from_bytes(&traceparent(sc, outgoing_flags(sc, inbound))).ok()
}

fn traceparent_text(sc: &SpanContext, flags: u8) -> String {
    // Only ASCII is ever written.
    String::from_utf8(traceparent(sc, flags).to_vec()).unwrap_or_default()
}

fn traceparent(sc: &SpanContext, flags: u8) -> [u8; 55] {
    traceparent_bytes(sc.trace_id(), sc.span_id(), flags & KNOWN_FLAGS)
}

fn extract_span_context(extractor: &dyn Extractor) -> Option<(SpanContext, Inbound)> {
    // Two traceparent headers make the parent ambiguous: start a new trace.
    let values = extractor.get_all(TRACEPARENT)?;
    let [value] = values.as_slice() else {
        return None;
    };
    let (trace_id, span_id, flags) = parse_traceparent(value)?;
    let flags = flags & KNOWN_FLAGS;
    let (view, full) = extractor
        .get_all(TRACESTATE)
        .map(|values| parse_tracestate(&values))
        .unwrap_or_default()
        .into_parts();
    let inbound = Inbound {
        trace_id,
        flags,
        tracestate: full.map(|full| (full, view.clone())),
    };
    let sc = SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, view);
    Some((sc, inbound))
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
            baggage: config.baggage.then_some(BaggageLimitsPropagator),
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

#[cfg(test)]
#[path = "propagation_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "propagation_proptests.rs"]
mod proptests;

#[cfg(test)]
#[path = "w3c_suite_tests.rs"]
mod w3c_suite;
