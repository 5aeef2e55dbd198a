//! Log lines: JSON (off a terminal) or human-readable (on one), each line written inside a span
//! carrying that span's trace_id and span_id from the OpenTelemetry span context.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

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
}

/// The ids of the span that is current in OpenTelemetry's context, as 32 and 16 lowercase hex
/// digits; `None` outside a span or when telemetry is off.
pub fn current_trace_ids() -> Option<(String, String)> {
    let cx = opentelemetry::Context::current();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid()
        .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

#[derive(Default)]
struct JsonFields {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.fields
                .insert(field.name().to_owned(), Value::String(text));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.fields
                .insert(field.name().to_owned(), Value::String(value.to_owned()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().to_owned(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().to_owned(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.insert(field.name().to_owned(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().to_owned(), value.into());
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
        let ids = current_trace_ids();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;

        if self.json {
            let mut visitor = JsonFields::default();
            event.record(&mut visitor);
            let mut line = Map::new();
            line.insert("timestamp".into(), timestamp.into());
            line.insert("level".into(), meta.level().as_str().into());
            line.insert("target".into(), meta.target().into());
            if let Some(message) = visitor.message {
                line.insert("message".into(), message.into());
            }
            if !visitor.fields.is_empty() {
                line.insert("fields".into(), Value::Object(visitor.fields));
            }
            if let Some(span) = ctx.lookup_current() {
                line.insert("span".into(), span.name().into());
            }
            if let Some((trace_id, span_id)) = ids {
                line.insert("trace_id".into(), trace_id.into());
                line.insert("span_id".into(), span_id.into());
            }
            let text = serde_json::to_string(&Value::Object(line)).map_err(|_| fmt::Error)?;
            return writeln!(writer, "{text}");
        }

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
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        if let Some((trace_id, span_id)) = ids {
            write!(writer, " {dim}trace_id={trace_id} span_id={span_id}{reset}")?;
        }
        writer.write_char('\n')
    }
}
