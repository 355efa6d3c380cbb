//! Re-contact: a closed conversation whose contact came back with a new conversation soon after
//! — the respond.io model's answer to "was it really resolved?".
//!
//! Each closed conversation keeps the gap from its close to its contact's next opening, in whole
//! hours rounded up; the rollups count closed conversations per hour of gap, up to the longest
//! window. A report then counts the re-contacted conversations of any window of whole hours
//! exactly, at the cost of the rows it reads: the window is read-time, so changing it applies to
//! every period at once and a rebuild gives the same numbers.

use std::time::Duration;

const HOUR_MICROS: i64 = 3_600_000_000;

/// The longest re-contact window, in hours: 7 days.
pub const MAX_WINDOW_HOURS: u32 = 7 * 24;

/// The longest gap that can matter to any window, in microseconds.
pub const MAX_GAP_MICROS: i64 = MAX_WINDOW_HOURS as i64 * HOUR_MICROS;

/// The hour bin of a gap (microseconds from a close to the contact's next opening): the whole
/// hours it spans, rounded up, so a gap is within a window of W hours exactly when its bin is
/// at most W (an opening at the very instant of the close is bin 0). `None` past the longest
/// window, which no report can ask about.
pub fn gap_bin(gap_micros: i64) -> Option<u32> {
    if gap_micros > MAX_GAP_MICROS {
        return None;
    }
    let gap = gap_micros.max(0);
    let hours = (gap + HOUR_MICROS - 1) / HOUR_MICROS;
    u32::try_from(hours).ok()
}

/// A re-contact window: whole hours, from 1 hour to 7 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecontactWindow {
    hours: u32,
}

/// Why a duration can't be a re-contact window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("must be a whole number of hours")]
    NotWholeHours,
    #[error("must be from 1 hour to {MAX_WINDOW_HOURS} hours (7 days)")]
    OutOfRange,
}

impl RecontactWindow {
    /// 24 hours, unless a workspace says otherwise.
    pub const DEFAULT: RecontactWindow = RecontactWindow { hours: 24 };

    /// The window of `duration`.
    pub fn new(duration: Duration) -> Result<Self, WindowError> {
        if duration.subsec_nanos() != 0 || !duration.as_secs().is_multiple_of(3600) {
            return Err(WindowError::NotWholeHours);
        }
        let hours = duration.as_secs() / 3600;
        match u32::try_from(hours) {
            Ok(hours @ 1..=MAX_WINDOW_HOURS) => Ok(Self { hours }),
            _ => Err(WindowError::OutOfRange),
        }
    }

    /// Its length in hours.
    pub fn hours(&self) -> u32 {
        self.hours
    }

    /// Its length.
    pub fn duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.hours) * 3600)
    }
}

/// Closed conversations counted by the hour bin of their gap to the contact's next opening.
/// Counts are signed so that a change (a gap that shrinks when an earlier opening arrives later,
/// as imported history may) is a delta like any other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecontactGaps {
    /// (bin, count) by bin, no count zero. A sorted list, not a map: a report merges one per
    /// rollup row it reads, and few rows have more than a handful of bins.
    counts: Vec<(u32, i64)>,
}

impl RecontactGaps {
    /// Adds `delta` conversations to `bin`.
    pub fn add(&mut self, bin: u32, delta: i64) {
        if delta == 0 {
            return;
        }
        match self.counts.binary_search_by_key(&bin, |(b, _)| *b) {
            Ok(i) => {
                self.counts[i].1 += delta;
                if self.counts[i].1 == 0 {
                    self.counts.remove(i);
                }
            }
            Err(i) => self.counts.insert(i, (bin, delta)),
        }
    }

