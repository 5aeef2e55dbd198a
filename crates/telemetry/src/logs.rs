//! Log lines: JSON (off a terminal) or human-readable (on one), each line written inside a span
//! carrying that span's trace_id and span_id from the OpenTelemetry span context.

use std::fmt::{self, Write as _};

use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::handles::with_line_sink;
use inferd_otel::ids::{span_id_hex, trace_id_hex};
use inferd_otel::semconv;
use inferd_otel::{put_digits, span_label as current_label, timestamp_prefix};

/// Event formatter adding `trace_id` / `span_id` of the current OpenTelemetry span.
#[derive(Debug, Clone, Copy)]
pub struct CorrelatedFormat {
    json: bool,
    ansi: bool,
}

impl CorrelatedFormat {
    /// One JSON object per line.
    pub fn json() -> Self {
        CorrelatedFormat {
            json: true,
            ansi: false,
        }
    }

    /// Human-readable lines, coloured when `ansi`.
    pub fn pretty(ansi: bool) -> Self {
        CorrelatedFormat { json: false, ansi }
    }

    /// Whether lines are JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }
}

/// The ids of the span that is current in OpenTelemetry's context, as 32 and 16 lowercase hex
/// digits; `None` outside a span or when telemetry is off.
pub fn current_trace_ids() -> Option<(String, String)> {
    current_span_context().map(|sc| {
        (
            trace_id_hex(sc.trace_id()).as_str().to_owned(),
            span_id_hex(sc.span_id()).as_str().to_owned(),
        )
    })
}

/// The valid span context current in OpenTelemetry's context, if any.
fn current_span_context() -> Option<SpanContext> {
    valid_span_context(&opentelemetry::Context::current())
}

/// The span context of `cx`'s span, if valid.
fn valid_span_context(cx: &opentelemetry::Context) -> Option<SpanContext> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.clone())
}

/// Writes text as the inside of a JSON string: quotes, backslashes and control characters
/// escaped, everything else (UTF-8 included) as it is.
struct JsonEscaped<'a, W: fmt::Write + ?Sized>(&'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for JsonEscaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let bytes = text.as_bytes();
        // Most text (routes, model names, messages) needs no escape: one write.
        if !bytes.iter().any(|&b| needs_escape(b)) {
            return self.0.write_str(text);
        }
        let mut plain = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            // Splitting at an ASCII byte keeps both sides valid UTF-8.
            self.0.write_str(&text[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = i + 1;
        }
        self.0.write_str(&text[plain..])
    }
}

/// Writes a field name as a JSON string. Names are Rust identifiers or dotted names, which
/// need no escape; any other name is escaped.
fn json_key(w: &mut impl fmt::Write, name: &str) -> fmt::Result {
    if name.bytes().any(needs_escape) {
        return json_str(w, name);
    }
    w.write_char('"')?;
    w.write_str(name)?;
    w.write_char('"')
}

/// Whether a byte must be escaped inside a JSON string.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Writes `text` as a JSON string, quotes included.
fn json_str(w: &mut impl fmt::Write, text: &str) -> fmt::Result {
    w.write_char('"')?;
    JsonEscaped(&mut *w).write_str(text)?;
    w.write_char('"')
}

thread_local! {
    /// The second last formatted on this thread and its `timestamp_prefix`.
    static TIMESTAMP_PREFIX: std::cell::Cell<(u64, [u8; 20])> =
        const { std::cell::Cell::new((u64::MAX, [0; 20])) };
}

/// Writes `time` as RFC 3339 UTC with microseconds (`2026-11-26T10:37:39.634135Z`), the format
/// of tracing-subscriber's `SystemTime`. The part up to the seconds is formatted once per
/// second per thread: every log line starts with it.
fn write_timestamp(w: &mut impl fmt::Write, time: std::time::SystemTime) -> fmt::Result {
    let since_epoch = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let prefix = TIMESTAMP_PREFIX.with(|cached| {
        let (second, prefix) = cached.get();
        if second == seconds {
            return prefix;
        }
        let prefix = timestamp_prefix(seconds);
        cached.set((seconds, prefix));
        prefix
    });
    let mut tail = *b"000000Z";
    put_digits(&mut tail[..6], u64::from(since_epoch.subsec_micros()));
    // Both arrays hold ASCII digits and separators only.
    w.write_str(std::str::from_utf8(&prefix).map_err(|_| fmt::Error)?)?;
    w.write_str(std::str::from_utf8(&tail).map_err(|_| fmt::Error)?)
}

