//! Reading an import's client stream: row after row until the stream ends, the service shuts
//! down, or the call's deadline draws near. An import stops between rows, never inside one, so
//! its answer can say exactly which rows were written and the client can send the rest again.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::{Status, Streaming};

/// What came next on an import stream.
#[derive(Debug)]
pub enum Next<T> {
    /// One more row.
    Row(T),
    /// The client ended the stream: every row was read.
    End,
    /// The import must answer now with what it has done; the rest of the stream stays unread.
    Stop(StopReason),
}

/// Why an import answers before the end of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The service is shutting down (SIGTERM): it answers at once instead of holding the drain.
    Shutdown,
    /// The call's deadline is near: answering now beats being cancelled with nothing to show.
    Deadline,
    /// The answer has grown to [`ANSWER_LIMIT`]: more results would make a default client refuse
    /// the whole answer.
    AnswerFull,
}

impl StopReason {
    /// A word for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shutdown => "shutdown",
            Self::Deadline => "deadline",
            Self::AnswerFull => "answer full",
        }
    }
}

/// How large an import's answer may grow: under the 4 MiB that gRPC clients accept by default,
/// with room for the last result and the counts: some 50,000 results of imported rows.
pub const ANSWER_LIMIT: usize = 3 * 1024 * 1024;

/// The rows of one import call.
pub struct ImportRows<T> {
    rows: Streaming<T>,
    shutdown: CancellationToken,
    limits: Limits,
    read: u64,
}

impl<T> ImportRows<T> {
    /// Reads `rows` until `shutdown` fires or the call nears its deadline: the server's
    /// `request_timeout` from now, or the client's `grpc-timeout` in `metadata` when sooner.
    pub fn new(
        metadata: &MetadataMap,
        rows: Streaming<T>,
        shutdown: CancellationToken,
        request_timeout: Duration,
    ) -> Self {
        let budget = client_timeout(metadata).map_or(request_timeout, |t| t.min(request_timeout));
        Self {
            rows,
            shutdown,
            limits: Limits::new(Instant::now(), budget),
            read: 0,
        }
    }

    /// Counts one result into the answer's size (its encoded length, as `prost` gives it).
    pub fn answered(&mut self, result_len: usize) {
        self.limits.answered(result_len);
    }

    /// The next row, the end of the stream, or the order to stop. An error is the stream's own
    /// (the client went away, or sent something undecodable).
    pub async fn next(&mut self) -> Result<Next<T>, Status> {
        let next = self.read_next().await?;
        match &next {
            Next::Row(_) => self.read += 1,
            Next::End => {}
            Next::Stop(reason) => tracing::info!(
                rows = self.read,
                reason = reason.as_str(),
                "import answers before the end of its stream"
            ),
        }
        Ok(next)
    }

    async fn read_next(&mut self) -> Result<Next<T>, Status> {
        // Checked first so that a shutdown, a deadline passed or an answer filled while a row was
        // being written stops the import even when more rows are already waiting.
        if self.shutdown.is_cancelled() {
            return Ok(Next::Stop(StopReason::Shutdown));
        }
        if let Some(reason) = self.limits.reached(Instant::now()) {
            return Ok(Next::Stop(reason));
        }
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => Ok(Next::Stop(StopReason::Shutdown)),
            _ = tokio::time::sleep_until(self.limits.stop_at) => {
                Ok(Next::Stop(StopReason::Deadline))
            }
            row = self.rows.message() => Ok(row?.map_or(Next::End, Next::Row)),
        }
    }
}

/// When an import must stop on its own: its deadline, less a margin, and its answer's size.
#[derive(Debug)]
struct Limits {
    stop_at: Instant,
    answer_bytes: usize,
}

impl Limits {
    /// Limits of a call that started at `start` and may last `budget`.
    fn new(start: Instant, budget: Duration) -> Self {
        Self {
            stop_at: start + budget.saturating_sub(margin(budget)),
            answer_bytes: 0,
        }
    }

    fn answered(&mut self, result_len: usize) {
        // A repeated field's element also costs its tag and length prefix: at most 4 bytes here.
        self.answer_bytes = self.answer_bytes.saturating_add(result_len + 4);
    }

    /// Which limit, if any, is reached at `now`.
    fn reached(&self, now: Instant) -> Option<StopReason> {
        if now >= self.stop_at {
            Some(StopReason::Deadline)
        } else if self.answer_bytes >= ANSWER_LIMIT {
            Some(StopReason::AnswerFull)
        } else {
            None
        }
    }
}

/// How long before its deadline an import stops reading: time for the row being written to
/// finish and for the answer to reach the client. A fifth of the call's time, at most 2 s.
fn margin(budget: Duration) -> Duration {
    (budget / 5).min(Duration::from_secs(2))
}

/// The client's deadline from the `grpc-timeout` header: up to 8 digits and a unit (H, M, S, m,
/// u, n). A malformed value is ignored, as if absent: the server's timeout still bounds the call.
pub fn client_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_timeout(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("grpc-timeout", value.parse().unwrap());
        metadata
    }

    #[test]
    fn the_client_timeout_is_read_in_every_unit() {
        let read = |value: &str| client_timeout(&with_timeout(value));
        assert_eq!(read("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(read("3M"), Some(Duration::from_secs(180)));
        assert_eq!(read("10S"), Some(Duration::from_secs(10)));
        assert_eq!(read("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(read("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(read("7n"), Some(Duration::from_nanos(7)));
    }

    #[test]
    fn a_malformed_client_timeout_counts_as_none() {
        for value in ["", "S", "10", "10s", "123456789S", "-1S", "1.5S", "10 S"] {
            let metadata = if value.is_empty() {
                MetadataMap::new()
            } else {
                with_timeout(value)
            };
            assert_eq!(client_timeout(&metadata), None, "{value:?}");
        }
    }

    #[test]
    fn an_import_stops_near_its_deadline_or_when_its_answer_is_full() {
        let start = Instant::now();
        let mut limits = Limits::new(start, Duration::from_secs(30));
        assert_eq!(limits.reached(start), None);
        assert_eq!(limits.reached(start + Duration::from_millis(27_999)), None);
        let deadline = Some(StopReason::Deadline);
        assert_eq!(limits.reached(start + Duration::from_secs(28)), deadline);
        // Results of 60 bytes, as an imported contact's: the answer fills at about 50,000.
        let mut results = 0;
        while limits.reached(start).is_none() {
            limits.answered(60);
            results += 1;
        }
        assert_eq!(limits.reached(start), Some(StopReason::AnswerFull));
        assert_eq!(results, ANSWER_LIMIT.div_ceil(64));
        assert!((49_000..50_000).contains(&results), "{results}");
    }

    #[test]
    fn an_import_stops_a_fifth_of_its_time_early_but_never_more_than_two_seconds() {
        assert_eq!(margin(Duration::from_secs(30)), Duration::from_secs(2));
        assert_eq!(margin(Duration::from_secs(5)), Duration::from_secs(1));
        assert_eq!(
            margin(Duration::from_millis(500)),
            Duration::from_millis(100)
        );
        assert_eq!(margin(Duration::ZERO), Duration::ZERO);
    }
}
