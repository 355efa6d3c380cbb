//! Random schedules, holidays and spans, in zones with every kind of clock change, against the
//! definition read slowly: minute by minute, with no time zone arithmetic but the wall clock
//! each real minute shows.

use super::*;

const MINUTE_MICROS: i64 = 60_000_000;
const DAY_MICROS: i64 = 24 * 60 * MINUTE_MICROS;

/// Business time as the definition says it, minute by minute over a window around the span
/// (spans and offsets are whole minutes). The wall clock each minute reads is kept as its running
/// maximum, so "the first instant the clock reads T or later" is a binary search: an interval
/// covers the minutes from the first reading its start to the first reading its end, and a
/// holiday clears those from the first reading its 00:00 to the first reading the next 00:00.
fn reference(hours: &BusinessHours, start: i64, end: i64) -> Duration {
    if end <= start {
        return Duration::ZERO;
    }
    let zone = TimeZone::get(hours.time_zone()).unwrap();
    let from = start - 3 * DAY_MICROS;
    let minutes = ((end + 3 * DAY_MICROS - from) / MINUTE_MICROS) as usize;
    let mut clock: Vec<DateTime> = Vec::with_capacity(minutes);
    for minute in 0..minutes {
        let at = Timestamp::from_microsecond(from + minute as i64 * MINUTE_MICROS).unwrap();
        let wall = zone.to_datetime(at);
        clock.push(clock.last().map_or(wall, |highest| wall.max(*highest)));
    }
    let first = |wall: DateTime| clock.partition_point(|read| *read < wall);
    let at = |date: Date, time: TimeOfDay| {
        if time == TimeOfDay::END_OF_DAY {
            date.tomorrow().unwrap().at(0, 0, 0, 0)
        } else {
            date.at((time.0 / 60) as i8, (time.0 % 60) as i8, 0, 0)
        }
    };
    let mut open = vec![false; minutes];
    let mut date = zone
        .to_datetime(Timestamp::from_microsecond(from).unwrap())
        .date();
    let last = zone
        .to_datetime(Timestamp::from_microsecond(end).unwrap())
        .date();
    while date <= last {
        for interval in hours.intervals() {
            if interval.day() != date.weekday() {
                continue;
            }
            let close_date = if interval.is_overnight() {
                date.tomorrow().unwrap()
            } else {
                date
            };
            let (opens, closes) = (
                first(at(date, interval.start())),
                first(at(close_date, interval.end())),
            );
            open[opens..closes].fill(true);
        }
        date = date.tomorrow().unwrap();
    }
    for holiday in hours.holidays() {
        let (begins, ends) = (
            first(at(*holiday, TimeOfDay(0))),
            first(at(*holiday, TimeOfDay::END_OF_DAY)),
        );
        open[begins..ends].fill(false);
    }
    let skip = ((start - from) / MINUTE_MICROS) as usize;
    let take = ((end - start) / MINUTE_MICROS) as usize;
    let counted = open[skip..skip + take].iter().filter(|open| **open).count();
    counted as u32 * MINUTE
}

/// A deterministic generator: the same cases every run.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % sides
    }
}

/// Zones and a date near one of their clock changes: forward and back an hour at 02:00 or
/// 01:00, at midnight (Santiago), by half an hour (Lord Howe), a whole day skipped (Samoa,
/// 2011-12-30), quarter-hour offsets (Kathmandu, Chatham) and none at all.
const PLACES: &[(&str, &str)] = &[
    ("America/New_York", "2026-03-08"),
    ("America/New_York", "2026-11-01"),
    ("Europe/London", "2026-03-29"),
    ("Europe/London", "2026-10-25"),
    ("America/Santiago", "2026-04-05"),
    ("America/Santiago", "2026-09-06"),
    ("Australia/Lord_Howe", "2026-04-05"),
    ("Australia/Lord_Howe", "2026-10-04"),
    ("Pacific/Apia", "2011-12-30"),
    ("Pacific/Chatham", "2026-04-05"),
    ("Asia/Kathmandu", "2026-01-01"),
    ("UTC", "2026-06-01"),
];

fn time_text(minutes: u64) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// A random valid schedule of one to five intervals, with up to three holidays around `near`.
/// Times are on a five-minute grid, so that intervals touch, and most are on the days and at
/// the hours where clocks change (after midnight, before it), so that boundaries land in gaps
/// and folds often.
fn random_schedule(dice: &mut Dice, zone: &str, near: Date) -> BusinessHours {
    let time = |dice: &mut Dice| match dice.roll(3) {
        0 => dice.roll(43) * 5,
        1 => 22 * 60 + dice.roll(25) * 5,
        _ => dice.roll(288) * 5,
    };
    loop {
        let intervals: Vec<(Weekday, String, String)> = (0..=dice.roll(5))
            .map(|_| {
                let day = match dice.roll(3) {
                    0 => near.weekday(),
                    1 => near.weekday().previous(),
                    _ => Weekday::from_monday_zero_offset(dice.roll(7) as i8).unwrap(),
                };
                let start = time(dice) % (24 * 60);
                let end = if dice.roll(10) == 0 {
                    24 * 60
                } else {
                    time(dice)
                };
                (day, time_text(start), time_text(end))
            })
            .collect();
        let holidays: Vec<String> = (0..dice.roll(4))
            .map(|_| (near + (dice.roll(15) as i64 - 7).days()).to_string())
            .collect();
        let draft = BusinessHoursDraft {
            time_zone: zone,
            intervals: intervals
                .iter()
                .map(|(day, start, end)| IntervalDraft {
                    day: Some(*day),
                    start_time: start,
                    end_time: end,
                })
                .collect(),
            holidays: holidays.iter().map(String::as_str).collect(),
        };
        if let Ok(hours) = BusinessHours::new(&draft) {
            return hours;
        }
    }
}

#[test]
fn random_spans_match_the_minute_by_minute_definition() {
    let mut dice = Dice(17);
    for case in 0..300 {
        let (zone, near) = PLACES[case % PLACES.len()];
        let near: Date = near.parse().unwrap();
        let hours = random_schedule(&mut dice, zone, near);
        let noon = utc(&format!("{near}T12:00Z"));
        let start = noon + (dice.roll(8 * 24 * 60) as i64 - 4 * 24 * 60) * MINUTE_MICROS;
        // One span in six is long enough for whole weeks to be counted at a time.
        let days = if case % 6 == 0 { 22 } else { 3 };
        let end = start + dice.roll(days * 24 * 60) as i64 * MINUTE_MICROS;
        assert_eq!(
            hours.business_time(start, end),
            reference(&hours, start, end),
            "case {case}: {hours:?} from {} to {}",
            Timestamp::from_microsecond(start).unwrap(),
            Timestamp::from_microsecond(end).unwrap(),
        );
        // And it adds up: any cut splits it in two.
        let cut =
            start + dice.roll(((end - start) / MINUTE_MICROS + 1) as u64) as i64 * MINUTE_MICROS;
        assert_eq!(
            hours.business_time(start, cut) + hours.business_time(cut, end),
            hours.business_time(start, end),
            "case {case}"
        );
    }
}
