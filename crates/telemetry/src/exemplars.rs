//! Exemplars: for a histogram series, the trace and span of a few recent measurements, so a
//! dashboard panel's spike opens the trace that caused it. The OpenTelemetry SDK keeps none,
//! so inferd keeps them itself, for the measurements its code offers (the GenAI latency
//! histograms), and `/metrics` renders them on the bucket lines when the scraper asks for
//! OpenMetrics. Only measurements made inside a sampled trace are kept: an exemplar must open
//! a trace the backend has.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::SystemTime;

use opentelemetry::trace::{SpanContext, SpanId, TraceId};
use opentelemetry::KeyValue;

/// Measurements kept per series: enough for one in most buckets of a latency histogram.
const KEPT_PER_SERIES: usize = 32;

/// Series tracked at most; a new series past it keeps no exemplars (the metric label sets are
/// bounded by configuration, so this only guards memory).
const MAX_SERIES: usize = 1024;

/// One measurement with the span it was made in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    /// The measured value.
    pub value: f64,
    /// The trace it was measured in.
    pub trace_id: TraceId,
    /// The span current when it was measured.
    pub span_id: SpanId,
    /// When.
    pub at: SystemTime,
}

/// The exemplars of every series, by metric name and attribute set.
#[derive(Debug, Default)]
pub struct Exemplars {
    series: Mutex<HashMap<(String, u64), VecDeque<Exemplar>>>,
}

impl Exemplars {
    /// Keeps `value`, measured for `metric` with `attributes` inside the span `sc`, when that
    /// span is sampled.
    pub fn record(&self, metric: &str, attributes: &[KeyValue], value: f64, sc: &SpanContext) {
        if !sc.is_valid() || !sc.is_sampled() {
            return;
        }
        let exemplar = Exemplar {
            value,
            trace_id: sc.trace_id(),
            span_id: sc.span_id(),
            at: SystemTime::now(),
        };
        let key = (metric.to_owned(), attributes_hash(attributes.iter()));
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if series.len() >= MAX_SERIES && !series.contains_key(&key) {
            return;
        }
        let kept = series.entry(key).or_default();
        if kept.len() == KEPT_PER_SERIES {
            kept.pop_front();
        }
        kept.push_back(exemplar);
    }

    /// The series' exemplars, oldest first.
    pub fn of<'a>(
        &self,
        metric: &str,
        attributes: impl Iterator<Item = &'a KeyValue>,
    ) -> Vec<Exemplar> {
        let key = (metric.to_owned(), attributes_hash(attributes));
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series
            .get(&key)
            .map(|kept| kept.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// The newest of `exemplars` whose value falls in the bucket `(low, high]`.
pub fn in_bucket(exemplars: &[Exemplar], low: f64, high: f64) -> Option<&Exemplar> {
    exemplars
        .iter()
        .rev()
        .find(|e| e.value > low && e.value <= high)
}

/// A hash of an attribute set that does not depend on the order the attributes come in (a
/// measurement's order is its caller's; a collected data point's is the SDK's).
fn attributes_hash<'a>(attributes: impl Iterator<Item = &'a KeyValue>) -> u64 {
    let mut pairs: Vec<(&str, String)> = attributes
        .map(|kv| (kv.key.as_str(), kv.value.to_string()))
        .collect();
    pairs.sort_unstable();
    let mut hasher = DefaultHasher::new();
    pairs.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{TraceFlags, TraceState};

    use super::*;

    fn span(sampled: bool, n: u8) -> SpanContext {
        SpanContext::new(
            TraceId::from_bytes([n; 16]),
            SpanId::from_bytes([n; 8]),
            if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            false,
            TraceState::default(),
        )
    }

    #[test]
    fn keeps_sampled_measurements_by_series_whatever_the_attribute_order() {
        let exemplars = Exemplars::default();
        let a = KeyValue::new("model", "m");
        let b = KeyValue::new("op", "chat");
        exemplars.record("ttft", &[a.clone(), b.clone()], 0.2, &span(true, 1));
        exemplars.record("ttft", std::slice::from_ref(&b), 0.3, &span(true, 2));
        exemplars.record("ttft", &[a.clone(), b.clone()], 0.4, &span(false, 3));
        let kept = exemplars.of("ttft", [b.clone(), a.clone()].iter());
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[0].trace_id, TraceId::from_bytes([1; 16]));
        assert_eq!(exemplars.of("ttft", [b].iter()).len(), 1);
        assert!(exemplars.of("other", [a].iter()).is_empty());
    }

    #[test]
    fn a_series_keeps_its_newest_measurements_and_buckets_pick_the_newest_in_range() {
        let exemplars = Exemplars::default();
        for i in 0..(KEPT_PER_SERIES + 8) {
            let value = if i % 2 == 0 { 0.05 } else { 0.5 };
            exemplars.record(
                "d",
                &[],
                value,
                &span(true, u8::try_from(i + 1).expect("small")),
            );
        }
        let kept = exemplars.of("d", [].iter());
        assert_eq!(kept.len(), KEPT_PER_SERIES);
        let newest_small = in_bucket(&kept, 0.0, 0.1).expect("a small one");
        assert_eq!(
            newest_small.trace_id,
            TraceId::from_bytes([u8::try_from(KEPT_PER_SERIES + 7).expect("small"); 16])
        );
        assert!(in_bucket(&kept, 1.0, f64::INFINITY).is_none());
    }
}
