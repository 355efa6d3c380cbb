//! The grains rollups are kept at, and how a report's periods are covered by the fewest buckets.
//!
//! Every combination of dimensions is rolled up by quarter hour (time zones with :30 and :45
//! offsets need that edge), which at scale is about one row per conversation. Each single
//! dimension is also rolled up by hour, by six hours, by UTC day, by three days and by nine
//! days. A period is then read as quarter hours up to the first whole hour, whole hours up to the
//! first six-hour edge, and so on up to the largest buckets that fit and back down: the series of
//! a 30-day report by UTC day reads 30 buckets, one by local day in a zone five hours off UTC
//! about 270; its groups, the whole 30 days per value, about 6 (at most 8).

/// A rollup's bucket length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grain {
    /// 15 minutes: every combination of dimensions.
    Quarter,
    /// An hour: each dimension alone.
    Hour,
    /// Six hours from UTC midnight: each dimension alone. A local day in a zone a whole number of
    /// hours off UTC then takes about 9 rows per value instead of 24.
    SixHours,
    /// A UTC day: each dimension alone.
    Day,
    /// Three UTC days, from a multiple of three days since 1970-01-01: each dimension alone.
    ThreeDays,
    /// Nine UTC days, from a multiple of nine days since 1970-01-01: each dimension alone.
    NineDays,
}

impl Grain {
    /// The grains each dimension is rolled up at alone.
    pub const COARSE: [Grain; 5] = [
        Grain::Hour,
        Grain::SixHours,
        Grain::Day,
        Grain::ThreeDays,
        Grain::NineDays,
    ];

    /// Every grain, the largest first: the order a cover tries them in.
    const LARGEST_FIRST: [Grain; 6] = [
        Grain::NineDays,
        Grain::ThreeDays,
        Grain::Day,
        Grain::SixHours,
        Grain::Hour,
        Grain::Quarter,
    ];

    /// The bucket length in minutes: the stored name of the grain.
    pub const fn minutes(self) -> i64 {
        match self {
            Grain::Quarter => 15,
            Grain::Hour => 60,
            Grain::SixHours => 360,
            Grain::Day => 1440,
            Grain::ThreeDays => 3 * 1440,
            Grain::NineDays => 9 * 1440,
        }
    }

    /// The grain of a stored name (`minutes`); `None` for a name no grain has.
    pub fn of_minutes(minutes: i64) -> Option<Self> {
        Self::LARGEST_FIRST
            .into_iter()
            .find(|grain| grain.minutes() == minutes)
    }

    const fn micros(self) -> i64 {
        self.minutes() * 60_000_000
    }

    /// The start of the bucket `at` (microseconds since the epoch) falls in.
    pub fn bucket(self, at: i64) -> i64 {
        at.div_euclid(self.micros()) * self.micros()
    }
}

/// The buckets that cover a report's periods, each bucket inside one period: per grain, sorted
/// and disjoint [start, end) ranges of bucket starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cover {
    pub quarter: Vec<(i64, i64)>,
    pub hour: Vec<(i64, i64)>,
    pub six_hours: Vec<(i64, i64)>,
    pub day: Vec<(i64, i64)>,
    pub three_days: Vec<(i64, i64)>,
    pub nine_days: Vec<(i64, i64)>,
}

impl Cover {
    /// Covers the periods between consecutive `edges` (each on a quarter-hour edge, ascending),
    /// with the largest buckets that fit.
    pub fn of(edges: &[i64]) -> Self {
        let mut cover = Cover::default();
        for period in edges.windows(2) {
            let (mut at, end) = (period[0], period[1]);
            while at < end {
                // Every quarter-hour edge starts a quarter hour: one grain always fits.
                let grain = Grain::LARGEST_FIRST
                    .into_iter()
                    .find(|g| g.bucket(at) == at && at + g.micros() <= end)
                    .unwrap_or(Grain::Quarter);
                cover.push(grain, at, at + grain.micros());
                at += grain.micros();
            }
        }
        cover
    }

    /// The ranges of one grain.
    pub fn ranges(&self, grain: Grain) -> &[(i64, i64)] {
        match grain {
            Grain::Quarter => &self.quarter,
            Grain::Hour => &self.hour,
            Grain::SixHours => &self.six_hours,
            Grain::Day => &self.day,
            Grain::ThreeDays => &self.three_days,
            Grain::NineDays => &self.nine_days,
        }
    }

    /// Whether the bucket of `grain` starting at `start` is part of the cover.
    pub fn contains(&self, grain: Grain, start: i64) -> bool {
        let ranges = self.ranges(grain);
        let after = ranges.partition_point(|(from, _)| *from <= start);
        after > 0 && start < ranges[after - 1].1
    }

