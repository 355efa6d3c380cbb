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

fn latest_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(LATEST_SECONDS as u64)
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
