//! Service level targets: how fast a workspace means to answer and to resolve, and whether each
//! closed conversation did.

use std::time::Duration;

/// The longest target: a year.
pub const MAX_TARGET: Duration = Duration::from_secs(365 * 24 * 3600);

/// A workspace's targets (none set: nothing to meet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlaTargets {
    pub first_response: Option<Duration>,
    pub resolution: Option<Duration>,
    /// Measured in business time (the schedule in effect at opening) rather than calendar time.
    pub business_time: bool,
}

/// Why a target can't be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlaError {
    #[error("must be more than zero")]
    NotPositive,
    #[error("must be at most 365 days")]
    TooLong,
}

/// A target's duration, checked.
pub fn target(duration: Duration) -> Result<Duration, SlaError> {
    if duration.is_zero() {
        Err(SlaError::NotPositive)
    } else if duration > MAX_TARGET {
        Err(SlaError::TooLong)
    } else {
        Ok(duration)
    }
}

/// What a closed conversation took, in the time the targets are measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Took {
    pub first_response: Option<Duration>,
    pub resolution: Duration,
}

/// Whether a closed conversation met each target: `Some(true)` achieved, `Some(false)` breached,
/// `None` not held to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlaOutcome {
    pub first_response: Option<bool>,
    pub resolution: Option<bool>,
}

impl SlaTargets {
    /// How a conversation that took `took` did against these targets. A conversation closed
    /// without a response is breached on first response once it stayed open past the target,
    /// and held to nothing when it closed sooner.
    pub fn judge(&self, took: Took) -> SlaOutcome {
        SlaOutcome {
            first_response: self
                .first_response
                .and_then(|target| match took.first_response {
                    Some(first) => Some(first <= target),
                    None => (took.resolution > target).then_some(false),
                }),
            resolution: self.resolution.map(|target| took.resolution <= target),
        }
    }
}

/// Achieved and breached counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlaCounts {
    pub first_response_achieved: u64,
    pub first_response_breached: u64,
    pub resolution_achieved: u64,
    pub resolution_breached: u64,
}

impl SlaCounts {
    /// Counts one conversation's outcome.
    pub fn add(&mut self, outcome: SlaOutcome) {
        match outcome.first_response {
            Some(true) => self.first_response_achieved += 1,
            Some(false) => self.first_response_breached += 1,
            None => {}
        }
        match outcome.resolution {
            Some(true) => self.resolution_achieved += 1,
            Some(false) => self.resolution_breached += 1,
            None => {}
        }
    }

    /// Adds the counts of `other`.
    pub fn merge(&mut self, other: &SlaCounts) {
        self.first_response_achieved += other.first_response_achieved;
        self.first_response_breached += other.first_response_breached;
        self.resolution_achieved += other.resolution_achieved;
        self.resolution_breached += other.resolution_breached;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_target_is_met_at_its_length_and_missed_past_it() {
        let targets = SlaTargets {
            first_response: Some(5 * MINUTE),
            resolution: Some(60 * MINUTE),
            business_time: false,
        };
        let judge = |first: Option<u32>, resolution: u32| {
            targets.judge(Took {
                first_response: first.map(|m| m * MINUTE),
                resolution: resolution * MINUTE,
            })
        };
        assert_eq!(
            judge(Some(5), 60),
            SlaOutcome {
                first_response: Some(true),
                resolution: Some(true)
            }
        );
        assert_eq!(
            judge(Some(6), 61),
            SlaOutcome {
                first_response: Some(false),
                resolution: Some(false)
            }
        );
        assert_eq!(
            judge(None, 4).first_response,
            None,
            "closed before the target"
        );
        assert_eq!(
            judge(None, 6).first_response,
            Some(false),
            "left unanswered past it"
        );
        assert_eq!(
            SlaTargets::default().judge(Took {
                first_response: None,
                resolution: MINUTE,
            }),
            SlaOutcome::default()
        );
    }

    #[test]
    fn targets_are_positive_and_at_most_a_year() {
        assert_eq!(target(Duration::ZERO), Err(SlaError::NotPositive));
        assert_eq!(
            target(MAX_TARGET + Duration::from_secs(1)),
            Err(SlaError::TooLong)
        );
        assert_eq!(target(MINUTE), Ok(MINUTE));
    }
}