/// Opens a JSON log line: `{"timestamp":"…","level":"…","target":"…"`.
fn write_json_head(w: &mut impl fmt::Write, level: &str, target: &str) -> fmt::Result {
    w.write_str("{\"timestamp\":\"")?;
    write_timestamp(w, std::time::SystemTime::now())?;
    w.write_str("\",\"level\":\"")?;
    w.write_str(level)?;
    w.write_str("\",\"target\":")?;
    json_str(w, target)
}

/// Closes a JSON log line with its span label and ids, when there are.
fn write_json_tail(
    w: &mut impl fmt::Write,
    label: Option<&str>,
    context: Option<&SpanContext>,
) -> fmt::Result {
    if let Some(label) = label {
        w.write_str(",\"span\":")?;
        json_str(w, label)?;
    }
    if let Some(sc) = context {
        w.write_str(",\"trace_id\":\"")?;
        w.write_str(trace_id_hex(sc.trace_id()).as_str())?;
        w.write_str("\",\"span_id\":\"")?;
        w.write_str(span_id_hex(sc.span_id()).as_str())?;
        w.write_char('"')?;
    }
    w.write_str("}\n")
}

/// Writes a finite float as `Display` does, anything else as `null` (JSON has no NaN).
fn json_f64(w: &mut impl fmt::Write, value: f64) -> fmt::Result {
    if value.is_finite() {
        write!(w, "{value}")
    } else {
        w.write_str("null")
    }
}

/// The value of a field of an access line.
#[derive(Debug, Clone, Copy)]
enum LineValue<'a> {
    /// A string (written escaped).
    Str(&'a str),
    /// An unsigned integer.
    U64(u64),
    /// A float (`null` when not finite).
    F64(f64),
}

thread_local! {
    /// The line [`write_access_line`] is writing on this thread.
    static DIRECT_LINE: std::cell::RefCell<String> =
        const { std::cell::RefCell::new(String::new()) };
}

/// Target of the access line, the line every request writes (for log filters). The
/// OpenTelemetry span layer takes no event of it: access lines are written outside tracing
/// spans, and [`write_access_line`] relies on the log layer being the only one to decide.
pub const ACCESS_LOG_TARGET: &str = "inferd::access";

/// One request's access line: INFO, target [`ACCESS_LOG_TARGET`], message `request`, its
/// fields named by the conventions' attributes (the duration under the name of the metric
/// that measures it), inferd's own under `inferd.`. [`AccessLine::write`] writes it inside
/// the current context, so it carries the request's trace and span ids.
#[derive(Debug, Clone, Copy)]
pub struct AccessLine<'a> {
    /// `http.request.method`.
    pub method: &'a str,
    /// `http.route`: the matched route template.
    pub route: &'a str,
    /// `url.path`.
    pub path: &'a str,
    /// `http.response.status_code`.
    pub status: u16,
    /// `http.server.request.duration`, in seconds.
    pub seconds: f64,
    /// `gen_ai.request.model`, when the request named one.
    pub model: Option<&'a str>,
    /// `inferd.api_key.id`, when the request presented a key.
    pub key_id: Option<&'a str>,
    /// `gen_ai.usage.input_tokens` of a generation.
    pub input_tokens: Option<u32>,
    /// `gen_ai.usage.output_tokens` of a generation.
    pub output_tokens: Option<u32>,
    /// `inferd.request.outcome`: `complete`, `client_closed`, `body_error`.
    pub outcome: &'a str,
}

/// The access line's fields, in the order they are written: the one list both ways of
/// writing the line read (the direct writer, and the `tracing` event's field set after its
/// `message`).
const ACCESS_FIELDS: [&str; 10] = [
    semconv::HTTP_REQUEST_METHOD,
    semconv::HTTP_ROUTE,
    semconv::URL_PATH,
    semconv::HTTP_RESPONSE_STATUS_CODE,
    semconv::HTTP_SERVER_REQUEST_DURATION,
    semconv::GEN_AI_REQUEST_MODEL,
    semconv::INFERD_API_KEY_ID,
    semconv::GEN_AI_USAGE_INPUT_TOKENS,
    semconv::GEN_AI_USAGE_OUTPUT_TOKENS,
    semconv::INFERD_REQUEST_OUTCOME,
];

