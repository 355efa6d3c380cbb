//! The statistics of closed conversations, as one bucket (or any merge of buckets) holds them.

use std::time::Duration;

use super::automation::Automation;
use super::contacts::ContactSketch;
use super::distribution::Distribution;
use super::recontact::RecontactGaps;
use super::schedules::BusinessDurations;
use super::sla::{SlaCounts, SlaOutcome};

/// What the metrics take from one closed conversation (a ConversationClosed event).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Closure {
    /// Closing time minus opening time.
    pub resolution: Duration,
    /// The first human response minus opening time, if anyone answered.
    pub first_response: Option<Duration>,
    /// Each human response's wait.
    pub response_times: Vec<Duration>,
    /// The first assignment minus opening time, if it was assigned.
    pub time_to_first_assignment: Option<Duration>,
    /// How many times a user was assigned.
    pub assignment_count: u32,
    /// What automation did in it.
    pub automation: Automation,
    /// When each response's wait began (microseconds), in the order of `response_times`; empty
    /// when not known.
    pub response_started_at: Vec<i64>,
}

/// Counts of first response times in respond.io's bands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bands {
    pub under_30s: u64,
    pub from_30s_to_2m: u64,
    pub from_2m_to_5m: u64,
    pub from_5m_to_10m: u64,
    pub from_10m_to_30m: u64,
    pub from_30m_to_1h: u64,
    pub over_1h: u64,
    /// Closed without any human response.
    pub no_response: u64,
}

impl Bands {
    /// Counts one first response time (or none) in its band. Each band includes its lower
    /// bound: exactly 30 seconds is in "30 s - 2 min".
    pub fn add(&mut self, first_response: Option<Duration>) {
        let Some(wait) = first_response else {
            self.no_response += 1;
            return;
        };
        let seconds = wait.as_secs_f64();
        let band = match seconds {
            s if s < 30.0 => &mut self.under_30s,
            s if s < 120.0 => &mut self.from_30s_to_2m,
            s if s < 300.0 => &mut self.from_2m_to_5m,
            s if s < 600.0 => &mut self.from_5m_to_10m,
            s if s < 1800.0 => &mut self.from_10m_to_30m,
            s if s < 3600.0 => &mut self.from_30m_to_1h,
            _ => &mut self.over_1h,
        };
        *band += 1;
    }

    /// Adds the counts of `other`.
    pub fn merge(&mut self, other: &Bands) {
        self.under_30s += other.under_30s;
        self.from_30s_to_2m += other.from_30s_to_2m;
        self.from_2m_to_5m += other.from_2m_to_5m;
        self.from_5m_to_10m += other.from_5m_to_10m;
        self.from_10m_to_30m += other.from_10m_to_30m;
        self.from_30m_to_1h += other.from_30m_to_1h;
        self.over_1h += other.over_1h;
        self.no_response += other.no_response;
    }

    /// The counts, from the fastest band to `no_response`.
    pub fn to_array(&self) -> [u64; 8] {
        [
            self.under_30s,
            self.from_30s_to_2m,
            self.from_2m_to_5m,
            self.from_5m_to_10m,
            self.from_10m_to_30m,
            self.from_30m_to_1h,
            self.over_1h,
            self.no_response,
        ]
    }

    /// Bands from counts in `to_array` order.
    pub fn from_array(counts: [u64; 8]) -> Self {
        let [a, b, c, d, e, f, g, h] = counts;
        Self {
            under_30s: a,
            from_30s_to_2m: b,
            from_2m_to_5m: c,
            from_5m_to_10m: d,
            from_10m_to_30m: e,
            from_30m_to_1h: f,
            over_1h: g,
            no_response: h,
        }
    }
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// The statistics of the conversations closed in one bucket with one set of dimensions.
#[derive(Debug, Clone, Default)]
pub struct ClosedStats {
    pub closed: u64,
    /// Microseconds.
    pub resolution: Distribution,
    /// Microseconds; conversations with a human response only.
    pub first_response: Distribution,
    /// Microseconds; one value per human response.
    pub response: Distribution,
    /// Responses per closed conversation.
    pub responses_per_conversation: Distribution,
    /// Microseconds; assigned conversations only.
    pub time_to_first_assignment: Distribution,
    /// Assignments per closed conversation.
    pub assignments_per_conversation: Distribution,
    pub bands: Bands,
    /// The contacts of the closed conversations, each once.
    pub contacts: ContactSketch,
    /// Automation wrote before any human took part (contained, handed off or abandoned).
    pub automated: u64,
    pub contained: u64,
    pub handed_off: u64,
    /// Microseconds from opening to the human taking over; handed-off conversations only.
    pub time_to_handoff: Distribution,
    /// The closed conversations whose contact opened a new one within the longest window, by
    /// the hour bin of the gap (kept in rows of their own, merged in when reports read them).
    pub recontact: RecontactGaps,
    /// Microseconds of business time; conversations opened under business hours only.
    pub business_resolution: Distribution,
    pub business_first_response: Distribution,
    pub business_time_to_first_assignment: Distribution,
    /// Microseconds of business time; one value per response whose start is known.
    pub business_response: Distribution,
    /// Service level targets met and missed.
    pub sla: SlaCounts,
}

impl ClosedStats {
    /// Counts one closed conversation of `contact`.
    pub fn add(&mut self, contact: &str, closure: &Closure) {
        self.closed += 1;
        self.contacts.insert(contact);
        self.resolution.add(micros(closure.resolution));
        if let Some(first) = closure.first_response {
            self.first_response.add(micros(first));
        }
        for wait in &closure.response_times {
            self.response.add(micros(*wait));
        }
        self.responses_per_conversation
            .add(closure.response_times.len() as i64);
        if let Some(first) = closure.time_to_first_assignment {
            self.time_to_first_assignment.add(micros(first));
        }
        self.assignments_per_conversation
            .add(i64::from(closure.assignment_count));
        self.bands.add(closure.first_response);
        match closure.automation {
            Automation::NotAutomated => {}
            Automation::Contained => {
                self.automated += 1;
                self.contained += 1;
            }
            Automation::HandedOff { after } => {
                self.automated += 1;
                self.handed_off += 1;
                self.time_to_handoff.add(micros(after));
            }
            Automation::Abandoned => self.automated += 1,
        }
    }

