//! Business time against numbers worked out by hand in each test, and against a slow
//! minute-by-minute reading of the definition on random schedules.

use jiff::ToSpan;
use jiff::civil::DateTime;
use jiff::civil::Weekday::{Friday, Monday, Saturday, Sunday, Thursday, Tuesday, Wednesday};

use super::*;

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);
const WEEKDAYS: [Weekday; 5] = [Monday, Tuesday, Wednesday, Thursday, Friday];

fn draft<'a>(
    zone: &'a str,
    intervals: &[(Weekday, &'a str, &'a str)],
    holidays: &[&'a str],
) -> BusinessHoursDraft<'a> {
    BusinessHoursDraft {
        time_zone: zone,
        intervals: intervals
            .iter()
            .map(|&(day, start_time, end_time)| IntervalDraft {
                day: Some(day),
                start_time,
                end_time,
            })
            .collect(),
        holidays: holidays.to_vec(),
    }
}

fn schedule(zone: &str, intervals: &[(Weekday, &str, &str)], holidays: &[&str]) -> BusinessHours {
    BusinessHours::new(&draft(zone, intervals, holidays)).unwrap()
}

/// Monday to Friday, 09:00 to 17:00.
fn office(zone: &str, holidays: &[&str]) -> BusinessHours {
    let intervals: Vec<_> = WEEKDAYS
        .iter()
        .map(|day| (*day, "09:00", "17:00"))
        .collect();
    schedule(zone, &intervals, holidays)
}

/// An instant by its wall time in `zone` (never a time in a gap or a fold).
fn local(zone: &str, wall: &str) -> i64 {
    wall.parse::<DateTime>()
        .unwrap()
        .to_zoned_datetime(TimeZone::get(zone).unwrap())
        .unwrap()
        .timestamp()
        .as_microsecond()
}

fn utc(text: &str) -> i64 {
    text.parse::<Timestamp>().unwrap().as_microsecond()
}

const NEW_YORK: &str = "America/New_York";

#[test]
fn time_outside_the_schedule_does_not_count() {
    let hours = office(NEW_YORK, &[]);
    // 2026-01-05 is a Monday: 07:00 to 19:00 holds 09:00 to 17:00.
    assert_eq!(
        hours.business_time(
            local(NEW_YORK, "2026-01-05T07:00"),
            local(NEW_YORK, "2026-01-05T19:00")
        ),
        8 * HOUR
    );
    // Saturday noon to Sunday evening: closed all through.
    assert_eq!(
        hours.business_time(
            local(NEW_YORK, "2026-01-03T12:00"),
            local(NEW_YORK, "2026-01-04T20:00")
        ),
        Duration::ZERO
    );
}

#[test]
fn time_inside_the_schedule_counts_as_it_elapses() {
    let hours = office(NEW_YORK, &[]);
    assert_eq!(
        hours.business_time(
            local(NEW_YORK, "2026-01-05T10:15"),
            local(NEW_YORK, "2026-01-05T16:45")
        ),
        6 * HOUR + 30 * MINUTE
    );
    // Monday 10:00 to Tuesday 10:00: 7 hours on Monday, 1 on Tuesday.
    assert_eq!(
        hours.business_time(
            local(NEW_YORK, "2026-01-05T10:00"),
            local(NEW_YORK, "2026-01-06T10:00")
        ),
        8 * HOUR
    );
}

#[test]
fn a_weekend_in_between_counts_nothing() {
    let hours = office(NEW_YORK, &[]);
    // Friday 15:00 to Monday 11:00: 2 hours on Friday, 2 on Monday.
    assert_eq!(
        hours.business_time(
            local(NEW_YORK, "2026-01-09T15:00"),
            local(NEW_YORK, "2026-01-12T11:00")
        ),
        4 * HOUR
    );
}

