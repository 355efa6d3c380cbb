//! Open conversations at risk of missing a service level target: the dashboard's list, and when
//! it next changes (so a live dashboard can be pushed the moment a target is missed).

use std::time::Duration;

use super::business_hours::BusinessHours;
use super::sla::SlaTargets;

/// A conversation is at risk once this share of a target has gone by: three quarters.
pub const AT_RISK_SHARE: (u32, u32) = (3, 4);

/// The most conversations the list holds, soonest deadline first.
pub const MAX_AT_RISK: usize = 100;

/// Which target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetKind {
    FirstResponse,
    Resolution,
}

/// An open conversation, as far as its targets go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenConversation {
    pub conversation: String,
    pub contact: String,
    pub assignee: String,
    pub opened_at: i64,
    pub first_response_at: Option<i64>,
}

/// One target an open conversation is at risk of missing (or has missed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtRisk {
    pub conversation: String,
    pub contact: String,
    pub assignee: String,
    pub target: TargetKind,
    /// When the target is missed (microseconds).
    pub deadline: i64,
    pub breached: bool,
}

/// The instant (microseconds) at which `length` of business time has gone by since `start`:
/// the first instant whose business time from `start` reaches it.
pub fn business_instant(hours: &BusinessHours, start: i64, length: Duration) -> i64 {
    // Business time never runs faster than the clock: the instant is at `start + length` or
    // later. Double the span until it holds enough, then halve down to the microsecond.
    let micros = i64::try_from(length.as_micros()).unwrap_or(i64::MAX);
    let (mut low, mut high) = (start, start.saturating_add(micros.max(1)));
    while hours.business_time(start, high) < length {
        low = high;
        let span = high.saturating_sub(start);
        if span >= i64::MAX / 4 {
            return i64::MAX;
        }
        high = start.saturating_add(span.saturating_mul(2));
    }
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if hours.business_time(start, middle) < length {
            low = middle;
        } else {
            high = middle;
        }
    }
    high
}

fn share(length: Duration) -> Duration {
    length * AT_RISK_SHARE.0 / AT_RISK_SHARE.1
}

/// The targets `conversation` can still miss under `targets`: for each, when it becomes at
/// risk and its deadline. `hours`: the business hours in effect when it opened (business-time
/// targets are none without them).
pub fn watch_points(
    conversation: &OpenConversation,
    targets: &SlaTargets,
    hours: Option<&BusinessHours>,
) -> Vec<(TargetKind, i64, i64)> {
    let after = |length: Duration| -> Option<i64> {
        if targets.business_time {
            Some(business_instant(hours?, conversation.opened_at, length))
        } else {
            let micros = i64::try_from(length.as_micros()).ok()?;
            Some(conversation.opened_at.saturating_add(micros))
        }
    };
    let mut points = Vec::new();
    let waiting = conversation.first_response_at.is_none();
    for (kind, target) in [
        (
            TargetKind::FirstResponse,
            targets.first_response.filter(|_| waiting),
        ),
        (TargetKind::Resolution, targets.resolution),
    ] {
        if let Some(target) = target
            && let (Some(onset), Some(deadline)) = (after(share(target)), after(target))
        {
            points.push((kind, onset, deadline));
        }
    }
    points
}

