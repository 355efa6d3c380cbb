//! Business hours: a weekly schedule of local opening intervals in an IANA time zone, with dated
//! holidays, and the business time that elapses between two instants under it. Business-time
//! metrics and SLA targets stand on `BusinessHours::business_time`.
//!
//! The rules (the proto's `BusinessHours` comments state the same):
//! - An interval is a weekday and two local times of day to the minute. An end after the start
//!   ends the same day (`24:00` is the next midnight); an end before the start runs overnight
//!   into the next day (Friday 22:00–06:00 ends Saturday 06:00; Sunday runs into Monday); an end
//!   of `00:00` ends at midnight. An end equal to the start is refused: it would be either nothing
//!   or a whole day, and a whole day is written 00:00–24:00.
//! - Intervals may touch but not overlap, overnight tails and the Sunday→Monday wrap included.
//! - Each local boundary (date and time of day) becomes the first instant at which the zone's
//!   clock reads that time or later. Where the clock jumps forward (a gap) a boundary inside the
//!   gap is the instant of the jump; where it falls back (a fold) a boundary inside the fold is
//!   its first occurrence. So a New York 00:00–08:00 is 7 real hours on 2026-03-08 and 9 on
//!   2026-11-01, and an interval starting at 02:30 on 2026-03-08 opens at the jump (03:00 EDT).
//! - A holiday takes out the business time of its whole local date: from the first instant its
//!   00:00 is reached to the first instant the next date's 00:00 is, which includes the tail of
//!   an overnight interval that started the day before.
//!
//! Cost: `business_time` walks local dates, one at a time near its ends, holidays and zone
//! transitions, and in strides of whole weeks elsewhere (a week with no holiday and no offset
//! change holds exactly the weekly total). A year is a few dozen steps whatever its length, and
//! the steps grow with holidays and transitions, not with the span.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use jiff::civil::{Date, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Span, Timestamp};

/// The most intervals a schedule may have (a dozen a day fit; the cost of a day grows with them).
pub const MAX_INTERVALS: usize = 100;
/// The most holidays a schedule may list (thirty a year for more than thirty years).
pub const MAX_HOLIDAYS: usize = 1000;
/// The first year a holiday may fall in: charla's instants count from the Unix epoch and no
/// conversation it measures happened before it, so an earlier holiday is a typo.
pub const FIRST_HOLIDAY_YEAR: i16 = 1970;
/// The last year a holiday may fall in: the last year a `google.protobuf.Timestamp` (and jiff)
/// can express. "YYYY-MM-DD" cannot spell a later one anyway.
pub const LAST_HOLIDAY_YEAR: i16 = 9999;

const MINUTES_PER_DAY: u16 = 24 * 60;
const MINUTES_PER_WEEK: u32 = 7 * MINUTES_PER_DAY as u32;
const MICROS_PER_MINUTE: i64 = 60_000_000;
const MICROS_PER_DAY: i64 = MINUTES_PER_DAY as i64 * MICROS_PER_MINUTE;

/// A local time of day to the minute, 00:00 to 24:00 (24:00 only ends an interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    /// Midnight at the end of the day, as an interval's end.
    pub const END_OF_DAY: TimeOfDay = TimeOfDay(MINUTES_PER_DAY);

    /// Exactly "HH:MM", 00:00 to 24:00.
    fn parse(text: &str) -> Option<TimeOfDay> {
        let bytes = text.as_bytes();
        if bytes.len() != 5 || bytes[2] != b':' {
            return None;
        }
        let hour = two_digits(bytes[0], bytes[1])?;
        let minute = two_digits(bytes[3], bytes[4])?;
        if minute >= 60 || hour > 24 || (hour == 24 && minute != 0) {
            return None;
        }
        Some(TimeOfDay(hour * 60 + minute))
    }

    /// Minutes since midnight, 0 to 1440.
    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

fn two_digits(tens: u8, ones: u8) -> Option<u16> {
    if tens.is_ascii_digit() && ones.is_ascii_digit() {
        Some(u16::from(tens - b'0') * 10 + u16::from(ones - b'0'))
    } else {
        None
    }
}