impl AccessLine<'_> {
    /// The values of [`ACCESS_FIELDS`], in their order; `None` for an absent one.
    fn values(&self) -> [Option<LineValue<'_>>; 10] {
        [
            Some(LineValue::Str(self.method)),
            Some(LineValue::Str(self.route)),
            Some(LineValue::Str(self.path)),
            Some(LineValue::U64(self.status.into())),
            Some(LineValue::F64(self.seconds)),
            self.model.map(LineValue::Str),
            self.key_id.map(LineValue::Str),
            self.input_tokens.map(|n| LineValue::U64(n.into())),
            self.output_tokens.map(|n| LineValue::U64(n.into())),
            Some(LineValue::Str(self.outcome)),
        ]
    }

    /// Writes the line: straight to the log writer when it can be (see [`write_direct`]),
    /// else as a `tracing` event of the same fields.
    pub fn write(&self) {
        let values = self.values();
        if !write_direct(&values) {
            access_event::dispatch(&values);
        }
    }
}

/// The access line as a `tracing` event, for subscribers the direct writer cannot serve: a
/// callsite of its own whose field set is `message` and then [`ACCESS_FIELDS`], so the event
/// carries exactly the fields the direct writer writes.
mod access_event {
    use tracing::callsite::{DefaultCallsite, Identifier};
    use tracing::field::{Field, FieldSet, Value};
    use tracing::metadata::Kind;
    use tracing::{Level, Metadata};

    use super::{LineValue, ACCESS_FIELDS, ACCESS_LOG_TARGET};

    const NAMES: [&str; 11] = {
        let mut names = ["message"; 11];
        let mut i = 0;
        while i < ACCESS_FIELDS.len() {
            names[i + 1] = ACCESS_FIELDS[i];
            i += 1;
        }
        names
    };

    static CALLSITE: DefaultCallsite = DefaultCallsite::new(&META);
    static META: Metadata<'static> = Metadata::new(
        concat!("event ", file!(), ":", line!()),
        ACCESS_LOG_TARGET,
        Level::INFO,
        Some(file!()),
        Some(line!()),
        Some(module_path!()),
        FieldSet::new(&NAMES, Identifier(&CALLSITE)),
        Kind::EVENT,
    );

    fn as_value<'v>(value: &'v LineValue<'_>) -> &'v dyn Value {
        match value {
            LineValue::Str(text) => text,
            LineValue::U64(n) => n,
            LineValue::F64(x) => x,
        }
    }

    /// Dispatches the event with `values` (those of [`ACCESS_FIELDS`]), as `tracing::info!`
    /// would: the level filter, the callsite's interest, then the subscriber's `enabled`.
    pub(super) fn dispatch(values: &[Option<LineValue<'_>>; 10]) {
        if tracing::level_filters::LevelFilter::current() < Level::INFO {
            return;
        }
        let interest = CALLSITE.interest();
        if interest.is_never()
            || !(interest.is_always() || tracing::dispatcher::get_default(|d| d.enabled(&META)))
        {
            return;
        }
        let fields = META.fields();
        let mut names = fields.iter();
        let names: [Field; 11] = std::array::from_fn(|_| names.next().expect("a field per name"));
        let message = format_args!("request");
        let values: [(&Field, Option<&dyn Value>); 11] = std::array::from_fn(|i| {
            let value = match i {
                0 => Some(&message as &dyn Value),
                _ => values[i - 1].as_ref().map(as_value),
            };
            (&names[i], value)
        });
        tracing::Event::dispatch(&META, &fields.value_set(&values));
    }

    /// The callsite, for tests that compare with it.
    #[cfg(test)]
    pub(super) fn metadata() -> &'static Metadata<'static> {
        &META
    }
}

