//! Calendar arithmetic for reports: 15-minute UTC buckets (every IANA zone in use today has an
//! offset that is a whole number of quarter hours, UTC+5:30 and UTC+5:45 included, so every local
//! hour, day, week and month starts on a bucket edge), and the local boundaries of a series in any
//! time zone, daylight saving changes included.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, ZonedDateTime};

/// The width of the buckets aggregates are rolled up in.
pub const BUCKET: Duration = Duration::from_secs(15 * 60);
const BUCKET_MICROS: i64 = 15 * 60 * 1_000_000;

/// The most buckets one series may have.
pub const MAX_SERIES_BUCKETS: usize = 1000;

/// The bucket an instant (microseconds since the epoch) falls in, by its start.
pub fn bucket_start(micros: i64) -> i64 {
    micros.div_euclid(BUCKET_MICROS) * BUCKET_MICROS
}

/// How long a series' buckets are, in local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
    /// Weeks start on Monday.
    Week,
    Month,
}

/// Why a report's time range or zone can't be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("`{0}` is not an IANA time zone")]
    UnknownZone(String),
    #[error("must be a whole number of 15 minutes since the Unix epoch")]
    NotOnBucketEdge,
    #[error("must be after start_time")]
    EndNotAfterStart,
    #[error("the range holds more than {MAX_SERIES_BUCKETS} buckets of this granularity")]
    TooManyBuckets,
    #[error("out of the supported calendar range")]
    OutOfRange,
}

/// The time zone named `name`.
pub fn zone(name: &str) -> Result<TimeZone, CalendarError> {
    TimeZone::get(name).map_err(|_| CalendarError::UnknownZone(name.to_owned()))
}

fn zoned(micros: i64, tz: &TimeZone) -> Result<ZonedDateTime, CalendarError> {
    let timestamp = Timestamp::from_microsecond(micros).map_err(|_| CalendarError::OutOfRange)?;
    Ok(timestamp.to_zoned_datetime(tz.clone()))
}

fn micros_of(zoned: &ZonedDateTime) -> i64 {
    zoned.timestamp().as_microsecond()
}

/// The start of the local period of `granularity` that contains `at`.
fn period_start(
    at: &ZonedDateTime,
    granularity: Granularity,
) -> Result<ZonedDateTime, CalendarError> {
    let range = |_| CalendarError::OutOfRange;
    match granularity {
        Granularity::Hour => at
            .with()
            .minute(0)
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .map_err(range),
        Granularity::Day => at.start_of_day().map_err(range),
        Granularity::Week => {
            let back = i64::from(at.weekday().to_monday_zero_offset());
            at.start_of_day()
                .and_then(|day| day.checked_sub(back.days()))
                .and_then(|monday| monday.start_of_day())
                .map_err(range)
        }
        Granularity::Month => at
            .first_of_month()
            .and_then(|first| first.start_of_day())
            .map_err(range),
    }
}

/// The start of the local period after the one starting at `start`.
fn next_period(
    start: &ZonedDateTime,
    granularity: Granularity,
) -> Result<ZonedDateTime, CalendarError> {
    let step = |hours: i64| match granularity {
        // Elapsed hours: across a DST change the local clock repeats or skips an hour.
        Granularity::Hour => start.checked_add(hours.hours()),
        Granularity::Day => start.checked_add(1.day()),
        Granularity::Week => start.checked_add(1.week()),
        Granularity::Month => start.checked_add(1.month()),
    };
    // Where DST moves the clock back half an hour (Lord Howe Island), one elapsed hour can land
    // in the same local hour again; step further until the period really advances.
    for hours in 1..=3 {
        let next = step(hours).map_err(|_| CalendarError::OutOfRange)?;
        let next = period_start(&next, granularity)?;
        if next.timestamp() > start.timestamp() {
            return Ok(next);
        }
    }
    Err(CalendarError::OutOfRange)
}

/// The edges of a series over [start, end) in `tz`: start, each local period boundary inside the
/// range, and end. The first and last buckets are cut to the range.
pub fn series_edges(
    start: i64,
    end: i64,
    tz: &TimeZone,
    granularity: Granularity,
) -> Result<Vec<i64>, CalendarError> {
    if bucket_start(start) != start || bucket_start(end) != end {
        return Err(CalendarError::NotOnBucketEdge);
    }
    if end <= start {
        return Err(CalendarError::EndNotAfterStart);
    }
    let mut edges = vec![start];
    let mut period = period_start(&zoned(start, tz)?, granularity)?;
    loop {
        period = next_period(&period, granularity)?;
        let edge = micros_of(&period);
        if edge >= end {
            break;
        }
        if edges.len() >= MAX_SERIES_BUCKETS {
            return Err(CalendarError::TooManyBuckets);
        }
        edges.push(edge);
    }
    edges.push(end);
    Ok(edges)
}

