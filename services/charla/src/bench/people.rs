//! The bench's workspaces and their contacts, made through the contact service's public API.

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_proto::charla::conversation::v1 as pb;
use charla_runtime::workspace::WorkspaceId;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use super::drive::drive;
use super::fleet::{Fleet, authed};

/// The channel every bench message goes through.
pub fn channel() -> pb::Channel {
    pb::Channel {
        channel_type: contact_pb::ChannelType::Whatsapp as i32,
        channel_id: "bench".into(),
    }
}

/// A workspace of the run, and an admin's credentials for it.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub bearer: MetadataValue<Ascii>,
}

impl Workspace {
    pub fn new(fleet: &Fleet) -> Result<Self, String> {
        let id = WorkspaceId::new(uuid::Uuid::now_v7());
        Ok(Self {
            id,
            bearer: fleet.admin(id)?,
        })
    }

    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        authed(&self.bearer, message)
    }
}

/// Makes `count` contacts in `workspace` (16 calls at a time) and returns their ids, in order.
pub async fn contacts(
    contact: Channel,
    workspace: &Workspace,
    label: &str,
    count: usize,
) -> Result<Vec<String>, String> {
    let ids = std::sync::Arc::new(std::sync::Mutex::new(vec![String::new(); count]));
    let (filled, workspace, label) = (ids.clone(), workspace.clone(), label.to_owned());
    drive(16, count, move |_, index| {
        let mut client = ContactServiceClient::new(contact.clone());
        let request = workspace.request(contact_pb::ResolveContactRequest {
            identity: Some(contact_pb::ChannelIdentity {
                channel_type: contact_pb::ChannelType::Whatsapp as i32,
                channel_id: "bench".into(),
                external_id: format!("{label}-{index}"),
            }),
            profile: None,
        });
        let filled = filled.clone();
        async move {
            let resolved = client
                .resolve_contact(request)
                .await
                .map_err(|s| format!("ResolveContact failed: {}", s.message()))?
                .into_inner();
            let id = resolved.contact.unwrap_or_default().contact_id;
            if let Ok(mut ids) = filled.lock() {
                ids[index] = id;
            }
            Ok(())
        }
    })
    .await?;
    let ids = ids.lock().map_err(|_| "a contact call panicked")?.clone();
    Ok(ids)
}

/// An inbound message from `contact` (attaches to its open conversation or opens one).
pub fn inbound(contact: &str, message_id: String) -> pb::RecordMessageRequest {
    pb::RecordMessageRequest {
        message_id,
        contact_id: contact.to_owned(),
        channel: Some(channel()),
        direction: pb::MessageDirection::Inbound as i32,
        author_kind: pb::AuthorKind::Contact as i32,
        author_id: String::new(),
        sent_at: None,
    }
}
