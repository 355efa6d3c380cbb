//! Business hours over time, and what a closed conversation's durations are in business time.
//! A conversation is measured by the schedule in effect when it was opened, so a new schedule
//! never changes numbers already counted, and applying the stream again gives the same ones.

use std::time::Duration;

use super::business_hours::BusinessHours;
use super::closed::Closure;

/// A workspace setting over time, each version from the instant it took effect (`None`: unset
/// from then on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions<T> {
    /// Sorted by the instant (microseconds) each version took effect.
    versions: Vec<(i64, Option<T>)>,
}

impl<T> Default for Versions<T> {
    fn default() -> Self {
        Self {
            versions: Vec::new(),
        }
    }
}

impl<T> Versions<T> {
    /// The history of these versions, in any order.
    pub fn new(mut versions: Vec<(i64, Option<T>)>) -> Self {
        versions.sort_by_key(|(from, _)| *from);
        Self { versions }
    }

    /// The version in effect at `at` (microseconds): the latest from `at` or before; none
    /// before the first.
    pub fn in_effect_at(&self, at: i64) -> Option<&T> {
        let later = self.versions.partition_point(|(from, _)| *from <= at);
        self.versions[..later].last()?.1.as_ref()
    }
}

/// A workspace's business hours over time.
pub type ScheduleHistory = Versions<BusinessHours>;

/// A closed conversation's durations in business time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusinessDurations {
    pub resolution: Duration,
    pub first_response: Option<Duration>,
    pub time_to_first_assignment: Option<Duration>,
    /// Each response's wait, when the close says when each began.
    pub responses: Vec<Duration>,
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

impl BusinessDurations {
    /// The durations of `closure`, opened at `opened_at` and closed at `closed_at`
    /// (microseconds), in the business time of `hours`.
    pub fn measure(
        hours: &BusinessHours,
        opened_at: i64,
        closed_at: i64,
        closure: &Closure,
    ) -> Self {
        let since_opening = |after: Duration| {
            hours.business_time(opened_at, opened_at.saturating_add(micros(after)))
        };
        Self {
            resolution: hours.business_time(opened_at, closed_at),
            first_response: closure.first_response.map(since_opening),
            time_to_first_assignment: closure.time_to_first_assignment.map(since_opening),
            responses: if closure.response_started_at.len() == closure.response_times.len() {
                closure
                    .response_started_at
                    .iter()
                    .zip(&closure.response_times)
                    .map(|(start, wait)| {
                        hours.business_time(*start, start.saturating_add(micros(*wait)))
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BusinessHoursDraft, IntervalDraft};
    use jiff::civil::Weekday;

    const HOUR: i64 = 3_600_000_000;
    /// Monday 2026-05-04T00:00:00Z.
    const MONDAY: i64 = 1_777_852_800_000_000;

    fn nine_to_five(zone: &str) -> BusinessHours {
        let intervals = [
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
        ]
        .map(|day| IntervalDraft {
            day: Some(day),
            start_time: "09:00",
            end_time: "17:00",
        });
        BusinessHours::new(&BusinessHoursDraft {
            time_zone: zone,
            intervals: intervals.to_vec(),
            holidays: Vec::new(),
        })
        .unwrap()
    }

    #[test]
    fn the_schedule_in_effect_is_the_latest_at_or_before_the_instant() {
        let utc = nine_to_five("UTC");
        let lima = nine_to_five("America/Lima");
        let history = ScheduleHistory::new(vec![
            (MONDAY + 10 * HOUR, None),
            (MONDAY, Some(utc.clone())),
            (MONDAY + 20 * HOUR, Some(lima.clone())),
        ]);
        assert_eq!(history.in_effect_at(MONDAY - 1), None, "before the first");
        assert_eq!(history.in_effect_at(MONDAY), Some(&utc));
        assert_eq!(history.in_effect_at(MONDAY + 10 * HOUR), None, "removed");
        assert_eq!(history.in_effect_at(MONDAY + 30 * HOUR), Some(&lima));
        assert_eq!(ScheduleHistory::default().in_effect_at(MONDAY), None);
    }

    #[test]
    fn durations_count_only_the_schedules_time_from_opening() {
        let hours = nine_to_five("UTC");
        // Opened Monday 16:00, answered Tuesday 09:30, assigned Monday 16:30, closed Tuesday 10:00.
        let opened = MONDAY + 16 * HOUR;
        // Two responses: to the opening message (Tuesday 09:30), and to one sent Tuesday 09:40
        // (answered 09:50); their starts known.
        let closure = Closure {
            first_response: Some(Duration::from_secs(17 * 3600 + 1800)),
            time_to_first_assignment: Some(Duration::from_secs(1800)),
            response_times: vec![
                Duration::from_secs(17 * 3600 + 1800),
                Duration::from_secs(600),
            ],
            response_started_at: vec![opened, opened + 17 * HOUR + 40 * 60_000_000],
            ..Closure::default()
        };
        let measured = BusinessDurations::measure(&hours, opened, opened + 18 * HOUR, &closure);
        assert_eq!(measured.resolution, Duration::from_secs(2 * 3600));
        assert_eq!(
            measured.first_response,
            Some(Duration::from_secs(3600 + 1800))
        );
        assert_eq!(
            measured.time_to_first_assignment,
            Some(Duration::from_secs(1800))
        );
        assert_eq!(
            measured.responses,
            [Duration::from_secs(5400), Duration::from_secs(600)]
        );
        let unknown = Closure {
            response_started_at: Vec::new(),
            ..closure
        };
        let measured = BusinessDurations::measure(&hours, opened, opened + 18 * HOUR, &unknown);
        assert!(
            measured.responses.is_empty(),
            "starts not known: none measured"
        );
    }
}