/// The start of the local day that contains `now`, in `tz`.
pub fn start_of_day(now: i64, tz: &TimeZone) -> Result<i64, CalendarError> {
    let day = period_start(&zoned(now, tz)?, Granularity::Day)?;
    Ok(micros_of(&day))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_microsecond()
    }

    #[test]
    fn buckets_are_quarter_hours_also_before_the_epoch() {
        assert_eq!(
            bucket_start(at("2026-03-08T10:14:59Z")),
            at("2026-03-08T10:00:00Z")
        );
        assert_eq!(bucket_start(-1), -BUCKET_MICROS);
    }

    #[test]
    fn days_in_kathmandu_start_at_a_quarter_past_six_utc() {
        let tz = zone("Asia/Kathmandu").unwrap();
        let edges = series_edges(
            at("2026-01-01T00:00:00Z"),
            at("2026-01-03T00:00:00Z"),
            &tz,
            Granularity::Day,
        )
        .unwrap();
        assert_eq!(
            edges,
            [
                at("2026-01-01T00:00:00Z"),
                at("2026-01-01T18:15:00Z"),
                at("2026-01-02T18:15:00Z"),
                at("2026-01-03T00:00:00Z")
            ]
        );
        assert!(edges.iter().all(|edge| bucket_start(*edge) == *edge));
    }

    #[test]
    fn a_dst_day_in_new_york_is_23_hours_long() {
        let tz = zone("America/New_York").unwrap();
        let edges = series_edges(
            at("2026-03-08T05:00:00Z"),
            at("2026-03-10T04:00:00Z"),
            &tz,
            Granularity::Day,
        )
        .unwrap();
        assert_eq!(
            edges,
            [
                at("2026-03-08T05:00:00Z"),
                at("2026-03-09T04:00:00Z"),
                at("2026-03-10T04:00:00Z")
            ]
        );
    }

    #[test]
    fn hours_advance_across_a_half_hour_dst_change() {
        let tz = zone("Australia/Lord_Howe").unwrap();
        // DST ends there on 2026-04-05 at 02:00 local (15:00 UTC the day before), back 30 minutes.
        let edges = series_edges(
            at("2026-04-04T13:00:00Z"),
            at("2026-04-04T18:00:00Z"),
            &tz,
            Granularity::Hour,
        )
        .unwrap();
        assert!(edges.windows(2).all(|pair| pair[0] < pair[1]), "{edges:?}");
        assert!(edges.len() >= 5);
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        let utc = zone("UTC").unwrap();
        // 2026-01-07 is a Wednesday.
        let weeks = series_edges(
            at("2026-01-07T00:00:00Z"),
            at("2026-01-20T00:00:00Z"),
            &utc,
            Granularity::Week,
        )
        .unwrap();
        assert_eq!(
            weeks,
            [
                at("2026-01-07T00:00:00Z"),
                at("2026-01-12T00:00:00Z"),
                at("2026-01-19T00:00:00Z"),
                at("2026-01-20T00:00:00Z")
            ]
        );
        let months = series_edges(
            at("2026-01-15T00:00:00Z"),
            at("2026-03-15T00:00:00Z"),
            &utc,
            Granularity::Month,
        )
        .unwrap();
        assert_eq!(
            months,
            [
                at("2026-01-15T00:00:00Z"),
                at("2026-02-01T00:00:00Z"),
                at("2026-03-01T00:00:00Z"),
                at("2026-03-15T00:00:00Z")
            ]
        );
    }

    #[test]
    fn bad_ranges_and_zones_are_refused() {
        let utc = zone("UTC").unwrap();
        assert_eq!(
            zone("Mars/Olympus").unwrap_err(),
            CalendarError::UnknownZone("Mars/Olympus".into())
        );
        assert_eq!(
            series_edges(
                at("2026-01-02T00:00:00Z"),
                at("2026-01-01T00:00:00Z"),
                &utc,
                Granularity::Day
            ),
            Err(CalendarError::EndNotAfterStart)
        );
        assert_eq!(
            series_edges(
                at("2026-01-01T00:00:01Z"),
                at("2026-01-02T00:00:00Z"),
                &utc,
                Granularity::Day
            ),
            Err(CalendarError::NotOnBucketEdge)
        );
        assert_eq!(
            series_edges(
                at("2020-01-01T00:00:00Z"),
                at("2026-01-01T00:00:00Z"),
                &utc,
                Granularity::Hour
            ),
            Err(CalendarError::TooManyBuckets)
        );
        assert_eq!(
            start_of_day(at("2026-06-01T03:00:00Z"), &zone("Asia/Kolkata").unwrap()).unwrap(),
            at("2026-05-31T18:30:00Z")
        );
    }
}
