//! Export rows as RFC 4180 CSV, in chunks of bounded size (the format is the contract written on
//! ExportConversationsCsvResponse in metrics.proto).

use charla_proto::charla::contact::v1::ChannelType;
use charla_proto::charla::conversation::v1::{AuthorKind, CloseSource, OpenSource};
use charla_proto::charla::metrics::v1 as pb;

/// A chunk is sent once adding the next record would take it past this size, so one chunk stays
/// well under gRPC's default 4 MiB message limit whatever the client.
pub const CHUNK_LIMIT: usize = 64 * 1024;

/// The header row, in the order `record` writes the fields.
pub const HEADER: [&str; 34] = [
    "Conversation ID",
    "Contact ID",
    "Channel Type",
    "Channel ID",
    "Opened At",
    "Opened By Source",
    "Opened By ID",
    "Closed At",
    "Closed By Source",
    "Closed By ID",
    "First Assignee",
    "Assignee",
    "Last Assignee",
    "Team",
    "First Assigned At",
    "Last Assigned At",
    "Number of Assignments",
    "Time to First Assignment",
    "First Response At",
    "First Response By",
    "First Response Time",
    "Average Response Time",
    "Number of Responses",
    "Resolution Time",
    "Closing Note Category",
    "Closing Note Summary",
    "Number of Incoming Messages",
    "Number of Outgoing Messages",
    "Number of Outgoing Messages by Users",
    "Imported",
    "External ID",
    "First Automated Message At",
    "First Automated Author Kind",
    "First Automated Author",
];

/// The fields of one row, in `HEADER`'s order.
pub fn record(row: &pb::ConversationExportRow) -> [String; 34] {
    [
        row.conversation_id.clone(),
        row.contact_id.clone(),
        enum_name(
            ChannelType::try_from(row.channel_type).map(|v| v.as_str_name()),
            "CHANNEL_TYPE_",
        ),
        row.channel_id.clone(),
        time(row.opened_at.as_ref()),
        enum_name(
            OpenSource::try_from(row.opened_by).map(|v| v.as_str_name()),
            "OPEN_SOURCE_",
        ),
        row.opened_by_id.clone(),
        time(row.closed_at.as_ref()),
        enum_name(
            CloseSource::try_from(row.closed_by).map(|v| v.as_str_name()),
            "CLOSE_SOURCE_",
        ),
        row.closed_by_id.clone(),
        row.first_assignee_user_id.clone(),
        row.assignee_user_id.clone(),
        row.last_assignee_user_id.clone(),
        row.team_id.clone(),
        time(row.first_assigned_at.as_ref()),
        time(row.last_assigned_at.as_ref()),
        row.assignment_count.to_string(),
        seconds(row.time_to_first_assignment.as_ref()),
        time(row.first_response_at.as_ref()),
        row.first_response_user_id.clone(),
        seconds(row.first_response_time.as_ref()),
        seconds(row.average_response_time.as_ref()),
        row.response_count.to_string(),
        seconds(row.resolution_time.as_ref()),
        row.closing_category.clone(),
        row.closing_summary.clone(),
        row.inbound_message_count.to_string(),
        row.outbound_message_count.to_string(),
        row.user_outbound_message_count.to_string(),
        row.imported.to_string(),
        row.external_id.clone(),
        time(row.first_automated_message_at.as_ref()),
        enum_name(
            AuthorKind::try_from(row.first_automated_author_kind).map(|v| v.as_str_name()),
            "AUTHOR_KIND_",
        ),
        row.first_automated_author_id.clone(),
    ]
}

