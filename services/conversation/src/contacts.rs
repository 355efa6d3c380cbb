//! The contact service as this service sees it: can a conversation be opened for a contact? And
//! the contact event stream, which the merge consumer reads.

use std::collections::HashSet;
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
use tonic::metadata::errors::InvalidMetadataValue;

use crate::domain::{ContactId, ConversationError};

/// How many times a contact check is tried when a replica fails it without answering.
const MAX_ATTEMPTS: u32 = 3;
/// Ids one BatchGetContacts call takes at most (the contact API's limit).
const BATCH_GET_LIMIT: usize = 1000;

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

    /// The contacts among `contacts` that exist in the workspace (whatever their status), in
    /// one BatchGetContacts call per 1,000. A contact left out is missing or could not be checked
    /// now (the contact service is away, or older than BatchGetContacts during a rolling
    /// upgrade): a caller that must say which checks it with [`Self::ensure_exists`].
    pub async fn confirm_existing(
        &self,
        workspace: WorkspaceId,
        contacts: &[ContactId],
    ) -> HashSet<ContactId> {
        let mut found = HashSet::with_capacity(contacts.len());
        for chunk in contacts.chunks(BATCH_GET_LIMIT) {
            match self.batch_get(workspace, chunk).await {
                Ok(contacts) => found.extend(contacts),
                Err(status) => {
                    tracing::debug!(
                        code = ?status.code(),
                        message = status.message(),
                        "a batch of contacts could not be checked"
                    );
                }
            }
        }
        found
    }

    /// The contacts of one BatchGetContacts call, retried like [`Self::find`].
    async fn batch_get(
        &self,
        workspace: WorkspaceId,
        contacts: &[ContactId],
    ) -> Result<Vec<ContactId>, tonic::Status> {
        let header = workspace_header(workspace)
            .map_err(|_| tonic::Status::internal("a UUID is valid metadata"))?;
        let contact_ids: Vec<String> = contacts.iter().map(ToString::to_string).collect();
        let give_up_at = Instant::now() + self.deadline;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut request = tonic::Request::new(pb::BatchGetContactsRequest {
                contact_ids: contact_ids.clone(),
            });
            request.set_timeout(give_up_at.saturating_duration_since(Instant::now()));
            request
                .metadata_mut()
                .insert(WORKSPACE_HEADER, header.clone());
            let status = match self.client.clone().batch_get_contacts(request).await {
                Ok(response) => {
                    return Ok(response
                        .into_inner()
                        .contacts
                        .iter()
                        .filter_map(|contact| uuid::Uuid::parse_str(&contact.contact_id).ok())
                        .map(ContactId::from_uuid)
                        .collect());
                }
                Err(status) => status,
            };
            if !should_retry(&status, attempts, give_up_at) {
                return Err(status);
            }
        }
    }

    async fn find(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
    ) -> Result<pb::Contact, ApiError> {
        let header = workspace_header(workspace)
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
            if !should_retry(&status, attempts, give_up_at) {
                return Err(ApiError::Unavailable(format!(
                    "the contact service could not check contact {contact}: {}",
                    status.message()
                )));
            }
        }
    }
}

/// The `x-workspace-id` value naming `workspace`.
fn workspace_header(
    workspace: WorkspaceId,
) -> Result<tonic::metadata::MetadataValue<tonic::metadata::Ascii>, InvalidMetadataValue> {
    workspace.to_string().parse()
}

/// Whether a failed read of the contact service is tried again: a replica that died since the
/// last health check fails the call without an answer; the read is safe to repeat, and the
/// balancer likely picks another replica.
fn should_retry(status: &tonic::Status, attempts: u32, give_up_at: Instant) -> bool {
    status.code() == Code::Unavailable && attempts < MAX_ATTEMPTS && Instant::now() < give_up_at
}
