//! Starting the contact and conversation services for a test, and the calls tests repeat.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_runtime::clock::ManualClock;
use charla_runtime::config::RuntimeConfig;
use charla_runtime::test_clock::ServiceClock;
use charla_testing::{Backend, fresh_database_url, in_workspace};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One running service.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops the service and waits until it has drained.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("the service stops cleanly");
    }
}

/// A contact service and a conversation service (with a manual clock), and a workspace.
pub struct TestEnv {
    pub workspace: Uuid,
    pub clock: ManualClock,
    pub contact_addr: SocketAddr,
    pub conversation_addr: SocketAddr,
    contact: Option<Running>,
    conversation: Option<Running>,
    pub conversation_db: String,
    /// Contacts made only to mark the end of an event read; their events are left out.
    markers: std::sync::Mutex<Vec<String>>,
}

/// The conversation service's clock starts here: a fixed instant keeps times readable.
pub fn start_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000)
}

/// Starts both services on fresh databases; `None` when the backend is unavailable (skipped).
pub async fn spawn_env(backend: Backend) -> Option<TestEnv> {
    let contact_db = fresh_database_url(backend).await?;
    let conversation_db = fresh_database_url(backend).await?;
    let contact = start_contact(&contact_db).await;
    let clock = ManualClock::new(start_time());
    let conversation = start_conversation(&conversation_db, contact.addr, &clock).await;
    Some(TestEnv {
        workspace: Uuid::now_v7(),
        clock,
        contact_addr: contact.addr,
        conversation_addr: conversation.addr,
        contact: Some(contact),
        conversation: Some(conversation),
        conversation_db,
        markers: Default::default(),
    })
}

async fn start_contact(database_url: &str) -> Running {
    let config = RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        database_url,
        charla_testing::auth_config(),
    );
    let shutdown = CancellationToken::new();
    let app = charla_contact::build(&config, ServiceClock::System, shutdown.clone())
        .await
        .expect("the contact service starts");
    let addr = app.local_addr();
    let task = tokio::spawn(async move { app.run().await.expect("the contact service serves") });
    Running {
        addr,
        shutdown,
        task,
    }
}

/// Starts the conversation service on `database_url`, talking to the contact service at `contact`.
pub async fn start_conversation(
    database_url: &str,
    contact: SocketAddr,
    clock: &ManualClock,
) -> Running {
    let runtime = RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        database_url,
        charla_testing::auth_config(),
    );
    let mut service = charla_conversation::ServiceConfig::new(format!("http://{contact}"));
    service.auto_close_scan_ms = 20;
    let shutdown = CancellationToken::new();
    let app = charla_conversation::build(
        &runtime,
        &service,
        ServiceClock::Test(clock.clone()),
        shutdown.clone(),
    )
    .await
    .expect("the conversation service starts");
    let addr = app.local_addr();
    let task =
        tokio::spawn(async move { app.run().await.expect("the conversation service serves") });
    Running {
        addr,
        shutdown,
        task,
    }
}

pub fn whatsapp() -> pb::Channel {
    pb::Channel {
        channel_type: contact_pb::ChannelType::Whatsapp as i32,
        channel_id: "wa-main".into(),
    }
}

pub fn channel(channel_type: contact_pb::ChannelType) -> pb::Channel {
    pb::Channel {
        channel_type: channel_type as i32,
        channel_id: "page-1".into(),
    }
}

impl TestEnv {
    /// Stops the contact service; the conversation service keeps running without it.
    pub async fn stop_contact(&mut self) {
        if let Some(contact) = self.contact.take() {
            contact.stop().await;
        }
    }

    /// Fires the conversation service's shutdown token, as SIGTERM does, without waiting for it
    /// to drain.
    pub fn signal_conversation_shutdown(&self) {
        if let Some(conversation) = &self.conversation {
            conversation.shutdown.cancel();
        }
    }

    /// Stops the conversation service and starts a new one on the same database and clock.
    pub async fn restart_conversation(&mut self) {
        if let Some(conversation) = self.conversation.take() {
            conversation.stop().await;
        }
        let restarted =
            start_conversation(&self.conversation_db, self.contact_addr, &self.clock).await;
        self.conversation_addr = restarted.addr;
        self.conversation = Some(restarted);
    }

    pub fn req<T>(&self, message: T) -> tonic::Request<T> {
        in_workspace(self.workspace, message)
    }

    pub async fn conversations(
        &self,
    ) -> ConversationServiceClient<charla_testing::auth::TestChannel> {
        ConversationServiceClient::new(
            charla_testing::connect(format!("http://{}", self.conversation_addr)).await,
        )
    }

    pub async fn contacts(&self) -> ContactServiceClient<charla_testing::auth::TestChannel> {
        ContactServiceClient::new(
            charla_testing::connect(format!("http://{}", self.contact_addr)).await,
        )
    }

