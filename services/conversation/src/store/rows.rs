//! Conversations as rows: the column list, decoding a row, and binding a conversation's values.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use charla_runtime::ApiError;
use charla_runtime::channel::ChannelType;
use charla_runtime::clock::{from_micros, to_micros};
use charla_runtime::workspace::WorkspaceId;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};
use uuid::Uuid;

use crate::domain::{
    ActorId, Assignment, AuthorKind, AutomatedReply, Channel, CloseSource, ClosingNote, ContactId,
    Conversation, ConversationId, ConversationStatus, ExternalId, MessageCounts, OpenSource,
};

/// Every column of `conversations`, in the order `bind_conversation` binds them.
pub const COLUMNS: [&str; 39] = [
    "workspace_id",
    "conversation_id",
    "contact_id",
    "channel_type",
    "channel_id",
    "status",
    "opened_by",
    "opened_by_id",
    "opened_at",
    "closed_at",
    "closed_by",
    "closed_by_id",
    "closing_category",
    "closing_summary",
    "assignee_user_id",
    "team_id",
    "first_assignee_user_id",
    "first_assigned_at",
    "last_assigned_at",
    "assignment_count",
    "first_response_at",
    "first_response_user_id",
    "last_message_at",
    "last_inbound_at",
    "last_outbound_at",
    "awaiting_reply_since",
    "response_times",
    "auto_close_at",
    "inbound_count",
    "outbound_count",
    "user_outbound_count",
    "response_count",
    "external_id",
    "imported",
    "last_assignee_user_id",
    "first_automated_at",
    "first_automated_author_kind",
    "first_automated_author_id",
    "response_started_at",
];

/// `SELECT <every column> FROM conversations`.
pub static SELECT: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM conversations", COLUMNS.join(", ")));

/// Inserts a conversation or overwrites the stored one. A second open conversation of a contact
/// violates the one-open index and fails.
pub static UPSERT: LazyLock<String> = LazyLock::new(|| {
    let placeholders: Vec<String> = (1..=COLUMNS.len()).map(|n| format!("${n}")).collect();
    let updates: Vec<String> = COLUMNS[2..]
        .iter()
        .map(|column| format!("{column} = excluded.{column}"))
        .collect();
    format!(
        "INSERT INTO conversations ({}) VALUES ({}) \
         ON CONFLICT (workspace_id, conversation_id) DO UPDATE SET {}",
        COLUMNS.join(", "),
        placeholders.join(", "),
        updates.join(", ")
    )
});

fn micros(time: Option<SystemTime>) -> Option<i64> {
    time.map(to_micros)
}

fn text<T: ToString>(value: Option<&T>) -> Option<String> {
    value.map(ToString::to_string)
}

/// Binds a conversation's values in `COLUMNS` order.
pub fn bind_conversation<'q>(
    query: Query<'q, Any, AnyArguments>,
    c: &Conversation,
) -> Query<'q, Any, AnyArguments> {
    let (status, closed_at, closed_by, closed_by_id, note) = match &c.status {
        ConversationStatus::Open => ("open", None, None, None, ClosingNote::default()),
        ConversationStatus::Closed {
            at,
            by,
            by_id,
            note,
        } => (
            "closed",
            Some(to_micros(*at)),
            Some(by.as_str()),
            text(by_id.as_ref()),
            note.clone(),
        ),
    };
    let automated = c.first_automated.as_ref();
    let response_started_at: Vec<i64> = c
        .response_started_at
        .iter()
        .copied()
        .map(to_micros)
        .collect();
    let response_times: Vec<i64> = c
        .response_times
        .iter()
        .map(|wait| i64::try_from(wait.as_micros()).unwrap_or(i64::MAX))
        .collect();
    query
        .bind(c.workspace.to_string())
        .bind(c.id.to_string())
        .bind(c.contact.to_string())
        .bind(c.channel.channel_type.as_str())
        .bind(c.channel.channel_id.clone())
        .bind(status)
        .bind(c.opened_by.as_str())
        .bind(text(c.opened_by_id.as_ref()))
        .bind(to_micros(c.opened_at))
        .bind(closed_at)
        .bind(closed_by)
        .bind(closed_by_id)
        .bind(note.category)
        .bind(note.summary)
        .bind(text(c.assignment.assignee.as_ref()))
        .bind(text(c.assignment.team.as_ref()))
        .bind(text(c.assignment.first_assignee.as_ref()))
        .bind(micros(c.assignment.first_assigned_at))
        .bind(micros(c.assignment.last_assigned_at))
        .bind(i64::from(c.assignment.count))
        .bind(micros(c.first_response_at))
        .bind(text(c.first_response_user.as_ref()))
        .bind(micros(c.last_message_at))
        .bind(micros(c.last_inbound_at))
        .bind(micros(c.last_outbound_at))
        .bind(micros(c.awaiting_reply_since))
        .bind(serde_json::to_string(&response_times).unwrap_or_else(|_| "[]".into()))
        .bind(micros(c.auto_close_at))
        .bind(i64::from(c.counts.inbound))
        .bind(i64::from(c.counts.outbound))
        .bind(i64::from(c.counts.user_outbound))
        .bind(i64::from(c.counts.responses))
        .bind(text(c.external_id.as_ref()))
        .bind(i64::from(c.imported))
        .bind(text(c.assignment.last_assignee.as_ref()))
        .bind(micros(automated.map(|reply| reply.at)))
        .bind(automated.map(|reply| reply.author_kind.as_str()))
        .bind(text(automated.and_then(|reply| reply.author.as_ref())))
        .bind(serde_json::to_string(&response_started_at).unwrap_or_else(|_| "[]".into()))
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("stored {what} is unreadable: {detail}"))
}

