//! The bounded in-memory store of recent traces that `local` and `otlp` modes keep, and its JSON
//! read API (served by the server at /debug/traces), with filters and two orders for the list.
//! Oldest traces are evicted first when either the trace or the span capacity is reached. The
//! log lines of stored traces are kept beside it, in its [`LogStore`].

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry::{Array, Context, KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use serde::Serialize;

use crate::config::TraceStoreConfig;
use crate::log_store::LogStore;
use inferd_otel::ids::{span_id_hex, trace_id_hex};
use inferd_otel::semconv;

/// One line of the recent-traces list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceSummary {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// Name of the span without a parent in this store (the earliest if several).
    pub root_span_name: String,
    /// Earliest span start, unix nanoseconds.
    pub start_unix_nanos: u64,
    /// From the earliest start to the latest end.
    pub duration_nanos: u64,
    /// Spans stored for this trace.
    pub span_count: usize,
    /// Whether any span ended with status ERROR.
    pub error: bool,
    /// `http.route` of the root span (HTTP requests).
    pub route: Option<String>,
    /// `http.response.status_code` of the root span (HTTP requests).
    pub status_code: Option<i64>,
    /// `gen_ai.request.model` of the generation span, else of any span (a `model.batch`).
    pub model: Option<String>,
    /// `gen_ai.usage.input_tokens` of the generation span.
    pub input_tokens: Option<i64>,
    /// `gen_ai.usage.output_tokens` of the generation span.
    pub output_tokens: Option<i64>,
    /// Time to first token, s: the generation span's `gen_ai.response.time_to_first_chunk`.
    pub time_to_first_token_seconds: Option<f64>,
    /// Time per output token, s: the generation span's `inferd.time_per_output_token`.
    pub time_per_output_token_seconds: Option<f64>,
}

/// Which traces [`TraceStore::find_traces`] lists, and in which order. The default lists
/// every trace, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceQuery {
    /// Only traces whose root span's `http.route` is this.
    pub route: Option<String>,
    /// Only traces whose model ([`TraceSummary::model`]) is this.
    pub model: Option<String>,
    /// Only traces whose root span's status code matches.
    pub status: Option<StatusFilter>,
    /// Only traces with a span that ended with status ERROR.
    pub errors_only: bool,
    /// Only traces lasting at least this long.
    pub min_duration: Option<Duration>,
    /// The order of the list.
    pub order: TraceOrder,
}

/// A filter on the HTTP status code: one code (`404`) or a class (`5xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Exactly this code.
    Code(u16),
    /// Any code of this hundred: `Class(5)` is 500 to 599.
    Class(u8),
}

impl StatusFilter {
    fn matches(self, code: i64) -> bool {
        match self {
            StatusFilter::Code(c) => code == i64::from(c),
            StatusFilter::Class(c) => code / 100 == i64::from(c),
        }
    }
}

/// Why a status filter did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a status filter: give a code from 100 to 599 (`404`) or a class (`1xx` to `5xx`)"
)]
pub struct InvalidStatusFilter(pub String);

impl FromStr for StatusFilter {
    type Err = InvalidStatusFilter;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidStatusFilter(text.to_owned());
        let lower = text.trim().to_ascii_lowercase();
        if let Some(class) = lower.strip_suffix("xx") {
            return match class.parse::<u8>() {
                Ok(c @ 1..=5) if class.len() == 1 => Ok(StatusFilter::Class(c)),
                _ => Err(invalid()),
            };
        }
        match lower.parse::<u16>() {
            Ok(code @ 100..=599) => Ok(StatusFilter::Code(code)),
            _ => Err(invalid()),
        }
    }
}

/// The order of a trace list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TraceOrder {
    /// Latest first to arrive first.
    #[default]
    Newest,
    /// Longest first.
    Slowest,
}

impl TraceQuery {
    fn matches(&self, summary: &TraceSummary) -> bool {
        let same = |wanted: &Option<String>, got: &Option<String>| {
            wanted.as_ref().is_none_or(|w| got.as_ref() == Some(w))
        };
        same(&self.route, &summary.route)
            && same(&self.model, &summary.model)
            && self
                .status
                .is_none_or(|s| summary.status_code.is_some_and(|c| s.matches(c)))
            && (!self.errors_only || summary.error)
            && self
                .min_duration
                .is_none_or(|d| u128::from(summary.duration_nanos) >= d.as_nanos())
    }
}

