//! Bot and AI containment: what automation (a bot, an AI agent or a workflow) did in a closed
//! conversation — handled it alone to the end, handed it to a human, or neither.

use std::time::Duration;

/// The closing sources of a conversation automation may have handled to the end: a bot's
/// mark-done, an AI agent, a workflow step, or auto-close (which, with no human message, can
/// only follow automated replies).
const AUTOMATED_CLOSES: [&str; 4] = [
    "CLOSE_SOURCE_BOT",
    "CLOSE_SOURCE_AI_AGENT",
    "CLOSE_SOURCE_WORKFLOW",
    "CLOSE_SOURCE_AUTO_CLOSE",
];

/// When things first happened in a closed conversation, each since its opening.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AutomationFacts {
    /// The first message of a bot, an AI agent or a workflow.
    pub first_automated_message: Option<Duration>,
    /// The first message written by a human user.
    pub first_human_message: Option<Duration>,
    /// The first time a user was assigned.
    pub first_assignment: Option<Duration>,
}

/// What automation did in one closed conversation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Automation {
    /// No automation wrote before a human took part (or none wrote at all).
    #[default]
    NotAutomated,
    /// Automation wrote first, and no human user wrote or was assigned until a bot, an AI agent,
    /// a workflow or auto-close closed it.
    Contained,
    /// Automation wrote first, then a human took over (wrote or was assigned) this long after
    /// opening.
    HandedOff { after: Duration },
    /// Automation wrote first, no human took part, and something else closed it (a user without
    /// writing, the API, a contact merge).
    Abandoned,
}

impl Automation {
    /// What automation did in a conversation closed by `closed_by` (its stored name).
    pub fn of(facts: AutomationFacts, closed_by: &str) -> Self {
        let human = match (facts.first_human_message, facts.first_assignment) {
            (Some(message), Some(assignment)) => Some(message.min(assignment)),
            (message, assignment) => message.or(assignment),
        };
        let Some(automated) = facts.first_automated_message else {
            return Self::NotAutomated;
        };
        match human {
            // A human in charge before the first automated message: automation only assisted.
            Some(human) if human < automated => Self::NotAutomated,
            Some(human) => Self::HandedOff { after: human },
            None if AUTOMATED_CLOSES.contains(&closed_by) => Self::Contained,
            None => Self::Abandoned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(60 * n))
    }

    fn facts(
        automated: Option<Duration>,
        human: Option<Duration>,
        assignment: Option<Duration>,
    ) -> AutomationFacts {
        AutomationFacts {
            first_automated_message: automated,
            first_human_message: human,
            first_assignment: assignment,
        }
    }

    #[test]
    fn automation_alone_to_an_automated_close_is_contained() {
        for source in AUTOMATED_CLOSES {
            assert_eq!(
                Automation::of(facts(minutes(0), None, None), source),
                Automation::Contained,
                "{source}"
            );
        }
        for source in [
            "CLOSE_SOURCE_USER",
            "CLOSE_SOURCE_API",
            "CLOSE_SOURCE_CONTACT_MERGE",
        ] {
            assert_eq!(
                Automation::of(facts(minutes(0), None, None), source),
                Automation::Abandoned,
                "{source}"
            );
        }
    }

    #[test]
    fn a_human_after_automation_is_a_handoff_at_the_earlier_of_message_and_assignment() {
        let bot = "CLOSE_SOURCE_BOT";
        assert_eq!(
            Automation::of(facts(minutes(1), minutes(9), None), bot),
            Automation::HandedOff {
                after: Duration::from_secs(540)
            }
        );
        assert_eq!(
            Automation::of(facts(minutes(1), minutes(9), minutes(4)), bot),
            Automation::HandedOff {
                after: Duration::from_secs(240)
            }
        );
        assert_eq!(
            Automation::of(facts(minutes(1), None, minutes(1)), bot),
            Automation::HandedOff {
                after: Duration::from_secs(60)
            },
            "at the same instant automation still came first"
        );
    }

    #[test]
    fn a_human_before_automation_or_no_automation_is_not_automated() {
        let user = "CLOSE_SOURCE_USER";
        assert_eq!(
            Automation::of(facts(minutes(5), minutes(2), None), user),
            Automation::NotAutomated
        );
        assert_eq!(
            Automation::of(facts(minutes(5), None, minutes(0)), "CLOSE_SOURCE_BOT"),
            Automation::NotAutomated
        );
        assert_eq!(
            Automation::of(facts(None, None, None), "CLOSE_SOURCE_BOT"),
            Automation::NotAutomated
        );
    }
}