fn uuid(row: &AnyRow, column: &str) -> Result<Uuid, ApiError> {
    let value: String = row.try_get(column)?;
    Uuid::parse_str(&value).map_err(|e| corrupt(column, e))
}

fn actor(row: &AnyRow, column: &str) -> Result<Option<ActorId>, ApiError> {
    let value: Option<String> = row.try_get(column)?;
    value
        .map(|v| ActorId::parse(&v).map_err(|e| corrupt(column, e)))
        .transpose()
}

fn time(row: &AnyRow, column: &str) -> Result<Option<SystemTime>, ApiError> {
    Ok(row.try_get::<Option<i64>, _>(column)?.map(from_micros))
}

fn count(row: &AnyRow, column: &str) -> Result<u32, ApiError> {
    let value: i64 = row.try_get(column)?;
    u32::try_from(value).map_err(|e| corrupt(column, e))
}

fn automated_reply(row: &AnyRow) -> Result<Option<AutomatedReply>, ApiError> {
    let Some(at) = time(row, "first_automated_at")? else {
        return Ok(None);
    };
    let kind: Option<String> = row.try_get("first_automated_author_kind")?;
    let author_kind = kind
        .as_deref()
        .and_then(AuthorKind::from_name)
        .ok_or_else(|| corrupt("first_automated_author_kind", kind.as_deref().unwrap_or("")))?;
    Ok(Some(AutomatedReply {
        at,
        author_kind,
        author: actor(row, "first_automated_author_id")?,
    }))
}

/// A conversation from a row selected with `SELECT`.
pub fn conversation_from_row(row: &AnyRow) -> Result<Conversation, ApiError> {
    let workspace = WorkspaceId::new(uuid(row, "workspace_id")?);
    let channel_type: String = row.try_get("channel_type")?;
    let opened_by: String = row.try_get("opened_by")?;
    let status: String = row.try_get("status")?;
    let status = match status.as_str() {
        "open" => ConversationStatus::Open,
        "closed" => {
            let by: Option<String> = row.try_get("closed_by")?;
            ConversationStatus::Closed {
                at: time(row, "closed_at")?.ok_or_else(|| corrupt("closed_at", "missing"))?,
                by: by
                    .as_deref()
                    .and_then(CloseSource::from_name)
                    .ok_or_else(|| corrupt("closed_by", "missing"))?,
                by_id: actor(row, "closed_by_id")?,
                note: ClosingNote {
                    category: row.try_get("closing_category")?,
                    summary: row.try_get("closing_summary")?,
                },
            }
        }
        other => return Err(corrupt("status", other)),
    };
    let response_times: String = row.try_get("response_times")?;
    let response_times: Vec<i64> =
        serde_json::from_str(&response_times).map_err(|e| corrupt("response_times", e))?;
    let external_id: Option<String> = row.try_get("external_id")?;
    Ok(Conversation {
        id: ConversationId::from_uuid(uuid(row, "conversation_id")?),
        workspace,
        contact: ContactId::from_uuid(uuid(row, "contact_id")?),
        channel: Channel {
            channel_type: ChannelType::from_name(&channel_type)
                .ok_or_else(|| corrupt("channel_type", &channel_type))?,
            channel_id: row.try_get("channel_id")?,
        },
        status,
        opened_by: OpenSource::from_name(&opened_by)
            .ok_or_else(|| corrupt("opened_by", &opened_by))?,
        opened_by_id: actor(row, "opened_by_id")?,
        opened_at: from_micros(row.try_get("opened_at")?),
        assignment: Assignment {
            assignee: actor(row, "assignee_user_id")?,
            team: actor(row, "team_id")?,
            first_assignee: actor(row, "first_assignee_user_id")?,
            last_assignee: actor(row, "last_assignee_user_id")?,
            first_assigned_at: time(row, "first_assigned_at")?,
            last_assigned_at: time(row, "last_assigned_at")?,
            count: count(row, "assignment_count")?,
        },
        first_response_at: time(row, "first_response_at")?,
        first_response_user: actor(row, "first_response_user_id")?,
        first_automated: automated_reply(row)?,
        response_started_at: match row.try_get::<Option<String>, _>("response_started_at")? {
            Some(json) => serde_json::from_str::<Vec<i64>>(&json)
                .map_err(|e| corrupt("response_started_at", e))?
                .into_iter()
                .map(from_micros)
                .collect(),
            None => Vec::new(),
        },
        last_message_at: time(row, "last_message_at")?,
        last_inbound_at: time(row, "last_inbound_at")?,
        last_outbound_at: time(row, "last_outbound_at")?,
        awaiting_reply_since: time(row, "awaiting_reply_since")?,
        response_times: response_times
            .into_iter()
            .map(|micros| Duration::from_micros(micros.max(0) as u64))
            .collect(),
        auto_close_at: time(row, "auto_close_at")?,
        counts: MessageCounts {
            inbound: count(row, "inbound_count")?,
            outbound: count(row, "outbound_count")?,
            user_outbound: count(row, "user_outbound_count")?,
            responses: count(row, "response_count")?,
        },
        external_id: external_id
            .map(|id| ExternalId::parse(&id).map_err(|e| corrupt("external_id", e)))
            .transpose()?,
        imported: row.try_get::<i64, _>("imported")? != 0,
    })
}
