//! Assembling a report from aggregate rows: filtered, cut into the series' local periods, grouped
//! by one dimension, merged. Costs O(rows), and rows grow with buckets, not with conversations.

use std::collections::{BTreeMap, BTreeSet};

use super::closed::ClosedStats;
use super::dimensions::{Dimension, Dimensions, Filter};

/// Everything counted for one slice of a report.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub opened: i64,
    pub closed: ClosedStats,
    /// Contacts whose conversations closed in the slice, each once.
    pub contacts_closed: BTreeSet<String>,
}

/// A report: totals, one tally per series period, one per group.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub totals: Tally,
    /// (period start, period end, tally), in order.
    pub series: Vec<(i64, i64, Tally)>,
    /// (the group-by dimension's value, tally): most closed first, then most opened, then by
    /// value, so equal rows always come in the same order.
    pub groups: Vec<(String, Tally)>,
}

/// Builds reports from rows.
pub struct ReportBuilder<'a> {
    edges: &'a [i64],
    filter: &'a Filter,
    group_by: Option<Dimension>,
    report: Report,
    groups: BTreeMap<String, Tally>,
}

impl<'a> ReportBuilder<'a> {
    /// A report over the series `edges` (see `series_edges`), counting what `filter` accepts.
    pub fn new(edges: &'a [i64], filter: &'a Filter, group_by: Option<Dimension>) -> Self {
        let series = edges
            .windows(2)
            .map(|pair| (pair[0], pair[1], Tally::default()))
            .collect();
        Self {
            edges,
            filter,
            group_by,
            report: Report {
                series,
                ..Report::default()
            },
            groups: BTreeMap::new(),
        }
    }

    /// The tallies an instant and dimensions count in: totals, its period, its group. `None` when
    /// filtered out or outside the range.
    fn slices(&mut self, at: i64, dimensions: &Dimensions, mut count: impl FnMut(&mut Tally)) {
        if !self.filter.accepts(dimensions) {
            return;
        }
        let period = self.edges.partition_point(|edge| *edge <= at);
        if period == 0 || period >= self.edges.len() {
            return;
        }
        count(&mut self.report.totals);
        count(&mut self.report.series[period - 1].2);
        // An open conversation is in no group of a closed-only dimension (`value_in`).
        if let Some(key) = self.group_by.and_then(|d| d.value_in(dimensions)) {
            count(self.groups.entry(key.to_owned()).or_default());
        }
    }

    /// Counts conversations opened in a bucket.
    pub fn opened(&mut self, bucket: i64, dimensions: &Dimensions, count: i64) {
        self.slices(bucket, dimensions, |tally| tally.opened += count);
    }

    /// Counts conversations closed in a bucket.
    pub fn closed(&mut self, bucket: i64, dimensions: &Dimensions, stats: &ClosedStats) {
        self.slices(bucket, dimensions, |tally| tally.closed.merge(stats));
    }

    /// Counts a contact whose conversation closed at `closed_at`.
    pub fn contact_closed(&mut self, closed_at: i64, dimensions: &Dimensions, contact: &str) {
        self.slices(closed_at, dimensions, |tally| {
            tally.contacts_closed.insert(contact.to_owned());
        });
    }

    /// The report.
    pub fn finish(mut self) -> Report {
        let mut groups: Vec<(String, Tally)> = self.groups.into_iter().collect();
        // Stable over the key order the map gives: ties stay by value.
        groups.sort_by(|(_, a), (_, b)| {
            (b.closed.closed, b.opened).cmp(&(a.closed.closed, a.opened))
        });
        self.report.groups = groups;
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Closure;

    fn dims(assignee: &str) -> Dimensions {
        Dimensions {
            assignee: assignee.into(),
            ..Dimensions::default()
        }
    }

    #[test]
    fn rows_land_in_their_period_and_group_and_filters_apply() {
        let edges = [0, 100, 200];
        let mut filter = Filter::default();
        filter.only(Dimension::Assignee, vec!["ana".into(), "beto".into()]);
        let mut builder = ReportBuilder::new(&edges, &filter, Some(Dimension::Assignee));
        builder.opened(0, &dims("ana"), 2);
        builder.opened(150, &dims("beto"), 1);
        builder.opened(150, &dims("carla"), 5);
        builder.opened(200, &dims("ana"), 9);
        let mut stats = ClosedStats::default();
        stats.add(&Closure::default());
        builder.closed(199, &dims("ana"), &stats);
        builder.contact_closed(199, &dims("ana"), "c1");
        builder.contact_closed(50, &dims("ana"), "c1");
        let report = builder.finish();
        assert_eq!(
            report.totals.opened, 3,
            "carla is filtered out, 200 is past the end"
        );
        assert_eq!(report.series[0].2.opened, 2);
        assert_eq!(report.series[1].2.opened, 1);
        assert_eq!(report.totals.closed.closed, 1);
        assert_eq!(report.groups.len(), 2);
        assert_eq!(report.groups[0].0, "ana", "one closed: first");
        assert_eq!(report.groups[0].1.opened, 2);
        assert_eq!(report.totals.contacts_closed.len(), 1, "each contact once");
        assert_eq!(report.series[0].2.contacts_closed.len(), 1);
    }
}

#[cfg(test)]
mod order {
    use super::*;
    use crate::domain::Closure;

    #[test]
    fn groups_come_by_closed_then_opened_most_first_then_by_value() {
        let edges = [0, 100];
        let filter = Filter::default();
        let mut builder = ReportBuilder::new(&edges, &filter, Some(Dimension::Team));
        let team = |team: &str| Dimensions {
            team: team.into(),
            ..Dimensions::default()
        };
        let mut one = ClosedStats::default();
        one.add(&Closure::default());
        builder.opened(1, &team("a"), 5);
        builder.opened(1, &team("b"), 1);
        builder.closed(1, &team("b"), &one);
        builder.opened(1, &team("d"), 1);
        builder.closed(1, &team("d"), &one);
        builder.opened(1, &team("c"), 2);
        builder.closed(1, &team("c"), &one);
        let order: Vec<String> = builder.finish().groups.into_iter().map(|g| g.0).collect();
        assert_eq!(order, ["c", "b", "d", "a"]);
    }
}
