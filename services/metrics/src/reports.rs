//! The reports the API serves, from the store's rows and the domain's arithmetic.

use charla_runtime::ApiError;

use crate::domain::{
    AtRisk, BUCKET, CalendarError, ClosedStats, Cover, Dimension, Filter, Granularity, Part,
    ReadPlan, Report, ReportBuilder, at_risk, bucket_start, series_edges, start_of_day, zone,
};
use crate::store::{LiveCounts, MetricsStore, ReportRows};

/// A report's question.
#[derive(Debug, Clone)]
pub struct MetricsQuery {
    pub start: i64,
    pub end: i64,
    pub time_zone: String,
    pub granularity: Granularity,
    pub filter: Filter,
    pub group_by: Option<Dimension>,
}

fn calendar_error(error: CalendarError) -> ApiError {
    let field = match error {
        CalendarError::UnknownZone(_) => "time_zone",
        CalendarError::NotOnBucketEdge | CalendarError::OutOfRange => "start_time",
        CalendarError::EndNotAfterStart => "end_time",
        CalendarError::TooManyBuckets => "granularity",
    };
    ApiError::invalid(field, error.to_string())
}

/// Checks a range's edges and order (used where no series is built).
pub fn check_range(start: i64, end: i64) -> Result<(), ApiError> {
    for (field, edge) in [("start_time", start), ("end_time", end)] {
        if bucket_start(edge) != edge {
            return Err(ApiError::invalid(
                field,
                CalendarError::NotOnBucketEdge.to_string(),
            ));
        }
    }
    if end <= start {
        return Err(calendar_error(CalendarError::EndNotAfterStart));
    }
    Ok(())
}

/// Counts, durations and percentiles over a range, as a series in the asked zone and by group.
pub async fn metrics(
    store: &MetricsStore,
    workspace: &str,
    query: &MetricsQuery,
) -> Result<Report, ApiError> {
    let tz = zone(&query.time_zone).map_err(calendar_error)?;
    check_range(query.start, query.end)?;
    let edges =
        series_edges(query.start, query.end, &tz, query.granularity).map_err(calendar_error)?;
    report(store, workspace, &edges, &query.filter, query.group_by).await
}

/// A report over the periods between `edges`, from the fewest rollup rows that answer it: the
/// coarse rows of one dimension where the filter and grouping allow, every combination where
/// they don't.
async fn report(
    store: &MetricsStore,
    workspace: &str,
    edges: &[i64],
    filter: &Filter,
    group_by: Option<Dimension>,
) -> Result<Report, ApiError> {
    let range = [edges[0], edges[edges.len() - 1]];
    let periods = Cover::of(edges);
    let whole = Cover::of(&range);
    let every_quarter = Cover {
        quarter: vec![(range[0], range[1])],
        ..Cover::default()
    };
    let mut reads = Vec::new();
    match ReadPlan::for_query(filter, group_by) {
        ReadPlan::Combinations => {
            let rows = store.combination_rows(workspace, &every_quarter).await?;
            reads.push((rows, Part::Whole));
        }
        ReadPlan::OneDimension(dimension) => {
            let rows = store.combination_rows(workspace, &periods).await?;
            reads.push((rows, Part::Whole));
            read_coarse(store, workspace, Some(dimension), &periods, &mut reads).await?;
        }
        ReadPlan::Unfiltered { group_by } => {
            read_coarse(store, workspace, None, &periods, &mut reads).await?;
            if let Some(group_by) = group_by {
                if whole.quarter == periods.quarter {
                    // The same edge rows serve both (UTC periods, mostly): read once.
                    let rows = store.combination_rows(workspace, &periods).await?;
                    reads.push((rows, Part::Whole));
                } else {
                    let rows = store.combination_rows(workspace, &periods).await?;
                    reads.push((rows, Part::Series));
                    let rows = store.combination_rows(workspace, &whole).await?;
                    reads.push((rows, Part::Groups));
                }
                read_coarse(store, workspace, Some(group_by), &whole, &mut reads).await?;
            } else {
                let rows = store.combination_rows(workspace, &periods).await?;
                reads.push((rows, Part::Whole));
            }
        }
    }
    build(edges, filter, group_by, reads)
}

