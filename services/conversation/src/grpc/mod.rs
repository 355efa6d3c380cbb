//! The ConversationService gRPC handlers: each takes the workspace from the call, converts the
//! request into domain values, asks the store, and converts the answer back.

pub mod convert;
mod error;
mod import;

use std::time::Duration;

use charla_proto::charla::contact::v1::PartitionCursor;
use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::conversation_service_server::ConversationService;
use charla_runtime::ApiError;
use charla_runtime::applied::{self, AppliedPositions};
use charla_runtime::auth::{Role, authorize, authorize_service, stream_scope};
use charla_runtime::channel::ChannelType;
use charla_runtime::consumer::ConsumerCursor;
use charla_runtime::event_log::EventPosition;
use charla_runtime::fair_share::stream_slot;
use charla_runtime::stream::{LoggedEvent, ResponseStream, stream_events, stream_info};
use charla_runtime::validate::{optional_id, optional_text, page_size, page_token, required_id};
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::contacts::ContactDirectory;
use crate::domain::{ContactId, ConversationError, ConversationId, Message, OpenSource};
use crate::store::{ConversationFilter, ConversationStore, OpenRequest};
use convert::{
    apply_settings_update, conversation_to_proto, parse_actor, parse_assignment, parse_author_kind,
    parse_channel, parse_close_source, parse_closing_note, parse_direction, parse_message_id,
    parse_open_source, parse_time, settings_to_proto,
};

/// The gRPC face of the conversation service.
#[derive(Debug, Clone)]
pub struct ConversationApi {
    store: ConversationStore,
    contacts: ContactDirectory,
    contact_events: ContactEvents,
    shutdown: CancellationToken,
    request_timeout: Duration,
}

/// How far this service has applied the contact event stream: what reads with
/// `min_contact_positions` wait on.
#[derive(Debug, Clone)]
pub struct ContactEvents {
    /// The contact consumer's stored cursor (every replica's progress).
    pub cursor: ConsumerCursor,
    /// This process's consumer, publishing each position it applies.
    pub applied: AppliedPositions,
}

impl ConversationApi {
    /// Handlers over `store`, checking contacts with `contacts`; reads wait on `contact_events`;
    /// streams and imports end at `shutdown`, and imports and waits answer before
    /// `request_timeout` (the server's) cancels them.
    pub fn new(
        store: ConversationStore,
        contacts: ContactDirectory,
        contact_events: ContactEvents,
        shutdown: CancellationToken,
        request_timeout: Duration,
    ) -> Self {
        Self {
            store,
            contacts,
            contact_events,
            shutdown,
            request_timeout,
        }
    }

    /// The event position a write answers: the event it wrote, or, when it wrote none (a retry,
    /// or nothing to change), the conversation's latest event, which every earlier effect
    /// precedes.
    async fn position(
        &self,
        conversation: &crate::domain::Conversation,
        written: Option<EventPosition>,
    ) -> Result<Option<PartitionCursor>, ApiError> {
        let position = match written {
            Some(written) => Some((written.partition, written.sequence)),
            None => {
                self.store
                    .latest_position(conversation.workspace, conversation.id)
                    .await?
            }
        };
        Ok(position.map(|(partition, sequence)| PartitionCursor {
            partition,
            sequence,
        }))
    }

    /// Waits until the contact consumer has applied `wanted` (a read's `min_contact_positions`),
    /// within the call's deadline; see `charla_runtime::applied`.
    async fn wait_for_contact_events(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        wanted: &[PartitionCursor],
    ) -> Result<(), ApiError> {
        const FIELD: &str = "min_contact_positions";
        let wanted = applied::parse_min_positions(FIELD, wanted)?;
        if wanted.is_empty() {
            return Ok(());
        }
        applied::wait_until_applied(
            FIELD,
            &self.contact_events.cursor,
            self.contact_events.applied.subscribe(),
            &wanted,
            applied::wait_budget(metadata, self.request_timeout),
            self.contacts.stream_heads(),
        )
        .await?;
        Ok(())
    }
}

fn contact_id(field: &str, value: &str) -> Result<ContactId, ApiError> {
    required_id(field, value).map(ContactId::from_uuid)
}

fn conversation_id(field: &str, value: &str) -> Result<ConversationId, ApiError> {
    required_id(field, value).map(ConversationId::from_uuid)
}

