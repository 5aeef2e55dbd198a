//! The bounded in-memory store of recent traces that `local` and `otlp` modes keep, and its JSON
//! read API (served by the server at /debug/traces). Oldest traces are evicted first when either
//! the trace or the span capacity is reached.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry::{Array, Context, KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use serde::Serialize;

use crate::config::TraceStoreConfig;
use crate::ids::{span_id_hex, trace_id_hex};

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
}

/// All stored spans of one trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceDetail {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// Spans ordered by start time.
    pub spans: Vec<SpanRecord>,
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
}

impl TraceStore {
    /// An empty store with the given capacity.
    pub fn new(capacity: TraceStoreConfig) -> Self {
        TraceStore {
            inner: Arc::default(),
            capacity,
        }
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
        let inner = self.lock();
        inner
            .order
            .iter()
            .rev()
            .take(limit)
            .filter_map(|id| inner.traces.get(id).map(|spans| summarize(*id, spans)))
            .collect()
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