    /// Whether no bin has a count.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &RecontactGaps) {
        if other.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.counts.clone_from(&other.counts);
            return;
        }
        let index_of =
            |counts: &[(u32, i64)], bin: u32| counts.binary_search_by_key(&bin, |&(b, _)| b).ok();
        // A report merges many rows into a tally that soon has every bin they have: add in
        // place then, without making a new list each time.
        if other
            .counts
            .iter()
            .all(|&(bin, _)| index_of(&self.counts, bin).is_some())
        {
            for &(bin, count) in &other.counts {
                if let Some(index) = index_of(&self.counts, bin) {
                    self.counts[index].1 += count;
                }
            }
            self.counts.retain(|&(_, count)| count != 0);
            return;
        }
        let (mine, theirs) = (&self.counts, &other.counts);
        let mut merged = Vec::with_capacity(mine.len() + theirs.len());
        let (mut i, mut j) = (0, 0);
        loop {
            let next = match (mine.get(i), theirs.get(j)) {
                (Some(&(bin, a)), Some(&(other_bin, b))) if bin == other_bin => {
                    (i, j) = (i + 1, j + 1);
                    (bin, a + b)
                }
                (Some(&entry), Some(&(other_bin, _))) if entry.0 < other_bin => {
                    i += 1;
                    entry
                }
                (_, Some(&entry)) => {
                    j += 1;
                    entry
                }
                (Some(&entry), None) => {
                    i += 1;
                    entry
                }
                (None, None) => break,
            };
            if next.1 != 0 {
                merged.push(next);
            }
        }
        self.counts = merged;
    }

    /// Conversations whose contact came back within `window`.
    pub fn within(&self, window: RecontactWindow) -> u64 {
        let count: i64 = self
            .counts
            .iter()
            .take_while(|(bin, _)| *bin <= window.hours)
            .map(|(_, c)| c)
            .sum();
        u64::try_from(count).unwrap_or_default()
    }

    /// The (bin, count) pairs by bin, for storage.
    pub fn counts(&self) -> &[(u32, i64)] {
        &self.counts
    }

    /// Gaps from stored (bin, count) pairs, in any order.
    pub fn from_counts(counts: impl IntoIterator<Item = (u32, i64)>) -> Self {
        let mut gaps = Self::default();
        for (bin, count) in counts {
            match gaps.counts.last() {
                // Stored counts come by bin: one push each.
                Some((last, _)) if *last < bin && count != 0 => gaps.counts.push((bin, count)),
                None if count != 0 => gaps.counts.push((bin, count)),
                _ => gaps.add(bin, count),
            }
        }
        gaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000_000;

    #[test]
    fn a_gap_is_within_a_window_exactly_when_its_bin_is_at_most_the_windows_hours() {
        assert_eq!(gap_bin(0), Some(0));
        assert_eq!(
            gap_bin(-5),
            Some(0),
            "an opening before the close's instant"
        );
        assert_eq!(gap_bin(1), Some(1));
        assert_eq!(
            gap_bin(60 * MINUTE),
            Some(1),
            "exactly one hour is within one hour"
        );
        assert_eq!(gap_bin(60 * MINUTE + 1), Some(2));
        assert_eq!(gap_bin(MAX_GAP_MICROS), Some(MAX_WINDOW_HOURS));
        assert_eq!(gap_bin(MAX_GAP_MICROS + 1), None);
    }

    #[test]
    fn counts_within_a_window_add_every_bin_up_to_it() {
        let mut gaps = RecontactGaps::default();
        for gap in [
            0,
            30 * MINUTE,
            60 * MINUTE,
            90 * MINUTE,
            24 * 60 * MINUTE,
            25 * 60 * MINUTE,
        ] {
            gaps.add(gap_bin(gap).unwrap(), 1);
        }
        let window = |hours: u64| RecontactWindow::new(Duration::from_secs(hours * 3600)).unwrap();
        assert_eq!(gaps.within(window(1)), 3);
        assert_eq!(gaps.within(window(2)), 4);
        assert_eq!(gaps.within(window(24)), 5);
        assert_eq!(gaps.within(window(168)), 6);
        // A gap that shrinks moves between bins; the totals stay whole.
        let mut moved = RecontactGaps::default();
        moved.add(25, -1);
        moved.add(2, 1);
        gaps.merge(&moved);
        assert_eq!(gaps.within(window(2)), 5);
        assert_eq!(gaps.within(window(168)), 6);
        assert_eq!(
            RecontactGaps::from_counts(gaps.counts().iter().copied()),
            gaps
        );
        let mut backwards = gaps.counts().to_vec();
        backwards.reverse();
        assert_eq!(RecontactGaps::from_counts(backwards), gaps, "any order");
    }

    #[test]
    fn merging_adds_bin_by_bin_and_drops_counts_that_reach_zero() {
        let mut gaps = RecontactGaps::from_counts([(1, 1), (3, 2), (5, 1)]);
        gaps.merge(&RecontactGaps::from_counts([(2, 4), (3, -2), (6, 1)]));
        assert_eq!(gaps.counts(), [(1, 1), (2, 4), (5, 1), (6, 1)]);
        let mut empty = RecontactGaps::default();
        empty.merge(&gaps);
        assert_eq!(empty, gaps);
        gaps.merge(&RecontactGaps::default());
        assert_eq!(empty, gaps);
        assert!(RecontactGaps::from_counts([(4, 0)]).is_empty());
        // Only bins it already has: added in place, zeros still dropped.
        gaps.merge(&RecontactGaps::from_counts([(2, 1), (5, -1)]));
        assert_eq!(gaps.counts(), [(1, 1), (2, 5), (6, 1)]);
    }

    #[test]
    fn a_window_is_whole_hours_from_one_hour_to_a_week() {
        assert_eq!(
            RecontactWindow::DEFAULT.duration(),
            Duration::from_secs(86_400)
        );
        assert_eq!(
            RecontactWindow::new(Duration::from_secs(3600))
                .unwrap()
                .hours(),
            1
        );
        assert_eq!(
            RecontactWindow::new(Duration::from_secs(604_800))
                .unwrap()
                .hours(),
            168
        );
        assert_eq!(
            RecontactWindow::new(Duration::from_secs(5400)),
            Err(WindowError::NotWholeHours)
        );
        assert_eq!(
            RecontactWindow::new(Duration::from_millis(3_600_001)),
            Err(WindowError::NotWholeHours)
        );
        assert_eq!(
            RecontactWindow::new(Duration::ZERO),
            Err(WindowError::OutOfRange)
        );
        assert_eq!(
            RecontactWindow::new(Duration::from_secs(604_800 + 3600)),
            Err(WindowError::OutOfRange)
        );
    }
}
