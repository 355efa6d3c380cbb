//! A batch of conversation events folded in memory into what the aggregates must change: the
//! conversations' facts, additive rollup deltas at every grain, live counts. Many events land in
//! the same few rollup rows, so the store writes each changed row once per batch, not once per
//! event. The rules are those of one event at a time: applying a batch equals applying its events
//! in order.
//!
//! Events are folded into the quarter-hour rows only; the coarse rows follow from those once per
//! batch (`coarse_rows`): an opening moved by an assignment and a close cancel out there before
//! they would be spread over a conversation's ~27 coarse rows.

use foldhash::{HashMap, HashMapExt, HashSet};

use super::change::Change;
use super::closed::ClosedStats;
use super::dimensions::{Dimension, Dimensions};
use super::grains::Grain;
use super::recontact::{MAX_GAP_MICROS, RecontactGaps, gap_bin};
use super::schedules::{BusinessDurations, ScheduleHistory, Versions};
use super::sla::{SlaTargets, Took};

/// A conversation as the aggregates know it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub contact: String,
    /// Its current dimensions (at close, once closed).
    pub dimensions: Dimensions,
    pub opened_at: i64,
    pub imported: bool,
    pub closed_at: Option<i64>,
    /// The close event as received, when it closed in this batch (kept for exports).
    pub close_record: Option<Vec<u8>>,
    /// Once closed: microseconds from its close to its contact's next opening, when that came
    /// within the longest re-contact window.
    pub recontact_gap: Option<i64>,
    /// When its first response was written, once it was.
    pub first_response_at: Option<i64>,
}

/// The rows a single dimension is rolled up under: '' (every conversation), or a dimension.
pub type DimensionKey = Option<Dimension>;

/// What one rollup row gains.
#[derive(Debug, Clone, Default)]
pub struct Delta {
    pub opened: i64,
    /// Conversations closed in the bucket; `None` when none closed. Boxed: the statistics are
    /// about 2.4 KB, most rows of a batch have none, and the batch's maps and chunks move rows
    /// around (inline, copying them was a tenth of the consumer's CPU).
    pub closed: Option<Box<ClosedStats>>,
}

impl Delta {
    /// Whether the row would not change.
    pub fn is_empty(&self) -> bool {
        self.opened == 0 && self.closed.is_none()
    }

    fn close(&mut self, stats: &ClosedStats) {
        self.closed.get_or_insert_with(Box::default).merge(stats);
    }

    /// Adds everything `other` gains: a coarse row is the sum of the rows inside it.
    fn add(&mut self, other: &Delta) {
        self.opened += other.opened;
        if let Some(closed) = &other.closed {
            self.close(closed);
        }
    }
}

/// A quarter-hour rollup row: every dimension.
pub type ComboKey = (String, i64, Dimensions);

/// A coarse rollup row: (workspace, dimension, grain, bucket start, value), borrowed from the
/// quarter-hour row it was spread from.
pub type DimensionRowKey<'a> = (&'a str, DimensionKey, Grain, i64, &'a str);

/// The changes to the open and unassigned counts of a workspace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveDelta {
    pub open: i64,
    pub unassigned: i64,
}

/// The values of `dimensions` a conversation counts under, '' first; a conversation still open
/// counts under no closing source and no category.
fn dimension_values(dimensions: &Dimensions) -> impl Iterator<Item = (DimensionKey, &str)> {
    std::iter::once((None, "")).chain(
        Dimension::ALL
            .into_iter()
            .filter_map(|d| d.value_in(dimensions).map(|value| (Some(d), value))),
    )
}

/// Every dimension key: every conversation (`None`), then each dimension.
pub fn dimension_keys() -> impl Iterator<Item = DimensionKey> {
    std::iter::once(None).chain(Dimension::ALL.into_iter().map(Some))
}

/// The quarter-hour row a conversation with `dimensions` counts in at `at`.
fn combo_of(workspace: &str, at: i64, dimensions: &Dimensions) -> ComboKey {
    (
        workspace.to_owned(),
        Grain::Quarter.bucket(at),
        dimensions.clone(),
    )
}

