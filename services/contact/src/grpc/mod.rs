//! The ContactService gRPC handlers: each takes the workspace from the call, converts the request
//! into domain values, asks the store, and converts the answer back.

pub mod convert;
mod error;
mod import;

use std::time::Duration;

use charla_proto::charla::contact::v1 as pb;
use charla_proto::charla::contact::v1::contact_service_server::ContactService;
use charla_runtime::ApiError;
use charla_runtime::auth::{Role, authorize, authorize_service, stream_scope};
use charla_runtime::fair_share::stream_slot;
use charla_runtime::stream::{ResponseStream, stream_events, stream_info};
use charla_runtime::validate::{optional_id, page_size, page_token, required_id, text};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::domain::{ContactId, Email, Phone};
use crate::store::{ContactFilter, ContactStore};
use convert::{
    contact_to_proto, parse_identities, parse_identity, parse_profile, parse_update_mask,
};

/// The gRPC face of the contact service.
#[derive(Debug, Clone)]
pub struct ContactApi {
    store: ContactStore,
    shutdown: CancellationToken,
    request_timeout: Duration,
}

impl ContactApi {
    /// Handlers over `store`; streams and imports end when `shutdown` fires, and imports answer
    /// before `request_timeout` (the server's) cancels them.
    pub fn new(
        store: ContactStore,
        shutdown: CancellationToken,
        request_timeout: Duration,
    ) -> Self {
        Self {
            store,
            shutdown,
            request_timeout,
        }
    }
}

fn contact_id(field: &str, value: &str) -> Result<ContactId, ApiError> {
    required_id(field, value).map(ContactId::from_uuid)
}

/// Ids one BatchGetContacts call takes at most.
const MAX_BATCH_GET: usize = 1000;

