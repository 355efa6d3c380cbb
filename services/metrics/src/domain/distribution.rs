//! A distribution of values (durations in microseconds, or counts): exact count, sum, min and max,
//! and percentiles from a DDSketch, which merges across buckets and replicas and answers any
//! quantile within 1% relative error (the sketch's `alpha`).

use sketches_ddsketch::{Config, DDSketch};

/// The relative error of every percentile charla reports.
pub const RELATIVE_ERROR: f64 = 0.01;

fn empty_sketch() -> DDSketch {
    // 2048 bins at 1% cover values from 1e-9 to far beyond a century in microseconds.
    DDSketch::new(Config::new(RELATIVE_ERROR, 2048, 1.0e-9))
}

/// A mergeable distribution.
#[derive(Clone)]
pub struct Distribution {
    count: u64,
    sum: i64,
    min: i64,
    max: i64,
    sketch: DDSketch,
}

impl std::fmt::Debug for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distribution")
            .field("count", &self.count)
            .field("sum", &self.sum)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Default for Distribution {
    fn default() -> Self {
        Self {
            count: 0,
            sum: 0,
            min: i64::MAX,
            max: i64::MIN,
            sketch: empty_sketch(),
        }
    }
}

/// The statistics of a distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub sum: i64,
    pub average: f64,
    pub min: i64,
    pub max: i64,
    pub median: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Distribution {
    /// Adds one value.
    pub fn add(&mut self, value: i64) {
        self.count += 1;
        self.sum = self.sum.saturating_add(value);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sketch.add(value as f64);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Distribution) {
        if other.count == 0 {
            return;
        }
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        // Both sketches are built by `empty_sketch`, so their configurations always match.
        let _same_config = self.sketch.merge(&other.sketch);
    }

    /// How many values it holds.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The statistics; `None` when empty.
    pub fn summary(&self) -> Option<Summary> {
        if self.count == 0 {
            return None;
        }
        let quantile = |q: f64| {
            let estimate = self.sketch.quantile(q).ok().flatten().unwrap_or(0.0);
            // The sketch's estimate may fall a hair outside the exact range; clamp it in.
            estimate.clamp(self.min as f64, self.max as f64)
        };
        Some(Summary {
            count: self.count,
            sum: self.sum,
            average: self.sum as f64 / self.count as f64,
            min: self.min,
            max: self.max,
            median: quantile(0.5),
            p90: quantile(0.9),
            p95: quantile(0.95),
            p99: quantile(0.99),
        })
    }

    /// The stored form: exact summary fields and the sketch's bytes.
    pub fn to_parts(&self) -> (u64, i64, i64, i64, Vec<u8>) {
        (
            self.count,
            self.sum,
            self.min,
            self.max,
            self.sketch.to_java_bytes(),
        )
    }

    /// A distribution from its stored form.
    pub fn from_parts(count: u64, sum: i64, min: i64, max: i64, sketch: &[u8]) -> Option<Self> {
        if count == 0 {
            return Some(Self::default());
        }
        let mut sketch = DDSketch::from_java_bytes(sketch).ok()?;
        // Merging an empty sketch adds nothing, but fails unless the configurations match: a
        // sketch that passes merges with every other (`merge`), and is kept as decoded rather than
        // copied into a new one.
        sketch.merge(&empty_sketch()).ok()?;
        Some(Self {
            count,
            sum,
            min,
            max,
            sketch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so the test needs no random-number crate.
    fn values(seed: u64, n: usize) -> Vec<i64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Durations from 1 second to about 3 days, skewed like real response times.
                let unit = (state % 1_000_000) as f64 / 1_000_000.0;
                (1_000_000.0 * (1.0 + 259_200.0 * unit.powi(4))) as i64
            })
            .collect()
    }

    fn exact_quantile(sorted: &[i64], q: f64) -> f64 {
        let rank = (q * (sorted.len() - 1) as f64).floor() as usize;
        sorted[rank] as f64
    }

    #[test]
    fn percentiles_stay_within_the_stated_relative_error_of_exact_values() {
        for seed in [1, 7, 42, 2026] {
            let data = values(seed, 5_000);
            let mut left = Distribution::default();
            let mut right = Distribution::default();
            for (index, value) in data.iter().enumerate() {
                if index % 3 == 0 {
                    left.add(*value)
                } else {
                    right.add(*value)
                }
            }
            left.merge(&right);
            let summary = left.summary().unwrap();
            let mut sorted = data.clone();
            sorted.sort_unstable();
            for (q, estimate) in [
                (0.5, summary.median),
                (0.9, summary.p90),
                (0.95, summary.p95),
                (0.99, summary.p99),
            ] {
                let exact = exact_quantile(&sorted, q);
                let error = (estimate - exact).abs() / exact;
                assert!(
                    error <= RELATIVE_ERROR + 1e-9,
                    "seed {seed} q {q}: {estimate} vs {exact} ({error})"
                );
            }
            assert_eq!(summary.count, 5_000);
            assert_eq!(summary.sum, data.iter().sum::<i64>());
            assert_eq!(summary.min, *sorted.first().unwrap());
            assert_eq!(summary.max, *sorted.last().unwrap());
        }
    }

    #[test]
    fn a_distribution_survives_its_stored_form() {
        let mut distribution = Distribution::default();
        for value in [0, 5, 5, 1_000, 86_400_000_000] {
            distribution.add(value);
        }
        let (count, sum, min, max, sketch) = distribution.to_parts();
        let restored = Distribution::from_parts(count, sum, min, max, &sketch).unwrap();
        assert_eq!(restored.summary(), distribution.summary());
    }

    #[test]
    fn an_empty_distribution_has_no_summary() {
        assert_eq!(Distribution::default().summary(), None);
    }
}