/// Exactly "YYYY-MM-DD", a date that exists.
fn parse_date(text: &str) -> Option<Date> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year = two_digits(bytes[0], bytes[1])? * 100 + two_digits(bytes[2], bytes[3])?;
    let month = two_digits(bytes[5], bytes[6])?;
    let day = two_digits(bytes[8], bytes[9])?;
    Date::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
    )
    .ok()
}

/// One validated interval of the weekly schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    day: Weekday,
    start: TimeOfDay,
    end: TimeOfDay,
}

impl Interval {
    /// The day it starts on.
    pub fn day(&self) -> Weekday {
        self.day
    }

    /// The local time it starts at (00:00 to 23:59).
    pub fn start(&self) -> TimeOfDay {
        self.start
    }

    /// The local time it ends at, excluded; at or before `start` when it runs overnight.
    pub fn end(&self) -> TimeOfDay {
        self.end
    }

    /// Whether it ends on the next day.
    pub fn is_overnight(&self) -> bool {
        self.end <= self.start
    }

    /// Its length in local minutes, under 24 hours unless it is 00:00–24:00.
    fn minutes(&self) -> u32 {
        let (start, end) = (u32::from(self.start.0), u32::from(self.end.0));
        if self.is_overnight() {
            u32::from(MINUTES_PER_DAY) - start + end
        } else {
            end - start
        }
    }
}

/// A schedule as a request spells it, before validation.
#[derive(Debug, Clone, Default)]
pub struct BusinessHoursDraft<'a> {
    /// An IANA zone name.
    pub time_zone: &'a str,
    pub intervals: Vec<IntervalDraft<'a>>,
    /// Local dates, "YYYY-MM-DD".
    pub holidays: Vec<&'a str>,
}

/// An interval as a request spells it.
#[derive(Debug, Clone, Copy)]
pub struct IntervalDraft<'a> {
    /// `None` when the request named no day (or one that is not a day).
    pub day: Option<Weekday>,
    /// "HH:MM".
    pub start_time: &'a str,
    /// "HH:MM", "24:00" allowed.
    pub end_time: &'a str,
}

/// Why a schedule is refused. `path` says where, as the `BusinessHours` message spells it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusinessHoursError {
    #[error("is required")]
    MissingTimeZone,
    #[error("`{0}` is not an IANA time zone")]
    UnknownTimeZone(String),
    #[error("at most {MAX_INTERVALS} intervals")]
    TooManyIntervals,
    #[error(
        "at least one interval is required: a schedule with no business time would make every business duration zero"
    )]
    NoIntervals,
    #[error("must be a day of the week")]
    MissingDay { index: usize },
    #[error("must be a local time \"HH:MM\" from 00:00 to 23:59")]
    BadStartTime { index: usize },
    #[error("must be a local time \"HH:MM\" from 00:00 to 24:00")]
    BadEndTime { index: usize },
    #[error("equals start_time: the interval would be empty (a whole day is 00:00 to 24:00)")]
    ZeroLength { index: usize },
    #[error("overlaps intervals[{other}] on {day:?} at {time}")]
    Overlap {
        index: usize,
        other: usize,
        day: Weekday,
        time: TimeOfDay,
    },
    #[error("at most {MAX_HOLIDAYS} holidays")]
    TooManyHolidays,
    #[error("must be a date \"YYYY-MM-DD\"")]
    BadHoliday { index: usize },
    #[error("must be in the years {FIRST_HOLIDAY_YEAR} to {LAST_HOLIDAY_YEAR}")]
    HolidayOutOfRange { index: usize },
    #[error("repeats holidays[{first}]")]
    DuplicateHoliday { index: usize, first: usize },
}

