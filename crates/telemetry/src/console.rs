//! The `console` mode's exporters: one JSON object per finished span on stdout, in the same
//! shape as the /debug/traces API, and one per metric at each metric export.

use std::io::Write;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde_json::json;

use crate::store::span_record;

/// Prints spans as JSON lines to stdout.
#[derive(Debug, Default)]
pub struct ConsoleSpanExporter;

impl SpanExporter for ConsoleSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut out = std::io::stdout().lock();
        for span in &batch {
            let line = serde_json::to_string(&span_record(span))
                .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))?;
            writeln!(out, "{line}").map_err(|e| OTelSdkError::InternalFailure(e.to_string()))?;
        }
        Ok(())
    }
}

/// Prints metrics as JSON lines to stdout: one object per metric per export, cumulative.
#[derive(Debug, Default)]
pub struct ConsoleMetricExporter;

fn json_attributes<'a>(
    attrs: impl Iterator<Item = &'a opentelemetry::KeyValue>,
) -> serde_json::Map<String, serde_json::Value> {
    attrs
        .map(|kv| (kv.key.as_str().to_owned(), kv.value.to_string().into()))
        .collect()
}

fn metric_points<T>(data: &MetricData<T>) -> Vec<serde_json::Value>
where
    T: Copy + serde::Serialize,
{
    match data {
        MetricData::Sum(sum) => sum
            .data_points()
            .map(|p| json!({"attributes": json_attributes(p.attributes()), "value": p.value()}))
            .collect(),
        MetricData::Gauge(gauge) => gauge
            .data_points()
            .map(|p| json!({"attributes": json_attributes(p.attributes()), "value": p.value()}))
            .collect(),
        MetricData::Histogram(hist) => hist
            .data_points()
            .map(|p| {
                json!({
                    "attributes": json_attributes(p.attributes()),
                    "count": p.count(),
                    "sum": p.sum(),
                    "bounds": p.bounds().collect::<Vec<f64>>(),
                    "bucket_counts": p.bucket_counts().collect::<Vec<u64>>(),
                })
            })
            .collect(),
        MetricData::ExponentialHistogram(_) => Vec::new(),
    }
}

/// The JSON lines one export prints, one per metric.
pub(crate) fn metric_lines(metrics: &ResourceMetrics) -> Vec<String> {
    let mut lines = Vec::new();
    for scope in metrics.scope_metrics() {
        for metric in scope.metrics() {
            let points = match metric.data() {
                AggregatedMetrics::F64(d) => metric_points(d),
                AggregatedMetrics::U64(d) => metric_points(d),
                AggregatedMetrics::I64(d) => metric_points(d),
            };
            let line = json!({
                "name": metric.name(),
                "unit": metric.unit(),
                "description": metric.description(),
                "points": points,
            });
            lines.push(line.to_string());
        }
    }
    lines
}

impl PushMetricExporter for ConsoleMetricExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let mut out = std::io::stdout().lock();
        for line in metric_lines(metrics) {
            writeln!(out, "{line}").map_err(|e| OTelSdkError::InternalFailure(e.to_string()))?;
        }
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry::KeyValue;
    use opentelemetry_sdk::metrics::SdkMeterProvider;

    use super::*;
    use crate::prometheus::PrometheusMetrics;

    #[test]
    fn metrics_become_json_lines() {
        let (metrics, reader) = PrometheusMetrics::new();
        let provider = SdkMeterProvider::builder().with_reader(reader).build();
        let meter = provider.meter("test");
        meter
            .u64_counter("inferd.errors")
            .build()
            .add(2, &[KeyValue::new("error.type", "timeout")]);
        meter
            .f64_histogram("gen_ai.server.request.duration")
            .with_unit("s")
            .build()
            .record(0.5, &[]);
        let rm = metrics.collect();
        let Ok(rm) = rm else { panic!("collect failed") };
        let lines: Vec<serde_json::Value> = metric_lines(&rm)
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let errors = lines.iter().find(|l| l["name"] == "inferd.errors");
        let Some(errors) = errors else {
            panic!("{lines:?}")
        };
        assert_eq!(errors["points"][0]["value"], 2);
        assert_eq!(errors["points"][0]["attributes"]["error.type"], "timeout");
        let duration = lines
            .iter()
            .find(|l| l["name"] == "gen_ai.server.request.duration");
        let Some(duration) = duration else {
            panic!("{lines:?}")
        };
        assert_eq!(duration["unit"], "s");
        assert_eq!(duration["points"][0]["count"], 1);
    }
}
