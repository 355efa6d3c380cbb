//! The gRPC edge's conversions: proto messages into checked domain values (naming the field of
//! anything wrong) and domain values back into proto messages.

use std::time::{Duration, SystemTime};

use charla_proto::charla::conversation::v1 as pb;
use charla_runtime::ApiError;
use charla_runtime::channel::ChannelType;
use charla_runtime::clock::to_timestamp;
use charla_runtime::validate::{self, optional_text, quote, required_text, text_list};

use crate::domain::{
    ActorId, AssignmentUpdate, AuthorKind, AutoClose, Channel, CloseSource, ClosingNote,
    ClosingNotePolicy, Conversation, ConversationStatus, Direction, MessageCounts, MessageId,
    OpenSource, WorkspaceSettings,
};

/// An optional text value as the proto's empty-string convention.
pub fn text<T: ToString>(value: Option<&T>) -> String {
    value.map(ToString::to_string).unwrap_or_default()
}

fn duration(value: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(value).unwrap_or_default()
}

/// The proto form of a channel.
pub fn channel_to_proto(channel: &Channel) -> pb::Channel {
    pb::Channel {
        channel_type: channel.channel_type.to_proto() as i32,
        channel_id: channel.channel_id.clone(),
    }
}

/// A required channel field.
pub fn parse_channel(field: &str, channel: Option<&pb::Channel>) -> Result<Channel, ApiError> {
    let channel = channel.ok_or_else(|| ApiError::invalid(field, "is required"))?;
    Ok(Channel {
        channel_type: ChannelType::parse(&format!("{field}.channel_type"), channel.channel_type)?,
        channel_id: required_text(&format!("{field}.channel_id"), &channel.channel_id, 128)?,
    })
}

/// An optional actor id (a user, team, workflow... id): empty means none.
pub fn parse_actor(field: &str, value: &str) -> Result<Option<ActorId>, ApiError> {
    if validate::text(field, value)?.is_empty() {
        return Ok(None);
    }
    ActorId::parse(value)
        .map(Some)
        .map_err(|e| ApiError::invalid(field, e))
}

/// A required message id.
pub fn parse_message_id(field: &str, value: &str) -> Result<MessageId, ApiError> {
    MessageId::parse(validate::text(field, value)?).map_err(|e| ApiError::invalid(field, e))
}

/// An enum field: `value` must be a known, specified value.
fn parse_enum<P, D>(
    field: &str,
    value: i32,
    what: &str,
    convert: impl Fn(P) -> Option<D>,
) -> Result<D, ApiError>
where
    P: TryFrom<i32>,
{
    let proto = P::try_from(value)
        .map_err(|_| ApiError::invalid(field, format!("unknown {what} {value}")))?;
    convert(proto).ok_or_else(|| ApiError::invalid(field, "is required"))
}

pub fn open_source_to_proto(source: OpenSource) -> pb::OpenSource {
    match source {
        OpenSource::InboundMessage => pb::OpenSource::InboundMessage,
        OpenSource::User => pb::OpenSource::User,
        OpenSource::Workflow => pb::OpenSource::Workflow,
        OpenSource::WelcomeEvent => pb::OpenSource::WelcomeEvent,
        OpenSource::Api => pb::OpenSource::Api,
    }
}

/// Any opening source.
pub fn parse_open_source(field: &str, value: i32) -> Result<OpenSource, ApiError> {
    parse_enum(
        field,
        value,
        "opening source",
        |proto: pb::OpenSource| match proto {
            pb::OpenSource::Unspecified => None,
            pb::OpenSource::InboundMessage => Some(OpenSource::InboundMessage),
            pb::OpenSource::User => Some(OpenSource::User),
            pb::OpenSource::Workflow => Some(OpenSource::Workflow),
            pb::OpenSource::WelcomeEvent => Some(OpenSource::WelcomeEvent),
            pb::OpenSource::Api => Some(OpenSource::Api),
        },
    )
}

