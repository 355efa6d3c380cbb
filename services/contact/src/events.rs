//! The contact service's events: how a change becomes a `ContactEvent` in the event log.

use std::time::SystemTime;

use charla_proto::charla::contact::v1 as pb;
use charla_runtime::clock::to_timestamp;
use charla_runtime::event_log::EventPosition;
use charla_runtime::workspace::WorkspaceId;
use prost::Message;

use crate::domain::{Contact, ContactId};
use crate::grpc::convert::contact_to_proto;

/// A change to a contact, as its event records it.
#[derive(Debug, Clone)]
pub enum ContactChange {
    Created(Contact),
    Updated(Contact),
    Deleted,
    Blocked,
    Unblocked,
    Merged {
        primary: ContactId,
        secondary: ContactId,
    },
}

/// The encoded `ContactEvent` recording `change` at `position`.
pub fn encode(
    position: EventPosition,
    workspace: WorkspaceId,
    contact: ContactId,
    occurred_at: SystemTime,
    change: ContactChange,
) -> Vec<u8> {
    use pb::contact_event::Payload;
    let payload = match change {
        ContactChange::Created(contact) => Payload::Created(pb::ContactCreated {
            contact: Some(contact_to_proto(&contact)),
        }),
        ContactChange::Updated(contact) => Payload::Updated(pb::ContactUpdated {
            contact: Some(contact_to_proto(&contact)),
        }),
        ContactChange::Deleted => Payload::Deleted(pb::ContactDeleted {}),
        ContactChange::Blocked => Payload::Blocked(pb::ContactBlocked {}),
        ContactChange::Unblocked => Payload::Unblocked(pb::ContactUnblocked {}),
        ContactChange::Merged { primary, secondary } => Payload::Merged(pb::ContactsMerged {
            primary_contact_id: primary.to_string(),
            secondary_contact_id: secondary.to_string(),
        }),
    };
    pb::ContactEvent {
        event_id: position.event_id.to_string(),
        partition: position.partition,
        sequence: position.sequence,
        workspace_id: workspace.to_string(),
        contact_id: contact.to_string(),
        occurred_at: Some(to_timestamp(occurred_at)),
        trace_parent: charla_runtime::telemetry::current_trace_parent(),
        payload: Some(payload),
    }
    .encode_to_vec()
}
