//! When each request of a rate stage is due: evenly spaced (constant) or with exponential gaps
//! (Poisson arrivals), from a seeded generator so a run repeats.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::Arrival;

/// Send times of a rate stage, as offsets from the stage's start. An endless iterator: the
/// caller stops at the stage's duration or request count.
#[derive(Debug)]
pub struct ArrivalSchedule {
    rate: f64,
    arrival: Arrival,
    rng: StdRng,
    index: u64,
    next: f64,
}

impl ArrivalSchedule {
    /// `rate` requests per second (> 0), seeded by `seed`.
    pub fn new(rate: f64, arrival: Arrival, seed: u64) -> Self {
        ArrivalSchedule {
            rate,
            arrival,
            rng: StdRng::seed_from_u64(seed),
            index: 0,
            next: 0.0,
        }
    }
}

impl Iterator for ArrivalSchedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let offset = match self.arrival {
            // Computed from the index, not summed, so rounding never drifts.
            Arrival::Constant => self.index as f64 / self.rate,
            Arrival::Poisson => {
                // Inverse-CDF sample of an exponential gap; 1-u is in (0, 1], so ln is finite.
                let u: f64 = self.rng.random();
                let gap = -(1.0 - u).ln() / self.rate;
                let at = self.next;
                self.next += gap;
                at
            }
        };
        self.index += 1;
        Some(Duration::from_secs_f64(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let offsets: Vec<Duration> = ArrivalSchedule::new(4.0, Arrival::Constant, 1)
            .take(5)
            .collect();
        let ms: Vec<u128> = offsets.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![0, 250, 500, 750, 1000]);
    }

    #[test]
    fn poisson_has_the_asked_mean_rate_and_repeats_with_its_seed() {
        let rate = 20.0;
        let n = 20_000;
        let offsets: Vec<Duration> = ArrivalSchedule::new(rate, Arrival::Poisson, 7)
            .take(n)
            .collect();
        let span = offsets[n - 1].as_secs_f64();
        let measured = (n - 1) as f64 / span;
        assert!(
            (measured - rate).abs() / rate < 0.03,
            "measured rate {measured}"
        );
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
        // Gaps are not all equal (that would be a constant schedule).
        let gaps: Vec<f64> = offsets
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        // Exponential gaps: standard deviation equals the mean.
        assert!((var.sqrt() / mean - 1.0).abs() < 0.05);

        let again: Vec<Duration> = ArrivalSchedule::new(rate, Arrival::Poisson, 7)
            .take(n)
            .collect();
        assert_eq!(offsets, again);
        let other: Vec<Duration> = ArrivalSchedule::new(rate, Arrival::Poisson, 8)
            .take(10)
            .collect();
        assert_ne!(offsets[..10], other[..]);
    }
}
