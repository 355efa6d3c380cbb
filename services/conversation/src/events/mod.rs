//! The conversation service's events: how a change becomes a `ConversationEvent` in the event log,
//! and the consumer of the contact service's events.

pub mod contact_consumer;

use std::time::{Duration, SystemTime};

use charla_proto::charla::conversation::v1 as pb;
use charla_runtime::clock::to_timestamp;
use charla_runtime::event_log::EventPosition;
use prost::Message as _;

use crate::domain::{AssignmentChange, Conversation, ConversationStatus, Message, MessageEffect};
use crate::grpc::convert::{
    author_kind_to_proto, channel_to_proto, close_source_to_proto, counts_to_proto,
    direction_to_proto, open_source_to_proto, text,
};

/// A change to a conversation, as its event records it.
#[derive(Debug, Clone)]
pub enum ConversationChange<'a> {
    Opened,
    Closed,
    Assigned {
        change: AssignmentChange,
        actor: Option<String>,
    },
    Unassigned {
        change: AssignmentChange,
        actor: Option<String>,
    },
    MessageRecorded {
        message: &'a Message,
        effect: MessageEffect,
        opened_conversation: bool,
    },
}

fn duration(value: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(value).unwrap_or_default()
}

/// The encoded `ConversationEvent` recording `change` to `conversation` at `position`.
pub fn encode(
    position: EventPosition,
    conversation: &Conversation,
    occurred_at: SystemTime,
    change: ConversationChange<'_>,
) -> Vec<u8> {
    use pb::conversation_event::Payload;
    let c = conversation;
    let channel = Some(channel_to_proto(&c.channel));
    let payload = match change {
        ConversationChange::Opened => Payload::Opened(pb::ConversationOpened {
            channel,
            opened_by: open_source_to_proto(c.opened_by) as i32,
            opened_by_id: text(c.opened_by_id.as_ref()),
            opened_at: Some(to_timestamp(c.opened_at)),
            external_id: text(c.external_id.as_ref()),
        }),
        ConversationChange::Closed => {
            let ConversationStatus::Closed {
                at,
                by,
                by_id,
                note,
            } = &c.status
            else {
                unreachable!("a Closed event is written for a closed conversation");
            };
            Payload::Closed(pb::ConversationClosed {
                channel,
                opened_by: open_source_to_proto(c.opened_by) as i32,
                opened_by_id: text(c.opened_by_id.as_ref()),
                opened_at: Some(to_timestamp(c.opened_at)),
                closed_by: close_source_to_proto(*by) as i32,
                closed_by_id: text(by_id.as_ref()),
                closed_at: Some(to_timestamp(*at)),
                resolution_time: c.resolution_time().map(duration),
                assignee_user_id: text(c.assignment.assignee.as_ref()),
                team_id: text(c.assignment.team.as_ref()),
                closing_category: note.category.clone().unwrap_or_default(),
                closing_summary: note.summary.clone().unwrap_or_default(),
                first_response_at: c.first_response_at.map(to_timestamp),
                first_response_time: c.first_response_time().map(duration),
                first_response_user_id: text(c.first_response_user.as_ref()),
                response_times: c.response_times.iter().copied().map(duration).collect(),
                // One per response, or none when the earlier ones predate it.
                response_started_at: if c.response_started_at.len() == c.response_times.len() {
                    c.response_started_at
                        .iter()
                        .copied()
                        .map(to_timestamp)
                        .collect()
                } else {
                    Vec::new()
                },
                first_assignee_user_id: text(c.assignment.first_assignee.as_ref()),
                first_assigned_at: c.assignment.first_assigned_at.map(to_timestamp),
                time_to_first_assignment: c.time_to_first_assignment().map(duration),
                last_assigned_at: c.assignment.last_assigned_at.map(to_timestamp),
                last_assignee_user_id: text(c.assignment.last_assignee.as_ref()),
                assignment_count: c.assignment.count as i32,
                message_counts: Some(counts_to_proto(&c.counts)),
                external_id: text(c.external_id.as_ref()),
                first_automated_message_at: c
                    .first_automated
                    .as_ref()
                    .map(|reply| to_timestamp(reply.at)),
                first_automated_author_kind: c
                    .first_automated
                    .as_ref()
                    .map_or(pb::AuthorKind::Unspecified, |reply| {
                        author_kind_to_proto(reply.author_kind)
                    }) as i32,
                first_automated_author_id: text(
                    c.first_automated
                        .as_ref()
                        .and_then(|reply| reply.author.as_ref()),
                ),
            })
        }
        ConversationChange::Assigned { change, actor } => {
            Payload::Assigned(pb::ConversationAssigned {
                previous_assignee_user_id: text(change.previous_assignee.as_ref()),
                previous_team_id: text(change.previous_team.as_ref()),
                assignee_user_id: text(c.assignment.assignee.as_ref()),
                team_id: text(c.assignment.team.as_ref()),
                actor_id: actor.unwrap_or_default(),
                assignment_count: c.assignment.count as i32,
            })
        }
        ConversationChange::Unassigned { change, actor } => {
            Payload::Unassigned(pb::ConversationUnassigned {
                previous_assignee_user_id: text(change.previous_assignee.as_ref()),
                previous_team_id: text(change.previous_team.as_ref()),
                assignee_user_id: text(c.assignment.assignee.as_ref()),
                team_id: text(c.assignment.team.as_ref()),
                actor_id: actor.unwrap_or_default(),
            })
        }
        ConversationChange::MessageRecorded {
            message,
            effect,
            opened_conversation,
        } => Payload::MessageRecorded(pb::MessageRecorded {
            message_id: message.id.to_string(),
            channel,
            direction: direction_to_proto(message.direction) as i32,
            author_kind: author_kind_to_proto(message.author_kind) as i32,
            author_id: text(message.author_id.as_ref()),
            sent_at: message.sent_at.map(to_timestamp),
            opened_conversation,
            first_response: effect.first_response,
            response_time: effect.response_time.map(duration),
            auto_close_at: c.auto_close_at.map(to_timestamp),
        }),
    };
    pb::ConversationEvent {
        event_id: position.event_id.to_string(),
        partition: position.partition,
        sequence: position.sequence,
        workspace_id: c.workspace.to_string(),
        conversation_id: c.id.to_string(),
        contact_id: c.contact.to_string(),
        occurred_at: Some(to_timestamp(occurred_at)),
        imported: c.imported,
        trace_parent: charla_runtime::telemetry::current_trace_parent(),
        payload: Some(payload),
    }
    .encode_to_vec()
}
