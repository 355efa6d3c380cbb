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
    /// No filter: the coarse rows of every conversation make the totals and series, and
    /// those of `group_by`'s values the groups. A group spans the whole range, so its rows need
    /// not follow the series' periods: read by the largest buckets of the range, a group takes
    /// one row a UTC day even when the series' local days take nine (`Cover`).
    Unfiltered { group_by: Option<Dimension> },
    /// A filter on one dimension, and no grouping or a grouping by it: the coarse rows of its
    /// values make everything.
    OneDimension(Dimension),
}

impl ReadPlan {
    /// The cheapest rows that answer `filter` and `group_by` exactly.
    pub fn for_query(filter: &Filter, group_by: Option<Dimension>) -> Self {
        let mut filtered: Vec<Dimension> = filter.accepted.iter().map(|(d, _)| *d).collect();
        filtered.dedup();
        match (filtered.as_slice(), group_by) {
            ([], group_by) => Self::Unfiltered { group_by },
            ([only], None) => Self::OneDimension(*only),
            ([only], Some(group_by)) if *only == group_by => Self::OneDimension(*only),
            _ => Self::Combinations,
        }
    }
}

/// Which parts of a report a row read for it counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Wherever its key puts it: the totals and its period, its group, or all of them.
    Whole,
    /// The totals and its period only.
    Series,
    /// Its group only.
    Groups,
}

impl Tally {
    /// Adds everything `other` counts.
    pub fn merge(&mut self, other: &Tally) {
        self.opened += other.opened;
        self.closed.merge(&other.closed);
    }

    /// Adds one row's counts.
    fn add(&mut self, row: &RollupRow) {
        self.opened += row.opened;
        if let Some(closed) = &row.closed {
            self.closed.merge(closed);
        }
    }
}

/// Builds reports from rows. Each row is merged into exactly one tally, the one of its place in
/// the report (its period, its group, or both); the periods and groups of rows counted in both,
/// and the totals, are made from those tallies at the end. Merging a row costs its sketches
/// (distributions, contacts), so it is merged once, not into each of totals, period and group.
pub struct ReportBuilder<'a> {
    edges: &'a [i64],
    filter: &'a Filter,
    group_by: Option<Dimension>,
    /// The rows counted in the totals and one period only, by period.
    periods: Vec<Tally>,
    /// The rows counted in one group only.
    groups: BTreeMap<String, Tally>,
    /// The rows counted in the totals, one period and one group: by period, then by group.
    cells: Vec<BTreeMap<String, Tally>>,
}

impl<'a> ReportBuilder<'a> {
    /// A report over the series `edges` (see `series_edges`), counting what `filter` accepts.
    pub fn new(edges: &'a [i64], filter: &'a Filter, group_by: Option<Dimension>) -> Self {
        Self {
            edges,
            filter,
            group_by,
            periods: vec![Tally::default(); edges.len().saturating_sub(1)],
            groups: BTreeMap::new(),
            cells: vec![BTreeMap::new(); edges.len().saturating_sub(1)],
        }
    }

    /// Counts a row read as `ReadPlan::for_query` of this report's filter and grouping says.
    pub fn add(&mut self, row: &RollupRow) {
        self.add_to(row, Part::Whole);
    }

    /// Counts a row in `part` of the report only: a row read for the series alone, or for the
    /// groups alone, where they are read over different buckets (`ReadPlan::Unfiltered`).
    pub fn add_to(&mut self, row: &RollupRow, part: Part) {
        let (totals, group) = match &row.key {
            RowKey::Combination(dimensions) => {
                if !self.filter.accepts(dimensions) {
                    return;
                }
                // An open conversation is in no group of a closed-only dimension (`value_in`).
                (true, self.group_by.and_then(|d| d.value_in(dimensions)))
            }
            RowKey::All => (true, None),
            RowKey::Value(dimension, value) => {
                let grouped = (self.group_by == Some(*dimension)).then_some(value.as_str());
                if self.filter.accepted.is_empty() {
                    // The totals come from the `All` rows; these only make the groups.
                    (false, grouped)
                } else if self.filter.accepts_value(*dimension, value) {
                    (true, grouped)
                } else {
                    return;
                }
            }
        };
        let totals = totals && part != Part::Groups;
        let group = group.filter(|_| part != Part::Series);
        self.count(row, totals, group);
    }

    /// Counts `row` into the totals and its period (when `totals`) and into `group`; nothing
    /// when its bucket is outside the series.
    fn count(&mut self, row: &RollupRow, totals: bool, group: Option<&str>) {
        let period = self.edges.partition_point(|edge| *edge <= row.bucket);
        if period == 0 || period >= self.edges.len() {
            return;
        }
        let period = period - 1;
        let tally = match (totals, group) {
            (true, None) => &mut self.periods[period],
            (false, Some(group)) => tally_of(&mut self.groups, group),
            (true, Some(group)) => tally_of(&mut self.cells[period], group),
            (false, None) => return,
        };
        tally.add(row);
    }

    /// Adds every tally of `other`, a builder of the same report that counted other rows.
    pub fn absorb(&mut self, other: ReportBuilder<'_>) {
        for (mine, theirs) in self.periods.iter_mut().zip(&other.periods) {
            mine.merge(theirs);
        }
        for (group, tally) in &other.groups {
            tally_of(&mut self.groups, group).merge(tally);
        }
        for (mine, theirs) in self.cells.iter_mut().zip(&other.cells) {
            for (group, tally) in theirs {
                tally_of(mine, group).merge(tally);
            }
        }
    }

