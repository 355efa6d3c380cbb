//! What the metrics are, as plain Rust: distributions with percentiles, the statistics of closed
//! conversations, the dimensions they break down by, and calendar arithmetic in any time zone.
//! No gRPC, no SQL.

mod calendar;
mod change;
mod closed;
mod dimensions;
mod distribution;
mod report;

pub use calendar::{
    BUCKET, CalendarError, Granularity, MAX_SERIES_BUCKETS, bucket_start, series_edges,
    start_of_day, zone,
};
pub use change::Change;
pub use closed::{Bands, ClosedStats, Closure};
pub use dimensions::{Dimension, Dimensions, Filter};
pub use distribution::{Distribution, Summary};
pub use report::{Report, ReportBuilder, Tally};
