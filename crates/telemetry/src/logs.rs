//! Log lines: JSON (off a terminal) or human-readable (on one), each line written inside a span
//! carrying that span's trace_id and span_id from the OpenTelemetry span context.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
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
        // The layer's own field formatter is NoSpanFields (span fields are never printed), so
        // an event's fields are written with tracing-subscriber's default format directly.
        DefaultFields::new().format_fields(writer.by_ref(), event)?;
        if let Some((trace_id, span_id)) = ids {
            write!(writer, " {dim}trace_id={trace_id} span_id={span_id}{reset}")?;
        }
        writer.write_char('\n')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LogFormat, Mode, TelemetryConfig};
    use crate::setup::build_with_writer;
    use crate::spans::tests::Captured;

    /// What the log layer, as `build_with_writer` sets it up, writes for one event inside a
    /// span that has fields of its own.
    fn logged(log_format: LogFormat) -> String {
        let config = TelemetryConfig {
            mode: Mode::Off,
            log_format,
            ..TelemetryConfig::default()
        };
        let captured = Captured::default();
        let (_guard, dispatch) =
            build_with_writer(&config, captured.clone(), false).expect("log layer");
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!("outer", secret_span_field = "hidden");
            span.in_scope(|| {
                tracing::info!(
                    route = "/v1/models",
                    status = 200u64,
                    ok = true,
                    "request done"
                );
            });
        });
        captured.text()
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
    }
}
