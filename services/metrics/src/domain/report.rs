//! Assembling a report from rollup rows: filtered, cut into the series' local periods, grouped
//! by one dimension, merged. Costs O(rows), and rows grow with buckets and dimension values, not
//! with conversations.

use std::collections::BTreeMap;

use super::closed::ClosedStats;
use super::dimensions::{Dimension, Dimensions, Filter};

/// Everything counted for one slice of a report.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub opened: i64,
    /// The conversations closed in the slice, their statistics and contacts.
    pub closed: ClosedStats,
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

/// Whose counts a rollup row holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowKey {
    /// The conversations with exactly these dimensions.
    Combination(Dimensions),
    /// Every conversation.
    All,
    /// The conversations with this value of one dimension (closed ones only, for the closing
    /// source and category).
    Value(Dimension, String),
}

/// One rollup row: a bucket (wholly inside one period of the report), whose counts, and what
/// they are.
#[derive(Debug, Clone)]
pub struct RollupRow {
    pub bucket: i64,
    pub key: RowKey,
    pub opened: i64,
    pub closed: Option<ClosedStats>,
}

/// The rows a report must read besides the quarter-hour combinations at its edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPlan {
    /// Only the rows of every combination of dimensions (filters on several dimensions, or on
    /// one and a breakdown by another, need them whole).
    Combinations,
    /// The coarse rows of every conversation (`all`) and of one dimension's values.
    Coarse {
        all: bool,
        dimension: Option<Dimension>,
    },
}

impl ReadPlan {
    /// The cheapest rows that answer `filter` and `group_by` exactly.
    pub fn for_query(filter: &Filter, group_by: Option<Dimension>) -> Self {
        let mut filtered: Vec<Dimension> = filter.accepted.iter().map(|(d, _)| *d).collect();
        filtered.dedup();
        match (filtered.as_slice(), group_by) {
            ([], group_by) => Self::Coarse {
                all: true,
                dimension: group_by,
            },
            ([only], None) => Self::Coarse {
                all: false,
                dimension: Some(*only),
            },
            ([only], Some(group_by)) if *only == group_by => Self::Coarse {
                all: false,
                dimension: Some(*only),
            },
            _ => Self::Combinations,
        }
    }
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

    /// Counts a row read as `ReadPlan::for_query` of this report's filter and grouping says.
    pub fn add(&mut self, row: &RollupRow) {
        let count = |tally: &mut Tally| {
            tally.opened += row.opened;
            if let Some(closed) = &row.closed {
                tally.closed.merge(closed);
            }
        };
        match &row.key {
            RowKey::Combination(dimensions) => {
                if !self.filter.accepts(dimensions) {
                    return;
                }
                // An open conversation is in no group of a closed-only dimension (`value_in`).
                let group = self.group_by.and_then(|d| d.value_in(dimensions));
                self.count(row.bucket, true, group, count);
            }
            RowKey::All => self.count(row.bucket, true, None, count),
            RowKey::Value(dimension, value) => {
                let grouped = (self.group_by == Some(*dimension)).then_some(value.as_str());
                if self.filter.accepted.is_empty() {
                    // The totals come from the `All` rows; these only make the groups.
                    self.count(row.bucket, false, grouped, count);
                } else if self.filter.accepts_value(*dimension, value) {
                    self.count(row.bucket, true, grouped, count);
                }
            }
        }
    }

