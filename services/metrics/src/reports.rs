//! The reports the API serves, from the store's rows and the domain's arithmetic.

use std::collections::BTreeMap;

use charla_runtime::ApiError;

use crate::domain::{
    BUCKET, CalendarError, ClosedStats, Dimension, Filter, Granularity, Report, ReportBuilder,
    bucket_start, series_edges, start_of_day, zone,
};
use crate::store::{LiveCounts, MetricsStore};

/// Closed conversations are read for unique-contact counts in pages this long.
const FACT_PAGE: i64 = 1000;

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
    let mut builder = ReportBuilder::new(&edges, &query.filter, query.group_by);
    for (bucket, dimensions, count) in store.opened_rows(workspace, query.start, query.end).await? {
        builder.opened(bucket, &dimensions, count);
    }
    for (bucket, dimensions, stats) in store.closed_rows(workspace, query.start, query.end).await? {
        builder.closed(bucket, &dimensions, &stats);
    }
    let mut after = None;
    loop {
        let page = store
            .closed_facts(workspace, query.start, query.end, after.clone(), FACT_PAGE)
            .await?;
        for fact in &page {
            builder.contact_closed(fact.closed_at, &fact.dimensions, &fact.contact);
        }
        match page.last() {
            Some(last) if page.len() as i64 == FACT_PAGE => {
                after = Some((last.closed_at, last.conversation.clone()));
            }
            _ => break,
        }
    }
    Ok(builder.finish())
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
    let opened_today = store
        .opened_rows(workspace, day_start, until)
        .await?
        .iter()
        .map(|(_, _, count)| count)
        .sum();
    let mut closed = ClosedStats::default();
    for (_, _, stats) in store.closed_rows(workspace, day_start, until).await? {
        closed.merge(&stats);
    }
    let resolution = closed.resolution.summary();
    Ok(DashboardNumbers {
        day_start,
        live: store.live_counts(workspace).await?,
        opened_today,
        closed_today: closed.closed as i64,
        average_resolution: resolution.map(|s| s.average),
        median_resolution: resolution.map(|s| s.median),
    })
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
    let mut entries: BTreeMap<String, ClosedStats> = BTreeMap::new();
    for (_, dimensions, stats) in store.closed_rows(workspace, start, end).await? {
        let Some(who) = by.value_in(&dimensions).filter(|who| !who.is_empty()) else {
            continue;
        };
        if !filter.accepts(&dimensions) {
            continue;
        }
        entries.entry(who.to_owned()).or_default().merge(&stats);
    }
    let mut ranked: Vec<(String, ClosedStats)> = entries.into_iter().collect();
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
