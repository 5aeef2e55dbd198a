//! Metrics in Prometheus text format for the server's `/metrics`, read on demand from the meter
//! provider (names translated the usual way: dots to underscores, unit suffix, `_total` on
//! counters), or in OpenMetrics text, with exemplars on histogram buckets, for a scraper that
//! asks for it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::KeyValue;

use crate::exemplars::{in_bucket, Exemplars};
use inferd_otel::ids::{span_id_hex, trace_id_hex};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

/// Reads the meter provider's metrics when asked (one scrape, one collection).
#[derive(Debug, Clone)]
pub struct PrometheusMetrics {
    reader: Arc<ManualReader>,
    exemplars: Arc<Exemplars>,
}

/// The `Content-Type` of [`PrometheusMetrics::render`].
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The `Content-Type` of [`PrometheusMetrics::render_openmetrics`].
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether a scrape's `Accept` header asks for OpenMetrics (as Prometheus does when exemplar
/// storage is on).
pub fn wants_openmetrics(accept: &str) -> bool {
    accept.split(',').any(|part| {
        part.trim_start()
            .starts_with("application/openmetrics-text")
    })
}

/// How a family is written.
#[derive(Clone, Copy)]
enum Format<'a> {
    /// Prometheus text 0.0.4.
    Text,
    /// OpenMetrics 1.0, with the exemplars kept.
    OpenMetrics(&'a Exemplars),
}

/// The reader half registered with the meter provider.
#[derive(Debug)]
pub(crate) struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

impl PrometheusMetrics {
    /// A cumulative reader and the handle that renders what it collects.
    pub(crate) fn new() -> (Self, SharedReader) {
        let reader = Arc::new(
            ManualReader::builder()
                .with_temporality(Temporality::Cumulative)
                .build(),
        );
        (
            PrometheusMetrics {
                reader: reader.clone(),
                exemplars: Arc::default(),
            },
            SharedReader(reader),
        )
    }

    /// Collects now and renders Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> Result<String, crate::Error> {
        Ok(render(&self.collect()?, Format::Text))
    }

    /// Collects now and renders OpenMetrics text (1.0.0): the same families, counters named
    /// without their `_total`, histogram buckets with the exemplars kept, `# EOF` at the end.
    pub fn render_openmetrics(&self) -> Result<String, crate::Error> {
        Ok(render(
            &self.collect()?,
            Format::OpenMetrics(&self.exemplars),
        ))
    }

    /// Where measurements leave their exemplars.
    pub fn exemplars(&self) -> Arc<Exemplars> {
        Arc::clone(&self.exemplars)
    }

    /// Collects the current cumulative values.
    pub(crate) fn collect(&self) -> Result<ResourceMetrics, crate::Error> {
        let mut rm = ResourceMetrics::default();
        self.reader
            .collect(&mut rm)
            .map_err(|e| crate::Error::Metrics(e.to_string()))?;
        Ok(rm)
    }
}

fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            c
        } else {
            '_'
        };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A label name: as a metric name, but colons are not allowed in label names.
fn label_name(key: &str) -> String {
    sanitize(&key.replace(':', "_"))
}

fn unit_suffix(unit: &str) -> Option<&'static str> {
    match unit {
        "s" => Some("seconds"),
        "ms" => Some("milliseconds"),
        "By" => Some("bytes"),
        "1" => Some("ratio"),
        _ => None,
    }
}

fn metric_name(metric: &Metric, counter: bool) -> String {
    let mut name = sanitize(metric.name());
    if let Some(suffix) = unit_suffix(metric.unit()) {
        if !name.ends_with(suffix) {
            name = format!("{name}_{suffix}");
        }
    }
    if counter && !name.ends_with("_total") {
        name.push_str("_total");
    }
    name
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels<'a>(attrs: impl Iterator<Item = &'a KeyValue>, extra: Option<(&str, String)>) -> String {
    let mut map: BTreeMap<String, String> = attrs
        .map(|kv| (label_name(kv.key.as_str()), escape(&kv.value.to_string())))
        .collect();
    if let Some((k, v)) = extra {
        map.insert(k.to_owned(), v);
    }
    if map.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = map.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{{{}}}", inner.join(","))
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        v.to_string()
    }
}