#[test]
fn overnight_intervals_run_into_the_next_day_and_sunday_into_monday() {
    let hours = schedule(
        "UTC",
        &[
            (Friday, "22:00", "06:00"),
            (Sunday, "22:00", "02:00"),
            (Wednesday, "20:00", "00:00"),
        ],
        &[],
    );
    // Friday 21:00 to Saturday 07:00 holds all of Friday 22:00 to Saturday 06:00.
    assert_eq!(
        hours.business_time(utc("2026-01-09T21:00Z"), utc("2026-01-10T07:00Z")),
        8 * HOUR
    );
    // Saturday 03:00 to 10:00: the last 3 hours of the Friday night.
    assert_eq!(
        hours.business_time(utc("2026-01-10T03:00Z"), utc("2026-01-10T10:00Z")),
        3 * HOUR
    );
    // Sunday 23:00 to Monday 01:00, across the week's end.
    assert_eq!(
        hours.business_time(utc("2026-01-11T23:00Z"), utc("2026-01-12T01:00Z")),
        2 * HOUR
    );
    // An end of 00:00 stops at midnight: Wednesday 20:00 to 24:00.
    assert_eq!(
        hours.business_time(utc("2026-01-07T00:00Z"), utc("2026-01-09T00:00Z")),
        4 * HOUR
    );
    // A week from Monday 00:00 holds Monday 00:00-02:00 (the tail of the Sunday before),
    // Wednesday 20:00-24:00, Friday 22:00-Saturday 06:00 and Sunday 22:00-24:00: 2+4+8+2.
    assert_eq!(hours.weekly_time(), 16 * HOUR);
    assert_eq!(
        hours.business_time(utc("2026-01-05T00:00Z"), utc("2026-01-12T00:00Z")),
        16 * HOUR
    );
}

#[test]
fn a_holiday_takes_out_its_local_date_overnight_tails_included() {
    // Monday 2026-01-05 off: Friday 2, Tuesday 6 and the Monday between count 8 + 8.
    let hours = office(NEW_YORK, &["2026-01-05"]);
    assert_eq!(
        hours.business_time(
            local(NEW_YORK, "2026-01-02T00:00"),
            local(NEW_YORK, "2026-01-07T00:00")
        ),
        16 * HOUR
    );
    let nights = |holiday| schedule("UTC", &[(Friday, "22:00", "06:00")], &[holiday]);
    let (friday_evening, saturday_morning) = (utc("2026-01-09T21:00Z"), utc("2026-01-10T07:00Z"));
    // Saturday off: only Friday 22:00-24:00 is left of the night.
    assert_eq!(
        nights("2026-01-10").business_time(friday_evening, saturday_morning),
        2 * HOUR
    );
    // Friday off: only the tail on Saturday, 00:00-06:00.
    assert_eq!(
        nights("2026-01-09").business_time(friday_evening, saturday_morning),
        6 * HOUR
    );
    // A holiday in another week changes nothing.
    assert_eq!(
        nights("2026-01-17").business_time(friday_evening, saturday_morning),
        8 * HOUR
    );
}

#[test]
fn spring_forward_in_new_york_maps_local_times_to_real_ones() {
    // 2026-03-08, a Sunday: at 02:00 EST (07:00 UTC) the clock jumps to 03:00 EDT.
    let hours = schedule(
        NEW_YORK,
        &[(Sunday, "00:00", "08:00"), (Sunday, "09:00", "17:00")],
        &[],
    );
    let weekend = (
        local(NEW_YORK, "2026-03-07T12:00"),
        local(NEW_YORK, "2026-03-09T12:00"),
    );
    // 00:00 EST is 05:00 UTC, 08:00 EDT 12:00 UTC: 7 real hours; then 09:00-17:00 EDT, 8.
    assert_eq!(hours.business_time(weekend.0, weekend.1), 15 * HOUR);
    assert_eq!(
        hours.business_time(utc("2026-03-08T05:00Z"), utc("2026-03-08T12:00Z")),
        7 * HOUR
    );
    // Boundaries in the gap are the jump (07:00 UTC): Saturday 22:00 EST (03:00 UTC) to "02:30"
    // is 4 hours; "02:30" to 05:00 EDT (09:00 UTC) is 2.
    let closing_in_gap = schedule(NEW_YORK, &[(Saturday, "22:00", "02:30")], &[]);
    assert_eq!(closing_in_gap.business_time(weekend.0, weekend.1), 4 * HOUR);
    let opening_in_gap = schedule(NEW_YORK, &[(Sunday, "02:30", "05:00")], &[]);
    assert_eq!(opening_in_gap.business_time(weekend.0, weekend.1), 2 * HOUR);
    assert_eq!(
        opening_in_gap.business_time(utc("2026-03-08T06:30Z"), utc("2026-03-08T08:00Z")),
        HOUR
    );
    let both = schedule(
        NEW_YORK,
        &[(Saturday, "22:00", "02:30"), (Sunday, "02:30", "05:00")],
        &[],
    );
    assert_eq!(both.business_time(weekend.0, weekend.1), 6 * HOUR);
}