/// The coarse rows of `grain` whatever counts in the quarter-hour row `combo` counts in too: the
/// row of each of its dimension values (a quarter hour lies inside one bucket of each coarse
/// grain).
fn coarse_rows_of(combo: &ComboKey, grain: Grain) -> impl Iterator<Item = DimensionRowKey<'_>> {
    let (workspace, quarter, dimensions) = combo;
    let bucket = grain.bucket(*quarter);
    dimension_values(dimensions)
        .map(move |(dimension, value)| (workspace.as_str(), dimension, grain, bucket, value))
}

/// The one of `coarse_rows_of` that is `dimension`'s, if the combination counts under it.
fn coarse_row_of(
    combo: &ComboKey,
    grain: Grain,
    dimension: DimensionKey,
) -> Option<DimensionRowKey<'_>> {
    let (workspace, quarter, dimensions) = combo;
    let value = match dimension {
        None => "",
        Some(dimension) => dimension.value_in(dimensions)?,
    };
    Some((
        workspace.as_str(),
        dimension,
        grain,
        grain.bucket(*quarter),
        value,
    ))
}

/// Events folded so far.
#[derive(Debug, Default)]
pub struct Batch {
    /// Conversations the batch read or wrote, by (workspace, conversation); `None`: unknown to
    /// the store.
    facts: HashMap<(String, String), Option<Fact>>,
    /// The conversations of each (workspace, contact) among the facts, for re-contacts.
    by_contact: HashMap<(String, String), Vec<String>>,
    /// The facts to write.
    changed: HashSet<(String, String)>,
    /// What each quarter-hour row gains (the coarse rows' deltas follow: `coarse_rows`).
    pub combos: HashMap<ComboKey, Delta>,
    pub live: HashMap<String, LiveDelta>,
    /// Re-contacted conversations to add to the closed quarter-hour rows (kept apart from their
    /// statistics: a re-contact lands in an older row, and rewrites only these counts).
    pub recontact_combos: HashMap<ComboKey, RecontactGaps>,
    /// The business hours of the batch's workspaces over time (none: no business time).
    schedules: HashMap<String, ScheduleHistory>,
    /// The service level targets of the batch's workspaces over time.
    sla_targets: HashMap<String, Versions<SlaTargets>>,
}

impl Batch {
    /// A batch over the stored facts of the conversations its events name (`None` for those the
    /// store doesn't have), and of the conversations of their contacts that closed or opened
    /// since `Batch::recontact_horizon` (re-contacts are found among them).
    pub fn new(known: HashMap<(String, String), Option<Fact>>) -> Self {
        let mut by_contact: HashMap<(String, String), Vec<String>> = HashMap::new();
        for ((workspace, conversation), fact) in &known {
            if let Some(fact) = fact {
                by_contact
                    .entry((workspace.clone(), fact.contact.clone()))
                    .or_default()
                    .push(conversation.clone());
            }
        }
        Self {
            facts: known,
            by_contact,
            ..Self::default()
        }
    }

    /// Makes room for the quarter-hour rows `events` events touch, so that the map is not
    /// rehashed while the batch is folded: its entries are large (a key of every dimension and
    /// the closed statistics' sketches), and moving them as the map doubled was about 9% of the
    /// consumer's CPU in a profile. An event touches one to three rows, most of them rows other
    /// events of the batch touch too.
    pub fn reserve(&mut self, events: usize) {
        self.combos.reserve(events);
    }

    /// Measures the conversations of each workspace in business time by its schedules.
    pub fn set_schedules(
        &mut self,
        schedules: impl IntoIterator<Item = (String, ScheduleHistory)>,
    ) {
        self.schedules = schedules.into_iter().collect();
    }

    /// Holds the conversations of each workspace to its service level targets over time.
    pub fn set_sla_targets(
        &mut self,
        targets: impl IntoIterator<Item = (String, Versions<SlaTargets>)>,
    ) {
        self.sla_targets = targets.into_iter().collect();
    }

    /// The contact a change names and the time that matters to its re-contacts; a batch must
    /// know the contact's conversations that closed or opened since the earliest such time less
    /// the longest re-contact window.
    pub fn recontact_horizon(change: &Change) -> Option<(&str, i64)> {
        match change {
            Change::Opened {
                contact, opened_at, ..
            } => Some((contact, opened_at.saturating_sub(MAX_GAP_MICROS))),
            Change::Closed {
                contact, opened_at, ..
            } => Some((contact, opened_at.saturating_sub(MAX_GAP_MICROS))),
            Change::Assigned { .. } | Change::FirstResponse { .. } | Change::Nothing => None,
        }
    }

