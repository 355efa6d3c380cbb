//! Several replicas on one PostgreSQL: any replica serves the event stream, and a commit on one
//! wakes the streams of the others (LISTEN/NOTIFY), well before the fallback re-read.

use std::time::{Duration, Instant};

use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_testing::Backend;

use crate::helpers::{spawn_env, start_conversation};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_on_one_replica_wakes_streams_on_another() {
    wakes_a_stream_on_another_replica(true).await;
}

/// The notification names the partition too: charla's own (unscoped) consumers wake as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_on_one_replica_wakes_unscoped_streams_on_another() {
    wakes_a_stream_on_another_replica(false).await;
}

async fn wakes_a_stream_on_another_replica(scoped: bool) {
    let Some(env) = spawn_env(Backend::Postgres).await else {
        return;
    };
    let other = start_conversation(&env.conversation_db, env.contact_addr, &env.clock).await;
    let request = pb::StreamConversationEventsRequest::default();
    let request = if scoped {
        env.req(request)
    } else {
        // The channel presents a service token: charla's own consumers read this way.
        tonic::Request::new(request)
    };
    let mut stream = ConversationServiceClient::new(
        charla_testing::connect(format!("http://{}", other.addr)).await,
    )
    .stream_conversation_events(request)
    .await
    .unwrap()
    .into_inner();
    // Let the other replica's stream go idle, waiting for a wake-up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let contact = env.new_contact().await;
    let written = Instant::now();
    let conversation = env.inbound(&contact).await;
    let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the event reaches the other replica's stream")
        .unwrap()
        .unwrap()
        .event
        .unwrap();
    let waited = written.elapsed();
    assert_eq!(event.conversation_id, conversation.conversation_id);
    // The fallback re-read comes every 5 s; arriving well before it means the notification did it.
    assert!(
        waited < Duration::from_secs(4),
        "woken by the commit, not by the fallback: {waited:?}"
    );
    other.stop().await;
}