#[test]
fn fall_back_in_new_york_counts_the_repeated_hour() {
    // 2026-11-01, a Sunday: at 02:00 EDT (06:00 UTC) the clock goes back to 01:00 EST.
    let hours = schedule(NEW_YORK, &[(Sunday, "00:00", "08:00")], &[]);
    // 00:00 EDT is 04:00 UTC, 08:00 EST 13:00 UTC: 9 real hours.
    assert_eq!(
        hours.business_time(
            local(NEW_YORK, "2026-10-31T12:00"),
            local(NEW_YORK, "2026-11-02T12:00")
        ),
        9 * HOUR
    );
    // Boundaries in the fold are its first pass: 00:00-01:30 is 04:00-05:30 UTC, 01:30-03:00
    // is 05:30 UTC to 03:00 EST (08:00 UTC).
    let sunday = (utc("2026-11-01T00:00Z"), utc("2026-11-02T00:00Z"));
    let early = schedule(NEW_YORK, &[(Sunday, "00:00", "01:30")], &[]);
    assert_eq!(early.business_time(sunday.0, sunday.1), 90 * MINUTE);
    let late = schedule(NEW_YORK, &[(Sunday, "01:30", "03:00")], &[]);
    assert_eq!(late.business_time(sunday.0, sunday.1), 150 * MINUTE);
    assert_eq!(
        late.business_time(utc("2026-11-01T05:00Z"), utc("2026-11-01T06:00Z")),
        30 * MINUTE
    );
    let fold = schedule(
        NEW_YORK,
        &[(Sunday, "00:00", "01:30"), (Sunday, "01:30", "03:00")],
        &[],
    );
    // 01:45 EDT to 01:15 EST, both passes of the fold: all inside the second interval.
    assert_eq!(
        fold.business_time(utc("2026-11-01T05:45Z"), utc("2026-11-01T06:15Z")),
        30 * MINUTE
    );
}

#[test]
fn london_changes_its_clocks_at_one_utc() {
    let zone = "Europe/London";
    let hours = schedule(zone, &[(Sunday, "00:00", "12:00")], &[]);
    // 2026-03-29: 00:00 GMT (00:00 UTC) to 12:00 BST (11:00 UTC).
    assert_eq!(
        hours.business_time(
            local(zone, "2026-03-28T12:00"),
            local(zone, "2026-03-30T12:00")
        ),
        11 * HOUR
    );
    // 2026-10-25: 00:00 BST (23:00 UTC the day before) to 12:00 GMT (12:00 UTC).
    assert_eq!(
        hours.business_time(
            local(zone, "2026-10-24T12:00"),
            local(zone, "2026-10-26T12:00")
        ),
        13 * HOUR
    );
}

#[test]
fn kathmandu_opens_at_a_quarter_past_three_utc() {
    let zone = "Asia/Kathmandu";
    let hours = office(zone, &[]);
    // UTC+5:45: Monday 2026-01-05 09:00 is 03:15 UTC, 17:00 is 11:15 UTC.
    assert_eq!(
        hours.business_time(utc("2026-01-05T00:00Z"), utc("2026-01-05T06:00Z")),
        2 * HOUR + 45 * MINUTE
    );
    // Monday 11:00-11:15 UTC and Tuesday 03:15-04:00 UTC.
    assert_eq!(
        hours.business_time(utc("2026-01-05T11:00Z"), utc("2026-01-06T04:00Z")),
        HOUR
    );
}

#[test]
fn an_end_not_after_the_start_is_zero() {
    let hours = office(NEW_YORK, &[]);
    let (monday, tuesday) = (
        local(NEW_YORK, "2026-01-05T10:00"),
        local(NEW_YORK, "2026-01-06T10:00"),
    );
    assert_eq!(hours.business_time(tuesday, monday), Duration::ZERO);
    assert_eq!(hours.business_time(monday, monday), Duration::ZERO);
    // Beyond jiff's range the instants count as its ends: no panic, a finite answer.
    assert!(hours.business_time(i64::MIN, i64::MAX) > Duration::ZERO);
}