/// What the dashboard shows at `now` of the open conversations and their targets
/// (`targets_of` gives each conversation's targets and business hours, those in effect when it
/// opened): the at-risk list, soonest deadline first (at most `MAX_AT_RISK`), and the next
/// instant after `now` the list changes (a conversation becomes at risk or misses a target).
pub fn at_risk<'a>(
    open: &[OpenConversation],
    targets_of: impl Fn(&OpenConversation) -> Option<(&'a SlaTargets, Option<&'a BusinessHours>)>,
    now: i64,
) -> (Vec<AtRisk>, Option<i64>) {
    let mut list = Vec::new();
    let mut next: Option<i64> = None;
    let mut sooner = |at: i64| next = Some(next.map_or(at, |n| n.min(at)));
    for conversation in open {
        let Some((targets, hours)) = targets_of(conversation) else {
            continue;
        };
        for (kind, onset, deadline) in watch_points(conversation, targets, hours) {
            if onset > now {
                sooner(onset);
                continue;
            }
            if deadline > now {
                sooner(deadline);
            }
            list.push(AtRisk {
                conversation: conversation.conversation.clone(),
                contact: conversation.contact.clone(),
                assignee: conversation.assignee.clone(),
                target: kind,
                deadline,
                breached: deadline <= now,
            });
        }
    }
    list.sort_by(|a, b| {
        (a.deadline, &a.conversation, a.target).cmp(&(b.deadline, &b.conversation, b.target))
    });
    list.truncate(MAX_AT_RISK);
    (list, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BusinessHoursDraft, IntervalDraft};
    use jiff::civil::Weekday;

    const MINUTE: i64 = 60_000_000;
    /// Monday 2026-06-01T00:00:00Z.
    const MONDAY: i64 = 1_780_272_000_000_000;

    fn open(name: &str, opened_at: i64, first_response_at: Option<i64>) -> OpenConversation {
        OpenConversation {
            conversation: name.into(),
            contact: format!("contact-{name}"),
            assignee: String::new(),
            opened_at,
            first_response_at,
        }
    }

    #[test]
    fn a_conversation_is_at_risk_from_three_quarters_of_a_target_and_breached_at_it() {
        let targets = SlaTargets {
            first_response: Some(Duration::from_secs(20 * 60)),
            resolution: Some(Duration::from_secs(60 * 60)),
            business_time: false,
        };
        let open = [
            open("fresh", MONDAY, None),
            open("waiting", MONDAY - 16 * MINUTE, None),
            open("late", MONDAY - 25 * MINUTE, None),
            open("answered", MONDAY - 50 * MINUTE, Some(MONDAY - 49 * MINUTE)),
        ];
        let (list, next) = at_risk(&open, |_| Some((&targets, None)), MONDAY);
        let seen: Vec<(&str, TargetKind, bool)> = list
            .iter()
            .map(|a| (a.conversation.as_str(), a.target, a.breached))
            .collect();
        assert_eq!(
            seen,
            [
                ("late", TargetKind::FirstResponse, true),
                ("waiting", TargetKind::FirstResponse, false),
                ("answered", TargetKind::Resolution, false),
            ]
        );
        // Next: "answered" misses its resolution target in 10 minutes, "waiting" its first
        // response in 4, "fresh" becomes at risk in 15: the soonest is 4.
        assert_eq!(next, Some(MONDAY + 4 * MINUTE));
        let (_, none) = at_risk(&open, |_| None, MONDAY);
        assert_eq!(none, None, "no targets, nothing to wait for");
    }

    #[test]
    fn a_business_time_deadline_is_where_the_business_time_reaches_the_target() {
        let hours = BusinessHours::new(&BusinessHoursDraft {
            time_zone: "UTC",
            intervals: vec![
                IntervalDraft {
                    day: Some(Weekday::Monday),
                    start_time: "09:00",
                    end_time: "17:00",
                },
                IntervalDraft {
                    day: Some(Weekday::Tuesday),
                    start_time: "09:00",
                    end_time: "17:00",
                },
            ],
            holidays: Vec::new(),
        })
        .unwrap();
        // Monday 16:50 + 30 business minutes = Tuesday 09:20.
        let start = MONDAY + (16 * 60 + 50) * MINUTE;
        let deadline = business_instant(&hours, start, Duration::from_secs(30 * 60));
        assert_eq!(deadline, MONDAY + (24 * 60 + 9 * 60 + 20) * MINUTE);
        assert_eq!(
            hours.business_time(start, deadline),
            Duration::from_secs(1800)
        );
        assert!(hours.business_time(start, deadline - 1) < Duration::from_secs(1800));
    }
}
