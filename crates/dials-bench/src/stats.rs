//! Latency histograms and how their figures are written.
//!
//! Latencies are recorded in nanoseconds with three significant digits: finer than a
//! microsecond below 1 ms, within 0.1% above it.

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;

/// The longest latency a histogram holds; longer ones are recorded as this.
const HIGHEST: Duration = Duration::from_secs(60);

/// An empty latency histogram.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    let highest = u64::try_from(HIGHEST.as_nanos()).unwrap_or(u64::MAX);
    Histogram::new_with_bounds(1, highest, 3).context("cannot make a latency histogram")
}

/// Records one latency.
pub fn record(hist: &mut Histogram<u64>, latency: Duration) {
    let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
    hist.saturating_record(nanos.max(1));
}

/// The figures of one latency distribution.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub count: u64,
    pub min: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

impl Summary {
    pub fn of(hist: &Histogram<u64>) -> Self {
        let at = |q: f64| Duration::from_nanos(hist.value_at_quantile(q));
        Self {
            count: hist.len(),
            min: Duration::from_nanos(hist.min()),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: Duration::from_nanos(hist.max()),
        }
    }

    /// From a handful of samples (startup runs), by nearest rank.
    pub fn of_samples(samples: &[Duration]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let rank = |q: f64| -> Duration {
            if sorted.is_empty() {
                return Duration::ZERO;
            }
            let n = sorted.len();
            // Nearest rank: the smallest sample with at least q of them at or below it.
            let index = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
            sorted[index]
        };
        Self {
            count: sorted.len() as u64,
            min: sorted.first().copied().unwrap_or_default(),
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            p999: rank(0.999),
            max: sorted.last().copied().unwrap_or_default(),
        }
    }
}

/// A duration in milliseconds, with enough digits for tens of microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Ms(pub Duration);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_secs_f64() * 1e3;
        if ms < 1.0 {
            write!(f, "{ms:.3} ms")
        } else if ms < 100.0 {
            write!(f, "{ms:.2} ms")
        } else {
            write!(f, "{ms:.0} ms")
        }
    }
}

/// A rate, grouped by thousands: `31,204/s`.
#[derive(Debug, Clone, Copy)]
pub struct Rate(pub f64);

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0.round() as u64;
        let digits = whole.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        write!(f, "{out}/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_takes_a_real_sample() {
        let samples: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        let s = Summary::of_samples(&samples);
        assert_eq!(s.min, Duration::from_millis(1));
        assert_eq!(s.p50, Duration::from_millis(5));
        assert_eq!(s.max, Duration::from_millis(10));
    }

    #[test]
    fn histograms_resolve_below_a_microsecond() {
        let mut h = histogram().expect("histogram");
        record(&mut h, Duration::from_nanos(62_400));
        let p50 = Summary::of(&h).p50.as_nanos();
        assert!((62_350..=62_450).contains(&p50), "{p50}");
    }

    #[test]
    fn figures_read_well() {
        assert_eq!(Ms(Duration::from_micros(62)).to_string(), "0.062 ms");
        assert_eq!(Ms(Duration::from_micros(4_567)).to_string(), "4.57 ms");
        assert_eq!(Rate(31_204.4).to_string(), "31,204/s");
        assert_eq!(Rate(999.0).to_string(), "999/s");
    }
}