/// All stored spans of one trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceDetail {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// Spans ordered by start time.
    pub spans: Vec<SpanRecord>,
    /// The log lines written inside the trace's spans that are still kept, oldest first: JSON
    /// lines as objects, pretty lines as strings.
    pub logs: Vec<serde_json::Value>,
}

/// One finished span, ready to serialize.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpanRecord {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// The parent's span id, `None` for a root span.
    pub parent_span_id: Option<String>,
    /// Span name.
    pub name: String,
    /// `server`, `client`, `internal`, `producer` or `consumer`.
    pub kind: &'static str,
    /// Start, unix nanoseconds.
    pub start_unix_nanos: u64,
    /// End, unix nanoseconds.
    pub end_unix_nanos: u64,
    /// Final status.
    pub status: SpanStatus,
    /// Attributes by key.
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Events in order.
    pub events: Vec<EventRecord>,
    /// Links to other spans.
    pub links: Vec<LinkRecord>,
}

/// A span's status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpanStatus {
    /// `unset`, `ok` or `error`.
    pub code: &'static str,
    /// Description (errors only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A span event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    /// Event name.
    pub name: String,
    /// When, unix nanoseconds.
    pub time_unix_nanos: u64,
    /// Attributes by key.
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// A link to another span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkRecord {
    /// Linked trace.
    pub trace_id: String,
    /// Linked span.
    pub span_id: String,
    /// Attributes by key.
    pub attributes: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Spans are kept as the SDK delivered them and converted only when read, so recording
    /// stays cheap on the request path.
    traces: HashMap<TraceId, Vec<SpanData>, TraceIdHashing>,
    /// Trace ids in order of first arrival; the front is evicted first.
    order: VecDeque<TraceId>,
    span_count: usize,
}

/// The recent-trace store. Cheap to clone: clones share the same store.
#[derive(Debug, Clone)]
pub struct TraceStore {
    inner: Arc<Mutex<Inner>>,
    capacity: TraceStoreConfig,
    logs: LogStore,
}

impl TraceStore {
    /// An empty store with the given capacity.
    pub fn new(capacity: TraceStoreConfig) -> Self {
        TraceStore {
            inner: Arc::default(),
            capacity,
            logs: LogStore::default(),
        }
    }

    /// The log lines of recent traces (fed by the log writer).
    pub fn logs(&self) -> &LogStore {
        &self.logs
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every mutation is whole).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds one finished span, evicting the oldest traces when full.
    pub fn insert(&self, span: SpanData) {
        let trace_id = span.span_context.trace_id();
        // Evicted traces are dropped after the lock is released: freeing their spans is the
        // slow part, and readers of /debug/traces need not wait for it.
        let mut evicted = Vec::new();
        let mut inner = self.lock();
        if !inner.traces.contains_key(&trace_id) {
            while inner.order.len() >= self.capacity.max_traces {
                evicted.extend(evict(&mut inner, 0));
            }
            inner.order.push_back(trace_id);
        }
        while inner.span_count >= self.capacity.max_spans {
            let oldest_is_this = inner.order.front() == Some(&trace_id);
            if oldest_is_this && inner.order.len() == 1 {
                // One trace larger than the whole store: keep its earliest spans.
                return;
            }
            // When the oldest is the trace being written, the next-oldest goes instead.
            let position = usize::from(oldest_is_this);
            evicted.extend(evict(&mut inner, position));
        }
        inner
            .traces
            .entry(trace_id)
            // A request's trace has 3 spans or more: no growing from 0 to 1 to 2 to 4.
            .or_insert_with(|| Vec::with_capacity(4))
            .push(span);
        inner.span_count += 1;
        drop(inner);
        drop(evicted);
    }

    /// The most recent traces, newest first, at most `limit`.
    pub fn recent_traces(&self, limit: usize) -> Vec<TraceSummary> {
        self.find_traces(&TraceQuery::default(), limit)
    }