impl BusinessHoursError {
    /// Where the problem is, relative to the `BusinessHours` message: `intervals[3].end_time`.
    pub fn path(&self) -> String {
        match self {
            Self::MissingTimeZone | Self::UnknownTimeZone(_) => "time_zone".to_owned(),
            Self::TooManyIntervals | Self::NoIntervals => "intervals".to_owned(),
            Self::MissingDay { index } => format!("intervals[{index}].day"),
            Self::BadStartTime { index } => format!("intervals[{index}].start_time"),
            Self::BadEndTime { index } | Self::ZeroLength { index } => {
                format!("intervals[{index}].end_time")
            }
            Self::Overlap { index, .. } => format!("intervals[{index}]"),
            Self::TooManyHolidays => "holidays".to_owned(),
            Self::BadHoliday { index }
            | Self::HolidayOutOfRange { index }
            | Self::DuplicateHoliday { index, .. } => format!("holidays[{index}]"),
        }
    }

    /// The path in a request whose field is named `business_hours`:
    /// `business_hours.intervals[3].end_time`.
    pub fn field(&self) -> String {
        format!("business_hours.{}", self.path())
    }
}

/// A validated schedule. Built only by `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessHours {
    time_zone: String,
    zone: TimeZone,
    /// As given (for reading the schedule back).
    intervals: Vec<Interval>,
    /// Sorted, distinct.
    holidays: Vec<Date>,
    /// Per weekday (Monday first), the local stretches `[start, end)` in minutes that lie on that
    /// date: an overnight interval is cut at midnight, its tail belonging to the next date (which
    /// is how a holiday on that date takes it out). Sorted; `end` is at most 1440.
    pieces: [Vec<(u16, u16)>; 7],
    /// The local length of all intervals, in microseconds: a week's business time when the offset
    /// does not change and no holiday falls in it.
    week_micros: i64,
}

impl BusinessHours {
    /// The schedule `draft` describes, or the first problem found in it (zone, then intervals in
    /// order, then overlaps, then holidays in order).
    pub fn new(draft: &BusinessHoursDraft<'_>) -> Result<BusinessHours, BusinessHoursError> {
        let zone = parse_zone(draft.time_zone)?;
        let intervals = parse_intervals(&draft.intervals)?;
        check_overlaps(&intervals)?;
        let holidays = parse_holidays(&draft.holidays)?;
        let mut pieces: [Vec<(u16, u16)>; 7] = Default::default();
        for interval in &intervals {
            let day = weekday_index(interval.day);
            let (start, end) = (interval.start.0, interval.end.0);
            if interval.is_overnight() {
                pieces[day].push((start, MINUTES_PER_DAY));
                if end > 0 {
                    pieces[(day + 1) % 7].push((0, end));
                }
            } else {
                pieces[day].push((start, end));
            }
        }
        for day in &mut pieces {
            day.sort_unstable();
        }
        let week_minutes: u32 = intervals.iter().map(Interval::minutes).sum();
        Ok(BusinessHours {
            time_zone: zone.iana_name().unwrap_or(draft.time_zone).to_owned(),
            zone,
            intervals,
            holidays,
            pieces,
            week_micros: i64::from(week_minutes) * MICROS_PER_MINUTE,
        })
    }

    /// The IANA zone name (as the time zone database spells it).
    pub fn time_zone(&self) -> &str {
        &self.time_zone
    }

    /// The intervals, in the order given.
    pub fn intervals(&self) -> &[Interval] {
        &self.intervals
    }

    /// The holidays, in date order.
    pub fn holidays(&self) -> &[Date] {
        &self.holidays
    }

    /// The business time of a week with no holiday and no change of the zone's offset.
    pub fn weekly_time(&self) -> Duration {
        Duration::from_micros(self.week_micros.unsigned_abs())
    }

