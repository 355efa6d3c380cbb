//! Time reaches the domain through a clock that the runtime injects, so tests can control it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// The current time at the precision charla stores (microseconds), so a value returned
    /// before it is stored equals the value read back.
    fn now_stored(&self) -> SystemTime {
        from_micros(to_micros(self.now()))
    }
}

/// The machine's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to: for tests.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward; false (and no move) when that would pass the last representable
    /// timestamp (year 9999).
    pub fn advance(&self, by: Duration) -> bool {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match now.checked_add(by).filter(|later| *later <= latest_time()) {
            Some(later) => {
                *now = later;
                true
            }
            None => false,
        }
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: SystemTime) {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The clock a service is built with.
pub type SharedClock = Arc<dyn Clock>;

/// Microseconds since the Unix epoch: how charla stores instants (the same on SQLite and PostgreSQL).
pub fn to_micros(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// The instant `micros` microseconds after the Unix epoch (before it when negative).
pub fn from_micros(micros: i64) -> SystemTime {
    let magnitude = Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
}

/// The first instant a protobuf Timestamp may hold: 0001-01-01T00:00:00Z.
const EARLIEST_SECONDS: i64 = -62_135_596_800;
/// The last instant a protobuf Timestamp may hold: 9999-12-31T23:59:59Z.
const LATEST_SECONDS: i64 = 253_402_300_799;

/// The last instant a protobuf Timestamp may hold (9999-12-31T23:59:59Z): no time charla stores
/// or derives (a deadline, say) goes past it, so every stored time can be answered.
pub fn latest_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(LATEST_SECONDS as u64)
}

/// `time + by`, but never past [`latest_time`] (and never overflowing).
pub fn add_bounded(time: SystemTime, by: Duration) -> SystemTime {
    time.checked_add(by)
        .map_or_else(latest_time, |later| later.min(latest_time()))
}

/// The longest Duration protobuf defines, in seconds (about 10,000 years).
const MAX_DURATION_SECONDS: i64 = 315_576_000_000;
/// The largest magnitude of a Duration's `nanos`.
const MAX_DURATION_NANOS: i32 = 999_999_999;

/// A duration field that may not be negative: INVALID_ARGUMENT naming `field` when it is, when it
/// lies outside protobuf's range (±10,000 years), or when its nanoseconds are out of range or of
/// the other sign than its seconds. Pure comparisons: no value, however extreme, can overflow.
pub fn parse_duration(
    field: &str,
    duration: &prost_types::Duration,
) -> Result<Duration, crate::ApiError> {
    let (seconds, nanos) = (duration.seconds, duration.nanos);
    let well_formed = (-MAX_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&seconds)
        && (-MAX_DURATION_NANOS..=MAX_DURATION_NANOS).contains(&nanos)
        && !(seconds > 0 && nanos < 0)
        && !(seconds < 0 && nanos > 0);
    if !well_formed {
        return Err(crate::ApiError::invalid(
            field,
            "must be a valid duration: at most 315,576,000,000 seconds either way, and nanos \
             between -999,999,999 and 999,999,999 with the sign of seconds",
        ));
    }
    if seconds < 0 || nanos < 0 {
        return Err(crate::ApiError::invalid(field, "must not be negative"));
    }
    // Both are non-negative and in range here.
    Ok(Duration::new(seconds.unsigned_abs(), nanos.unsigned_abs()))
}

/// A timestamp field as an instant: INVALID_ARGUMENT naming `field` outside the years 1 to 9999
/// (the range protobuf defines) or with bad nanoseconds.
pub fn parse_timestamp(
    field: &str,
    timestamp: &prost_types::Timestamp,
) -> Result<SystemTime, crate::ApiError> {
    let in_range = (EARLIEST_SECONDS..=LATEST_SECONDS).contains(&timestamp.seconds)
        && (0..1_000_000_000).contains(&timestamp.nanos);
    if !in_range {
        return Err(crate::ApiError::invalid(
            field,
            "must be a valid timestamp between the years 1 and 9999",
        ));
    }
    SystemTime::try_from(*timestamp)
        .map_err(|_| crate::ApiError::invalid(field, "must be a valid timestamp"))
}

/// The protobuf form of an instant.
pub fn to_timestamp(time: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip_on_both_sides_of_the_epoch() {
        for micros in [0, 1, -1, 1_700_000_000_123_456, -86_400_000_000] {
            assert_eq!(to_micros(from_micros(micros)), micros);
        }
    }

    #[test]
    fn timestamps_outside_protobufs_range_are_refused() {
        let ok = prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        };
        assert!(parse_timestamp("t", &ok).is_ok());
        for bad in [
            prost_types::Timestamp {
                seconds: i64::MAX,
                nanos: 0,
            },
            prost_types::Timestamp {
                seconds: -70_000_000_000,
                nanos: 0,
            },
            prost_types::Timestamp {
                seconds: 0,
                nanos: -1,
            },
        ] {
            assert!(parse_timestamp("t", &bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_at_every_extreme_are_refused_without_panicking() {
        let duration = |seconds, nanos| prost_types::Duration { seconds, nanos };
        assert_eq!(
            parse_duration("d", &duration(90, 5)),
            Ok(Duration::new(90, 5))
        );
        assert_eq!(parse_duration("d", &duration(0, 0)), Ok(Duration::ZERO));
        for bad in [
            duration(i64::MIN, 0),
            duration(i64::MIN, i32::MIN),
            duration(i64::MAX, i32::MAX),
            duration(-1, 0),
            duration(0, -1),
            duration(1, -1),
            duration(-1, 1),
            duration(0, 1_000_000_000),
            duration(MAX_DURATION_SECONDS + 1, 0),
        ] {
            let error = parse_duration("d", &bad).expect_err("refused");
            assert!(
                matches!(&error, crate::ApiError::InvalidArgument { field, .. } if field == "d"),
                "{bad:?}: {error:?}"
            );
        }
    }

    #[test]
    fn bounded_additions_stop_at_the_last_timestamp() {
        let near_end = latest_time() - Duration::from_secs(60);
        assert_eq!(
            add_bounded(near_end, Duration::from_secs(30)),
            near_end + Duration::from_secs(30)
        );
        assert_eq!(
            add_bounded(near_end, Duration::from_secs(3600)),
            latest_time()
        );
        assert_eq!(add_bounded(near_end, Duration::MAX), latest_time());
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(from_micros(1_000_000));
        assert_eq!(to_micros(clock.now()), 1_000_000);
        assert!(clock.advance(Duration::from_secs(2)));
        assert_eq!(to_micros(clock.now()), 3_000_000);
        assert!(
            !clock.advance(Duration::from_secs(u64::MAX / 2)),
            "never past year 9999"
        );
        assert_eq!(to_micros(clock.now()), 3_000_000);
    }
}