    /// The traces `query` selects, in its order, at most `limit`.
    pub fn find_traces(&self, query: &TraceQuery, limit: usize) -> Vec<TraceSummary> {
        let inner = self.lock();
        let matching = inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.traces.get(id).map(|spans| summarize(*id, spans)))
            .filter(|summary| query.matches(summary));
        match query.order {
            TraceOrder::Newest => matching.take(limit).collect(),
            TraceOrder::Slowest => {
                let mut all: Vec<TraceSummary> = matching.collect();
                drop(inner);
                // Stable: equal durations stay newest first.
                all.sort_by_key(|s| std::cmp::Reverse(s.duration_nanos));
                all.truncate(limit);
                all
            }
        }
    }

    /// All stored spans of one trace (`trace_id` as 32 hex digits), ordered by start time.
    pub fn trace(&self, trace_id: &str) -> Option<TraceDetail> {
        let id = TraceId::from_hex(trace_id).ok()?;
        let inner = self.lock();
        let mut spans: Vec<SpanRecord> = inner.traces.get(&id)?.iter().map(span_record).collect();
        drop(inner);
        spans.sort_by_key(|s| s.start_unix_nanos);
        Some(TraceDetail {
            trace_id: id.to_string(),
            spans,
            logs: self.logs.lines(id),
        })
    }

    /// Number of traces and spans currently held.
    pub fn len(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.order.len(), inner.span_count)
    }

    /// Whether the store holds no trace.
    pub fn is_empty(&self) -> bool {
        self.lock().order.is_empty()
    }
}

/// Hashing for the map of trace ids: a folded multiply of the id's two halves, each mixed with
/// a key drawn once per store, then a second one to spread the low bits. It costs a tenth of
/// SipHash (~170 instructions, 5 lookups per request) and spreads even ids that count up as
/// well as random ones; the keys keep a caller choosing ids from steering them into one bucket.
#[derive(Debug, Clone)]
struct TraceIdHashing {
    keys: [u64; 3],
}

impl Default for TraceIdHashing {
    fn default() -> Self {
        let random = RandomState::new();
        TraceIdHashing {
            keys: [0u8, 1, 2].map(|i| random.hash_one(i)),
        }
    }
}

impl BuildHasher for TraceIdHashing {
    type Hasher = TraceIdHasher;

    fn build_hasher(&self) -> TraceIdHasher {
        TraceIdHasher {
            keys: self.keys,
            hash: 0,
        }
    }
}

#[derive(Debug)]
struct TraceIdHasher {
    keys: [u64; 3],
    hash: u64,
}

/// The two halves of the 128-bit product, xored.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Hasher for TraceIdHasher {
    /// `TraceId` hashes as one `u128`; anything else folds in 8 bytes at a time.
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.hash = folded_multiply(self.hash ^ n ^ self.keys[0], self.keys[1]);
    }

    fn write_u128(&mut self, n: u128) {
        let (low, high) = (n as u64, (n >> 64) as u64);
        self.hash ^= folded_multiply(low ^ self.keys[0], high ^ self.keys[1]);
    }

    fn finish(&self) -> u64 {
        // The fractional part of the golden ratio: odd, with its bits well mixed.
        folded_multiply(self.hash ^ self.keys[2], 0x9e37_79b9_7f4a_7c15)
    }
}

/// Takes the trace at `position` in age order (0 = oldest) out of the store; the caller drops
/// its spans.
fn evict(inner: &mut Inner, position: usize) -> Option<Vec<SpanData>> {
    let id = inner.order.remove(position)?;
    let spans = inner.traces.remove(&id)?;
    inner.span_count -= spans.len();
    Some(spans)
}