    /// The business time elapsed from `start` to `end` (microseconds since the Unix epoch): the
    /// real time between them that falls inside an interval of the schedule (boundaries mapped
    /// to instants as the module comment says) and outside every holiday. Zero when `end` is not
    /// after `start`. Instants beyond jiff's range (years -9999 to 9999) count as its ends.
    pub fn business_time(&self, start: i64, end: i64) -> Duration {
        let (start, end) = (clamp(start), clamp(end));
        if end <= start {
            return Duration::ZERO;
        }
        // A date's business time lies between its first 00:00 and the next date's, so the dates
        // that can hold some of [start, end) are those of start and end, one more on either side
        // for the zones whose clock falls back across midnight.
        let first = self.local_date(start);
        let first = first.yesterday().unwrap_or(first);
        let last = self.local_date(end);
        let last = last.tomorrow().unwrap_or(last);
        // Under a week, no stride can be taken: spare the lookups.
        let strides = end - start >= 7 * MICROS_PER_DAY;
        let mut total = 0_i64;
        let mut day = first;
        while day <= last {
            let weeks = if strides {
                let midnight = self.instant(day, 0);
                if midnight >= start {
                    self.whole_weeks(day, midnight, end)
                } else {
                    0
                }
            } else {
                0
            };
            let next = if weeks > 0 {
                total += weeks * self.week_micros;
                Span::new()
                    .try_days(weeks * 7)
                    .and_then(|span| day.checked_add(span))
            } else {
                total += self.day_time(day, start, end);
                day.tomorrow()
            };
            match next {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        Duration::from_micros(total.unsigned_abs())
    }

    /// How many whole weeks from `day` (whose 00:00 is the instant `midnight`) count as the
    /// weekly total each: they end by `end`, hold no holiday and see no zone transition.
    fn whole_weeks(&self, day: Date, midnight: i64, end: i64) -> i64 {
        let mut days = (end - midnight).div_euclid(MICROS_PER_DAY);
        if days < 7 {
            return 0;
        }
        let next_holiday = self.holidays.partition_point(|holiday| *holiday < day);
        if let Some(holiday) = self.holidays.get(next_holiday) {
            days = days.min(day.duration_until(*holiday).as_hours() / 24);
            if days < 7 {
                return 0;
            }
        }
        // Looking from just before midnight: a transition at midnight itself (a gap there) would
        // make the day's intervals shorter than their local length.
        if let Some(transition) = self.zone.following(timestamp(midnight - 1)).next() {
            let until = transition.timestamp().as_microsecond() - midnight;
            days = days.min(until.div_euclid(MICROS_PER_DAY));
        }
        days / 7
    }

    /// The business time of local date `day` inside [start, end).
    fn day_time(&self, day: Date, start: i64, end: i64) -> i64 {
        if self.holidays.binary_search(&day).is_ok() {
            return 0;
        }
        self.pieces[weekday_index(day.weekday())]
            .iter()
            .map(|&(from, to)| {
                let from = self.instant(day, from).max(start);
                let to = self.instant(day, to).min(end);
                (to - from).max(0)
            })
            .sum()
    }

    /// The first instant (microseconds) at which the zone's clock reads `minute` (0 to 1440) of
    /// `day` or later: the jump for a time in a gap, the first occurrence for one in a fold.
    fn instant(&self, day: Date, minute: u16) -> i64 {
        let (day, minute) = if minute >= MINUTES_PER_DAY {
            match day.tomorrow() {
                Ok(next) => (next, 0),
                Err(_) => return Timestamp::MAX.as_microsecond(),
            }
        } else {
            (day, minute)
        };
        let local = day.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
        let found = match self.zone.to_ambiguous_timestamp(local).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(local).ok(),
            AmbiguousOffset::Fold { before, .. } => before.to_timestamp(local).ok(),
            // Read with the later offset the time lies before the jump; the jump is the next
            // transition after that.
            AmbiguousOffset::Gap { after, .. } => after
                .to_timestamp(local)
                .ok()
                .and_then(|early| self.zone.following(early).next())
                .map(|transition| transition.timestamp()),
        };
        match found {
            Some(found) => found.as_microsecond(),
            None if day.year() < 0 => Timestamp::MIN.as_microsecond(),
            None => Timestamp::MAX.as_microsecond(),
        }
    }

    fn local_date(&self, micros: i64) -> Date {
        self.zone.to_datetime(timestamp(micros)).date()
    }
}

fn clamp(micros: i64) -> i64 {
    micros.clamp(
        Timestamp::MIN.as_microsecond(),
        Timestamp::MAX.as_microsecond(),
    )
}

fn timestamp(micros: i64) -> Timestamp {
    Timestamp::from_microsecond(clamp(micros)).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn weekday_index(day: Weekday) -> usize {
    day.to_monday_zero_offset() as usize
}

fn parse_zone(name: &str) -> Result<TimeZone, BusinessHoursError> {
    if name.is_empty() {
        return Err(BusinessHoursError::MissingTimeZone);
    }
    TimeZone::get(name).map_err(|_| BusinessHoursError::UnknownTimeZone(name.to_owned()))
}

fn parse_intervals(drafts: &[IntervalDraft<'_>]) -> Result<Vec<Interval>, BusinessHoursError> {
    if drafts.len() > MAX_INTERVALS {
        return Err(BusinessHoursError::TooManyIntervals);
    }
    let mut intervals = Vec::with_capacity(drafts.len());
    for (index, draft) in drafts.iter().enumerate() {
        let day = draft.day.ok_or(BusinessHoursError::MissingDay { index })?;
        let start = TimeOfDay::parse(draft.start_time)
            .filter(|start| *start < TimeOfDay::END_OF_DAY)
            .ok_or(BusinessHoursError::BadStartTime { index })?;
        let end =
            TimeOfDay::parse(draft.end_time).ok_or(BusinessHoursError::BadEndTime { index })?;
        if end == start {
            return Err(BusinessHoursError::ZeroLength { index });
        }
        intervals.push(Interval { day, start, end });
    }
    if intervals.is_empty() {
        return Err(BusinessHoursError::NoIntervals);
    }
    Ok(intervals)
}

/// Refuses two intervals that share a minute, on the week seen as a circle (minute 0 is Monday
/// 00:00): an overnight Sunday interval wraps into Monday.
fn check_overlaps(intervals: &[Interval]) -> Result<(), BusinessHoursError> {
    let mut stretches = Vec::with_capacity(intervals.len() + 1);
    for (index, interval) in intervals.iter().enumerate() {
        let start = weekday_index(interval.day) as u32 * u32::from(MINUTES_PER_DAY)
            + u32::from(interval.start.0);
        let end = start + interval.minutes();
        if end <= MINUTES_PER_WEEK {
            stretches.push((start, end, index));
        } else {
            stretches.push((start, MINUTES_PER_WEEK, index));
            stretches.push((0, end - MINUTES_PER_WEEK, index));
        }
    }
    stretches.sort_unstable();
    // With the stretches by start, each need only be compared with the one before it that
    // reaches furthest.
    let mut reach: Option<(u32, usize)> = None;
    for &(start, end, index) in &stretches {
        if let Some((reach_end, other)) = reach
            && start < reach_end
        {
            let minute_of_day = (start % u32::from(MINUTES_PER_DAY)) as u16;
            let day = (start / u32::from(MINUTES_PER_DAY)) as i8;
            return Err(BusinessHoursError::Overlap {
                index: index.max(other),
                other: index.min(other),
                day: Weekday::from_monday_zero_offset(day).unwrap_or(Weekday::Monday),
                time: TimeOfDay(minute_of_day),
            });
        }
        if reach.is_none_or(|(reach_end, _)| end > reach_end) {
            reach = Some((end, index));
        }
    }
    Ok(())
}

fn parse_holidays(drafts: &[&str]) -> Result<Vec<Date>, BusinessHoursError> {
    if drafts.len() > MAX_HOLIDAYS {
        return Err(BusinessHoursError::TooManyHolidays);
    }
    let mut seen = HashMap::with_capacity(drafts.len());
    for (index, text) in drafts.iter().enumerate() {
        let date = parse_date(text).ok_or(BusinessHoursError::BadHoliday { index })?;
        if !(FIRST_HOLIDAY_YEAR..=LAST_HOLIDAY_YEAR).contains(&date.year()) {
            return Err(BusinessHoursError::HolidayOutOfRange { index });
        }
        if let Some(first) = seen.get(&date) {
            return Err(BusinessHoursError::DuplicateHoliday {
                index,
                first: *first,
            });
        }
        seen.insert(date, index);
    }
    let mut holidays: Vec<Date> = seen.into_keys().collect();
    holidays.sort_unstable();
    Ok(holidays)
}

#[cfg(test)]
mod tests;