/// Appends one record, CRLF-terminated, quoting the fields that need it.
pub fn write_record<'a>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = &'a str>) {
    for (index, field) in fields.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        if field.contains([',', '"', '\r', '\n']) {
            out.push(b'"');
            out.extend_from_slice(field.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(field.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Collects records into chunks of whole records, each at most `CHUNK_LIMIT` bytes unless one
/// record alone is longer.
#[derive(Debug, Default)]
pub struct Chunker {
    pending: Vec<u8>,
    record: Vec<u8>,
}

impl Chunker {
    /// Adds a record; returns the chunk that is full, if adding it filled one.
    pub fn push<'a>(&mut self, fields: impl IntoIterator<Item = &'a str>) -> Option<Vec<u8>> {
        self.record.clear();
        write_record(&mut self.record, fields);
        let full = (!self.pending.is_empty()
            && self.pending.len() + self.record.len() > CHUNK_LIMIT)
            .then(|| std::mem::take(&mut self.pending));
        self.pending.extend_from_slice(&self.record);
        full
    }

    /// The records not yet sent, if any.
    pub fn finish(self) -> Option<Vec<u8>> {
        (!self.pending.is_empty()).then_some(self.pending)
    }
}

/// The enum value's name without its prefix; empty when unset or unknown to this build.
fn enum_name<E>(name: Result<&str, E>, prefix: &str) -> String {
    match name {
        Ok(name) if !name.ends_with("_UNSPECIFIED") => {
            name.strip_prefix(prefix).unwrap_or(name).to_owned()
        }
        _ => String::new(),
    }
}

/// RFC 3339 in UTC; empty when unset. jiff writes the fraction only when it is not zero.
fn time(value: Option<&prost_types::Timestamp>) -> String {
    value
        .and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Seconds with up to six decimals (microseconds, the precision charla keeps); empty when unset.
fn seconds(value: Option<&prost_types::Duration>) -> String {
    let Some(value) = value else {
        return String::new();
    };
    let micros = i128::from(value.seconds) * 1_000_000 + i128::from(value.nanos) / 1_000;
    let sign = if micros < 0 { "-" } else { "" };
    let (whole, fraction) = (micros.abs() / 1_000_000, micros.abs() % 1_000_000);
    if fraction == 0 {
        format!("{sign}{whole}")
    } else {
        let fraction = format!("{fraction:06}");
        format!("{sign}{whole}.{}", fraction.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(fields: &[&str]) -> String {
        let mut out = Vec::new();
        write_record(&mut out, fields.iter().copied());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fields_that_need_it_are_quoted_with_quotes_doubled() {
        assert_eq!(line(&["a", "b c"]), "a,b c\r\n");
        assert_eq!(
            line(&["x,y", "say \"hi\""]),
            "\"x,y\",\"say \"\"hi\"\"\"\r\n"
        );
        assert_eq!(line(&["two\nlines", "cr\r"]), "\"two\nlines\",\"cr\r\"\r\n");
        assert_eq!(line(&["", ""]), ",\r\n");
    }

    #[test]
    fn durations_are_seconds_with_at_most_six_decimals() {
        let d = |seconds, nanos| Some(prost_types::Duration { seconds, nanos });
        assert_eq!(seconds(d(90, 0).as_ref()), "90");
        assert_eq!(seconds(d(90, 250_000_000).as_ref()), "90.25");
        assert_eq!(seconds(d(0, 1_000).as_ref()), "0.000001");
        assert_eq!(seconds(None), "");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        let t = |seconds, nanos| Some(prost_types::Timestamp { seconds, nanos });
        assert_eq!(time(t(1_780_000_000, 0).as_ref()), "2026-05-28T20:26:40Z");
        assert_eq!(
            time(t(1_780_000_000, 500_000_000).as_ref()),
            "2026-05-28T20:26:40.5Z"
        );
        assert_eq!(time(None), "");
    }

    #[test]
    fn chunks_hold_whole_records_within_the_limit() {
        let mut chunker = Chunker::default();
        let field = "x".repeat(1000);
        let mut chunks = Vec::new();
        for _ in 0..200 {
            chunks.extend(chunker.push([field.as_str()]));
        }
        chunks.extend(chunker.finish());
        assert!(chunks.len() > 1);
        let record_len = field.len() + 2;
        for chunk in &chunks {
            assert!(chunk.len() <= CHUNK_LIMIT);
            assert_eq!(chunk.len() % record_len, 0, "whole records only");
        }
        assert_eq!(chunks.concat().len(), 200 * record_len);
    }
}
