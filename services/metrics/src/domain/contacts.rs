//! Distinct contacts, counted by a mergeable sketch: exact while few (the sketch keeps the
//! contacts' hashes up to 128 of them), HyperLogLog++ beyond (4,096 registers: a standard error
//! of 1.6%). Merging the sketches of two buckets counts a contact in both once, which no sum of
//! per-bucket counts can do, and costs the same for ten contacts or a million.

use cardinality_estimator::CardinalityEstimator;

/// The crate's defaults: 2^12 registers of 6 bits (standard error 1.04 / sqrt(4096) = 1.6%), and a
/// fixed-seed hash, so sketches stored by any process merge with any other.
type Estimator = CardinalityEstimator<str>;

/// The standard error of an estimate beyond the exact range, as a fraction.
pub const STANDARD_ERROR: f64 = 0.0163;

/// A set of contacts, counted approximately.
#[derive(Clone, Default, PartialEq)]
pub struct ContactSketch {
    estimator: Estimator,
}

impl std::fmt::Debug for ContactSketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContactSketch")
            .field("estimate", &self.estimate())
            .finish()
    }
}

impl ContactSketch {
    /// Counts a contact (again: no change).
    pub fn insert(&mut self, contact: &str) {
        self.estimator.insert(contact);
    }

    /// Counts every contact of `other` too.
    pub fn merge(&mut self, other: &ContactSketch) {
        self.estimator.merge(&other.estimator);
    }

    /// How many distinct contacts it has seen (estimated beyond the exact range).
    pub fn estimate(&self) -> u64 {
        self.estimator.estimate() as u64
    }

    /// The stored form.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing a plain integer and a list of integers can't fail.
        postcard::to_allocvec(&self.estimator).unwrap_or_default()
    }

    /// A sketch from its stored form; `None` if the bytes are not one. Empty bytes are an empty
    /// sketch.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() {
            return Some(Self::default());
        }
        let estimator = postcard::from_bytes(bytes).ok()?;
        Some(Self { estimator })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contacts(range: std::ops::Range<u32>) -> ContactSketch {
        let mut sketch = ContactSketch::default();
        for n in range {
            sketch.insert(&format!("0190a0c4-0000-7000-8000-{n:012}"));
        }
        sketch
    }

    #[test]
    fn small_sets_are_exact_and_repeats_count_once() {
        let mut sketch = contacts(0..100);
        sketch.merge(&contacts(50..120));
        assert_eq!(sketch.estimate(), 120);
        assert_eq!(ContactSketch::default().estimate(), 0);
    }

    #[test]
    fn large_sets_stay_within_the_stated_error_through_storage_and_merges() {
        // Twenty buckets of 10,000 contacts, each overlapping the next by half.
        let mut merged = ContactSketch::default();
        for bucket in 0..20u32 {
            let stored = contacts(bucket * 5_000..bucket * 5_000 + 10_000).to_bytes();
            merged.merge(&ContactSketch::from_bytes(&stored).expect("stored sketch"));
        }
        let exact = 21 * 5_000;
        let error = (merged.estimate() as f64 - exact as f64).abs() / exact as f64;
        assert!(
            error < 3.0 * STANDARD_ERROR,
            "estimate {} for {exact}",
            merged.estimate()
        );
    }

    #[test]
    fn every_representation_survives_storage() {
        for size in [0, 1, 2, 3, 100, 500, 5_000] {
            let sketch = contacts(0..size);
            let restored = ContactSketch::from_bytes(&sketch.to_bytes()).expect("stored sketch");
            assert_eq!(restored.estimate(), sketch.estimate(), "{size} contacts");
        }
        assert!(ContactSketch::from_bytes(&[0xff; 3]).is_none());
    }
}