/// The ids of a BatchGetContacts call, naming the first bad one.
fn contact_ids(values: &[String]) -> Result<Vec<ContactId>, ApiError> {
    if values.len() > MAX_BATCH_GET {
        return Err(ApiError::invalid(
            "contact_ids",
            format!(
                "has {} ids; a call takes at most {MAX_BATCH_GET}",
                values.len()
            ),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(index, value)| contact_id(&format!("contact_ids[{index}]"), value))
        .collect()
}

#[tonic::async_trait]
impl ContactService for ContactApi {
    async fn create_contact(
        &self,
        request: Request<pb::CreateContactRequest>,
    ) -> Result<Response<pb::CreateContactResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let contact = request
            .contact
            .ok_or_else(|| ApiError::invalid("contact", "is required"))?;
        let profile = parse_profile("contact", &contact)?;
        let identities = parse_identities("contact.identities", &contact.identities)?;
        let request_id = optional_id("request_id", &request.request_id)?;
        let created = self
            .store
            .create(workspace, profile, identities, request_id)
            .await?;
        Ok(Response::new(pb::CreateContactResponse {
            contact: Some(contact_to_proto(&created)),
        }))
    }

    async fn get_contact(
        &self,
        request: Request<pb::GetContactRequest>,
    ) -> Result<Response<pb::GetContactResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let id = contact_id("contact_id", &request.get_ref().contact_id)?;
        let contact = self.store.get(workspace, id).await?;
        Ok(Response::new(pb::GetContactResponse {
            contact: Some(contact_to_proto(&contact)),
        }))
    }

    async fn batch_get_contacts(
        &self,
        request: Request<pb::BatchGetContactsRequest>,
    ) -> Result<Response<pb::BatchGetContactsResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let ids = contact_ids(&request.get_ref().contact_ids)?;
        let contacts = self.store.get_many(workspace, &ids).await?;
        Ok(Response::new(pb::BatchGetContactsResponse {
            contacts: contacts.iter().map(contact_to_proto).collect(),
        }))
    }

    async fn update_contact(
        &self,
        request: Request<pb::UpdateContactRequest>,
    ) -> Result<Response<pb::UpdateContactResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let contact = request
            .contact
            .ok_or_else(|| ApiError::invalid("contact", "is required"))?;
        let id = contact_id("contact.contact_id", &contact.contact_id)?;
        let fields = parse_update_mask(request.update_mask.as_ref())?;
        let changes = parse_profile("contact", &contact)?;
        let updated = self.store.update(workspace, id, changes, &fields).await?;
        Ok(Response::new(pb::UpdateContactResponse {
            contact: Some(contact_to_proto(&updated)),
        }))
    }

    async fn delete_contact(
        &self,
        request: Request<pb::DeleteContactRequest>,
    ) -> Result<Response<pb::DeleteContactResponse>, Status> {
        let workspace = authorize(&request, Role::Admin)?;
        let id = contact_id("contact_id", &request.get_ref().contact_id)?;
        self.store.delete(workspace, id).await?;
        Ok(Response::new(pb::DeleteContactResponse {}))
    }

    async fn list_contacts(
        &self,
        request: Request<pb::ListContactsRequest>,
    ) -> Result<Response<pb::ListContactsResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let size = page_size(request.page_size)?;
        let after = page_token(&request.page_token)?.map(ContactId::from_uuid);
        let email = Email::parse(text("email", &request.email)?)
            .map_err(|e| ApiError::invalid("email", e))?;
        let phone = Phone::parse(text("phone", &request.phone)?)
            .map_err(|e| ApiError::invalid("phone", e))?;
        let filter = ContactFilter {
            name: charla_runtime::validate::optional_text("name", &request.name, 256)?,
            email: email.map(|e| e.as_str().to_owned()).unwrap_or_default(),
            phone: phone.map(|p| p.as_str().to_owned()).unwrap_or_default(),
            tag: charla_runtime::validate::optional_text("tag", &request.tag, 64)?,
        };
        let page = self.store.list(workspace, &filter, size, after).await?;
        Ok(Response::new(pb::ListContactsResponse {
            contacts: page.contacts.iter().map(contact_to_proto).collect(),
            next_page_token: page.next_after.map(|id| id.to_string()).unwrap_or_default(),
        }))
    }

    async fn add_channel_identity(
        &self,
        request: Request<pb::AddChannelIdentityRequest>,
    ) -> Result<Response<pb::AddChannelIdentityResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let id = contact_id("contact_id", &request.contact_id)?;
        let identity = parse_identity("identity", request.identity.as_ref())?;
        let contact = self.store.add_identity(workspace, id, identity).await?;
        Ok(Response::new(pb::AddChannelIdentityResponse {
            contact: Some(contact_to_proto(&contact)),
        }))
    }

    async fn remove_channel_identity(
        &self,
        request: Request<pb::RemoveChannelIdentityRequest>,
    ) -> Result<Response<pb::RemoveChannelIdentityResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let id = contact_id("contact_id", &request.contact_id)?;
        let identity = parse_identity("identity", request.identity.as_ref())?;
        let contact = self.store.remove_identity(workspace, id, identity).await?;
        Ok(Response::new(pb::RemoveChannelIdentityResponse {
            contact: Some(contact_to_proto(&contact)),
        }))
    }

    async fn resolve_contact(
        &self,
        request: Request<pb::ResolveContactRequest>,
    ) -> Result<Response<pb::ResolveContactResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let identity = parse_identity("identity", request.identity.as_ref())?;
        let profile = match &request.profile {
            Some(profile) => parse_profile("profile", profile)?,
            None => Default::default(),
        };
        let (contact, created) = self.store.resolve(workspace, identity, profile).await?;
        Ok(Response::new(pb::ResolveContactResponse {
            contact: Some(contact_to_proto(&contact)),
            created,
        }))
    }

    async fn block_contact(
        &self,
        request: Request<pb::BlockContactRequest>,
    ) -> Result<Response<pb::BlockContactResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let id = contact_id("contact_id", &request.get_ref().contact_id)?;
        let contact = self.store.set_blocked(workspace, id, true).await?;
        Ok(Response::new(pb::BlockContactResponse {
            contact: Some(contact_to_proto(&contact)),
        }))
    }

    async fn unblock_contact(
        &self,
        request: Request<pb::UnblockContactRequest>,
    ) -> Result<Response<pb::UnblockContactResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let id = contact_id("contact_id", &request.get_ref().contact_id)?;
        let contact = self.store.set_blocked(workspace, id, false).await?;
        Ok(Response::new(pb::UnblockContactResponse {
            contact: Some(contact_to_proto(&contact)),
        }))
    }

    async fn merge_contacts(
        &self,
        request: Request<pb::MergeContactsRequest>,
    ) -> Result<Response<pb::MergeContactsResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let primary = contact_id("primary_contact_id", &request.primary_contact_id)?;
        let secondary = contact_id("secondary_contact_id", &request.secondary_contact_id)?;
        let request_id = optional_id("request_id", &request.request_id)?;
        let merged = self
            .store
            .merge(workspace, primary, secondary, request_id)
            .await?;
        Ok(Response::new(pb::MergeContactsResponse {
            primary: Some(contact_to_proto(&merged.primary)),
            secondary: Some(contact_to_proto(&merged.secondary)),
            merge_position: merged
                .position
                .map(|(partition, sequence)| pb::PartitionCursor {
                    partition,
                    sequence,
                }),
        }))
    }

    async fn import_contacts(
        &self,
        request: Request<Streaming<pb::ImportContactsRequest>>,
    ) -> Result<Response<pb::ImportContactsResponse>, Status> {
        import::import_contacts(
            &self.store,
            request,
            self.shutdown.clone(),
            self.request_timeout,
        )
        .await
    }

    type StreamContactEventsStream = ResponseStream<pb::StreamContactEventsResponse>;

    async fn stream_contact_events(
        &self,
        request: Request<pb::StreamContactEventsRequest>,
    ) -> Result<Response<Self::StreamContactEventsStream>, Status> {
        let workspace = stream_scope(&request)?;
        let slot = stream_slot(&request)?;
        let request = request.into_inner();
        let stream = stream_events(
            self.store.events(),
            &request.partitions,
            &request.cursor,
            workspace,
            self.shutdown.clone(),
            |event: pb::ContactEvent, partition_head| pb::StreamContactEventsResponse {
                event: Some(event),
                partition_head,
            },
        )?;
        Ok(Response::new(slot.hold(stream)))
    }

    async fn get_contact_event_stream_info(
        &self,
        request: Request<pb::GetContactEventStreamInfoRequest>,
    ) -> Result<Response<pb::GetContactEventStreamInfoResponse>, Status> {
        authorize_service(&request)?;
        let (partition_count, heads) = stream_info(self.store.events()).await?;
        Ok(Response::new(pb::GetContactEventStreamInfoResponse {
            partition_count,
            heads,
        }))
    }
}