#[test]
fn a_year_is_counted_by_hand_and_equals_its_days_summed() {
    // 2026 starts on a Thursday and has 365 days: 52 weeks and a Thursday, so 261 weekdays.
    let utc_office = office("UTC", &[]);
    assert_eq!(
        utc_office.business_time(utc("2026-01-01T00:00Z"), utc("2027-01-01T00:00Z")),
        261 * 8 * HOUR
    );
    // In New York with two Friday holidays: 259 days of 8 hours (DST never touches 09-17).
    let new_york = office(NEW_YORK, &["2026-07-03", "2026-12-25"]);
    assert_eq!(
        new_york.business_time(
            local(NEW_YORK, "2026-01-01T00:00"),
            local(NEW_YORK, "2027-01-01T00:00")
        ),
        259 * 8 * HOUR
    );
    // Nights across both DST changes, holidays on Fridays and Saturdays: the year in one call
    // (whole weeks at a time) equals the sum of its days (each a day at a time).
    for zone in [
        NEW_YORK,
        "Europe/London",
        "America/Santiago",
        "Australia/Lord_Howe",
    ] {
        let hours = schedule(
            zone,
            &[
                (Monday, "08:00", "12:00"),
                (Monday, "13:00", "17:30"),
                (Tuesday, "00:00", "24:00"),
                (Friday, "22:00", "02:30"),
                (Saturday, "23:00", "01:15"),
                (Sunday, "01:45", "03:00"),
            ],
            &["2026-03-13", "2026-04-04", "2026-07-03", "2026-10-31"],
        );
        let (start, end) = (
            local(zone, "2026-01-01T05:00"),
            local(zone, "2027-01-01T05:00"),
        );
        let edges: Vec<i64> = (0..=365)
            .map(|day| start + day * MICROS_PER_DAY)
            .chain([end])
            .collect();
        let days: Duration = edges
            .windows(2)
            .map(|pair| hours.business_time(pair[0], pair[1].min(end)))
            .sum();
        assert_eq!(hours.business_time(start, end), days, "{zone}");
    }
}

fn error(zone: &str, intervals: &[(Weekday, &str, &str)], holidays: &[&str]) -> BusinessHoursError {
    BusinessHours::new(&draft(zone, intervals, holidays)).unwrap_err()
}

const NINE_TO_FIVE: &[(Weekday, &str, &str)] = &[(Monday, "09:00", "17:00")];

#[test]
fn the_zone_must_be_an_iana_zone() {
    let missing = error("", NINE_TO_FIVE, &[]);
    assert_eq!(missing, BusinessHoursError::MissingTimeZone);
    assert_eq!(missing.field(), "business_hours.time_zone");
    let unknown = error("Mars/Olympus", NINE_TO_FIVE, &[]);
    assert_eq!(
        unknown,
        BusinessHoursError::UnknownTimeZone("Mars/Olympus".into())
    );
    assert_eq!(unknown.field(), "business_hours.time_zone");
    // The database's spelling is kept.
    assert_eq!(
        schedule("america/new_york", NINE_TO_FIVE, &[]).time_zone(),
        NEW_YORK
    );
}

#[test]
fn times_must_be_hh_mm_in_range() {
    for start in ["9:00", "24:00", "12:60", "ab:cd", "", "09:00:00", "-1:00"] {
        let problem = error(
            "UTC",
            &[(Monday, "10:00", "11:00"), (Monday, start, "23:00")],
            &[],
        );
        assert_eq!(
            problem,
            BusinessHoursError::BadStartTime { index: 1 },
            "{start}"
        );
        assert_eq!(problem.field(), "business_hours.intervals[1].start_time");
    }
    for end in ["24:01", "25:00", "17:0", "17:00:00", "noon"] {
        let problem = error("UTC", &[(Monday, "09:00", end)], &[]);
        assert_eq!(
            problem,
            BusinessHoursError::BadEndTime { index: 0 },
            "{end}"
        );
        assert_eq!(problem.field(), "business_hours.intervals[0].end_time");
    }
    let whole_day = schedule("UTC", &[(Monday, "00:00", "24:00")], &[]);
    assert_eq!(whole_day.weekly_time(), 24 * HOUR);
    assert_eq!(whole_day.intervals()[0].end().to_string(), "24:00");
}

#[test]
fn a_day_is_required() {
    let mut missing = draft("UTC", &[(Monday, "09:00", "17:00"); 4], &[]);
    missing.intervals[3].day = None;
    let problem = BusinessHours::new(&missing).unwrap_err();
    assert_eq!(problem, BusinessHoursError::MissingDay { index: 3 });
    assert_eq!(problem.field(), "business_hours.intervals[3].day");
}

#[test]
fn an_interval_of_zero_length_is_refused() {
    for time in ["09:00", "00:00"] {
        let problem = error("UTC", &[(Tuesday, time, time)], &[]);
        assert_eq!(problem, BusinessHoursError::ZeroLength { index: 0 });
        assert_eq!(problem.field(), "business_hours.intervals[0].end_time");
    }
}

#[test]
fn a_schedule_needs_an_interval_and_not_too_many() {
    let none = error("UTC", &[], &["2026-12-25"]);
    assert_eq!(none, BusinessHoursError::NoIntervals);
    assert_eq!(none.field(), "business_hours.intervals");
    let times: Vec<String> = (0..=MAX_INTERVALS + 1)
        .map(|minute| format!("{:02}:{:02}", minute / 60, minute % 60))
        .collect();
    let many: Vec<_> = (0..=MAX_INTERVALS)
        .map(|minute| (Monday, times[minute].as_str(), times[minute + 1].as_str()))
        .collect();
    assert_eq!(
        error("UTC", &many, &[]),
        BusinessHoursError::TooManyIntervals
    );
    assert!(BusinessHours::new(&draft("UTC", &many[..MAX_INTERVALS], &[])).is_ok());
}

