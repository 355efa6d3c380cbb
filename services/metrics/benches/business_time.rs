//! What business time costs per duration, beside the calendar floor (the plain subtraction a
//! calendar-time metric does), for spans of an hour, a day, 30 days and a year.
//!
//! ```sh
//! cargo bench -p charla-metrics --bench business_time
//! ```
//! Settings from the environment: `ROUNDS` (5; the best round is printed) and `CALLS` per span
//! and round (20000). Starts are spread over 2026 so that spans cross DST changes and holidays.

use std::hint::black_box;
use std::time::{Duration, Instant};

use charla_metrics::domain::{BusinessHours, BusinessHoursDraft, IntervalDraft};
use jiff::civil::Weekday;

const HOUR: i64 = 3_600_000_000;
/// 2026-01-01T00:00:00Z.
const YEAR_START: i64 = 1_767_225_600_000_000;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// New York, Monday to Friday 09:00-17:00 and Saturday 10:00-14:00, with `holidays`.
fn schedule(holidays: &[&str]) -> BusinessHours {
    let mut intervals: Vec<IntervalDraft<'_>> = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
    ]
    .into_iter()
    .map(|day| IntervalDraft {
        day: Some(day),
        start_time: "09:00",
        end_time: "17:00",
    })
    .collect();
    intervals.push(IntervalDraft {
        day: Some(Weekday::Saturday),
        start_time: "10:00",
        end_time: "14:00",
    });
    BusinessHours::new(&BusinessHoursDraft {
        time_zone: "America/New_York",
        intervals,
        holidays: holidays.to_vec(),
    })
    .expect("a valid schedule")
}

/// The US federal holidays of 2026 and 2027.
const HOLIDAYS: &[&str] = &[
    "2026-01-01",
    "2026-01-19",
    "2026-02-16",
    "2026-05-25",
    "2026-06-19",
    "2026-07-03",
    "2026-09-07",
    "2026-10-12",
    "2026-11-11",
    "2026-11-26",
    "2026-12-25",
    "2027-01-01",
    "2027-01-18",
    "2027-02-15",
    "2027-05-31",
    "2027-06-18",
    "2027-07-05",
    "2027-09-06",
    "2027-10-11",
    "2027-11-11",
    "2027-11-25",
    "2027-12-24",
];

/// The best of `rounds` rounds of `calls` calls of `measure` from starts spread over 2026
/// (about 26 minutes apart, never on the hour), per call.
fn time(rounds: usize, calls: usize, measure: impl Fn(i64) -> Duration) -> Duration {
    let step = 365 * 24 * HOUR / calls as i64 + 7_000_000;
    (0..rounds)
        .map(|_| {
            let began = Instant::now();
            let mut total = Duration::ZERO;
            for call in 0..calls as i64 {
                total += measure(black_box(YEAR_START + call * step % (365 * 24 * HOUR)));
            }
            black_box(total);
            began.elapsed() / calls as u32
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let rounds = setting("ROUNDS", 5);
    let calls = setting("CALLS", 20_000);
    let plain = schedule(&[]);
    let with_holidays = schedule(HOLIDAYS);
    println!(
        "business_time, New York Mon-Fri 09-17 + Sat 10-14; per call, best of {rounds} rounds of {calls} calls"
    );
    println!(
        "{:>8}  {:>14}  {:>16}  {:>22}",
        "span", "calendar floor", "business time", "business, 22 holidays"
    );
    for (name, span) in [
        ("1 hour", HOUR),
        ("1 day", 24 * HOUR),
        ("30 days", 30 * 24 * HOUR),
        ("1 year", 365 * 24 * HOUR),
    ] {
        let floor = time(rounds, calls, |start| {
            Duration::from_micros((black_box(start + span) - start).unsigned_abs())
        });
        let business = time(rounds, calls, |start| {
            plain.business_time(start, start + span)
        });
        let holidays = time(rounds, calls, |start| {
            with_holidays.business_time(start, start + span)
        });
        println!("{name:>8}  {floor:>14.1?}  {business:>16.1?}  {holidays:>22.1?}");
    }
}