/// The workspace sequence a ListConversationEvents page token continues after (0 for none).
fn event_page_token(token: &str) -> Result<u64, ApiError> {
    if token.is_empty() {
        return Ok(0);
    }
    token
        .strip_prefix('e')
        .and_then(|digits| digits.parse::<u64>().ok())
        .filter(|after| *after <= i64::MAX as u64)
        .ok_or_else(|| {
            ApiError::invalid(
                "page_token",
                "is not a token this call gave; pass next_page_token as it came",
            )
        })
}

fn reply(conversation: &crate::domain::Conversation) -> Option<pb::Conversation> {
    Some(conversation_to_proto(conversation))
}

#[tonic::async_trait]
impl ConversationService for ConversationApi {
    async fn open_conversation(
        &self,
        request: Request<pb::OpenConversationRequest>,
    ) -> Result<Response<pb::OpenConversationResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let source = parse_open_source("source", request.source)?;
        if !matches!(
            source,
            OpenSource::User | OpenSource::Workflow | OpenSource::Api
        ) {
            return Err(ApiError::invalid(
                "source",
                "must be USER, WORKFLOW or API (inbound messages and welcome events have their own calls)",
            )
            .into());
        }
        let open = OpenRequest {
            contact: contact_id("contact_id", &request.contact_id)?,
            channel: parse_channel("channel", request.channel.as_ref())?,
            source,
            actor: parse_actor("actor_id", &request.actor_id)?,
            request_id: optional_id("request_id", &request.request_id)?,
        };
        let (conversation, opened, written) =
            self.store.open(workspace, open, &self.contacts).await?;
        Ok(Response::new(pb::OpenConversationResponse {
            event_position: self.position(&conversation, written).await?,
            conversation: reply(&conversation),
            opened,
        }))
    }

    async fn close_conversation(
        &self,
        request: Request<pb::CloseConversationRequest>,
    ) -> Result<Response<pb::CloseConversationResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let id = conversation_id("conversation_id", &request.conversation_id)?;
        let source = parse_close_source("source", request.source)?;
        if source.is_automatic() {
            return Err(ApiError::invalid(
                "source",
                "AUTO_CLOSE and CONTACT_MERGE closes are made by charla itself",
            )
            .into());
        }
        let actor = parse_actor("actor_id", &request.actor_id)?;
        let note = parse_closing_note(&request.category, &request.summary)?;
        let request_id = optional_id("request_id", &request.request_id)?;
        let (conversation, written) = self
            .store
            .close(workspace, id, source, actor, note, request_id)
            .await?;
        Ok(Response::new(pb::CloseConversationResponse {
            event_position: self.position(&conversation, written).await?,
            conversation: reply(&conversation),
        }))
    }

    async fn record_message(
        &self,
        request: Request<pb::RecordMessageRequest>,
    ) -> Result<Response<pb::RecordMessageResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let contact = contact_id("contact_id", &request.contact_id)?;
        let channel = parse_channel("channel", request.channel.as_ref())?;
        let direction = parse_direction("direction", request.direction)?;
        let author_kind = parse_author_kind("author_kind", request.author_kind)?;
        if !author_kind.writes(direction) {
            return Err(ApiError::invalid(
                "author_kind",
                "contacts write inbound messages; every other author writes outbound ones",
            )
            .into());
        }
        let message = Message {
            id: parse_message_id("message_id", &request.message_id)?,
            direction,
            author_kind,
            author_id: parse_actor("author_id", &request.author_id)?,
            sent_at: parse_time("sent_at", request.sent_at.as_ref())?,
        };
        let recorded = self
            .store
            .record_message(workspace, contact, channel, message, &self.contacts)
            .await?;
        let event_position = match &recorded.conversation {
            Some(conversation) => self.position(conversation, recorded.position).await?,
            None => None,
        };
        Ok(Response::new(pb::RecordMessageResponse {
            conversation: recorded.conversation.as_ref().map(conversation_to_proto),
            recorded: recorded.recorded,
            opened_conversation: recorded.opened,
            event_position,
        }))
    }

    async fn handle_welcome_event(
        &self,
        request: Request<pb::HandleWelcomeEventRequest>,
    ) -> Result<Response<pb::HandleWelcomeEventResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let contact = contact_id("contact_id", &request.contact_id)?;
        let channel = parse_channel("channel", request.channel.as_ref())?;
        if !channel.channel_type.has_welcome_events() {
            return Err(
                ApiError::from(ConversationError::NoWelcomeEvents(channel.channel_type)).into(),
            );
        }
        let open = OpenRequest {
            contact,
            channel,
            source: OpenSource::WelcomeEvent,
            actor: None,
            request_id: None,
        };
        let (conversation, opened, written) =
            self.store.open(workspace, open, &self.contacts).await?;
        Ok(Response::new(pb::HandleWelcomeEventResponse {
            event_position: self.position(&conversation, written).await?,
            conversation: reply(&conversation),
            opened,
        }))
    }

    async fn assign_conversation(
        &self,
        request: Request<pb::AssignConversationRequest>,
    ) -> Result<Response<pb::AssignConversationResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let id = conversation_id("conversation_id", &request.conversation_id)?;
        let (assignee, team) = parse_assignment(&request)?;
        let actor = parse_actor("actor_id", &request.actor_id)?;
        // Assigning is idempotent by value (a retry assigns what is already assigned and changes
        // nothing), so the key only needs to be well-formed.
        optional_id("request_id", &request.request_id)?;
        let (conversation, written) = self
            .store
            .assign(workspace, id, assignee, team, actor)
            .await?;
        Ok(Response::new(pb::AssignConversationResponse {
            event_position: self.position(&conversation, written).await?,
            conversation: reply(&conversation),
        }))
    }

    async fn unassign_conversation(
        &self,
        request: Request<pb::UnassignConversationRequest>,
    ) -> Result<Response<pb::UnassignConversationResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let id = conversation_id("conversation_id", &request.conversation_id)?;
        if !request.clear_assignee_user && !request.clear_team {
            return Err(ApiError::invalid(
                "clear_assignee_user",
                "say what to clear: clear_assignee_user, clear_team or both",
            )
            .into());
        }
        let actor = parse_actor("actor_id", &request.actor_id)?;
        let (conversation, written) = self
            .store
            .unassign(
                workspace,
                id,
                request.clear_assignee_user,
                request.clear_team,
                actor,
            )
            .await?;
        Ok(Response::new(pb::UnassignConversationResponse {
            event_position: self.position(&conversation, written).await?,
            conversation: reply(&conversation),
        }))
    }

    async fn get_conversation(
        &self,
        request: Request<pb::GetConversationRequest>,
    ) -> Result<Response<pb::GetConversationResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let id = conversation_id("conversation_id", &request.get_ref().conversation_id)?;
        let conversation = self.store.get(workspace, id).await?;
        Ok(Response::new(pb::GetConversationResponse {
            conversation: reply(&conversation),
        }))
    }

    async fn get_open_conversation(
        &self,
        request: Request<pb::GetOpenConversationRequest>,
    ) -> Result<Response<pb::GetOpenConversationResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let contact = contact_id("contact_id", &request.get_ref().contact_id)?;
        self.wait_for_contact_events(request.metadata(), &request.get_ref().min_contact_positions)
            .await?;
        let conversation = match self.store.get_open(workspace, contact).await? {
            Some(open) => reply(&open),
            // Nothing open: unset for a contact the contact service knows (whatever its status),
            // NOT_FOUND for one it doesn't, so a client can tell the two apart.
            None => {
                self.contacts.ensure_exists(workspace, contact).await?;
                None
            }
        };
        Ok(Response::new(pb::GetOpenConversationResponse {
            conversation,
        }))
    }

    async fn list_conversations(
        &self,
        request: Request<pb::ListConversationsRequest>,
    ) -> Result<Response<pb::ListConversationsResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let metadata = request.metadata().clone();
        let request = request.into_inner();
        let size = page_size(request.page_size)?;
        let after = page_token(&request.page_token)?.map(ConversationId::from_uuid);
        let open = match pb::ConversationStatus::try_from(request.status) {
            Ok(pb::ConversationStatus::Unspecified) => None,
            Ok(pb::ConversationStatus::Open) => Some(true),
            Ok(pb::ConversationStatus::Closed) => Some(false),
            Err(_) => {
                return Err(ApiError::invalid(
                    "status",
                    format!("unknown status {}", request.status),
                )
                .into());
            }
        };
        let channel_id = optional_text("channel_id", &request.channel_id, 128)?;
        let filter = ConversationFilter {
            contact: optional_id("contact_id", &request.contact_id)?.map(ContactId::from_uuid),
            open,
            assignee: parse_actor("assignee_user_id", &request.assignee_user_id)?,
            team: parse_actor("team_id", &request.team_id)?,
            channel_type: ChannelType::parse_optional("channel_type", request.channel_type)?,
            channel_id: (!channel_id.is_empty()).then_some(channel_id),
            opened_after: parse_time("opened_after", request.opened_after.as_ref())?,
            opened_before: parse_time("opened_before", request.opened_before.as_ref())?,
        };
        if let (Some(after), Some(before)) = (filter.opened_after, filter.opened_before)
            && before < after
        {
            return Err(
                ApiError::invalid("opened_before", "must not be before opened_after").into(),
            );
        }
        self.wait_for_contact_events(&metadata, &request.min_contact_positions)
            .await?;
        let page = self.store.list(workspace, &filter, size, after).await?;
        Ok(Response::new(pb::ListConversationsResponse {
            conversations: page
                .conversations
                .iter()
                .map(conversation_to_proto)
                .collect(),
            next_page_token: page.next_after.map(|id| id.to_string()).unwrap_or_default(),
        }))
    }

    async fn list_conversation_events(
        &self,
        request: Request<pb::ListConversationEventsRequest>,
    ) -> Result<Response<pb::ListConversationEventsResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let request = request.into_inner();
        let id = conversation_id("conversation_id", &request.conversation_id)?;
        let size = page_size(request.page_size)?;
        let after = event_page_token(&request.page_token)?;
        let page = self
            .store
            .conversation_events(workspace, id, after, size as usize)
            .await?;
        let events = page
            .events
            .iter()
            .map(|stored| {
                let mut event = pb::ConversationEvent::decode(stored.payload.as_slice())
                    .map_err(|e| ApiError::Internal(format!("stored event is unreadable: {e}")))?;
                event.set_position(stored.partition, stored.sequence);
                Ok(event)
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(Response::new(pb::ListConversationEventsResponse {
            events,
            next_page_token: page
                .next_after
                .map(|after| format!("e{after}"))
                .unwrap_or_default(),
        }))
    }

    async fn get_workspace_settings(
        &self,
        request: Request<pb::GetWorkspaceSettingsRequest>,
    ) -> Result<Response<pb::GetWorkspaceSettingsResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?;
        let (settings, updated_at) = self.store.settings(workspace).await?;
        Ok(Response::new(pb::GetWorkspaceSettingsResponse {
            settings: Some(settings_to_proto(workspace, &settings, updated_at)),
        }))
    }

    async fn update_workspace_settings(
        &self,
        request: Request<pb::UpdateWorkspaceSettingsRequest>,
    ) -> Result<Response<pb::UpdateWorkspaceSettingsResponse>, Status> {
        let workspace = authorize(&request, Role::Admin)?;
        let request = request.into_inner();
        let (next, updated_at) = self
            .store
            .update_settings(workspace, |current| {
                apply_settings_update(
                    current,
                    request.settings.as_ref(),
                    request.update_mask.as_ref(),
                )
            })
            .await?;
        Ok(Response::new(pb::UpdateWorkspaceSettingsResponse {
            settings: Some(settings_to_proto(workspace, &next, Some(updated_at))),
        }))
    }

    async fn import_conversations(
        &self,
        request: Request<Streaming<pb::ImportConversationsRequest>>,
    ) -> Result<Response<pb::ImportConversationsResponse>, Status> {
        import::import_conversations(
            &self.store,
            &self.contacts,
            request,
            self.shutdown.clone(),
            self.request_timeout,
        )
        .await
    }

    type StreamConversationEventsStream = ResponseStream<pb::StreamConversationEventsResponse>;

    async fn stream_conversation_events(
        &self,
        request: Request<pb::StreamConversationEventsRequest>,
    ) -> Result<Response<Self::StreamConversationEventsStream>, Status> {
        let workspace = stream_scope(&request)?;
        let slot = stream_slot(&request)?;
        let request = request.into_inner();
        let stream = stream_events(
            self.store.events(),
            &request.partitions,
            &request.cursor,
            workspace,
            self.shutdown.clone(),
            |event: pb::ConversationEvent, partition_head| pb::StreamConversationEventsResponse {
                event: Some(event),
                partition_head,
            },
        )?;
        Ok(Response::new(slot.hold(stream)))
    }

    async fn get_conversation_event_stream_info(
        &self,
        request: Request<pb::GetConversationEventStreamInfoRequest>,
    ) -> Result<Response<pb::GetConversationEventStreamInfoResponse>, Status> {
        authorize_service(&request)?;
        let (partition_count, heads) = stream_info(self.store.events()).await?;
        Ok(Response::new(pb::GetConversationEventStreamInfoResponse {
            partition_count,
            heads,
        }))
    }
}