    /// The conversations a change names, to load their facts before folding.
    pub fn conversation_of(change: &Change) -> Option<&str> {
        match change {
            Change::Opened { conversation, .. }
            | Change::Assigned { conversation, .. }
            | Change::FirstResponse { conversation, .. }
            | Change::Closed { conversation, .. } => Some(conversation),
            Change::Nothing => None,
        }
    }

    /// What each coarse row of `grain` and `dimension` gains: the sum of its quarter-hour rows'
    /// deltas. (One grain and dimension at a time: the closed statistics of a batch's coarse rows
    /// are much of its memory; with batches of 2,000 events, making a whole grain's rows at once
    /// put the metrics service's peak at 62 MiB, one dimension at a time at 59.)
    pub fn coarse_rows(
        &self,
        grain: Grain,
        dimension: DimensionKey,
    ) -> HashMap<DimensionRowKey<'_>, Delta> {
        let mut rows: HashMap<DimensionRowKey<'_>, Delta> = HashMap::new();
        for (combo, delta) in self.combos.iter().filter(|(_, d)| !d.is_empty()) {
            if let Some(key) = coarse_row_of(combo, grain, dimension) {
                rows.entry(key).or_default().add(delta);
            }
        }
        rows
    }

    /// What each row of the coarse `grain` gains, from the rows of a finer coarse grain (`Hour`
    /// to `SixHours`, and so on up `Grain::COARSE`): the sum of those inside each of its buckets.
    /// The same sums `coarse_rows` makes from the quarter-hour rows, from far fewer rows: the
    /// grains nest (each bucket lies inside one bucket of every coarser grain), and the sums are
    /// exact or, for sketches, merges that give the same sketch in any grouping.
    pub fn coarser_rows<'a>(
        finer: &HashMap<DimensionRowKey<'a>, Delta>,
        grain: Grain,
    ) -> HashMap<DimensionRowKey<'a>, Delta> {
        let mut rows: HashMap<DimensionRowKey<'a>, Delta> = HashMap::new();
        for (&(workspace, dimension, _, bucket, value), delta) in finer {
            if delta.is_empty() {
                continue;
            }
            rows.entry((workspace, dimension, grain, grain.bucket(bucket), value))
                .or_default()
                .add(delta);
        }
        rows
    }

    /// The re-contacted conversations each closed coarse row gains: the sum of its quarter-hour
    /// rows'.
    pub fn coarse_recontacts(&self) -> HashMap<DimensionRowKey<'_>, RecontactGaps> {
        let mut grains = Grain::COARSE.into_iter();
        let Some(finest) = grains.next() else {
            return HashMap::new();
        };
        let mut rows: HashMap<DimensionRowKey<'_>, RecontactGaps> = HashMap::new();
        for (combo, gaps) in self.recontact_combos.iter().filter(|(_, g)| !g.is_empty()) {
            for key in coarse_rows_of(combo, finest) {
                rows.entry(key).or_default().merge(gaps);
            }
        }
        // Each coarser grain from the one below it, as `coarser_rows`.
        let mut by_grain = vec![rows];
        for grain in grains {
            let mut coarser: HashMap<DimensionRowKey<'_>, RecontactGaps> = HashMap::new();
            for (&(workspace, dimension, _, bucket, value), gaps) in
                by_grain.last().into_iter().flatten()
            {
                coarser
                    .entry((workspace, dimension, grain, grain.bucket(bucket), value))
                    .or_default()
                    .merge(gaps);
            }
            by_grain.push(coarser);
        }
        by_grain.into_iter().flatten().collect()
    }

    /// The facts that changed, to write.
    pub fn changed_facts(&self) -> impl Iterator<Item = (&str, &str, &Fact)> {
        self.changed.iter().filter_map(|key| {
            let fact = self.facts.get(key)?.as_ref()?;
            Some((key.0.as_str(), key.1.as_str(), fact))
        })
    }

    /// Folds one event of `workspace`.
    pub fn apply(&mut self, workspace: &str, change: &Change) {
        match change {
            Change::Opened {
                conversation,
                contact,
                dimensions,
                opened_at,
                imported,
            } => {
                if self.fact(workspace, conversation).is_none() {
                    self.open(
                        workspace,
                        conversation,
                        contact,
                        dimensions,
                        *opened_at,
                        *imported,
                    );
                }
            }
            Change::Assigned {
                conversation,
                assignee,
                team,
            } => {
                let Some(fact) = self.fact(workspace, conversation) else {
                    return;
                };
                if fact.closed_at.is_some() {
                    return;
                }
                let mut moved = fact.dimensions.clone();
                moved.assignee = assignee.clone();
                moved.team = team.clone();
                let was_unassigned = i64::from(fact.dimensions.assignee.is_empty());
                let is_unassigned = i64::from(moved.assignee.is_empty());
                self.move_to(workspace, conversation, &moved);
                self.live_mut(workspace).unassigned += is_unassigned - was_unassigned;
            }
            Change::Closed {
                conversation,
                contact,
                dimensions,
                opened_at,
                closed_at,
                closure,
                imported,
                record,
            } => {
                if self.fact(workspace, conversation).is_none() {
                    // Opened before the history this store has read: count the opening now,
                    // with the dimensions it closes with.
                    self.open(
                        workspace,
                        conversation,
                        contact,
                        dimensions,
                        *opened_at,
                        *imported,
                    );
                }
                let Some(fact) = self.fact(workspace, conversation) else {
                    return;
                };
                if fact.closed_at.is_some() {
                    return;
                }
                let was_unassigned = i64::from(fact.dimensions.assignee.is_empty());
                let (contact, fact_opened_at) = (fact.contact.clone(), fact.opened_at);
                self.move_to(workspace, conversation, dimensions);
                // History imported out of order: the contact may have come back already.
                let gap = self.next_opening_gap(workspace, &contact, conversation, *closed_at);
                if let Some(Some(fact)) = self
                    .facts
                    .get_mut(&(workspace.to_owned(), conversation.clone()))
                {
                    fact.closed_at = Some(*closed_at);
                    fact.close_record = Some(record.clone());
                    fact.recontact_gap = gap;
                }
                let mut stats = ClosedStats::default();
                stats.add(&contact, closure);
                let schedule = self
                    .schedules
                    .get(workspace)
                    .and_then(|history| history.in_effect_at(fact_opened_at));
                let business = schedule.map(|hours| {
                    BusinessDurations::measure(hours, fact_opened_at, *closed_at, closure)
                });
                if let Some(business) = &business {
                    stats.add_business(business);
                }
                let targets = self
                    .sla_targets
                    .get(workspace)
                    .and_then(|history| history.in_effect_at(fact_opened_at));
                if let Some(targets) = targets {
                    let took = if targets.business_time {
                        business.as_ref().map(|b| Took {
                            first_response: b.first_response,
                            resolution: b.resolution,
                        })
                    } else {
                        Some(Took {
                            first_response: closure.first_response,
                            resolution: closure.resolution,
                        })
                    };
                    if let Some(took) = took {
                        stats.add_sla(targets.judge(took));
                    }
                }
                self.count_closed(workspace, *closed_at, dimensions, &stats);
                if let Some(bin) = gap.and_then(gap_bin) {
                    self.count_recontact(workspace, *closed_at, dimensions, bin, 1);
                }
                let live = self.live_mut(workspace);
                live.open -= 1;
                live.unassigned -= was_unassigned;
            }
            Change::FirstResponse { conversation, at } => {
                let key = (workspace.to_owned(), conversation.clone());
                let Some(Some(fact)) = self.facts.get_mut(&key) else {
                    return;
                };
                if fact.first_response_at.is_none() {
                    fact.first_response_at = Some(*at);
                    self.mark_changed(key);
                }
            }
            Change::Nothing => {}
        }
    }

    fn fact(&self, workspace: &str, conversation: &str) -> Option<&Fact> {
        self.facts
            .get(&(workspace.to_owned(), conversation.to_owned()))?
            .as_ref()
    }

    fn mark_changed(&mut self, key: (String, String)) {
        self.changed.insert(key);
    }

    fn open(
        &mut self,
        workspace: &str,
        conversation: &str,
        contact: &str,
        dimensions: &Dimensions,
        opened_at: i64,
        imported: bool,
    ) {
        let key = (workspace.to_owned(), conversation.to_owned());
        self.facts.insert(
            key.clone(),
            Some(Fact {
                contact: contact.to_owned(),
                dimensions: dimensions.clone(),
                opened_at,
                imported,
                closed_at: None,
                close_record: None,
                recontact_gap: None,
                first_response_at: None,
            }),
        );
        self.mark_changed(key);
        self.recontacted(workspace, contact, opened_at);
        self.by_contact
            .entry((workspace.to_owned(), contact.to_owned()))
            .or_default()
            .push(conversation.to_owned());
        self.count_opened(workspace, opened_at, dimensions, 1);
        let live = self.live_mut(workspace);
        live.open += 1;
        live.unassigned += i64::from(dimensions.assignee.is_empty());
    }

    /// Moves a conversation's opening count from its dimensions to `to`, and records them.
    fn move_to(&mut self, workspace: &str, conversation: &str, to: &Dimensions) {
        let key = (workspace.to_owned(), conversation.to_owned());
        let Some(Some(fact)) = self.facts.get_mut(&key) else {
            return;
        };
        if &fact.dimensions == to {
            return;
        }
        let (from, opened_at) = (
            std::mem::replace(&mut fact.dimensions, to.clone()),
            fact.opened_at,
        );
        self.mark_changed(key);
        self.count_opened(workspace, opened_at, &from, -1);
        self.count_opened(workspace, opened_at, to, 1);
    }

    fn count_opened(
        &mut self,
        workspace: &str,
        opened_at: i64,
        dimensions: &Dimensions,
        delta: i64,
    ) {
        self.combos
            .entry(combo_of(workspace, opened_at, dimensions))
            .or_default()
            .opened += delta;
    }

    /// The gap from a close at `closed_at` to the earliest later opening of another conversation
    /// of the contact, when within the longest re-contact window.
    fn next_opening_gap(
        &self,
        workspace: &str,
        contact: &str,
        conversation: &str,
        closed_at: i64,
    ) -> Option<i64> {
        let siblings = self
            .by_contact
            .get(&(workspace.to_owned(), contact.to_owned()))?;
        siblings
            .iter()
            .filter(|sibling| sibling.as_str() != conversation)
            .filter_map(|sibling| self.fact(workspace, sibling))
            .map(|sibling| sibling.opened_at - closed_at)
            .filter(|gap| (0..=MAX_GAP_MICROS).contains(gap))
            .min()
    }

    /// A conversation of `contact` opened at `opened_at`: the contact's conversations closed
    /// within the longest window before it now have this opening as their next one, unless an
    /// earlier one came after their close already.
    fn recontacted(&mut self, workspace: &str, contact: &str, opened_at: i64) {
        let Some(siblings) = self
            .by_contact
            .get(&(workspace.to_owned(), contact.to_owned()))
        else {
            return;
        };
        let mut moved = Vec::new();
        for sibling in siblings {
            let Some(Some(fact)) = self.facts.get(&(workspace.to_owned(), sibling.clone())) else {
                continue;
            };
            let Some(closed_at) = fact.closed_at else {
                continue;
            };
            let gap = opened_at - closed_at;
            let shorter = fact.recontact_gap.is_none_or(|known| gap < known);
            if (0..=MAX_GAP_MICROS).contains(&gap) && shorter {
                moved.push((sibling.clone(), gap));
            }
        }
        for (sibling, gap) in moved {
            let key = (workspace.to_owned(), sibling);
            let Some(Some(fact)) = self.facts.get_mut(&key) else {
                continue;
            };
            let before = fact.recontact_gap.and_then(gap_bin);
            fact.recontact_gap = Some(gap);
            let (closed_at, dimensions) = (fact.closed_at, fact.dimensions.clone());
            self.mark_changed(key);
            let Some(closed_at) = closed_at else {
                continue;
            };
            if let Some(bin) = before {
                self.count_recontact(workspace, closed_at, &dimensions, bin, -1);
            }
            if let Some(bin) = gap_bin(gap) {
                self.count_recontact(workspace, closed_at, &dimensions, bin, 1);
            }
        }
    }

    /// Adds `delta` re-contacted conversations with a gap in `bin` to the quarter-hour row of
    /// `dimensions` closed at `closed_at`.
    fn count_recontact(
        &mut self,
        workspace: &str,
        closed_at: i64,
        dimensions: &Dimensions,
        bin: u32,
        delta: i64,
    ) {
        self.recontact_combos
            .entry(combo_of(workspace, closed_at, dimensions))
            .or_default()
            .add(bin, delta);
    }

    /// Adds `stats` to the closed quarter-hour row of `dimensions` at `closed_at`.
    fn count_closed(
        &mut self,
        workspace: &str,
        closed_at: i64,
        dimensions: &Dimensions,
        stats: &ClosedStats,
    ) {
        self.combos
            .entry(combo_of(workspace, closed_at, dimensions))
            .or_default()
            .close(stats);
    }

    fn live_mut(&mut self, workspace: &str) -> &mut LiveDelta {
        self.live.entry(workspace.to_owned()).or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::closed::Closure;
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    fn opened(conversation: &str, at: i64) -> Change {
        Change::Opened {
            conversation: conversation.into(),
            contact: format!("contact-of-{conversation}"),
            dimensions: Dimensions {
                channel_type: "whatsapp".into(),
                opened_by: "inbound_message".into(),
                ..Dimensions::default()
            },
            opened_at: at,
            imported: false,
        }
    }

    fn assigned(conversation: &str, assignee: &str) -> Change {
        Change::Assigned {
            conversation: conversation.into(),
            assignee: assignee.into(),
            team: String::new(),
        }
    }

    fn closed(conversation: &str, assignee: &str, opened_at: i64, at: i64) -> Change {
        Change::Closed {
            conversation: conversation.into(),
            contact: format!("contact-of-{conversation}"),
            dimensions: Dimensions {
                assignee: assignee.into(),
                channel_type: "whatsapp".into(),
                opened_by: "inbound_message".into(),
                closed_by: "user".into(),
                ..Dimensions::default()
            },
            opened_at,
            closed_at: at,
            closure: Closure {
                resolution: Duration::from_micros((at - opened_at) as u64),
                ..Closure::default()
            },
            imported: false,
            record: vec![1],
        }
    }

    fn row(batch: &Batch, dimension: DimensionKey, grain: Grain, at: i64, value: &str) -> Delta {
        batch
            .coarse_rows(grain, dimension)
            .remove(&("w", dimension, grain, grain.bucket(at), value))
            .unwrap_or_default()
    }

    #[test]
    fn an_assignment_moves_the_opening_and_a_close_counts_once_under_each_value() {
        let mut batch = Batch::new(HashMap::new());
        let at = 1000 * HOUR;
        batch.apply("w", &opened("c1", at));
        batch.apply("w", &assigned("c1", "ana"));
        batch.apply("w", &closed("c1", "ana", at, at + 2 * HOUR));
        batch.apply("w", &closed("c1", "ana", at, at + 3 * HOUR));

        let by_assignee = Some(Dimension::Assignee);
        assert_eq!(
            row(&batch, by_assignee, Grain::Hour, at, "").opened,
            0,
            "moved away"
        );
        assert_eq!(row(&batch, by_assignee, Grain::Hour, at, "ana").opened, 1);
        assert_eq!(
            row(&batch, None, Grain::Day, at, "").opened,
            1,
            "the total is unmoved"
        );
        let closes = row(&batch, by_assignee, Grain::Hour, at + 2 * HOUR, "ana");
        assert_eq!(
            closes.closed.as_ref().map(|s| s.closed),
            Some(1),
            "closed once"
        );
        assert_eq!(
            row(&batch, Some(Dimension::ClosedBy), Grain::Hour, at, "user").opened,
            1,
            "a closed conversation counts under its closing source"
        );
        assert!(
            !Grain::COARSE
                .into_iter()
                .flat_map(|grain| {
                    batch
                        .coarse_rows(grain, Some(Dimension::Category))
                        .into_keys()
                })
                .any(|k| k.1 == Some(Dimension::Category) && !k.4.is_empty()),
            "no category but ''"
        );
        assert_eq!(
            batch.live["w"],
            LiveDelta {
                open: 0,
                unassigned: 0
            }
        );
        let facts: Vec<_> = batch.changed_facts().collect();
        assert_eq!(facts.len(), 1);
        assert_eq!(facts[0].2.closed_at, Some(at + 2 * HOUR));
    }

    #[test]
    fn each_coarse_grain_summed_from_the_grain_below_equals_the_sum_of_its_quarter_hours() {
        let mut batch = Batch::new(HashMap::new());
        let start = 2000 * HOUR;
        // Conversations over four days, under three assignees, some closed hours later.
        for i in 0..60_i64 {
            let (conversation, at) = (format!("c{i}"), start + i * 97 * 60_000_000);
            let assignee = ["ana", "bo", "cy"][(i % 3) as usize];
            batch.apply("w", &opened(&conversation, at));
            batch.apply("w", &assigned(&conversation, assignee));
            if i % 4 != 0 {
                let closed_at = at + (i % 7 + 1) * HOUR + i * 1_000_000;
                batch.apply("w", &closed(&conversation, assignee, at, closed_at));
            }
        }
        for dimension in dimension_keys() {
            let mut rows = batch.coarse_rows(Grain::COARSE[0], dimension);
            for grain in Grain::COARSE.into_iter().skip(1) {
                rows = Batch::coarser_rows(&rows, grain);
                let direct = batch.coarse_rows(grain, dimension);
                let nonempty = |rows: &HashMap<DimensionRowKey<'_>, Delta>| {
                    let mut keys: Vec<String> = rows
                        .iter()
                        .filter(|(_, d)| !d.is_empty())
                        .map(|(k, _)| format!("{k:?}"))
                        .collect();
                    keys.sort_unstable();
                    keys
                };
                assert_eq!(
                    nonempty(&rows),
                    nonempty(&direct),
                    "{grain:?} {dimension:?}"
                );
                for (key, delta) in direct.iter().filter(|(_, d)| !d.is_empty()) {
                    let summed = &rows[key];
                    assert_eq!(summed.opened, delta.opened, "{key:?}");
                    let parts = |d: &Delta| {
                        d.closed.as_ref().map(|s| {
                            (
                                s.closed,
                                s.resolution.to_parts(),
                                s.first_response.to_parts(),
                            )
                        })
                    };
                    assert_eq!(parts(summed), parts(delta), "{key:?}");
                }
            }
        }
    }

    #[test]
    fn each_coarse_grains_recontacts_summed_from_the_grain_below_equal_their_quarter_hours() {
        let of_contact = |mut change: Change, who: &str| {
            if let Change::Opened { contact, .. } | Change::Closed { contact, .. } = &mut change {
                *contact = who.to_owned();
            }
            change
        };
        let mut batch = Batch::new(HashMap::new());
        let start = 3000 * HOUR;
        // Five contacts, each back every 15 hours over a week, under three assignees.
        for i in 0..60_i64 {
            let (conversation, at) = (format!("c{i}"), start + i * 3 * HOUR + i * 60_000_000);
            let (contact, assignee) =
                (format!("k{}", i % 5), ["ana", "bo", "cy"][(i % 3) as usize]);
            batch.apply("w", &of_contact(opened(&conversation, at), &contact));
            batch.apply("w", &assigned(&conversation, assignee));
            let close = closed(&conversation, assignee, at, at + HOUR + i * 1_000_000);
            batch.apply("w", &of_contact(close, &contact));
        }
        let rows = batch.coarse_recontacts();
        let mut direct: HashMap<DimensionRowKey<'_>, RecontactGaps> = HashMap::new();
        for (combo, gaps) in &batch.recontact_combos {
            for key in Grain::COARSE
                .into_iter()
                .flat_map(|grain| coarse_rows_of(combo, grain))
            {
                direct.entry(key).or_default().merge(gaps);
            }
        }
        direct.retain(|_, gaps| !gaps.is_empty());
        assert!(direct.len() > 100, "a test of many rows: {}", direct.len());
        let nonempty: HashMap<_, _> = rows.into_iter().filter(|(_, g)| !g.is_empty()).collect();
        assert_eq!(nonempty, direct);
    }

    #[test]
    fn a_close_of_an_unknown_conversation_counts_its_opening_and_a_known_one_is_not_reopened() {
        let at = 500 * HOUR;
        let known = Fact {
            contact: "k".into(),
            dimensions: Dimensions::default(),
            opened_at: at,
            imported: false,
            closed_at: None,
            close_record: None,
            recontact_gap: None,
            first_response_at: None,
        };
        let known = [(("w".to_owned(), "known".to_owned()), Some(known))];
        let mut batch = Batch::new(known.into_iter().collect());
        batch.apply("w", &opened("known", at));
        batch.apply("w", &closed("unknown", "", at, at + HOUR));
        assert_eq!(
            row(&batch, None, Grain::Hour, at, "").opened,
            1,
            "only the unknown one"
        );
        assert_eq!(
            batch.live["w"],
            LiveDelta {
                open: 0,
                unassigned: 0
            }
        );
        assert_eq!(batch.changed_facts().count(), 1);
    }
}
