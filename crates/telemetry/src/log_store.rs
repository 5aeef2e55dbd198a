//! The bounded in-memory store of recent log lines that belong to a sampled trace, kept beside
//! the [`crate::TraceStore`] so `/debug/traces/{trace_id}` can show a trace's lines with its
//! spans. The log writer hands it every line it writes (see [`LogTee`]); only lines written
//! inside a sampled span are kept, oldest dropped first. Built only in the modes that keep
//! traces, so with telemetry off nothing is inspected or copied.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use opentelemetry::trace::{TraceContextExt, TraceId};

/// Lines kept across all traces.
pub const LOG_STORE_MAX_LINES: usize = 2000;
/// Bytes of line text kept across all traces; a longer line is not kept at all.
pub const LOG_STORE_MAX_BYTES: usize = 2 * 1024 * 1024;

#[derive(Debug, Default)]
struct Lines {
    /// Oldest first.
    lines: VecDeque<(TraceId, Box<str>)>,
    bytes: usize,
}

/// Recent log lines by trace id. Cheap to clone: clones share the same lines.
#[derive(Debug, Clone, Default)]
pub struct LogStore {
    inner: Arc<Mutex<Lines>>,
}

impl LogStore {
    fn lock(&self) -> MutexGuard<'_, Lines> {
        // Every mutation is whole, so a panic elsewhere leaves consistent data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `line` (one whole log line, newline included or not) as a line of `trace_id`,
    /// dropping the oldest lines past [`LOG_STORE_MAX_LINES`] or [`LOG_STORE_MAX_BYTES`].
    /// Colour escapes of pretty lines are removed.
    pub fn push(&self, trace_id: TraceId, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\n', '\r']);
        let text: Box<str> = if text.contains('\x1b') {
            strip_ansi(text).into()
        } else {
            text.into()
        };
        if text.is_empty() || text.len() > LOG_STORE_MAX_BYTES {
            return;
        }
        let mut evicted = Vec::new();
        let mut inner = self.lock();
        while inner.lines.len() >= LOG_STORE_MAX_LINES
            || inner.bytes + text.len() > LOG_STORE_MAX_BYTES
        {
            let Some(oldest) = inner.lines.pop_front() else {
                break;
            };
            inner.bytes -= oldest.1.len();
            evicted.push(oldest);
        }
        inner.bytes += text.len();
        inner.lines.push_back((trace_id, text));
        drop(inner);
        drop(evicted);
    }

    /// The kept lines of `trace_id`, oldest first: each JSON line as its object, any other
    /// line (the pretty format) as a string.
    pub fn lines(&self, trace_id: TraceId) -> Vec<serde_json::Value> {
        let texts: Vec<Box<str>> = self
            .lock()
            .lines
            .iter()
            .filter(|(id, _)| *id == trace_id)
            .map(|(_, text)| text.clone())
            .collect();
        texts
            .into_iter()
            .map(|text| match serde_json::from_str(&text) {
                Ok(value @ serde_json::Value::Object(_)) => value,
                _ => serde_json::Value::String(text.into()),
            })
            .collect()
    }

    /// Number of lines and bytes held.
    pub fn len(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.lines.len(), inner.bytes)
    }

    /// Whether no line is held.
    pub fn is_empty(&self) -> bool {
        self.lock().lines.is_empty()
    }

    /// Keeps `line` when the OpenTelemetry context current on this thread is a sampled span:
    /// the log layer formats and writes a line on the thread of its event, with the same
    /// context it took the line's `trace_id` from.
    pub(crate) fn push_if_in_sampled_trace(&self, line: &[u8]) {
        let cx = opentelemetry::Context::current();
        let span = cx.span();
        let context = span.span_context();
        if context.is_valid() && context.is_sampled() {
            self.push(context.trace_id(), line);
        }
    }
}

/// `text` without its ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        }
    }
    out
}

/// A log writer that also hands each line to a [`LogStore`]. The log layer writes each
/// formatted line with one `write_all`, and so do access lines.
pub(crate) struct LogTee<'a, W> {
    pub(crate) inner: W,
    pub(crate) store: Option<&'a LogStore>,
}

impl<W: io::Write> io::Write for LogTee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        if let Some(store) = self.store {
            if written == buf.len() && buf.ends_with(b"\n") {
                store.push_if_in_sampled_trace(buf);
            }
        }
        Ok(written)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Some(store) = self.store {
            store.push_if_in_sampled_trace(buf);
        }
        self.inner.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};
    use std::io::Write as _;

    fn id(n: u128) -> TraceId {
        TraceId::from(n)
    }

    #[test]
    fn lines_are_returned_by_trace_oldest_first_json_as_objects() {
        let store = LogStore::default();
        store.push(id(1), b"{\"message\":\"first\",\"trace_id\":\"01\"}\n");
        store.push(id(2), b"{\"message\":\"other trace\"}\n");
        store.push(
            id(1),
            b"\x1b[2m2026-01-01T00:00:00Z\x1b[0m INFO pretty line\n",
        );
        let lines = store.lines(id(1));
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["message"], "first");
        assert_eq!(lines[1], "2026-01-01T00:00:00Z INFO pretty line");
        assert_eq!(store.lines(id(2)).len(), 1);
        assert!(store.lines(id(3)).is_empty());
    }

    #[test]
    fn oldest_lines_are_dropped_past_the_line_and_byte_limits() {
        let store = LogStore::default();
        for n in 0..LOG_STORE_MAX_LINES + 5 {
            store.push(id(n as u128 % 7), format!("line {n}\n").as_bytes());
        }
        assert_eq!(store.len().0, LOG_STORE_MAX_LINES);
        assert_eq!(store.lines(id(0))[0], "line 7", "lines 0 to 4 went first");
        assert_eq!(store.lines(id(5))[0], "line 5");

        let big = "x".repeat(LOG_STORE_MAX_BYTES / 2 + 1);
        store.push(id(9), big.as_bytes());
        store.push(id(9), big.as_bytes());
        let (lines, bytes) = store.len();
        assert_eq!(
            (lines, bytes),
            (1, big.len()),
            "the second pushed out the rest"
        );
        store.push(id(9), "y".repeat(LOG_STORE_MAX_BYTES + 1).as_bytes());
        assert_eq!(store.len().0, 1, "a line over the byte limit is not kept");
    }

    fn context(sampled: bool) -> opentelemetry::Context {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
            id(42),
            SpanId::from(7u64),
            flags,
            true,
            TraceState::default(),
        ))
    }

    #[test]
    fn the_tee_keeps_lines_of_sampled_spans_only_and_writes_every_line() {
        let store = LogStore::default();
        let mut out = Vec::new();
        let mut write = |line: &str| {
            let mut tee = LogTee {
                inner: &mut out,
                store: Some(&store),
            };
            tee.write_all(line.as_bytes()).expect("write");
        };
        write("outside any span\n");
        {
            let _sampled = context(true).attach();
            write("in a sampled span\n");
        }
        {
            let _unsampled = context(false).attach();
            write("in an unsampled span\n");
        }
        assert_eq!(
            String::from_utf8_lossy(&out).lines().count(),
            3,
            "every line reaches the writer"
        );
        assert_eq!(store.lines(id(42)), vec!["in a sampled span"]);
        assert_eq!(store.len().0, 1);
    }
}