trait AsF64: Copy {
    fn as_f64(self) -> f64;
}
impl AsF64 for f64 {
    fn as_f64(self) -> f64 {
        self
    }
}
impl AsF64 for u64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}
impl AsF64 for i64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}

fn render_data<T: AsF64>(
    out: &mut String,
    metric: &Metric,
    data: &MetricData<T>,
    format: Format<'_>,
) {
    // HELP text escapes only backslash and newline (a quote stays as it is).
    let help = metric
        .description()
        .replace('\\', "\\\\")
        .replace('\n', "\\n");
    match data {
        MetricData::Sum(sum) => {
            let counter = sum.is_monotonic();
            let name = metric_name(metric, counter);
            let kind = if counter { "counter" } else { "gauge" };
            // OpenMetrics names a counter's family without the `_total` its samples carry.
            let family = match format {
                Format::OpenMetrics(_) if counter => name.trim_end_matches("_total"),
                _ => &name,
            };
            let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
            for p in sum.data_points() {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    labels(p.attributes(), None),
                    number(p.value().as_f64())
                );
            }
        }
        MetricData::Gauge(gauge) => {
            let name = metric_name(metric, false);
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for p in gauge.data_points() {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    labels(p.attributes(), None),
                    number(p.value().as_f64())
                );
            }
        }
        MetricData::Histogram(hist) => {
            let name = metric_name(metric, false);
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for p in hist.data_points() {
                let mut cumulative = 0;
                let bounds: Vec<f64> = p.bounds().collect();
                let exemplars = match format {
                    Format::OpenMetrics(kept) => kept.of(metric.name(), p.attributes()),
                    Format::Text => Vec::new(),
                };
                for (i, count) in p.bucket_counts().enumerate() {
                    cumulative += count;
                    let le = bounds.get(i).copied().unwrap_or(f64::INFINITY);
                    let _ = write!(
                        out,
                        "{name}_bucket{} {cumulative}",
                        labels(p.attributes(), Some(("le", number(le))))
                    );
                    let low = i
                        .checked_sub(1)
                        .and_then(|j| bounds.get(j).copied())
                        .unwrap_or(f64::NEG_INFINITY);
                    if let Some(e) = in_bucket(&exemplars, low, le) {
                        let at =
                            e.at.duration_since(std::time::UNIX_EPOCH)
                                .unwrap_or_default()
                                .as_secs_f64();
                        let _ = write!(
                            out,
                            " # {{trace_id=\"{}\",span_id=\"{}\"}} {} {at:.3}",
                            trace_id_hex(e.trace_id).as_str(),
                            span_id_hex(e.span_id).as_str(),
                            number(e.value)
                        );
                    }
                    out.push('\n');
                }
                let l = labels(p.attributes(), None);
                let _ = writeln!(out, "{name}_sum{l} {}", number(p.sum().as_f64()));
                let _ = writeln!(out, "{name}_count{l} {}", p.count());
            }
        }
        // inferd configures no exponential histograms.
        MetricData::ExponentialHistogram(_) => {}
    }
}