/// Writes an access line with `values` (those of [`ACCESS_FIELDS`]; absent ones left out)
/// straight to the log writer: byte for byte what the JSON log layer writes for the same
/// `tracing` event, the current span's label and ids included, without tracing's dispatch.
/// Returns `true` when the line was written or the log filter leaves it out; `false`,
/// writing nothing, when lines cannot be written this way (pretty format, an OTLP logs
/// bridge that needs the event, a subscriber this crate did not build): the event goes
/// through `tracing` then.
fn write_direct(values: &[Option<LineValue<'_>>; 10]) -> bool {
    if !tracing::enabled!(target: ACCESS_LOG_TARGET, tracing::Level::INFO) {
        return true;
    }
    // The subscriber's log writer (see `Handles`).
    with_line_sink(|sink, dispatch| {
        DIRECT_LINE.with(|line| {
            // Already writing a line on this thread (a re-entrant call): tracing writes this one.
            let Ok(mut line) = line.try_borrow_mut() else {
                return false;
            };
            line.clear();
            if format_info_line(&mut line, dispatch, ACCESS_LOG_TARGET, "request", values).is_ok() {
                sink(line.as_bytes());
            }
            true
        })
    })
    // No log writer of its own: tracing writes the line.
    .unwrap_or(false)
}

fn format_info_line(
    w: &mut String,
    dispatch: &tracing::Dispatch,
    target: &str,
    message: &str,
    values: &[Option<LineValue<'_>>; 10],
) -> fmt::Result {
    write_json_head(w, "INFO", target)?;
    w.write_str(",\"message\":")?;
    json_str(w, message)?;
    let mut count = 0;
    for (name, value) in ACCESS_FIELDS.iter().zip(values) {
        let Some(value) = value else { continue };
        w.write_str(if count == 0 { ",\"fields\":{" } else { "," })?;
        count += 1;
        json_key(w, name)?;
        w.write_char(':')?;
        match *value {
            LineValue::Str(text) => json_str(w, text)?,
            LineValue::U64(n) => w.write_str(itoa::Buffer::new().format(n))?,
            LineValue::F64(x) => json_f64(w, x)?,
        }
    }
    if count > 0 {
        w.write_char('}')?;
    }
    let cx = opentelemetry::Context::current();
    let label = current_label(&cx);
    // Else the registry's current span, as the log layer names it (from `dispatch`: inside
    // `get_default`, `Span::current()` would see no subscriber).
    let label = label.or_else(|| dispatch.current_span().metadata().map(|m| m.name()));
    write_json_tail(w, label, valid_span_context(&cx).as_ref())
}

/// Writes an event's `message` field as the line's `"message"` member.
struct JsonMessage<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Visit for JsonMessage<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" && self.result.is_ok() {
            self.result = (|| {
                self.writer.write_str(",\"message\":\"")?;
                write!(JsonEscaped(&mut *self.writer), "{value:?}")?;
                self.writer.write_char('"')
            })();
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" && self.result.is_ok() {
            self.result = self
                .writer
                .write_str(",\"message\":")
                .and_then(|()| json_str(&mut *self.writer, value));
        }
    }
}

/// Writes an event's fields other than `message` as the members of a JSON object, in the
/// order they were given: `"fields":{` before the first one.
struct JsonFields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    count: usize,
    result: fmt::Result,
}

impl JsonFields<'_, '_> {
    /// Writes the member's key, then its value through `value`.
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if field.name() == "message" || self.result.is_err() {
            return;
        }
        let opening = if self.count == 0 {
            ",\"fields\":{"
        } else {
            ","
        };
        self.count += 1;
        self.result = self
            .writer
            .write_str(opening)
            .and_then(|()| json_key(&mut *self.writer, field.name()))
            .and_then(|()| self.writer.write_char(':'))
            .and_then(|()| value(&mut *self.writer));
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            w.write_char('"')?;
            write!(JsonEscaped(&mut *w), "{value:?}")?;
            w.write_char('"')
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| json_str(w, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.member(field, |w| json_f64(w, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| write!(w, "{value}"));
    }
}

/// Span fields as the log layer keeps them: not at all. Log lines name their span and carry
/// its trace and span ids, never its fields, so formatting every span's fields when it starts
/// (tracing-subscriber's default) would be work on each request that nothing reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSpanFields;

impl<'w> FormatFields<'w> for NoSpanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        _writer: Writer<'w>,
        _fields: R,
    ) -> fmt::Result {
        Ok(())
    }
}