pub fn close_source_to_proto(source: CloseSource) -> pb::CloseSource {
    match source {
        CloseSource::User => pb::CloseSource::User,
        CloseSource::Workflow => pb::CloseSource::Workflow,
        CloseSource::Bot => pb::CloseSource::Bot,
        CloseSource::AiAgent => pb::CloseSource::AiAgent,
        CloseSource::Api => pb::CloseSource::Api,
        CloseSource::AutoClose => pb::CloseSource::AutoClose,
        CloseSource::ContactMerge => pb::CloseSource::ContactMerge,
    }
}

/// Any closing source.
pub fn parse_close_source(field: &str, value: i32) -> Result<CloseSource, ApiError> {
    parse_enum(
        field,
        value,
        "closing source",
        |proto: pb::CloseSource| match proto {
            pb::CloseSource::Unspecified => None,
            pb::CloseSource::User => Some(CloseSource::User),
            pb::CloseSource::Workflow => Some(CloseSource::Workflow),
            pb::CloseSource::Bot => Some(CloseSource::Bot),
            pb::CloseSource::AiAgent => Some(CloseSource::AiAgent),
            pb::CloseSource::Api => Some(CloseSource::Api),
            pb::CloseSource::AutoClose => Some(CloseSource::AutoClose),
            pb::CloseSource::ContactMerge => Some(CloseSource::ContactMerge),
        },
    )
}

pub fn direction_to_proto(direction: Direction) -> pb::MessageDirection {
    match direction {
        Direction::Inbound => pb::MessageDirection::Inbound,
        Direction::Outbound => pb::MessageDirection::Outbound,
    }
}

pub fn parse_direction(field: &str, value: i32) -> Result<Direction, ApiError> {
    parse_enum(
        field,
        value,
        "direction",
        |proto: pb::MessageDirection| match proto {
            pb::MessageDirection::Unspecified => None,
            pb::MessageDirection::Inbound => Some(Direction::Inbound),
            pb::MessageDirection::Outbound => Some(Direction::Outbound),
        },
    )
}

pub fn author_kind_to_proto(kind: AuthorKind) -> pb::AuthorKind {
    match kind {
        AuthorKind::Contact => pb::AuthorKind::Contact,
        AuthorKind::User => pb::AuthorKind::User,
        AuthorKind::Bot => pb::AuthorKind::Bot,
        AuthorKind::AiAgent => pb::AuthorKind::AiAgent,
        AuthorKind::Workflow => pb::AuthorKind::Workflow,
        AuthorKind::Broadcast => pb::AuthorKind::Broadcast,
        AuthorKind::Api => pb::AuthorKind::Api,
        AuthorKind::Echo => pb::AuthorKind::Echo,
    }
}

pub fn parse_author_kind(field: &str, value: i32) -> Result<AuthorKind, ApiError> {
    parse_enum(
        field,
        value,
        "author kind",
        |proto: pb::AuthorKind| match proto {
            pb::AuthorKind::Unspecified => None,
            pb::AuthorKind::Contact => Some(AuthorKind::Contact),
            pb::AuthorKind::User => Some(AuthorKind::User),
            pb::AuthorKind::Bot => Some(AuthorKind::Bot),
            pb::AuthorKind::AiAgent => Some(AuthorKind::AiAgent),
            pb::AuthorKind::Workflow => Some(AuthorKind::Workflow),
            pb::AuthorKind::Broadcast => Some(AuthorKind::Broadcast),
            pb::AuthorKind::Api => Some(AuthorKind::Api),
            pb::AuthorKind::Echo => Some(AuthorKind::Echo),
        },
    )
}

pub fn counts_to_proto(counts: &MessageCounts) -> pb::MessageCounts {
    pb::MessageCounts {
        inbound_count: counts.inbound as i32,
        outbound_count: counts.outbound as i32,
        user_outbound_count: counts.user_outbound as i32,
        response_count: counts.responses as i32,
    }
}

/// A closing note from a close request: category and summary, empty meaning absent.
pub fn parse_closing_note(category: &str, summary: &str) -> Result<ClosingNote, ApiError> {
    let category = optional_text("category", category, 64)?;
    let summary = optional_text("summary", summary, 2048)?;
    Ok(ClosingNote {
        category: (!category.is_empty()).then_some(category),
        summary: (!summary.is_empty()).then_some(summary),
    })
}