    /// Counts the business-time durations of a closed conversation counted with `add`.
    pub fn add_business(&mut self, durations: &BusinessDurations) {
        self.business_resolution.add(micros(durations.resolution));
        if let Some(first) = durations.first_response {
            self.business_first_response.add(micros(first));
        }
        if let Some(first) = durations.time_to_first_assignment {
            self.business_time_to_first_assignment.add(micros(first));
        }
        for wait in &durations.responses {
            self.business_response.add(micros(*wait));
        }
    }

    /// Counts a closed conversation's outcome against its service level targets.
    pub fn add_sla(&mut self, outcome: SlaOutcome) {
        self.sla.add(outcome);
    }

    /// Adds everything `other` counts.
    pub fn merge(&mut self, other: &ClosedStats) {
        self.closed += other.closed;
        self.resolution.merge(&other.resolution);
        self.first_response.merge(&other.first_response);
        self.response.merge(&other.response);
        self.responses_per_conversation
            .merge(&other.responses_per_conversation);
        self.time_to_first_assignment
            .merge(&other.time_to_first_assignment);
        self.assignments_per_conversation
            .merge(&other.assignments_per_conversation);
        self.bands.merge(&other.bands);
        self.contacts.merge(&other.contacts);
        self.automated += other.automated;
        self.contained += other.contained;
        self.handed_off += other.handed_off;
        self.time_to_handoff.merge(&other.time_to_handoff);
        self.recontact.merge(&other.recontact);
        self.business_resolution.merge(&other.business_resolution);
        self.business_first_response
            .merge(&other.business_first_response);
        self.business_time_to_first_assignment
            .merge(&other.business_time_to_first_assignment);
        self.business_response.merge(&other.business_response);
        self.sla.merge(&other.sla);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_include_their_lower_bound() {
        let mut bands = Bands::default();
        for seconds in [0, 29, 30, 119, 120, 300, 600, 1800, 3599, 3600] {
            bands.add(Some(Duration::from_secs(seconds)));
        }
        bands.add(None);
        assert_eq!(bands.to_array(), [2, 2, 1, 1, 1, 2, 1, 1]);
        assert_eq!(Bands::from_array(bands.to_array()), bands);
    }

    #[test]
    fn a_closure_feeds_every_statistic() {
        let mut stats = ClosedStats::default();
        stats.add(
            "c1",
            &Closure {
                resolution: Duration::from_secs(600),
                first_response: Some(Duration::from_secs(60)),
                response_times: vec![Duration::from_secs(60), Duration::from_secs(30)],
                time_to_first_assignment: None,
                assignment_count: 0,
                automation: Automation::HandedOff {
                    after: Duration::from_secs(45),
                },
                response_started_at: Vec::new(),
            },
        );
        assert_eq!(stats.closed, 1);
        assert_eq!(stats.response.count(), 2);
        assert_eq!(stats.time_to_first_assignment.count(), 0);
        assert_eq!(stats.responses_per_conversation.summary().unwrap().sum, 2);
        assert_eq!(stats.bands.from_30s_to_2m, 1);
        assert_eq!(stats.contacts.estimate(), 1);
        assert_eq!(
            (stats.automated, stats.handed_off, stats.contained),
            (1, 1, 0)
        );
        assert_eq!(stats.time_to_handoff.summary().unwrap().sum, 45_000_000);
    }
}