/// Reads the coarse rows of `dimension` (`None`: every conversation) in `cover`, to count where
/// their key puts them.
async fn read_coarse<'c>(
    store: &MetricsStore,
    workspace: &str,
    dimension: Option<Dimension>,
    cover: &'c Cover,
    reads: &mut Vec<(ReportRows<'c>, Part)>,
) -> Result<(), ApiError> {
    let rows = store.dimension_rows(workspace, dimension, cover).await?;
    reads.push((rows, Part::Whole));
    Ok(())
}

/// Fewer rows than this a thread are decoded on the calling thread alone: starting a second
/// thread (tens of microseconds) would cost more than it saves. A row takes 10 to 100
/// microseconds, more as its buckets fill (a dense contacts sketch, wider distributions).
const ROWS_PER_THREAD: usize = 32;

/// The report of the rows read. Decoding and merging the rows is most of a report's work, and
/// each row's work is its own: a large report splits its rows over two threads (the service's
/// two cores), each with a builder of its own, and merges the two builders' tallies.
fn build(
    edges: &[i64],
    filter: &Filter,
    group_by: Option<Dimension>,
    mut reads: Vec<(ReportRows<'_>, Part)>,
) -> Result<Report, ApiError> {
    let mut builder = ReportBuilder::new(edges, filter, group_by);
    let rows: usize = reads.iter().map(|(rows, _)| rows.len()).sum();
    if rows < 2 * ROWS_PER_THREAD {
        count_all(&mut builder, reads)?;
        return Ok(builder.finish());
    }
    let second_halves: Vec<(ReportRows<'_>, Part)> = reads
        .iter_mut()
        .map(|(rows, part)| (rows.split_off(rows.len() / 2), *part))
        .collect();
    std::thread::scope(|scope| {
        let other = scope.spawn(|| {
            let mut other = ReportBuilder::new(edges, filter, group_by);
            count_all(&mut other, second_halves).map(|()| other)
        });
        count_all(&mut builder, reads)?;
        let other = other
            .join()
            .map_err(|_| ApiError::Internal("a report's second thread panicked".into()))??;
        builder.absorb(other);
        Ok(builder.finish())
    })
}

/// Counts every row of `reads` into its part of the report.
fn count_all(
    builder: &mut ReportBuilder<'_>,
    reads: Vec<(ReportRows<'_>, Part)>,
) -> Result<(), ApiError> {
    for (rows, part) in reads {
        for row in rows {
            builder.add_to(&row?, part);
        }
    }
    Ok(())
}

/// The dashboard's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardNumbers {
    pub day_start: i64,
    pub live: LiveCounts,
    pub opened_today: i64,
    pub closed_today: i64,
    /// Microseconds.
    pub average_resolution: Option<f64>,
    pub median_resolution: Option<f64>,
    /// Open conversations at risk of missing a service level target, soonest deadline first.
    pub at_risk: Vec<AtRisk>,
    /// When the at-risk list next changes by the clock alone (microseconds).
    pub next_change: Option<i64>,
}

/// Open and unassigned now; opened, closed and resolution times today (in the asked zone).
pub async fn dashboard(
    store: &MetricsStore,
    workspace: &str,
    now: i64,
    time_zone: &str,
) -> Result<DashboardNumbers, ApiError> {
    let tz = zone(time_zone).map_err(calendar_error)?;
    let day_start = start_of_day(now, &tz).map_err(|error| match error {
        // Only the clock can be out of range here (a test clock moved to the year 9999): the
        // request has no time in it to blame.
        CalendarError::OutOfRange => ApiError::precondition(
            "CLOCK_OUT_OF_RANGE",
            format!("today in {time_zone} is outside the supported calendar at the server's time"),
        ),
        other => calendar_error(other),
    })?;
    let until = bucket_start(now) + BUCKET.as_micros() as i64;
    // One read after another: every dashboard watcher recomputes after each applied batch, and
    // reads at once would take three of the pool's connections each (on SQLite, one read could
    // hold the only connection while another decodes its rows).
    let today = report(
        store,
        workspace,
        &[day_start, until],
        &Filter::default(),
        None,
    )
    .await?
    .totals;
    let resolution = today.closed.resolution.summary();
    let (at_risk, next_change) = at_risk_now(store, workspace, now).await?;
    Ok(DashboardNumbers {
        day_start,
        live: store.live_counts(workspace).await?,
        opened_today: today.opened,
        closed_today: today.closed.closed as i64,
        average_resolution: resolution.map(|s| s.average),
        median_resolution: resolution.map(|s| s.median),
        at_risk,
        next_change,
    })
}

/// Open conversations looked at for the at-risk list, oldest first (the ones most at risk).
const OPEN_CONVERSATIONS_WATCHED: i64 = 5_000;

/// The open conversations at risk of missing a target at `now`, and when that list next
/// changes; nothing to read when the workspace never had targets.
async fn at_risk_now(
    store: &MetricsStore,
    workspace: &str,
    now: i64,
) -> Result<(Vec<AtRisk>, Option<i64>), ApiError> {
    let Some((targets, schedules)) = store.target_histories(workspace).await? else {
        return Ok((Vec::new(), None));
    };
    let open = store
        .open_conversations(workspace, OPEN_CONVERSATIONS_WATCHED)
        .await?;
    Ok(at_risk(
        &open,
        |conversation| {
            let targets = targets.in_effect_at(conversation.opened_at)?;
            Some((targets, schedules.in_effect_at(conversation.opened_at)))
        },
        now,
    ))
}

/// What a leaderboard ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    ClosedCount,
    MedianResolution,
    MedianFirstResponse,
}

/// Users (or teams) with their rank and closed statistics, best first. Ranks are competition
/// ranks: equal values share a position and the next value skips the shared places (1, 1, 3);
/// ties are listed by id.
pub async fn leaderboard(
    store: &MetricsStore,
    workspace: &str,
    (start, end): (i64, i64),
    by: Dimension,
    filter: &Filter,
    ranking: Ranking,
    limit: usize,
) -> Result<Vec<(u32, String, ClosedStats)>, ApiError> {
    check_range(start, end)?;
    // Everyone who closed a conversation in the range (no one: the unassigned), by id.
    let mut ranked: Vec<(String, ClosedStats)> =
        report(store, workspace, &[start, end], filter, Some(by))
            .await?
            .groups
            .into_iter()
            .filter(|(who, tally)| !who.is_empty() && tally.closed.closed > 0)
            .map(|(who, tally)| (who, tally.closed))
            .collect();
    ranked.sort_by(|(a, _), (b, _)| a.cmp(b));
    let median = |stats: &ClosedStats, first_response: bool| {
        let distribution = if first_response {
            &stats.first_response
        } else {
            &stats.resolution
        };
        distribution
            .summary()
            .map(|s| s.median)
            .unwrap_or(f64::INFINITY)
    };
    let compare = |a: &ClosedStats, b: &ClosedStats| match ranking {
        Ranking::ClosedCount => b.closed.cmp(&a.closed),
        Ranking::MedianResolution => median(a, false).total_cmp(&median(b, false)),
        Ranking::MedianFirstResponse => median(a, true).total_cmp(&median(b, true)),
    };
    ranked.sort_by(|(a_id, a), (b_id, b)| compare(a, b).then_with(|| a_id.cmp(b_id)));
    ranked.truncate(limit);
    Ok(competition_ranks(ranked, |a, b| compare(a, b).is_eq()))
}

/// Ranks sorted entries from 1: an entry equal to the one before shares its rank, the next
/// different one takes its own position.
fn competition_ranks<T>(
    sorted: Vec<(String, T)>,
    equal: impl Fn(&T, &T) -> bool,
) -> Vec<(u32, String, T)> {
    let mut ranked: Vec<(u32, String, T)> = Vec::with_capacity(sorted.len());
    for (position, (id, value)) in (1..).zip(sorted) {
        let rank = match ranked.last() {
            Some((previous_rank, _, previous)) if equal(previous, &value) => *previous_rank,
            _ => position,
        };
        ranked.push((rank, id, value));
    }
    ranked
}

#[cfg(test)]
mod tests {
    use super::competition_ranks;

    #[test]
    fn equal_values_share_a_rank_and_the_next_skips() {
        let sorted = ["a", "b", "c", "d", "e"]
            .into_iter()
            .zip([9, 7, 7, 5, 5])
            .map(|(id, value)| (id.to_owned(), value))
            .collect();
        let ranks: Vec<u32> = competition_ranks(sorted, |a, b| a == b)
            .into_iter()
            .map(|(rank, _, _)| rank)
            .collect();
        assert_eq!(ranks, [1, 2, 2, 4, 4]);
    }
}
