//! Events that are both a log line and a span event, written from one field list by
//! [`log_event!`](crate::log_event): the line inside the span (so it carries the trace ids and
//! the span's label), and, when the span records, an event named by the line's message with
//! its `level`, its `target` and the same fields. A site names its fields once; the two can
//! no longer drift apart.

use opentelemetry::{KeyValue, Value};

/// A value a [`log_event!`](crate::log_event) field may hold: what `tracing` records, turned
/// into an OpenTelemetry attribute value. `None` leaves the field out of both.
pub trait FieldValue {
    /// The attribute value; `None` for an absent field.
    fn attribute(&self) -> Option<Value>;
}

impl FieldValue for str {
    fn attribute(&self) -> Option<Value> {
        Some(Value::from(self.to_owned()))
    }
}

impl FieldValue for String {
    fn attribute(&self) -> Option<Value> {
        Some(Value::from(self.clone()))
    }
}

impl<T: FieldValue + ?Sized> FieldValue for &T {
    fn attribute(&self) -> Option<Value> {
        (**self).attribute()
    }
}

impl<T: FieldValue> FieldValue for Option<T> {
    fn attribute(&self) -> Option<Value> {
        self.as_ref().and_then(FieldValue::attribute)
    }
}

impl FieldValue for f64 {
    fn attribute(&self) -> Option<Value> {
        Some(Value::F64(*self))
    }
}

impl FieldValue for bool {
    fn attribute(&self) -> Option<Value> {
        Some(Value::Bool(*self))
    }
}

macro_rules! integer_field {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            fn attribute(&self) -> Option<Value> {
                Some(Value::I64(i64::try_from(*self).unwrap_or(i64::MAX)))
            }
        }
    )*};
}

integer_field!(i32, i64, u32, u64, usize);

/// Appends `key = value` to `fields` unless the value is absent.
#[doc(hidden)]
pub fn push_field(fields: &mut Vec<KeyValue>, key: &'static str, value: &dyn FieldValue) {
    if let Some(value) = value.attribute() {
        fields.push(KeyValue::new(key, value));
    }
}

/// Writes one event as a log line inside `span` and as an event on it, from one field list:
///
/// ```
/// let span = inferd_otel::OtelSpan::none();
/// let id = "smollm2";
/// inferd_otel::log_event!(span, INFO, "model ready", model = id, seconds = 1.5, source = "http");
/// ```
///
/// The level is one of `ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE`; each value is evaluated once
/// and must be a `tracing` value and a [`FieldValue`] (strings, numbers, booleans, options of
/// them). The line is written only when its level is enabled for the calling module; the span
/// event only when the span records (see [`OtelSpan::add_log_event`](crate::OtelSpan::add_log_event)).
#[macro_export]
macro_rules! log_event {
    ($span:expr, $level:ident, $message:literal $(, $key:ident = $value:expr)* $(,)?) => {{
        let span: &$crate::OtelSpan = &$span;
        $( let $key = $value; )*
        if $crate::__private::tracing::enabled!($crate::__private::tracing::Level::$level) {
            span.in_scope(|| {
                $crate::__private::tracing::event!(
                    $crate::__private::tracing::Level::$level,
                    $($key = $key,)*
                    $message
                )
            });
        }
        span.add_log_event(
            $crate::__private::tracing::Level::$level,
            ::core::module_path!(),
            $message,
            |_fields| {
                $( $crate::event::push_field(_fields, ::core::stringify!($key), &$key); )*
            },
        );
    }};
}
