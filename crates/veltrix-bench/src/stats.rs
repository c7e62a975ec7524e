//! Latency histograms and the summaries a run reports.

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// The largest latency recorded exactly: 10 minutes, in microseconds. Longer
/// ones are recorded as this.
pub const LATENCY_US_MAX: u64 = 600_000_000;

/// A latency histogram in microseconds, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Latency {
        Latency::new()
    }
}

impl Latency {
    pub fn new() -> Latency {
        // The bounds are constants that hdrhistogram accepts.
        Latency(Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds"))
    }

    /// Records `n` samples of `us` microseconds (at least 1, at most
    /// [`LATENCY_US_MAX`]).
    pub fn record_n(&mut self, us: u64, n: u64) {
        let _ = self.0.record_n(us.clamp(1, LATENCY_US_MAX), n);
    }

    pub fn record(&mut self, us: u64) {
        self.record_n(us, 1);
    }

    pub fn add(&mut self, other: &Latency) {
        // Same bounds on both sides: cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// Percentiles, or `None` when nothing was recorded.
    pub fn summary(&self) -> Option<Summary> {
        if self.0.is_empty() {
            return None;
        }
        Some(Summary {
            count: self.0.len(),
            p50: self.0.value_at_quantile(0.50),
            p90: self.0.value_at_quantile(0.90),
            p99: self.0.value_at_quantile(0.99),
            p999: self.0.value_at_quantile(0.999),
            max: self.0.max(),
        })
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Summary {
    pub fn to_json(self) -> Value {
        json!({
            "count": self.count,
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
            "p999": self.p999,
            "max": self.max,
        })
    }

    /// `p50 1.23 ms  p90 ...`, for people.
    pub fn human(self) -> String {
        let ms = |us: u64| format!("{:.2}", us as f64 / 1000.0);
        format!(
            "p50 {} ms  p90 {} ms  p99 {} ms  p99.9 {} ms  max {} ms",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.p999),
            ms(self.max)
        )
    }
}

pub fn summary_json(l: &Latency) -> Value {
    l.summary().map_or(Value::Null, Summary::to_json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut l = Latency::new();
        for us in 1..=1000 {
            l.record(us);
        }
        let s = l.summary().unwrap();
        assert_eq!(s.count, 1000);
        assert_eq!(s.p50, 500);
        assert_eq!(s.p99, 990);
        assert_eq!(s.max, 1000);
        assert!(Latency::new().summary().is_none());
    }

    #[test]
    fn out_of_range_samples_are_clamped_not_lost() {
        let mut l = Latency::new();
        l.record(0);
        l.record(u64::MAX);
        assert_eq!(l.count(), 2);
        assert!(l.summary().unwrap().max >= LATENCY_US_MAX);
    }
}
