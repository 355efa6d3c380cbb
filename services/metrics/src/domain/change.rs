//! What an event of the conversation stream changes in the metrics.

use super::closed::Closure;
use super::dimensions::Dimensions;

/// A conversation event, reduced to what the metrics need.
#[derive(Debug, Clone)]
pub enum Change {
    /// A conversation opened at `opened_at` (microseconds).
    Opened {
        conversation: String,
        contact: String,
        dimensions: Dimensions,
        opened_at: i64,
        imported: bool,
    },
    /// The conversation's assignee and team are now these ('' for none).
    Assigned {
        conversation: String,
        assignee: String,
        team: String,
    },
    /// The conversation closed at `closed_at` with its final dimensions.
    Closed {
        conversation: String,
        contact: String,
        dimensions: Dimensions,
        opened_at: i64,
        closed_at: i64,
        closure: Closure,
        imported: bool,
        /// The close event as received, kept for exports.
        record: Vec<u8>,
    },
    /// The conversation's first response was written at `at` (microseconds): it is no longer
    /// waiting for one (the dashboard's first response targets).
    FirstResponse { conversation: String, at: i64 },
    /// Nothing the metrics count (a message, say).
    Nothing,
}