    /// Counts into the totals and the period of `at` (when `totals`) and into `group`; nothing
    /// when `at` is outside the series.
    fn count(&mut self, at: i64, totals: bool, group: Option<&str>, count: impl Fn(&mut Tally)) {
        let period = self.edges.partition_point(|edge| *edge <= at);
        if period == 0 || period >= self.edges.len() {
            return;
        }
        if totals {
            count(&mut self.report.totals);
            count(&mut self.report.series[period - 1].2);
        }
        if let Some(key) = group {
            count(self.groups.entry(key.to_owned()).or_default());
        }
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

    fn one_closed(contact: &str) -> ClosedStats {
        let mut stats = ClosedStats::default();
        stats.add(contact, &Closure::default());
        stats
    }

    fn row(bucket: i64, key: RowKey, opened: i64, closed: Option<ClosedStats>) -> RollupRow {
        RollupRow {
            bucket,
            key,
            opened,
            closed,
        }
    }

    #[test]
    fn combination_rows_land_in_their_period_and_group_and_filters_apply() {
        let edges = [0, 100, 200];
        let mut filter = Filter::default();
        filter.only(Dimension::Assignee, vec!["ana".into(), "beto".into()]);
        let mut builder = ReportBuilder::new(&edges, &filter, Some(Dimension::Assignee));
        let combination = |assignee| RowKey::Combination(dims(assignee));
        builder.add(&row(0, combination("ana"), 2, None));
        builder.add(&row(150, combination("beto"), 1, None));
        builder.add(&row(150, combination("carla"), 5, None));
        builder.add(&row(200, combination("ana"), 9, None));
        builder.add(&row(199, combination("ana"), 0, Some(one_closed("c1"))));
        builder.add(&row(50, combination("ana"), 0, Some(one_closed("c1"))));
        let report = builder.finish();
        assert_eq!(
            report.totals.opened, 3,
            "carla is filtered out, 200 is past the end"
        );
        assert_eq!(report.series[0].2.opened, 2);
        assert_eq!(report.series[1].2.opened, 1);
        assert_eq!(report.totals.closed.closed, 2);
        assert_eq!(report.groups.len(), 2);
        assert_eq!(report.groups[0].0, "ana", "closed ones: first");
        assert_eq!(report.groups[0].1.opened, 2);
        assert_eq!(
            report.totals.closed.contacts.estimate(),
            1,
            "each contact once"
        );
        assert_eq!(report.series[0].2.closed.contacts.estimate(), 1);
    }

    #[test]
    fn value_rows_make_groups_beside_all_rows_or_totals_under_a_filter_on_their_dimension() {
        let edges = [0, 100];
        let value = |v: &str| RowKey::Value(Dimension::Team, v.into());

        let no_filter = Filter::default();
        let plan = ReadPlan::for_query(&no_filter, Some(Dimension::Team));
        assert_eq!(
            plan,
            ReadPlan::Coarse {
                all: true,
                dimension: Some(Dimension::Team)
            }
        );
        let mut builder = ReportBuilder::new(&edges, &no_filter, Some(Dimension::Team));
        builder.add(&row(0, RowKey::All, 7, None));
        builder.add(&row(0, value("a"), 4, None));
        builder.add(&row(0, value("b"), 3, None));
        let report = builder.finish();
        assert_eq!(report.totals.opened, 7, "totals from the All row only");
        assert_eq!(report.groups.len(), 2);

        let mut only_a = Filter::default();
        only_a.only(Dimension::Team, vec!["a".into()]);
        assert_eq!(
            ReadPlan::for_query(&only_a, None),
            ReadPlan::Coarse {
                all: false,
                dimension: Some(Dimension::Team)
            }
        );
        let mut builder = ReportBuilder::new(&edges, &only_a, None);
        builder.add(&row(0, value("a"), 4, None));
        builder.add(&row(0, value("b"), 3, None));
        let report = builder.finish();
        assert_eq!(report.totals.opened, 4);
        assert!(report.groups.is_empty());

        assert_eq!(
            ReadPlan::for_query(&only_a, Some(Dimension::Assignee)),
            ReadPlan::Combinations
        );
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
        let mut one = ClosedStats::default();
        one.add("c", &Closure::default());
        for (team, opened, closed) in [
            ("a", 5, false),
            ("b", 1, true),
            ("d", 1, true),
            ("c", 2, true),
        ] {
            builder.add(&RollupRow {
                bucket: 1,
                key: RowKey::Value(Dimension::Team, team.into()),
                opened,
                closed: closed.then(|| one.clone()),
            });
        }
        let order: Vec<String> = builder.finish().groups.into_iter().map(|g| g.0).collect();
        assert_eq!(order, ["c", "b", "d", "a"]);
    }
}
