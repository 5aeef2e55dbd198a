//! Carrying a context across the wire: what is injected into outgoing headers (or a job's
//! string map) and extracted from incoming ones, with the propagator the telemetry set-up
//! installed globally (none when telemetry is off: nothing is written, nothing is read).

use std::borrow::Cow;
use std::collections::HashMap;

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::Context;

/// The `traceparent` header.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header.
pub const TRACESTATE: &str = "tracestate";
/// The `baggage` header.
pub const BAGGAGE: &str = "baggage";
/// The Trace Context Level 2 response header.
pub const TRACERESPONSE: &str = "traceresponse";

/// The header names of the propagation fields, made once: looking a header up by `&str`
/// parses and validates the name on every call.
static FIELD_NAMES: [HeaderName; 3] = [
    HeaderName::from_static(TRACEPARENT),
    HeaderName::from_static(TRACESTATE),
    HeaderName::from_static(BAGGAGE),
];

/// The header name of a propagation field, or of any other valid key.
fn header_name(key: &str) -> Option<Cow<'static, HeaderName>> {
    match FIELD_NAMES.iter().find(|name| name.as_str() == key) {
        Some(name) => Some(Cow::Borrowed(name)),
        None => HeaderName::from_bytes(key.as_bytes()).ok().map(Cow::Owned),
    }
}

/// Stands for a header value that is not visible ASCII: a value every parser here rejects,
/// kept in the list so that the header still counts (a second `traceparent` leaves the parent
/// ambiguous, a bad `tracestate` line drops the list).
const NOT_VISIBLE_ASCII: &str = "\u{fffd}";

/// Reads HTTP headers for a propagator (as opentelemetry-http's `HeaderExtractor` does, but
/// every value of a repeated header counts).
#[derive(Debug)]
pub struct Headers<'a>(pub &'a HeaderMap);

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
        Some(
            values
                .map(|v| v.to_str().unwrap_or(NOT_VISIBLE_ASCII))
                .collect(),
        )
    }
}

/// Writes HTTP headers for a propagator; a value that is not a valid header is skipped.
#[derive(Debug)]
pub struct HeadersMut<'a>(pub &'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(value));
        if let (Some(name), Ok(value)) = (header_name(key), value) {
            self.0.insert(name.into_owned(), value);
        }
    }
}

/// Reads a string map with case-insensitive keys, as header names are.
#[derive(Debug)]
pub struct LowercaseMap<'a>(pub &'a HashMap<String, String>);

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
pub fn inject_into_headers(cx: &Context, headers: &mut HeaderMap) {
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