fn summarize(trace_id: TraceId, spans: &[SpanData]) -> TraceSummary {
    let start = spans.iter().map(|s| s.start_time).min();
    let end = spans.iter().map(|s| s.end_time).max();
    let root = spans
        .iter()
        .filter(|s| {
            s.parent_span_id == SpanId::INVALID
                || !spans
                    .iter()
                    .any(|o| o.span_context.span_id() == s.parent_span_id)
        })
        .min_by_key(|s| s.start_time);
    let start_unix_nanos = start.map(unix_nanos).unwrap_or(0);
    let root_attribute = |key: &str| root.and_then(|s| attribute(s, key));
    // The generation span is the one naming its operation; the earliest if several.
    let generation = spans
        .iter()
        .filter(|s| attribute(s, semconv::GEN_AI_OPERATION_NAME).is_some())
        .min_by_key(|s| s.start_time);
    let generation_attribute = |key: &str| generation.and_then(|s| attribute(s, key));
    let model = generation_attribute(semconv::GEN_AI_REQUEST_MODEL)
        .or_else(|| {
            spans
                .iter()
                .find_map(|s| attribute(s, semconv::GEN_AI_REQUEST_MODEL))
        })
        .and_then(as_string);
    TraceSummary {
        trace_id: trace_id.to_string(),
        root_span_name: root.map(|s| s.name.to_string()).unwrap_or_default(),
        start_unix_nanos,
        duration_nanos: end
            .map(unix_nanos)
            .unwrap_or(start_unix_nanos)
            .saturating_sub(start_unix_nanos),
        span_count: spans.len(),
        error: spans
            .iter()
            .any(|s| matches!(s.status, Status::Error { .. })),
        route: root_attribute(semconv::HTTP_ROUTE).and_then(as_string),
        status_code: root_attribute(semconv::HTTP_RESPONSE_STATUS_CODE).and_then(as_i64),
        model,
        input_tokens: generation_attribute(semconv::GEN_AI_USAGE_INPUT_TOKENS).and_then(as_i64),
        output_tokens: generation_attribute(semconv::GEN_AI_USAGE_OUTPUT_TOKENS).and_then(as_i64),
        time_to_first_token_seconds: generation_attribute(
            semconv::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
        )
        .and_then(as_f64),
        time_per_output_token_seconds: generation_attribute(semconv::INFERD_TIME_PER_OUTPUT_TOKEN)
            .and_then(as_f64),
    }
}

/// The value of `span`'s attribute `key`.
fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn as_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::I64(i) => Some(*i),
        _ => None,
    }
}

fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::F64(f) => Some(*f),
        Value::I64(i) => Some(*i as f64),
        _ => None,
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos()
        .try_into()
        .unwrap_or(u64::MAX)
}

fn json_value(value: &Value) -> serde_json::Value {
    match value {
        Value::Bool(b) => (*b).into(),
        Value::I64(i) => (*i).into(),
        Value::F64(f) => (*f).into(),
        Value::String(s) => s.as_str().into(),
        // Arrays (e.g. `gen_ai.response.finish_reasons`) as JSON arrays, not as text.
        Value::Array(Array::Bool(items)) => items.as_slice().into(),
        Value::Array(Array::I64(items)) => items.as_slice().into(),
        Value::Array(Array::F64(items)) => items.as_slice().into(),
        Value::Array(Array::String(items)) => items.iter().map(|s| s.as_str()).collect(),
        other => other.to_string().into(),
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, serde_json::Value> {
    kvs.iter()
        .map(|kv| (kv.key.as_str().to_owned(), json_value(&kv.value)))
        .collect()
}

pub(crate) fn span_record(span: &SpanData) -> SpanRecord {
    let kind = match span.span_kind {
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    };
    let status = match &span.status {
        Status::Unset => SpanStatus {
            code: "unset",
            message: None,
        },
        Status::Ok => SpanStatus {
            code: "ok",
            message: None,
        },
        Status::Error { description } => SpanStatus {
            code: "error",
            message: Some(description.to_string()),
        },
    };
    SpanRecord {
        trace_id: trace_id_hex(span.span_context.trace_id())
            .as_str()
            .to_owned(),
        span_id: span_id_hex(span.span_context.span_id()).as_str().to_owned(),
        parent_span_id: (span.parent_span_id != SpanId::INVALID)
            .then(|| span_id_hex(span.parent_span_id).as_str().to_owned()),
        name: span.name.to_string(),
        kind,
        start_unix_nanos: unix_nanos(span.start_time),
        end_unix_nanos: unix_nanos(span.end_time),
        status,
        attributes: attributes(&span.attributes),
        events: span
            .events
            .iter()
            .map(|e| EventRecord {
                name: e.name.to_string(),
                time_unix_nanos: unix_nanos(e.timestamp),
                attributes: attributes(&e.attributes),
            })
            .collect(),
        links: span
            .links
            .iter()
            .map(|l| LinkRecord {
                trace_id: trace_id_hex(l.span_context.trace_id()).as_str().to_owned(),
                span_id: span_id_hex(l.span_context.span_id()).as_str().to_owned(),
                attributes: attributes(&l.attributes),
            })
            .collect(),
    }
}

/// Span processor feeding the store with every sampled span as it ends.
#[derive(Debug, Clone)]
pub struct TraceStoreProcessor {
    store: TraceStore,
}

impl TraceStoreProcessor {
    /// A processor writing into `store`.
    pub fn new(store: TraceStore) -> Self {
        TraceStoreProcessor { store }
    }
}

impl SpanProcessor for TraceStoreProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.store.insert(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
