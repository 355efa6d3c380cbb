//! What the metrics are, as plain Rust: distributions with percentiles, the statistics of closed
//! conversations, the dimensions they break down by, and calendar arithmetic in any time zone.
//! No gRPC, no SQL.

mod at_risk;
mod automation;
mod batch;
mod business_hours;
mod calendar;
mod change;
mod closed;
mod contacts;
mod dimensions;
mod distribution;
mod grains;
mod recontact;
mod report;
mod schedules;
mod settings;
mod sla;

pub use at_risk::{
    AT_RISK_SHARE, AtRisk, MAX_AT_RISK, OpenConversation, TargetKind, at_risk, business_instant,
};
pub use automation::{Automation, AutomationFacts};
pub use batch::{
    Batch, ComboKey, Delta, DimensionKey, DimensionRowKey, Fact, LiveDelta, dimension_keys,
};
pub use business_hours::{
    BusinessHours, BusinessHoursDraft, BusinessHoursError, Interval, IntervalDraft, TimeOfDay,
};
pub use calendar::{
    BUCKET, CalendarError, Granularity, MAX_SERIES_BUCKETS, bucket_start, series_edges,
    start_of_day, zone,
};
pub use change::Change;
pub use closed::{Bands, ClosedStats, Closure};
pub use contacts::{ContactSketch, STANDARD_ERROR as CONTACTS_STANDARD_ERROR};
pub use dimensions::{Dimension, Dimensions, Filter};
pub use distribution::{Distribution, Summary};
pub use grains::{Cover, Grain};
pub use recontact::{
    MAX_GAP_MICROS, MAX_WINDOW_HOURS, RecontactGaps, RecontactWindow, WindowError, gap_bin,
};
pub use report::{Part, ReadPlan, Report, ReportBuilder, RollupRow, RowKey, Tally};
pub use schedules::{BusinessDurations, ScheduleHistory, Versions};
pub use settings::ReportSettings;
pub use sla::{MAX_TARGET, SlaCounts, SlaError, SlaOutcome, SlaTargets, Took, target};
