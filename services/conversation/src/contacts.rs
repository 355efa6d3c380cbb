//! The contact service as this service sees it: can a conversation be opened for a contact? And
//! the contact event stream, which the merge consumer reads.

use std::time::{Duration, Instant};

use charla_proto::charla::contact::v1 as pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_runtime::ApiError;
use charla_runtime::auth::credential::{AuthenticatedChannel, ServiceCredential};
use charla_runtime::peers::{PeerUrlError, balanced_channel};
use charla_runtime::tls::PeerTls;
use charla_runtime::workspace::{WORKSPACE_HEADER, WorkspaceId};
use tokio_util::sync::CancellationToken;
use tonic::Code;

use crate::domain::{ContactId, ConversationError};

/// How many times a contact check is tried when a replica fails it without answering.
const MAX_ATTEMPTS: u32 = 3;

/// A client of the contact service, with a deadline on every check.
#[derive(Debug, Clone)]
pub struct ContactDirectory {
    client: ContactServiceClient<AuthenticatedChannel>,
    deadline: Duration,
}

impl ContactDirectory {
    /// A client of the contact service at `urls` (see `charla_runtime::peers`), balanced over its
    /// replicas, presenting `credential`; it connects on first use, so this service starts even
    /// while the contact service is away.
    pub fn connect_lazy(
        urls: &str,
        credential: ServiceCredential,
        deadline: Duration,
        tls: &PeerTls,
        shutdown: CancellationToken,
    ) -> Result<Self, PeerUrlError> {
        let channel = balanced_channel(urls, deadline, tls, shutdown)?;
        Ok(Self {
            client: ContactServiceClient::with_interceptor(channel, credential),
            deadline,
        })
    }

    /// How far the contact event stream is (partition count, each partition's last sequence);
    /// `None` when the contact service can't say now.
    pub async fn stream_heads(&self) -> Option<charla_runtime::applied::StreamHeads> {
        let mut request = tonic::Request::new(pb::GetContactEventStreamInfoRequest {});
        request.set_timeout(self.deadline);
        let info = self
            .client
            .clone()
            .get_contact_event_stream_info(request)
            .await
            .ok()?
            .into_inner();
        let heads = info
            .heads
            .iter()
            .map(|head| (head.partition, head.sequence))
            .collect();
        Some((info.partition_count, heads))
    }

    /// The underlying client, for streams.
    pub fn client(&self) -> ContactServiceClient<AuthenticatedChannel> {
        self.client.clone()
    }

    /// Checks that a conversation may be opened for the contact: it exists in the workspace, is
    /// not blocked and was not merged. UNAVAILABLE when the contact service can't answer in time.
    pub async fn ensure_can_open(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
    ) -> Result<(), ApiError> {
        let found = self.find(workspace, contact).await?;
        match pb::ContactStatus::try_from(found.status) {
            Ok(pb::ContactStatus::Blocked) => {
                Err(ConversationError::ContactBlocked(contact).into())
            }
            Ok(pb::ContactStatus::Merged) => {
                let into = uuid::Uuid::parse_str(&found.merged_into_contact_id)
                    .map(ContactId::from_uuid)
                    .map_err(|_| ApiError::Internal("merged contact without primary".into()))?;
                Err(ConversationError::ContactMerged { contact, into }.into())
            }
            _ => Ok(()),
        }
    }

    /// Checks that the contact exists in the workspace (whatever its status: history may
    /// belong to a contact blocked or merged since).
    pub async fn ensure_exists(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
    ) -> Result<(), ApiError> {
        self.find(workspace, contact).await.map(drop)
    }

    async fn find(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
    ) -> Result<pb::Contact, ApiError> {
        let header: tonic::metadata::MetadataValue<_> = workspace
            .to_string()
            .parse()
            .map_err(|_| ApiError::Internal("a UUID is valid metadata".into()))?;
        let give_up_at = Instant::now() + self.deadline;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut request = tonic::Request::new(pb::GetContactRequest {
                contact_id: contact.to_string(),
            });
            request.set_timeout(give_up_at.saturating_duration_since(Instant::now()));
            request
                .metadata_mut()
                .insert(WORKSPACE_HEADER, header.clone());
            let status = match self.client.clone().get_contact(request).await {
                Ok(response) => return Ok(response.into_inner().contact.unwrap_or_default()),
                Err(status) if status.code() == Code::NotFound => {
                    return Err(ConversationError::ContactNotFound(contact).into());
                }
                Err(status) => status,
            };
            // A replica that died since the last health check fails the call without an
            // answer: the read is safe to repeat, and the balancer likely picks another.
            let retry = status.code() == Code::Unavailable
                && attempts < MAX_ATTEMPTS
                && Instant::now() < give_up_at;
            if !retry {
                return Err(ApiError::Unavailable(format!(
                    "the contact service could not check contact {contact}: {}",
                    status.message()
                )));
            }
        }
    }
}