fn render(rm: &ResourceMetrics, format: Format<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP target_info Target metadata\n# TYPE target_info gauge\ntarget_info{} 1",
        labels(
            rm.resource()
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                .collect::<Vec<_>>()
                .iter(),
            None
        )
    );
    for scope in rm.scope_metrics() {
        for metric in scope.metrics() {
            match metric.data() {
                AggregatedMetrics::F64(d) => render_data(&mut out, metric, d, format),
                AggregatedMetrics::U64(d) => render_data(&mut out, metric, d, format),
                AggregatedMetrics::I64(d) => render_data(&mut out, metric, d, format),
            }
        }
    }
    if let Format::OpenMetrics(_) = format {
        out.push_str("# EOF\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::SdkMeterProvider;

    use super::*;

    #[test]
    fn renders_counters_updown_counters_and_histograms() {
        let (metrics, reader) = PrometheusMetrics::new();
        let provider = SdkMeterProvider::builder().with_reader(reader).build();
        let meter = provider.meter("test");
        let dropped = meter
            .u64_counter("inferd.telemetry.dropped")
            .with_unit("{item}")
            .build();
        dropped.add(3, &[KeyValue::new("signal", "spans")]);
        let active = meter.i64_up_down_counter("inferd.requests.active").build();
        active.add(2, &[]);
        let duration = meter
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_boundaries(vec![0.1, 1.0])
            .build();
        duration.record(0.05, &[KeyValue::new("http.route", "/v1/\"x\"")]);
        duration.record(0.5, &[KeyValue::new("http.route", "/v1/\"x\"")]);

        let text = metrics.render().unwrap_or_default();
        assert!(
            text.contains("# TYPE inferd_telemetry_dropped_total counter"),
            "{text}"
        );
        assert!(
            text.contains("inferd_telemetry_dropped_total{signal=\"spans\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE inferd_requests_active gauge"),
            "{text}"
        );
        assert!(text.contains("inferd_requests_active 2"), "{text}");
        assert!(
            text.contains("# TYPE http_server_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(text.contains(
            "http_server_request_duration_seconds_bucket{http_route=\"/v1/\\\"x\\\"\",le=\"0.1\"} 1"
        ), "{text}");
        assert!(text.contains(
            "http_server_request_duration_seconds_bucket{http_route=\"/v1/\\\"x\\\"\",le=\"+Inf\"} 2"
        ), "{text}");
        assert!(
            text.contains(
                "http_server_request_duration_seconds_count{http_route=\"/v1/\\\"x\\\"\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("target_info{"), "{text}");
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_puts_exemplars_on_their_buckets() {
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

        let (metrics, reader) = PrometheusMetrics::new();
        let provider = SdkMeterProvider::builder().with_reader(reader).build();
        let meter = provider.meter("test");
        meter
            .u64_counter("inferd.errors")
            .build()
            .add(1, &[KeyValue::new("error.type", "x")]);
        let ttft = meter
            .f64_histogram("gen_ai.server.time_to_first_token")
            .with_unit("s")
            .with_boundaries(vec![0.1, 1.0])
            .build();
        let attrs = [
            KeyValue::new("gen_ai.request.model", "m"),
            KeyValue::new("gen_ai.operation.name", "chat"),
        ];
        ttft.record(0.5, &attrs);
        ttft.record(0.05, &attrs);
        let sampled = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
            SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        // Recorded in the other attribute order: the same series.
        let reversed = [attrs[1].clone(), attrs[0].clone()];
        metrics.exemplars().record(
            "gen_ai.server.time_to_first_token",
            &reversed,
            0.5,
            &sampled,
        );

        let text = metrics.render_openmetrics().unwrap_or_default();
        assert!(text.contains("# TYPE inferd_errors counter\n"), "{text}");
        assert!(
            text.contains("inferd_errors_total{error_type=\"x\"} 1"),
            "{text}"
        );
        let bucket = text
            .lines()
            .find(|l| l.contains("_bucket{") && l.contains("le=\"1\""))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            bucket.contains(
                " 2 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\",span_id=\"00f067aa0ba902b7\"} 0.5 "
            ),
            "{bucket}"
        );
        // Only the bucket the value falls in carries it.
        assert_eq!(text.matches("# {trace_id=").count(), 1, "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        // The text format has none of it.
        let plain = metrics.render().unwrap_or_default();
        assert!(
            !plain.contains("# {") && !plain.contains("# EOF"),
            "{plain}"
        );
    }
}

#[cfg(test)]
#[path = "prometheus_proptests.rs"]
mod proptests;