/// A timestamp field, as an instant.
pub fn parse_time(
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Result<Option<SystemTime>, ApiError> {
    value
        .map(|timestamp| charla_runtime::clock::parse_timestamp(field, timestamp))
        .transpose()
}

/// The proto form of a conversation.
pub fn conversation_to_proto(c: &Conversation) -> pb::Conversation {
    let (status, closed_at, closed_by, closed_by_id, note) = match &c.status {
        ConversationStatus::Open => (
            pb::ConversationStatus::Open,
            None,
            None,
            String::new(),
            None,
        ),
        ConversationStatus::Closed {
            at,
            by,
            by_id,
            note,
        } => (
            pb::ConversationStatus::Closed,
            Some(to_timestamp(*at)),
            Some(close_source_to_proto(*by)),
            text(by_id.as_ref()),
            Some(pb::ClosingNote {
                category: note.category.clone().unwrap_or_default(),
                summary: note.summary.clone().unwrap_or_default(),
            }),
        ),
    };
    pb::Conversation {
        conversation_id: c.id.to_string(),
        workspace_id: c.workspace.to_string(),
        contact_id: c.contact.to_string(),
        channel: Some(channel_to_proto(&c.channel)),
        status: status as i32,
        opened_by: open_source_to_proto(c.opened_by) as i32,
        opened_by_id: text(c.opened_by_id.as_ref()),
        opened_at: Some(to_timestamp(c.opened_at)),
        closed_at,
        closed_by: closed_by.unwrap_or(pb::CloseSource::Unspecified) as i32,
        closed_by_id,
        closing_note: note,
        assignee_user_id: text(c.assignment.assignee.as_ref()),
        team_id: text(c.assignment.team.as_ref()),
        first_assigned_at: c.assignment.first_assigned_at.map(to_timestamp),
        last_assigned_at: c.assignment.last_assigned_at.map(to_timestamp),
        assignment_count: c.assignment.count as i32,
        first_response_at: c.first_response_at.map(to_timestamp),
        first_response_user_id: text(c.first_response_user.as_ref()),
        last_message_at: c.last_message_at.map(to_timestamp),
        last_inbound_message_at: c.last_inbound_at.map(to_timestamp),
        last_outbound_message_at: c.last_outbound_at.map(to_timestamp),
        auto_close_at: c.auto_close_at.map(to_timestamp),
        message_counts: Some(counts_to_proto(&c.counts)),
        external_id: text(c.external_id.as_ref()),
        imported: c.imported,
    }
}

fn policy_to_proto(policy: ClosingNotePolicy) -> pb::ClosingNotePolicy {
    match policy {
        ClosingNotePolicy::Disabled => pb::ClosingNotePolicy::Disabled,
        ClosingNotePolicy::Optional => pb::ClosingNotePolicy::Optional,
        ClosingNotePolicy::CategoryRequired => pb::ClosingNotePolicy::CategoryRequired,
        ClosingNotePolicy::CategoryAndSummaryRequired => {
            pb::ClosingNotePolicy::CategoryAndSummaryRequired
        }
    }
}

/// The proto form of a workspace's settings.
pub fn settings_to_proto(
    workspace: charla_runtime::workspace::WorkspaceId,
    settings: &WorkspaceSettings,
    updated_at: Option<SystemTime>,
) -> pb::WorkspaceSettings {
    pb::WorkspaceSettings {
        workspace_id: workspace.to_string(),
        closing_note_policy: policy_to_proto(settings.closing_note_policy) as i32,
        closing_categories: settings.closing_categories.clone(),
        auto_close_after: Some(duration(
            settings.auto_close.map(|a| a.after()).unwrap_or_default(),
        )),
        update_time: updated_at.map(to_timestamp),
    }
}

/// The settings after applying the fields of `update` named by `mask` to `current`.
pub fn apply_settings_update(
    current: &WorkspaceSettings,
    update: Option<&pb::WorkspaceSettings>,
    mask: Option<&prost_types::FieldMask>,
) -> Result<WorkspaceSettings, ApiError> {
    let update = update.ok_or_else(|| ApiError::invalid("settings", "is required"))?;
    let mask = mask.ok_or_else(|| ApiError::invalid("update_mask", "is required"))?;
    if mask.paths.is_empty() {
        return Err(ApiError::invalid(
            "update_mask",
            "must name at least one field",
        ));
    }
    let mut next = current.clone();
    for path in &mask.paths {
        match path.as_str() {
            "closing_note_policy" => {
                next.closing_note_policy = parse_enum(
                    "settings.closing_note_policy",
                    update.closing_note_policy,
                    "closing note policy",
                    |proto: pb::ClosingNotePolicy| match proto {
                        pb::ClosingNotePolicy::Unspecified => None,
                        pb::ClosingNotePolicy::Disabled => Some(ClosingNotePolicy::Disabled),
                        pb::ClosingNotePolicy::Optional => Some(ClosingNotePolicy::Optional),
                        pb::ClosingNotePolicy::CategoryRequired => {
                            Some(ClosingNotePolicy::CategoryRequired)
                        }
                        pb::ClosingNotePolicy::CategoryAndSummaryRequired => {
                            Some(ClosingNotePolicy::CategoryAndSummaryRequired)
                        }
                    },
                )?;
            }
            "closing_categories" => {
                next.closing_categories =
                    text_list("settings.closing_categories", &update.closing_categories)?
                        .into_iter()
                        .map(|c| c.trim().to_owned())
                        .collect();
            }
            "auto_close_after" => {
                let field = "settings.auto_close_after";
                let after = update.auto_close_after.unwrap_or_default();
                let after = charla_runtime::clock::parse_duration(field, &after)?;
                next.auto_close = if after.is_zero() {
                    None
                } else {
                    Some(AutoClose::new(after).map_err(|e| ApiError::invalid(field, e))?)
                };
            }
            other => {
                return Err(ApiError::invalid(
                    "update_mask",
                    format!(
                        "{} can't be updated; updatable fields: closing_note_policy, \
                         closing_categories, auto_close_after",
                        quote(other)
                    ),
                ));
            }
        }
    }
    Ok(next)
}

/// The fields AssignConversation's `update_mask` may name.
const ASSIGNABLE: &str = "assignee_user_id, team_id";

/// What an AssignConversation request does to the assignee user and to the team. Without a mask
/// (or with an empty one), a non-empty value sets its slot and an empty one keeps it, and at least
/// one value is required. With a mask, each named field is set to its value, or cleared when the
/// value is empty; fields the mask does not name are kept, whatever their value.
pub fn parse_assignment(
    request: &pb::AssignConversationRequest,
) -> Result<(AssignmentUpdate, AssignmentUpdate), ApiError> {
    let assignee = parse_actor("assignee_user_id", &request.assignee_user_id)?;
    let team = parse_actor("team_id", &request.team_id)?;
    let paths = request
        .update_mask
        .as_ref()
        .map(|mask| mask.paths.as_slice())
        .unwrap_or_default();
    if paths.is_empty() {
        if assignee.is_none() && team.is_none() {
            return Err(ApiError::invalid(
                "assignee_user_id",
                "an assignee user or a team is required (name a field in update_mask to clear it)",
            ));
        }
        let keep_or_set =
            |value: Option<ActorId>| value.map_or(AssignmentUpdate::Keep, AssignmentUpdate::Set);
        return Ok((keep_or_set(assignee), keep_or_set(team)));
    }
    let set_or_clear = |value: &Option<ActorId>| {
        value
            .clone()
            .map_or(AssignmentUpdate::Clear, AssignmentUpdate::Set)
    };
    let (mut assignee_update, mut team_update) = (AssignmentUpdate::Keep, AssignmentUpdate::Keep);
    for path in paths {
        match path.as_str() {
            "assignee_user_id" => assignee_update = set_or_clear(&assignee),
            "team_id" => team_update = set_or_clear(&team),
            "*" => {
                assignee_update = set_or_clear(&assignee);
                team_update = set_or_clear(&team);
            }
            other => {
                return Err(ApiError::invalid(
                    "update_mask",
                    format!(
                        "{} is not an assignment field; the mask may name {ASSIGNABLE} or *",
                        quote(other)
                    ),
                ));
            }
        }
    }
    Ok((assignee_update, team_update))
}