    fn push(&mut self, grain: Grain, start: i64, end: i64) {
        let ranges = match grain {
            Grain::Quarter => &mut self.quarter,
            Grain::Hour => &mut self.hour,
            Grain::SixHours => &mut self.six_hours,
            Grain::Day => &mut self.day,
            Grain::ThreeDays => &mut self.three_days,
            Grain::NineDays => &mut self.nine_days,
        };
        match ranges.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => ranges.push((start, end)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;

    /// Every quarter hour of [from, to) is covered exactly once, by a bucket inside its period.
    fn assert_exact(edges: &[i64], cover: &Cover) {
        for period in edges.windows(2) {
            let mut quarter = period[0];
            while quarter < period[1] {
                let holders: Vec<Grain> = Grain::LARGEST_FIRST
                    .into_iter()
                    .filter(|g| cover.contains(*g, g.bucket(quarter)))
                    .collect();
                assert_eq!(holders.len(), 1, "quarter at {quarter}: {holders:?}");
                let grain = holders[0];
                let start = grain.bucket(quarter);
                assert!(start >= period[0] && start + grain.micros() <= period[1]);
                quarter += 15 * MIN;
            }
        }
    }

    #[test]
    fn utc_days_are_read_as_days() {
        let edges: Vec<i64> = (0..=30).map(|d| 20_000 * DAY + d * DAY).collect();
        let cover = Cover::of(&edges);
        assert_eq!(cover.day, [(edges[0], edges[30])]);
        assert!(cover.hour.is_empty() && cover.quarter.is_empty());
        assert_exact(&edges, &cover);
    }

    #[test]
    fn a_long_period_is_read_from_the_largest_buckets_that_fit() {
        // 30 days from 2026-03-01 (UTC day 20,513): a day to the next multiple of three, three-day
        // buckets to the next multiple of nine, nine-day buckets while they fit, then back down.
        // Eight buckets, the most any 30 days take.
        let start = 20_513 * DAY;
        let at = |days: i64| start + days * DAY;
        let cover = Cover::of(&[start, at(30)]);
        assert_eq!(cover.day, [(start, at(1)), (at(28), at(30))]);
        assert_eq!(cover.three_days, [(at(1), at(7)), (at(25), at(28))]);
        assert_eq!(cover.nine_days, [(at(7), at(25))]);
        assert!(cover.quarter.is_empty() && cover.hour.is_empty() && cover.six_hours.is_empty());
        assert_exact(&[start, at(30)], &cover);
    }

    #[test]
    fn any_30_utc_days_take_at_most_8_buckets_and_any_7_at_most_5() {
        let buckets = |cover: &Cover| -> i64 {
            Grain::LARGEST_FIRST
                .into_iter()
                .flat_map(|grain| {
                    let length = grain.micros();
                    cover
                        .ranges(grain)
                        .iter()
                        .map(move |(from, to)| (to - from) / length)
                })
                .sum()
        };
        for day in 20_000..21_000 {
            let start = day * DAY;
            for (days, most) in [(30, 8), (7, 5)] {
                let edges = [start, start + days * DAY];
                let cover = Cover::of(&edges);
                assert!(
                    buckets(&cover) <= most,
                    "{days} days from day {day}: {cover:?}"
                );
                assert_exact(&edges, &cover);
            }
        }
    }

    #[test]
    fn stored_grain_names_read_back() {
        for grain in Grain::LARGEST_FIRST {
            assert_eq!(Grain::of_minutes(grain.minutes()), Some(grain));
        }
        assert_eq!(Grain::of_minutes(7), None);
    }

    #[test]
    fn local_days_of_whole_hour_zones_are_read_as_hours() {
        // UTC-5: each local day runs 05:00 to 05:00 UTC.
        let edges: Vec<i64> = (0..=30)
            .map(|d| 20_000 * DAY + 5 * HOUR + d * DAY)
            .collect();
        let cover = Cover::of(&edges);
        assert!(cover.day.is_empty() && cover.quarter.is_empty());
        // 05:00-06:00 and 00:00-05:00 by hour, 06:00-24:00 by six hours.
        assert_eq!(cover.six_hours.len(), 30);
        assert_eq!(cover.hour.len(), 31);
        assert_exact(&edges, &cover);
    }

    #[test]
    fn half_hour_zones_and_long_periods_mix_every_grain() {
        // UTC+5:30 days, then a local month (with whole UTC days inside) in UTC-3:45.
        let mut edges: Vec<i64> = (0..=3)
            .map(|d| 20_000 * DAY - 5 * HOUR - 30 * MIN + d * DAY)
            .collect();
        edges.push(edges[3] + 31 * DAY + 9 * HOUR + 15 * MIN);
        let cover = Cover::of(&edges);
        assert!(!cover.quarter.is_empty() && !cover.hour.is_empty() && !cover.day.is_empty());
        assert!(!cover.six_hours.is_empty());
        assert_exact(&edges, &cover);
        assert!(!cover.contains(Grain::Quarter, edges[0] - 15 * MIN));
        assert!(!cover.contains(Grain::Hour, Grain::Hour.bucket(edges[4]) + HOUR));
    }

    #[test]
    fn buckets_before_1970_have_their_own_edges() {
        assert_eq!(Grain::Day.bucket(-1), -DAY);
        assert_eq!(Grain::Hour.bucket(-HOUR), -HOUR);
    }
}
