//! ExportConversationsCsv: the rows of ExportConversations as one RFC 4180 document in chunks.

use std::time::{Duration, SystemTime};

use charla_proto::charla::contact::v1::ChannelType;
use charla_proto::charla::conversation::v1 as conversation_pb;
use charla_proto::charla::metrics::v1 as pb;
use charla_testing::{Backend, assert_invalid_field, backend_tests};

use crate::helpers::{MetricsEnv, spawn_env};

backend_tests!(
    the_csv_holds_the_export_rows_quoted_in_chunks,
    an_empty_range_gives_the_header_alone,
    a_bad_range_or_filter_is_refused_by_field,
);

const HEADER: [&str; 34] = [
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

/// A category that needs quoting: a comma and a double quote.
const AWKWARD_CATEGORY: &str = "Refund, \"partial\"";

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000)
}

fn range(
    from: SystemTime,
    hours: u64,
) -> (
    Option<prost_types::Timestamp>,
    Option<prost_types::Timestamp>,
) {
    (
        Some(from.into()),
        Some((from + Duration::from_secs(hours * 3600)).into()),
    )
}

/// Opens a conversation by a contact message (an AI agent replies at once), has `ana` (team
/// `sales`) answer 90.5 s later, and closes it after another 60 s with `category` and `summary`;
/// returns its id.
async fn conversation(env: &MetricsEnv, category: &str, summary: &str) -> String {
    let contact = env.new_contact(env.workspace).await;
    let id = env
        .message(
            env.workspace,
            &contact,
            ChannelType::Whatsapp,
            conversation_pb::AuthorKind::Contact,
            "",
        )
        .await
        .unwrap()
        .conversation_id;
    env.message(
        env.workspace,
        &contact,
        ChannelType::Whatsapp,
        conversation_pb::AuthorKind::AiAgent,
        "ai-sofia",
    )
    .await;
    let mut client = env.conversations().await;
    client
        .assign_conversation(env.req(conversation_pb::AssignConversationRequest {
            conversation_id: id.clone(),
            assignee_user_id: "ana".into(),
            team_id: "sales".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    env.clock.advance(Duration::from_millis(90_500));
    env.message(
        env.workspace,
        &contact,
        ChannelType::Whatsapp,
        conversation_pb::AuthorKind::User,
        "ana",
    )
    .await;
    env.clock.advance(Duration::from_secs(60));
    client
        .close_conversation(env.req(conversation_pb::CloseConversationRequest {
            conversation_id: id.clone(),
            source: conversation_pb::CloseSource::User as i32,
            category: category.into(),
            summary: summary.into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    id
}

async fn allow_categories(env: &MetricsEnv) {
    env.conversations()
        .await
        .update_workspace_settings(env.req(conversation_pb::UpdateWorkspaceSettingsRequest {
            settings: Some(conversation_pb::WorkspaceSettings {
                closing_categories: vec!["Sale".into(), AWKWARD_CATEGORY.into()],
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["closing_categories".into()],
            }),
        }))
        .await
        .unwrap();
}

/// The chunks of ExportConversationsCsv over `hours` from `from`.
async fn csv_chunks(env: &MetricsEnv, from: SystemTime, hours: u64) -> Vec<Vec<u8>> {
    filtered_csv_chunks(env, from, hours, None).await
}

/// The chunks of ExportConversationsCsv over `hours` from `from`, of the conversations `filter`
/// lets through.
async fn filtered_csv_chunks(
    env: &MetricsEnv,
    from: SystemTime,
    hours: u64,
    filter: Option<pb::ConversationFilter>,
) -> Vec<Vec<u8>> {
    let (start_time, end_time) = range(from, hours);
    let mut stream = env
        .metrics()
        .await
        .export_conversations_csv(env.req(pb::ExportConversationsCsvRequest {
            start_time,
            end_time,
            filter,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let mut chunks = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        chunks.push(message.chunk);
    }
    chunks
}

/// The rows of ExportConversations over `hours` from `from`.
async fn export_rows(
    env: &MetricsEnv,
    from: SystemTime,
    hours: u64,
) -> Vec<pb::ConversationExportRow> {
    let (start_time, end_time) = range(from, hours);
    let mut stream = env
        .metrics()
        .await
        .export_conversations(env.req(pb::ExportConversationsRequest {
            start_time,
            end_time,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let mut rows = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        rows.push(message.row.unwrap());
    }
    rows
}

/// Splits an RFC 4180 document into records of fields, checking that every record ends in CRLF
/// and that quotes are only where the RFC allows them.
fn parse_csv(document: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let mut chars = document.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => {
                quoted = false;
                let next = chars.peek().copied();
                assert!(
                    matches!(next, Some(',') | Some('\r')),
                    "a closing quote ends its field"
                );
            }
            (true, c) => field.push(c),
            (false, '"') => {
                assert!(field.is_empty(), "a quote opens a field only at its start");
                quoted = true;
            }
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "records end in CRLF");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, '\n') => panic!("a bare LF outside quotes"),
            (false, c) => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && record.is_empty(),
        "the document ends with CRLF"
    );
    records
}

fn time(value: Option<&prost_types::Timestamp>) -> String {
    value.map_or(String::new(), |t| {
        jiff::Timestamp::new(t.seconds, t.nanos)
            .unwrap()
            .to_string()
    })
}

fn seconds(value: Option<&prost_types::Duration>) -> Option<f64> {
    value.map(|d| d.seconds as f64 + f64::from(d.nanos) / 1e9)
}

/// Checks one CSV record against the ExportConversations row it must equal.
fn assert_record_is_row(record: &[String], row: &pb::ConversationExportRow) {
    let field = |name: &str| -> &str {
        let index = HEADER.iter().position(|h| *h == name).unwrap();
        &record[index]
    };
    let context = &row.conversation_id;
    let texts = [
        ("Conversation ID", row.conversation_id.clone()),
        ("Contact ID", row.contact_id.clone()),
        ("Channel Type", "WHATSAPP".to_owned()),
        ("Channel ID", row.channel_id.clone()),
        ("Opened At", time(row.opened_at.as_ref())),
        ("Opened By Source", "INBOUND_MESSAGE".to_owned()),
        ("Opened By ID", row.opened_by_id.clone()),
        ("Closed At", time(row.closed_at.as_ref())),
        ("Closed By Source", "USER".to_owned()),
        ("Closed By ID", row.closed_by_id.clone()),
        ("First Assignee", row.first_assignee_user_id.clone()),
        ("Assignee", row.assignee_user_id.clone()),
        ("Last Assignee", row.last_assignee_user_id.clone()),
        ("Team", row.team_id.clone()),
        ("First Assigned At", time(row.first_assigned_at.as_ref())),
        ("Last Assigned At", time(row.last_assigned_at.as_ref())),
        ("Number of Assignments", row.assignment_count.to_string()),
        ("First Response At", time(row.first_response_at.as_ref())),
        ("First Response By", row.first_response_user_id.clone()),
        ("Number of Responses", row.response_count.to_string()),
        ("Closing Note Category", row.closing_category.clone()),
        ("Closing Note Summary", row.closing_summary.clone()),
        (
            "Number of Incoming Messages",
            row.inbound_message_count.to_string(),
        ),
        (
            "Number of Outgoing Messages",
            row.outbound_message_count.to_string(),
        ),
        (
            "Number of Outgoing Messages by Users",
            row.user_outbound_message_count.to_string(),
        ),
        ("Imported", row.imported.to_string()),
        ("External ID", row.external_id.clone()),
        (
            "First Automated Message At",
            time(row.first_automated_message_at.as_ref()),
        ),
        (
            "First Automated Author Kind",
            match row.first_automated_author_kind() {
                conversation_pb::AuthorKind::Unspecified => String::new(),
                kind => kind.as_str_name()["AUTHOR_KIND_".len()..].to_owned(),
            },
        ),
        (
            "First Automated Author",
            row.first_automated_author_id.clone(),
        ),
    ];
    for (name, expected) in texts {
        assert_eq!(field(name), expected, "{name} of {context}");
    }
    let durations = [
        ("Time to First Assignment", &row.time_to_first_assignment),
        ("First Response Time", &row.first_response_time),
        ("Average Response Time", &row.average_response_time),
        ("Resolution Time", &row.resolution_time),
    ];
    for (name, expected) in durations {
        let written = Some(field(name))
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<f64>().unwrap());
        match (written, seconds(expected.as_ref())) {
            (Some(written), Some(expected)) => assert!(
                (written - expected).abs() < 1e-6,
                "{name} of {context}: {written} s, not {expected} s"
            ),
            (written, expected) => assert_eq!(written, expected, "{name} of {context}"),
        }
    }
}

async fn the_csv_holds_the_export_rows_quoted_in_chunks(backend: Backend) {
    let Some(env) = spawn_env(backend, start()).await else {
        return;
    };
    allow_categories(&env).await;
    // Long summaries (2000 characters, with a line break that must be quoted) so the document
    // needs more than one 64 KiB chunk.
    let summary = format!("{}\n{}", "s".repeat(1000), "t".repeat(999));
    let mut ids = vec![conversation(&env, AWKWARD_CATEGORY, "").await];
    for _ in 0..35 {
        ids.push(conversation(&env, "Sale", &summary).await);
    }
    env.settle().await;

    let chunks = csv_chunks(&env, start(), 24).await;
    let rows = export_rows(&env, start(), 24).await;
    assert_eq!(rows.len(), ids.len(), "every closed conversation is a row");

    assert!(chunks.len() >= 2, "over 64 KiB is more than one chunk");
    for chunk in &chunks {
        assert!(chunk.len() <= 64 * 1024, "a chunk of {} bytes", chunk.len());
    }
    let header_line = format!("{}\r\n", HEADER.join(","));
    assert!(chunks[0].starts_with(header_line.as_bytes()));
    let document = String::from_utf8(chunks.concat()).expect("UTF-8");
    assert!(
        document.contains(",\"Refund, \"\"partial\"\"\","),
        "the category quoted with its quotes doubled"
    );

    let records = parse_csv(&document);
    assert_eq!(records[0], HEADER);
    assert_eq!(records.len(), rows.len() + 1);
    for (record, row) in records[1..].iter().zip(&rows) {
        assert_eq!(record.len(), HEADER.len());
        assert_record_is_row(record, row);
    }
    let awkward = rows
        .iter()
        .position(|row| row.conversation_id == ids[0])
        .unwrap();
    assert_eq!(records[awkward + 1][24], AWKWARD_CATEGORY);
    assert_eq!(records[1][23], "150.5", "resolution: 90.5 s + 60 s");
    assert_eq!(records[1][20], "90.5", "first response time");
    assert_eq!(
        records[1][31], records[1][4],
        "the AI agent wrote as it opened"
    );
    assert_eq!(records[1][32], "AI_AGENT");
    assert_eq!(records[1][33], "ai-sofia");
    assert_eq!(records[2][25], summary, "the summary's line break survives");

    // The filter is ExportConversations' too: only the awkward category's conversation.
    let only_awkward = pb::ConversationFilter {
        closing_categories: vec![AWKWARD_CATEGORY.into()],
        ..Default::default()
    };
    let filtered = filtered_csv_chunks(&env, start(), 24, Some(only_awkward)).await;
    let records = parse_csv(&String::from_utf8(filtered.concat()).unwrap());
    assert_eq!(records.len(), 2, "the header and one row");
    assert_eq!(records[1][0], ids[0]);
    assert_record_is_row(&records[1], &rows[awkward]);
    env.stop().await;
}

async fn an_empty_range_gives_the_header_alone(backend: Backend) {
    let Some(env) = spawn_env(backend, start()).await else {
        return;
    };
    conversation(&env, "", "").await;
    env.settle().await;
    let earlier = start() - Duration::from_secs(48 * 3600);
    let chunks = csv_chunks(&env, earlier, 24).await;
    assert_eq!(chunks, [format!("{}\r\n", HEADER.join(",")).into_bytes()]);
    env.stop().await;
}

async fn a_bad_range_or_filter_is_refused_by_field(backend: Backend) {
    let Some(env) = spawn_env(backend, start()).await else {
        return;
    };
    let mut client = env.metrics().await;
    let (start_time, end_time) = range(start(), 1);
    let cases = [
        (None, end_time, "start_time"),
        (start_time, None, "end_time"),
        (end_time, start_time, "end_time"),
        (start_time, start_time, "end_time"),
    ];
    for (start_time, end_time, field) in cases {
        assert_invalid_field(
            client
                .export_conversations_csv(env.req(pb::ExportConversationsCsvRequest {
                    start_time,
                    end_time,
                    ..Default::default()
                }))
                .await,
            field,
        );
    }
    assert_invalid_field(
        client
            .export_conversations_csv(env.req(pb::ExportConversationsCsvRequest {
                start_time,
                end_time,
                min_positions: vec![charla_proto::charla::contact::v1::PartitionCursor {
                    partition: 0,
                    sequence: u64::MAX,
                }],
                ..Default::default()
            }))
            .await,
        "min_positions",
    );
    assert_invalid_field(
        client
            .export_conversations_csv(env.req(pb::ExportConversationsCsvRequest {
                start_time,
                end_time,
                filter: Some(pb::ConversationFilter {
                    channel_types: vec![999],
                    ..Default::default()
                }),
                ..Default::default()
            }))
            .await,
        "filter.channel_types[0]",
    );
    env.stop().await;
}