#[test]
fn overlapping_intervals_are_refused_touching_ones_are_not() {
    let same_day = error(
        "UTC",
        &[(Monday, "09:00", "12:00"), (Monday, "11:00", "13:00")],
        &[],
    );
    assert_eq!(
        same_day,
        BusinessHoursError::Overlap {
            index: 1,
            other: 0,
            day: Monday,
            time: TimeOfDay(11 * 60),
        }
    );
    assert_eq!(same_day.field(), "business_hours.intervals[1]");
    assert_eq!(
        same_day.to_string(),
        "overlaps intervals[0] on Monday at 11:00"
    );
    // An overnight tail into the next day's interval.
    assert!(matches!(
        error(
            "UTC",
            &[(Saturday, "05:00", "07:00"), (Friday, "22:00", "06:00")],
            &[]
        ),
        BusinessHoursError::Overlap {
            index: 1,
            other: 0,
            day: Saturday,
            ..
        }
    ));
    // Sunday's night into Monday, either way round.
    for intervals in [
        [(Monday, "01:00", "02:00"), (Sunday, "23:00", "01:30")],
        [(Sunday, "23:00", "01:30"), (Monday, "01:00", "02:00")],
    ] {
        let problem = error("UTC", &intervals, &[]);
        assert!(
            matches!(
                problem,
                BusinessHoursError::Overlap {
                    index: 1,
                    other: 0,
                    day: Monday,
                    ..
                }
            ),
            "{problem:?}"
        );
    }
    // The same interval twice.
    assert!(matches!(
        error("UTC", &[(Tuesday, "09:00", "10:00"); 2], &[]),
        BusinessHoursError::Overlap { index: 1, .. }
    ));
    // Touching is fine, also across midnight and the week's end.
    let touching = schedule(
        "UTC",
        &[
            (Monday, "09:00", "12:00"),
            (Monday, "12:00", "17:00"),
            (Sunday, "20:00", "24:00"),
            (Monday, "00:00", "01:00"),
            (Wednesday, "22:00", "00:00"),
            (Thursday, "00:00", "06:00"),
        ],
        &[],
    );
    assert_eq!(touching.weekly_time(), (8 + 4 + 1 + 2 + 6) * HOUR);
}

#[test]
fn holidays_must_be_distinct_dates_from_1970_to_9999() {
    for text in [
        "2026-02-30",
        "2026-1-05",
        "26-01-05",
        "2026/01/05",
        "",
        "+2026-01-05",
    ] {
        let problem = error("UTC", NINE_TO_FIVE, &["2026-12-25", text]);
        assert_eq!(
            problem,
            BusinessHoursError::BadHoliday { index: 1 },
            "{text}"
        );
        assert_eq!(problem.field(), "business_hours.holidays[1]");
    }
    for text in ["1969-12-31", "0000-01-01"] {
        let problem = error("UTC", NINE_TO_FIVE, &[text]);
        assert_eq!(problem, BusinessHoursError::HolidayOutOfRange { index: 0 });
        assert_eq!(problem.field(), "business_hours.holidays[0]");
    }
    let ends = schedule("UTC", NINE_TO_FIVE, &["9999-12-31", "1970-01-01"]);
    assert_eq!(
        ends.holidays(),
        [
            jiff::civil::date(1970, 1, 1),
            jiff::civil::date(9999, 12, 31)
        ]
    );
    let repeated = error(
        "UTC",
        NINE_TO_FIVE,
        &["2026-12-25", "2026-01-01", "2026-12-25", "2026-12-25"],
    );
    assert_eq!(
        repeated,
        BusinessHoursError::DuplicateHoliday { index: 2, first: 0 }
    );
    assert_eq!(repeated.field(), "business_hours.holidays[2]");
    assert_eq!(repeated.to_string(), "repeats holidays[0]");
    let texts: Vec<String> = (0..=MAX_HOLIDAYS)
        .map(|day| (jiff::civil::date(2000, 1, 1) + (day as i64).days()).to_string())
        .collect();
    let many: Vec<&str> = texts.iter().map(String::as_str).collect();
    let problem = error("UTC", NINE_TO_FIVE, &many);
    assert_eq!(problem, BusinessHoursError::TooManyHolidays);
    assert_eq!(problem.field(), "business_hours.holidays");
}

mod reference;
