//! Distribution summaries (mean and percentiles) of the per-request figures, computed exactly by
//! sorting: a stage holds at most a few hundred thousand values, so exactness costs nothing.

use serde::{Deserialize, Serialize};

/// Mean, percentiles and extremes of one figure over a stage, in the figure's unit (seconds for
/// times).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values summarised.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Smallest value.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
}

impl Summary {
    /// Summarises `values` (NaN values are ignored); `None` when there is none.
    ///
    /// Percentiles interpolate linearly between the two nearest ranks, as numpy's default
    /// `percentile` does, so figures line up with Python load generators.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        Some(Summary {
            count: n as u64,
            mean,
            min: sorted[0],
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p95: percentile(&sorted, 95.0),
            p99: percentile(&sorted, 99.0),
            max: sorted[n - 1],
        })
    }

    /// The named statistic (`mean`, `min`, `p50`, `p90`, `p95`, `p99`, `max`).
    pub fn get(&self, stat: &str) -> Option<f64> {
        match stat {
            "mean" => Some(self.mean),
            "min" => Some(self.min),
            "p50" => Some(self.p50),
            "p90" => Some(self.p90),
            "p95" => Some(self.p95),
            "p99" => Some(self.p99),
            "max" => Some(self.max),
            _ => None,
        }
    }

    /// The statistics in display order.
    pub const STATS: [&'static str; 7] = ["mean", "min", "p50", "p90", "p95", "p99", "max"];
}

/// The `p`th percentile (0..=100) of an ascending, non-empty slice, linearly interpolated.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = rank.ceil() as usize;
    let weight = rank - lower as f64;
    sorted[lower] + (sorted[upper] - sorted[lower]) * weight
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_has_no_summary() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[f64::NAN]), None);
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        // numpy.percentile(range(1, 101), [50, 90, 95, 99]) == [50.5, 90.1, 95.05, 99.01]
        let values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = Summary::of(&values).expect("summary");
        assert_eq!(s.count, 100);
        assert!((s.mean - 50.5).abs() < 1e-9);
        assert!((s.p50 - 50.5).abs() < 1e-9);
        assert!((s.p90 - 90.1).abs() < 1e-9);
        assert!((s.p95 - 95.05).abs() < 1e-9);
        assert!((s.p99 - 99.01).abs() < 1e-9);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 100.0);
    }

    #[test]
    fn single_value_is_every_statistic() {
        let s = Summary::of(&[0.25]).expect("summary");
        for stat in Summary::STATS {
            assert_eq!(s.get(stat), Some(0.25), "{stat}");
        }
        assert_eq!(s.get("p42"), None);
    }
}