    /// The report.
    pub fn finish(self) -> Report {
        let Self {
            edges,
            mut periods,
            mut groups,
            cells,
            ..
        } = self;
        for (period, cells) in cells.into_iter().enumerate() {
            for (group, tally) in cells {
                periods[period].merge(&tally);
                tally_of(&mut groups, &group).merge(&tally);
            }
        }
        let mut totals = Tally::default();
        for tally in &periods {
            totals.merge(tally);
        }
        let series = edges
            .windows(2)
            .zip(periods)
            .map(|(pair, tally)| (pair[0], pair[1], tally))
            .collect();
        let mut groups: Vec<(String, Tally)> = groups.into_iter().collect();
        // Stable over the key order the map gives: ties stay by value.
        groups.sort_by(|(_, a), (_, b)| {
            (b.closed.closed, b.opened).cmp(&(a.closed.closed, a.opened))
        });
        Report {
            totals,
            series,
            groups,
        }
    }
}

/// The tally of `group`, made empty when it has none yet. Looked up by reference first: most
/// rows find their group's tally, and need no key made.
fn tally_of<'m>(groups: &'m mut BTreeMap<String, Tally>, group: &str) -> &'m mut Tally {
    if !groups.contains_key(group) {
        groups.insert(group.to_owned(), Tally::default());
    }
    groups.get_mut(group).expect("just inserted")
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
            ReadPlan::Unfiltered {
                group_by: Some(Dimension::Team)
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
            ReadPlan::OneDimension(Dimension::Team)
        );
        assert_eq!(
            ReadPlan::for_query(&only_a, Some(Dimension::Team)),
            ReadPlan::OneDimension(Dimension::Team)
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
mod parts {
    use super::*;

    #[test]
    fn a_row_read_for_one_part_counts_in_that_part_only() {
        let edges = [0, 100, 200];
        let filter = Filter::default();
        let mut builder = ReportBuilder::new(&edges, &filter, Some(Dimension::Assignee));
        let combination = |assignee: &str| {
            RowKey::Combination(Dimensions {
                assignee: assignee.into(),
                ..Dimensions::default()
            })
        };
        let row = |bucket, key, opened| RollupRow {
            bucket,
            key,
            opened,
            closed: None,
        };
        builder.add_to(&row(0, combination("ana"), 1), Part::Series);
        builder.add_to(&row(150, combination("ana"), 10), Part::Groups);
        builder.add_to(&row(150, combination("beto"), 100), Part::Whole);
        builder.add_to(&row(50, RowKey::All, 1_000), Part::Groups);
        let report = builder.finish();
        assert_eq!(
            report.totals.opened, 101,
            "the row for the groups is not in the totals"
        );
        let series: Vec<i64> = report.series.iter().map(|(_, _, t)| t.opened).collect();
        assert_eq!(series, [1, 100]);
        let groups: Vec<(&str, i64)> = report
            .groups
            .iter()
            .map(|(group, tally)| (group.as_str(), tally.opened))
            .collect();
        assert_eq!(groups, [("beto", 100), ("ana", 10)]);
    }

    #[test]
    fn two_builders_that_split_the_rows_make_the_report_one_would() {
        use crate::domain::Closure;
        let edges = [0, 100, 200];
        let filter = Filter::default();
        let dims = |assignee: &str| Dimensions {
            assignee: assignee.into(),
            ..Dimensions::default()
        };
        let rows: Vec<RollupRow> = (0..40)
            .map(|n: i64| {
                let mut closed = ClosedStats::default();
                closed.add(&format!("contact-{}", n % 7), &Closure::default());
                let key = match n % 3 {
                    0 => RowKey::All,
                    1 => RowKey::Value(Dimension::Assignee, ["ana", "beto"][n as usize % 2].into()),
                    _ => RowKey::Combination(dims(["ana", "carla"][n as usize % 2])),
                };
                RollupRow {
                    bucket: n * 5,
                    key,
                    opened: n,
                    closed: Some(closed),
                }
            })
            .collect();
        let mut one = ReportBuilder::new(&edges, &filter, Some(Dimension::Assignee));
        let mut first = ReportBuilder::new(&edges, &filter, Some(Dimension::Assignee));
        let mut second = ReportBuilder::new(&edges, &filter, Some(Dimension::Assignee));
        for (index, row) in rows.iter().enumerate() {
            one.add(row);
            if index % 2 == 0 {
                first.add(row)
            } else {
                second.add(row)
            }
        }
        first.absorb(second);
        let summary = |report: Report| {
            let tally = |t: &Tally| (t.opened, t.closed.closed, t.closed.contacts.estimate());
            let series: Vec<_> = report.series.iter().map(|(_, _, t)| tally(t)).collect();
            let groups: Vec<_> = report
                .groups
                .iter()
                .map(|(g, t)| (g.clone(), tally(t)))
                .collect();
            (tally(&report.totals), series, groups)
        };
        let (totals, series, groups) = summary(one.finish());
        assert_eq!(
            summary(first.finish()),
            (totals, series.clone(), groups.clone())
        );
        assert!(totals.1 > 0 && series.len() == 2 && groups.len() == 3);
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