impl<S, N> FormatEvent<S, N> for CorrelatedFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let cx = opentelemetry::Context::current();
        let context = valid_span_context(&cx);

        if self.json {
            // Written straight into the line buffer, in this order: timestamp, level, target,
            // message, fields (as given), span, trace_id, span_id.
            write_json_head(&mut writer, meta.level().as_str(), meta.target())?;
            let mut message = JsonMessage {
                writer: &mut writer,
                result: Ok(()),
            };
            event.record(&mut message);
            message.result?;
            let mut fields = JsonFields {
                writer: &mut writer,
                count: 0,
                result: Ok(()),
            };
            event.record(&mut fields);
            fields.result?;
            if fields.count > 0 {
                writer.write_char('}')?;
            }
            // The span the event is in: an OtelSpan's label when one is innermost, else the
            // registry's current span (the log layer itself asks for no spans, so
            // `lookup_current`, filtered for this layer, would show none).
            let label =
                current_label(&cx).or_else(|| ctx.current_span().metadata().map(|m| m.name()));
            return write_json_tail(&mut writer, label, context.as_ref());
        }

        let mut timestamp = String::new();
        write_timestamp(&mut timestamp, std::time::SystemTime::now())?;
        let (dim, reset) = if self.ansi {
            ("\x1b[2m", "\x1b[0m")
        } else {
            ("", "")
        };
        write!(
            writer,
            "{dim}{timestamp}{reset} {:>5} {}: ",
            meta.level(),
            meta.target()
        )?;
        // The layer's own field formatter is NoSpanFields (span fields are never printed), so
        // an event's fields are written with tracing-subscriber's default format directly.
        DefaultFields::new().format_fields(writer.by_ref(), event)?;
        if let Some(sc) = context {
            write!(
                writer,
                " {dim}trace_id={} span_id={}{reset}",
                trace_id_hex(sc.trace_id()).as_str(),
                span_id_hex(sc.span_id()).as_str()
            )?;
        }
        writer.write_char('\n')
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{LogFormat, Mode, TelemetryConfig};
    use crate::setup::build_with_writer;
    use crate::spans_tests::Captured;
    use serde_json::Value;

    /// What the log layer, as `build_with_writer` sets it up, writes for one event inside a
    /// span that has fields of its own, and whether that span was built at all.
    fn logged_in_mode(log_format: LogFormat, mode: Mode) -> (String, bool) {
        let _serial = crate::serial_dispatch();
        let config = TelemetryConfig {
            mode,
            log_format,
            ..TelemetryConfig::default()
        };
        let captured = Captured::default();
        let (_guard, dispatch) =
            build_with_writer(&config, captured.clone(), false).expect("log layer");
        let built = tracing::dispatcher::with_default(&dispatch, || {
            // Callsite interest is shared by every dispatcher of the process (tests run side by
            // side): recompute it with this one live.
            tracing::callsite::rebuild_interest_cache();
            let span = tracing::info_span!("outer", secret_span_field = "hidden");
            span.in_scope(|| {
                tracing::info!(
                    route = "/v1/models",
                    status = 200u64,
                    ok = true,
                    "request done"
                );
            });
            !span.is_disabled()
        });
        (captured.text(), built)
    }

    /// [`logged_in_mode`] with spans on (`local`), so the event is inside a real span.
    fn logged(log_format: LogFormat) -> String {
        logged_in_mode(log_format, Mode::Local).0
    }

    #[test]
    fn with_telemetry_off_no_span_is_built_and_lines_name_none() {
        let (line, built) = logged_in_mode(LogFormat::Json, Mode::Off);
        assert!(!built, "the log layer alone must not build spans");
        let value: Value = serde_json::from_str(line.trim()).expect("one JSON object");
        assert_eq!(value["message"], "request done");
        assert!(value.get("span").is_none(), "{line}");
        assert!(value.get("trace_id").is_none(), "{line}");
    }

    #[test]
    fn pretty_lines_have_the_message_then_the_fields_and_never_span_fields() {
        let line = logged(LogFormat::Pretty);
        assert!(
            line.contains(r#"request done route="/v1/models" status=200 ok=true"#),
            "{line}"
        );
        assert!(line.contains("INFO"), "{line}");
        assert!(!line.contains("secret_span_field"), "{line}");
        assert!(!line.contains('\x1b'), "no colour off a terminal: {line}");
    }

    #[test]
    fn json_lines_carry_the_fields_and_the_span_name_only() {
        let line = logged(LogFormat::Json);
        let value: Value = serde_json::from_str(line.trim()).expect("one JSON object");
        assert_eq!(value["message"], "request done");
        assert_eq!(value["fields"]["route"], "/v1/models");
        assert_eq!(value["fields"]["status"], 200);
        assert_eq!(value["fields"]["ok"], true);
        assert_eq!(value["span"], "outer");
        assert!(!line.contains("secret_span_field"), "{line}");
        let keys: Vec<&str> = [
            "\"timestamp\"",
            "\"level\"",
            "\"target\"",
            "\"message\"",
            "\"fields\"",
            "\"span\"",
        ]
        .into_iter()
        .collect();
        let positions: Vec<usize> = keys.iter().map(|k| line.find(k).expect(k)).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "key order: {line}"
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        use std::time::{Duration, UNIX_EPOCH};
        let at = |seconds: u64, micros: u64| {
            let mut text = String::new();
            let time = UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_micros(micros);
            super::write_timestamp(&mut text, time).expect("formats");
            text
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        // `date -u -d @…` for each: leap days, century years, the end of a year.
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(1_709_251_199, 999_999), "2024-02-29T23:59:59.999999Z");
        assert_eq!(at(1_795_688_227, 634_135), "2026-11-26T10:17:07.634135Z");
        assert_eq!(at(4_107_542_399, 120), "2100-02-28T23:59:59.000120Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
        assert_eq!(at(1_798_761_599, 1), "2026-12-31T23:59:59.000001Z");
        // The cached prefix follows the second, also backwards.
        assert_eq!(at(1_798_761_600, 0), "2027-01-01T00:00:00.000000Z");
        assert_eq!(at(1_798_761_599, 2), "2026-12-31T23:59:59.000002Z");
    }

    #[test]
    fn json_lines_escape_text_and_keep_value_types() {
        let _serial = crate::serial_dispatch();
        let config = TelemetryConfig {
            mode: Mode::Off,
            log_format: LogFormat::Json,
            ..TelemetryConfig::default()
        };
        let captured = Captured::default();
        let (_guard, dispatch) =
            build_with_writer(&config, captured.clone(), false).expect("log layer");
        let awkward = "quote \" backslash \\ newline \n tab \t bell \u{7} é ✓";
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::warn!(
                text = awkward,
                debug = ?vec!["a\"b"],
                shown = %"x\ny",
                negative = -3i64,
                ratio = 0.25f64,
                nan = f64::NAN,
                "said {}",
                awkward
            );
            tracing::info!("no fields");
        });
        let text = captured.text();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let line = &lines[0];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], format!("said {awkward}"));
        assert_eq!(line["fields"]["text"], awkward);
        assert_eq!(line["fields"]["debug"], r#"["a\"b"]"#);
        assert_eq!(line["fields"]["shown"], "x\ny");
        assert_eq!(line["fields"]["negative"], -3);
        assert_eq!(line["fields"]["ratio"], 0.25);
        assert!(line["fields"]["nan"].is_null(), "{text}");
        assert!(line.get("span").is_none(), "no span outside one: {text}");
        assert_eq!(lines[1]["message"], "no fields");
        assert!(lines[1].get("fields").is_none(), "{text}");
    }

    /// An access line with every field, some needing escapes.
    fn full_line(model: Option<&str>) -> super::AccessLine<'_> {
        super::AccessLine {
            method: "POST",
            route: "/v1/chat/completions",
            path: "/a\"b\n",
            status: 200,
            seconds: 0.25,
            model,
            key_id: Some("k-1234"),
            input_tokens: Some(7),
            output_tokens: Some(3),
            outcome: "complete",
        }
    }

    /// The same access line through the `tracing` event and through the direct writer, in
    /// `mode`, inside an OtelSpan (when there is a tracer), a tracing span, and no span.
    fn direct_and_traced(mode: Mode) -> Vec<(String, String)> {
        let _serial = crate::serial_dispatch();
        use inferd_otel::{span_builder, OtelSpan};
        let config = TelemetryConfig {
            mode,
            log_format: LogFormat::Json,
            ..TelemetryConfig::default()
        };
        let captured = Captured::default();
        let (guard, dispatch) =
            build_with_writer(&config, captured.clone(), false).expect("log layer");
        let request = match guard.tracer() {
            Some(tracer) => OtelSpan::start(
                &tracer,
                &opentelemetry::Context::new(),
                "HTTP request",
                span_builder("GET /", opentelemetry::trace::SpanKind::Server, vec![]),
            ),
            None => OtelSpan::none(),
        };
        let both = || {
            let line = full_line(None);
            let values = line.values();
            super::access_event::dispatch(&values);
            assert!(super::write_direct(&values));
        };
        tracing::dispatcher::with_default(&dispatch, || {
            request.in_scope(both);
            tracing::info_span!("outer").in_scope(both);
            both();
        });
        let text = captured.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        // Everything after the timestamp is the same.
        let rest = |line: &str| line[line.find("\",\"level").unwrap_or(0)..].to_owned();
        lines
            .chunks(2)
            .map(|pair| (rest(pair[0]), rest(pair[1])))
            .collect()
    }

    #[test]
    fn direct_lines_are_the_lines_tracing_writes() {
        for mode in [Mode::Local, Mode::Off] {
            let pairs = direct_and_traced(mode);
            for (traced, direct) in &pairs {
                assert_eq!(traced, direct, "{mode:?}");
            }
            if mode == Mode::Local {
                assert!(pairs[0]
                    .0
                    .contains("\"span\":\"HTTP request\",\"trace_id\""));
                assert!(pairs[1].0.contains("\"span\":\"outer\""));
            }
            // Every field but the absent model, in the list's order.
            let text = &pairs[2].0;
            let line: serde_json::Value =
                serde_json::from_str(&format!("{{\"timestamp\":\"t{text}")).expect("JSON");
            let at = |name: &str| text.find(&format!("\"{name}\":"));
            let positions: Vec<usize> = super::ACCESS_FIELDS
                .iter()
                .filter(|name| **name != inferd_otel::semconv::GEN_AI_REQUEST_MODEL)
                .map(|name| at(name).unwrap_or_else(|| panic!("{name} missing: {text}")))
                .collect();
            assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
            assert_eq!(
                at(inferd_otel::semconv::GEN_AI_REQUEST_MODEL),
                None,
                "{text}"
            );
            assert_eq!(line["message"], "request");
            assert_eq!(line["fields"]["url.path"], "/a\"b\n");
            assert!(
                pairs[2]
                    .0
                    .ends_with("\"inferd.request.outcome\":\"complete\"}}"),
                "{}",
                pairs[2].0
            );
        }
    }

    #[test]
    fn the_access_event_has_the_access_target_and_fields() {
        let meta = super::access_event::metadata();
        assert_eq!(meta.target(), super::ACCESS_LOG_TARGET);
        assert_eq!(*meta.level(), tracing::Level::INFO);
        let names: Vec<&str> = meta.fields().iter().map(|f| f.name()).collect();
        assert_eq!(names[0], "message");
        assert_eq!(names[1..], super::ACCESS_FIELDS);
    }

    #[test]
    fn pretty_access_lines_go_through_tracing_not_the_direct_writer() {
        let _serial = crate::serial_dispatch();
        let config = TelemetryConfig {
            log_format: LogFormat::Pretty,
            ..TelemetryConfig::default()
        };
        let captured = Captured::default();
        let (_guard, dispatch) =
            build_with_writer(&config, captured.clone(), false).expect("log layer");
        let written = tracing::dispatcher::with_default(&dispatch, || {
            super::write_direct(&full_line(None).values())
        });
        assert!(!written && captured.text().is_empty());
        tracing::dispatcher::with_default(&dispatch, || full_line(Some("m")).write());
        let text = captured.text();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("request") && text.contains("k-1234"),
            "{text}"
        );
    }

    #[test]
    fn direct_access_lines_follow_the_log_filter_in_every_mode() {
        let _serial = crate::serial_dispatch();
        for (mode, filter, expected) in [
            (Mode::Local, "warn", 0),
            (Mode::Local, "warn,inferd::access=info", 1),
            (Mode::Off, "warn", 0),
            (Mode::Off, "info", 1),
        ] {
            let config = TelemetryConfig {
                mode,
                log_format: LogFormat::Json,
                log_filter: filter.into(),
                ..TelemetryConfig::default()
            };
            let captured = Captured::default();
            let (_guard, dispatch) =
                build_with_writer(&config, captured.clone(), false).expect("log layer");
            let done = tracing::dispatcher::with_default(&dispatch, || {
                tracing::callsite::rebuild_interest_cache();
                super::write_direct(&full_line(None).values())
            });
            assert!(done);
            assert_eq!(
                captured.text().lines().count(),
                expected,
                "{mode:?} {filter}"
            );
        }
    }
}