    /// Merges contact `secondary` into `primary` through the contact service.
    pub async fn merge(&self, primary: &str, secondary: &str) {
        self.contacts()
            .await
            .merge_contacts(self.req(contact_pb::MergeContactsRequest {
                primary_contact_id: primary.to_owned(),
                secondary_contact_id: secondary.to_owned(),
                ..Default::default()
            }))
            .await
            .unwrap();
    }

    /// A new contact, as a channel adapter would create it: resolved from a WhatsApp number.
    pub async fn new_contact(&self) -> String {
        self.contacts()
            .await
            .resolve_contact(self.req(contact_pb::ResolveContactRequest {
                identity: Some(contact_pb::ChannelIdentity {
                    channel_type: contact_pb::ChannelType::Whatsapp as i32,
                    channel_id: "wa-main".into(),
                    external_id: Uuid::now_v7().simple().to_string(),
                }),
                profile: None,
            }))
            .await
            .expect("resolve a contact")
            .into_inner()
            .contact
            .expect("a contact")
            .contact_id
    }

    /// Records a message and returns the response.
    pub async fn message(
        &self,
        contact: &str,
        author_kind: pb::AuthorKind,
        message_id: &str,
    ) -> Result<pb::RecordMessageResponse, tonic::Status> {
        let direction = if author_kind == pb::AuthorKind::Contact {
            pb::MessageDirection::Inbound
        } else {
            pb::MessageDirection::Outbound
        };
        self.conversations()
            .await
            .record_message(self.req(pb::RecordMessageRequest {
                message_id: message_id.into(),
                contact_id: contact.into(),
                channel: Some(whatsapp()),
                direction: direction as i32,
                author_kind: author_kind as i32,
                author_id: if author_kind == pb::AuthorKind::Contact {
                    String::new()
                } else {
                    "agent-ana".into()
                },
                sent_at: None,
            }))
            .await
            .map(tonic::Response::into_inner)
    }

    /// An inbound message from the contact; returns its conversation.
    pub async fn inbound(&self, contact: &str) -> pb::Conversation {
        self.message(
            contact,
            pb::AuthorKind::Contact,
            &Uuid::now_v7().to_string(),
        )
        .await
        .expect("record an inbound message")
        .conversation
        .expect("an inbound message always has a conversation")
    }

    /// A human agent's reply; returns its conversation.
    pub async fn reply(&self, contact: &str) -> pb::Conversation {
        self.message(contact, pb::AuthorKind::User, &Uuid::now_v7().to_string())
            .await
            .expect("record a reply")
            .conversation
            .expect("a reply to an open conversation")
    }

    /// Closes a conversation as a user, without a note.
    pub async fn close(
        &self,
        conversation_id: &str,
        source: pb::CloseSource,
    ) -> Result<pb::Conversation, tonic::Status> {
        self.conversations()
            .await
            .close_conversation(self.req(pb::CloseConversationRequest {
                conversation_id: conversation_id.into(),
                source: source as i32,
                ..Default::default()
            }))
            .await
            .map(|r| r.into_inner().conversation.expect("a conversation"))
    }

    pub async fn get(&self, conversation_id: &str) -> pb::Conversation {
        self.conversations()
            .await
            .get_conversation(self.req(pb::GetConversationRequest {
                conversation_id: conversation_id.into(),
            }))
            .await
            .expect("get the conversation")
            .into_inner()
            .conversation
            .expect("a conversation")
    }

    /// Every event of the workspace so far, in order. A marker (a conversation opened for a
    /// fresh contact) is written last and read up to, so "so far" needs no waiting and no guess.
    pub async fn events(&self) -> Vec<pb::ConversationEvent> {
        let marker = self.new_contact().await;
        self.markers.lock().unwrap().push(marker.clone());
        self.inbound(&marker).await;
        let mut stream = self
            .conversations()
            .await
            .stream_conversation_events(self.req(pb::StreamConversationEventsRequest::default()))
            .await
            .expect("open the event stream")
            .into_inner();
        let mut events = Vec::new();
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .expect("events keep coming until the marker")
                .expect("a healthy stream")
                .expect("an open stream")
                .event
                .expect("an event");
            if event.contact_id == marker {
                return events;
            }
            if !self.markers.lock().unwrap().contains(&event.contact_id) {
                events.push(event);
            }
        }
    }
}

/// Waits (boundedly) until `check` holds, polling: for effects of background tasks.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

/// The kind of each event, for compact assertions.
pub fn kinds(events: &[pb::ConversationEvent]) -> Vec<&'static str> {
    use pb::conversation_event::Payload;
    events
        .iter()
        .map(|event| match event.payload {
            Some(Payload::Opened(_)) => "opened",
            Some(Payload::Closed(_)) => "closed",
            Some(Payload::Assigned(_)) => "assigned",
            Some(Payload::Unassigned(_)) => "unassigned",
            Some(Payload::MessageRecorded(_)) => "message",
            None => "none",
        })
        .collect()
}
