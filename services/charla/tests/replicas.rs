//! Two replicas of every service as separate processes on one PostgreSQL: a few thousand mixed
//! lifecycle operations spread over them, one replica of each service SIGKILLed mid-run and
//! restarted, and then the invariants: at most one open conversation per contact, and metrics
//! totals equal to what the conversations themselves say (so every event was applied once).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_proto::charla::conversation::v1::test_clock_service_client::TestClockServiceClient;
use charla_proto::charla::metrics::v1 as metrics_pb;
use charla_proto::charla::metrics::v1::metrics_service_client::MetricsServiceClient;
use charla_testing::auth::TestChannel;
use charla_testing::{Backend, fresh_database_url, in_workspace};
use support::{Replica, channel, ready};
use tonic::Code;

mod support;

const OPERATIONS: usize = 2000;
const WORKERS: usize = 4;
const CONTACTS: usize = 60;
const KILL_AT: usize = 700;
const RESTART_AT: usize = 1200;

/// Whether a failure is the replica going away (retry elsewhere) rather than an answer.
fn transient(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Internal
    ) && !status.message().contains("already")
}

/// Calls `call` on replica `first`, then the other one, until it answers (transport failures
/// retried with the same request, which carries its own idempotency key or message id).
async fn on_replicas<T, F, Fut>(
    channels: &[TestChannel; 2],
    first: usize,
    mut call: F,
) -> Result<T, tonic::Status>
where
    F: FnMut(TestChannel) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut last = None;
    for attempt in 0..40 {
        match call(channels[(first + attempt) % 2].clone()).await {
            Err(status) if transient(&status) => {
                last = Some(status);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
    Err(last.unwrap())
}

/// SplitMix64, for a repeatable mix of operations.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

fn whatsapp() -> pb::Channel {
    pb::Channel {
        channel_type: contact_pb::ChannelType::Whatsapp as i32,
        channel_id: "wa".into(),
    }
}

async fn operate(
    worker: usize,
    workspace: uuid::Uuid,
    contacts: Arc<Vec<String>>,
    conversations: [TestChannel; 2],
    done: Arc<AtomicUsize>,
    seen: Arc<Mutex<BTreeSet<String>>>,
) {
    let mut random = Random(worker as u64 + 1);
    for n in 0..OPERATIONS / WORKERS {
        let op = worker * 10_000 + n;
        let contact = contacts[random.below(CONTACTS as u64) as usize].clone();
        let first = random.below(2) as usize;
        let roll = random.below(100);
        let message = |id: String, kind: pb::AuthorKind| pb::RecordMessageRequest {
            message_id: id,
            contact_id: contact.clone(),
            channel: Some(whatsapp()),
            direction: if kind == pb::AuthorKind::Contact {
                pb::MessageDirection::Inbound
            } else {
                pb::MessageDirection::Outbound
            } as i32,
            author_kind: kind as i32,
            author_id: if kind == pb::AuthorKind::Contact {
                String::new()
            } else {
                "agent".into()
            },
            sent_at: None,
        };
        let result: Result<(), tonic::Status> = if roll < 50 {
            let request = message(format!("in-{op}"), pb::AuthorKind::Contact);
            on_replicas(&conversations, first, |c| {
                let request = request.clone();
                async move {
                    ConversationServiceClient::new(c)
                        .record_message(in_workspace(workspace, request))
                        .await
                }
            })
            .await
            .map(|response| {
                // The driver's own record: every conversation it was told about.
                if let Some(conversation) = response.into_inner().conversation {
                    seen.lock().unwrap().insert(conversation.conversation_id);
                }
            })
        } else if roll < 70 {
            let request = message(format!("out-{op}"), pb::AuthorKind::User);
            on_replicas(&conversations, first, |c| {
                let request = request.clone();
                async move {
                    ConversationServiceClient::new(c)
                        .record_message(in_workspace(workspace, request))
                        .await
                        .map(drop)
                }
            })
            .await
        } else {
            let open = on_replicas(&conversations, first, |c| {
                let contact = contact.clone();
                async move {
                    ConversationServiceClient::new(c)
                        .get_open_conversation(in_workspace(
                            workspace,
                            pb::GetOpenConversationRequest {
                                contact_id: contact,
                                ..Default::default()
                            },
                        ))
                        .await
                }
            })
            .await;
            match open.map(|r| r.into_inner().conversation.map(|c| c.conversation_id)) {
                Err(status) => Err(status),
                // Nothing open for the contact right now.
                Ok(None) => Ok(()),
                Ok(Some(id)) if roll < 80 => {
                    on_replicas(&conversations, first, |c| {
                        let id = id.clone();
                        async move {
                            let request = pb::AssignConversationRequest {
                                conversation_id: id,
                                assignee_user_id: format!("agent-{}", op % 3),
                                ..Default::default()
                            };
                            ConversationServiceClient::new(c)
                                .assign_conversation(in_workspace(workspace, request))
                                .await
                                .map(drop)
                        }
                    })
                    .await
                }
                Ok(Some(id)) => {
                    let request_id = uuid::Uuid::now_v7().to_string();
                    on_replicas(&conversations, first, |c| {
                        let request = pb::CloseConversationRequest {
                            conversation_id: id.clone(),
                            source: pb::CloseSource::User as i32,
                            request_id: request_id.clone(),
                            ..Default::default()
                        };
                        async move {
                            ConversationServiceClient::new(c)
                                .close_conversation(in_workspace(workspace, request))
                                .await
                                .map(drop)
                        }
                    })
                    .await
                }
            }
        };
        match result {
            Ok(()) => {}
            // Another worker closed it first: a legitimate answer under concurrency.
            Err(status) if status.code() == Code::FailedPrecondition => {}
            Err(status) => panic!("operation {op} failed: {status:?}"),
        }
        done.fetch_add(1, Ordering::SeqCst);
    }
}

async fn wait_for(done: &AtomicUsize, count: usize) {
    while done.load(Ordering::SeqCst) < count {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_of_everything_survive_a_sigkill_and_count_every_event_once() {
    let Some(contact_db) = fresh_database_url(Backend::Postgres).await else {
        return;
    };
    let conversation_db = fresh_database_url(Backend::Postgres).await.unwrap();
    let metrics_db = fresh_database_url(Backend::Postgres).await.unwrap();

    let mut contact =
        [0, 1].map(|_| Replica::new("contact", vec![("CHARLA_DATABASE_URL", contact_db.clone())]));
    let contact_urls = format!("{},{}", contact[0].url(), contact[1].url());
    let mut conversation = [0, 1].map(|_| {
        Replica::new(
            "conversation",
            vec![
                ("CHARLA_DATABASE_URL", conversation_db.clone()),
                ("CHARLA_CONTACT_URL", contact_urls.clone()),
                // Each process on a test clock, so the run can reach auto-close deadlines.
                ("CHARLA_TEST_CLOCK", "true".to_owned()),
            ],
        )
    });
    let conversation_urls = format!("{},{}", conversation[0].url(), conversation[1].url());
    let mut metrics = [0, 1].map(|_| {
        Replica::new(
            "metrics",
            vec![
                ("CHARLA_DATABASE_URL", metrics_db.clone()),
                ("CHARLA_CONVERSATION_URL", conversation_urls.clone()),
            ],
        )
    });
    // Every replica starts at once on empty databases: each database must be migrated once.
    for replica in contact
        .iter_mut()
        .chain(conversation.iter_mut())
        .chain(metrics.iter_mut())
    {
        replica.start();
    }
    for replica in contact
        .iter()
        .chain(conversation.iter())
        .chain(metrics.iter())
    {
        ready(replica).await;
    }

    let started = SystemTime::now();
    let workspace = uuid::Uuid::now_v7();
    let contact_channels = [
        channel(contact[0].url()).await,
        channel(contact[1].url()).await,
    ];
    let mut contacts = Vec::new();
    for index in 0..CONTACTS {
        let request = contact_pb::ResolveContactRequest {
            identity: Some(contact_pb::ChannelIdentity {
                channel_type: contact_pb::ChannelType::Whatsapp as i32,
                channel_id: "wa".into(),
                external_id: format!("+1555{index:04}"),
            }),
            profile: None,
        };
        let resolved = on_replicas(&contact_channels, index % 2, |c| {
            let request = request.clone();
            async move {
                ContactServiceClient::new(c)
                    .resolve_contact(in_workspace(workspace, request))
                    .await
            }
        })
        .await
        .unwrap();
        contacts.push(resolved.into_inner().contact.unwrap().contact_id);
    }
    let contacts = Arc::new(contacts);
    let conversation_channels = [
        channel(conversation[0].url()).await,
        channel(conversation[1].url()).await,
    ];
    ConversationServiceClient::new(conversation_channels[0].clone())
        .update_workspace_settings(in_workspace(
            workspace,
            pb::UpdateWorkspaceSettingsRequest {
                settings: Some(pb::WorkspaceSettings {
                    auto_close_after: Some(prost_types::Duration {
                        seconds: 30 * 60,
                        nanos: 0,
                    }),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["auto_close_after".into()],
                }),
            },
        ))
        .await
        .unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            tokio::spawn(operate(
                worker,
                workspace,
                contacts.clone(),
                conversation_channels.clone(),
                done.clone(),
                seen.clone(),
            ))
        })
        .collect();

    wait_for(&done, KILL_AT).await;
    contact[0].kill();
    conversation[0].kill();
    metrics[0].kill();
    wait_for(&done, RESTART_AT).await;
    contact[0].start();
    conversation[0].start();
    metrics[0].start();
    for worker in workers {
        worker.await.expect("a worker finished");
    }
    ready(&conversation[0]).await;
    ready(&metrics[0]).await;

    // Past every auto-close deadline, moving the fleet's one test clock through both replicas at
    // once: both scan the same deadlines, and each must fire once.
    let advance = |replica: &Replica| {
        let url = replica.url();
        async move {
            TestClockServiceClient::new(channel(url).await)
                .advance_test_clock(pb::AdvanceTestClockRequest {
                    duration: Some(prost_types::Duration {
                        seconds: 31 * 60,
                        nanos: 0,
                    }),
                })
                .await
                .expect("advance a replica's test clock")
        }
    };
    tokio::join!(advance(&conversation[0]), advance(&conversation[1]));

    // What the conversations say, read from the conversation service.
    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let page = ConversationServiceClient::new(conversation_channels[1].clone())
            .list_conversations(in_workspace(
                workspace,
                pb::ListConversationsRequest {
                    page_size: 1000,
                    page_token: token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        listed.extend(page.conversations);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let opened = listed.len() as i64;
    let closed = listed
        .iter()
        .filter(|c| c.status == pb::ConversationStatus::Closed as i32)
        .count() as i64;
    let open_contacts: Vec<&String> = listed
        .iter()
        .filter(|c| c.status == pb::ConversationStatus::Open as i32)
        .map(|c| &c.contact_id)
        .collect();
    let distinct: BTreeSet<&String> = open_contacts.iter().copied().collect();
    let listed_ids: BTreeSet<String> = listed.iter().map(|c| c.conversation_id.clone()).collect();
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.is_subset(&listed_ids),
        "every conversation the driver was told about exists"
    );
    let auto_closed = listed
        .iter()
        .filter(|c| c.closed_by == pb::CloseSource::AutoClose as i32)
        .count();
    assert!(auto_closed > 0, "some conversations auto-closed");
    assert_eq!(
        open_contacts.len(),
        distinct.len(),
        "at most one open conversation per contact"
    );
    assert!(
        opened > 100 && closed > 50,
        "the run did real work: {opened} opened, {closed} closed"
    );
    eprintln!(
        "{OPERATIONS} operations: {opened} conversations opened, {closed} closed ({auto_closed} by auto-close)"
    );

    // Every replica's metrics reach exactly those totals: nothing lost, nothing counted twice.
    let day = 86_400;
    let start = (started
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / day
        - 1)
        * day;
    let query = metrics_pb::GetConversationMetricsRequest {
        start_time: Some(prost_types::Timestamp {
            seconds: start,
            nanos: 0,
        }),
        end_time: Some(prost_types::Timestamp {
            seconds: start + 3 * day,
            nanos: 0,
        }),
        time_zone: "UTC".into(),
        granularity: metrics_pb::Granularity::Day as i32,
        ..Default::default()
    };
    for replica in &metrics {
        let mut client = MetricsServiceClient::new(channel(replica.url()).await);
        let mut totals = (0, 0);
        for _ in 0..600 {
            if let Ok(response) = client
                .get_conversation_metrics(in_workspace(workspace, query.clone()))
                .await
            {
                let t = response.into_inner().totals.unwrap_or_default();
                totals = (t.opened_count, t.closed_count);
                if totals == (opened, closed) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            totals,
            (opened, closed),
            "metrics on port {} equal the conversations",
            replica.port
        );
    }
}
