//! StreamConversationEvents scoped to a workspace: its own events only, numbered 1, 2, 3... among
//! themselves whatever other workspaces write in the same partition, with the workspace's own
//! head, resumable from a workspace cursor. Unscoped streams keep partition sequences.

use std::time::Duration;

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::conversation::v1 as pb;
use charla_runtime::event_log;
use charla_runtime::workspace::WorkspaceId;
use charla_testing::{Backend, backend_tests};
use tonic::Streaming;
use uuid::Uuid;

use crate::helpers::{TestEnv, spawn_env};

backend_tests!(
    a_scoped_stream_numbers_its_workspace_events_alone,
    an_unscoped_stream_keeps_partition_sequences,
);

/// (sequence, partition head, conversation) of the next event; fails rather than hang.
async fn next(stream: &mut Streaming<pb::StreamConversationEventsResponse>) -> (u64, u64, String) {
    let response = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event arrives")
        .expect("the stream is healthy")
        .expect("the stream is open");
    let event = response.event.expect("an event");
    (
        event.sequence,
        response.partition_head,
        event.conversation_id,
    )
}

async fn open(
    env: &TestEnv,
    request: tonic::Request<pb::StreamConversationEventsRequest>,
) -> Streaming<pb::StreamConversationEventsResponse> {
    env.conversations()
        .await
        .stream_conversation_events(request)
        .await
        .expect("open the stream")
        .into_inner()
}

/// Runs `write` as another workspace (the test's own is restored after).
async fn as_workspace<T>(
    env: &mut TestEnv,
    workspace: Uuid,
    write: impl AsyncFnOnce(&TestEnv) -> T,
) -> T {
    let mine = std::mem::replace(&mut env.workspace, workspace);
    let result = write(env).await;
    env.workspace = mine;
    result
}

/// The partition of `workspace`'s events (PostgreSQL logs have several by default).
async fn partition_of(env: &TestEnv, workspace: Uuid) -> u32 {
    let partitions = env
        .conversations()
        .await
        .get_conversation_event_stream_info(pb::GetConversationEventStreamInfoRequest {})
        .await
        .expect("stream info")
        .into_inner()
        .partition_count;
    event_log::partition_of(WorkspaceId::new(workspace), partitions)
}

/// Another workspace whose events share the test workspace's partition.
async fn neighbour(env: &TestEnv) -> Uuid {
    let mine = partition_of(env, env.workspace).await;
    loop {
        let other = Uuid::now_v7();
        if partition_of(env, other).await == mine {
            return other;
        }
    }
}

/// Writes, in one partition: 2 events elsewhere, 2 here (an opening inbound message), 1
/// elsewhere, 1 here (a reply). Returns this workspace's conversation and the other workspace.
async fn interleave(env: &mut TestEnv) -> (String, Uuid) {
    let other = neighbour(env).await;
    let elsewhere = as_workspace(env, other, async |env| {
        let contact = env.new_contact().await;
        env.inbound(&contact).await;
        contact
    })
    .await;
    let contact = env.new_contact().await;
    let conversation = env.inbound(&contact).await.conversation_id;
    as_workspace(env, other, async |env| env.inbound(&elsewhere).await).await;
    env.reply(&contact).await;
    (conversation, other)
}

async fn a_scoped_stream_numbers_its_workspace_events_alone(backend: Backend) {
    let Some(mut env) = spawn_env(backend).await else {
        return;
    };
    let (conversation, other) = interleave(&mut env).await;
    let mut scoped = open(
        &env,
        env.req(pb::StreamConversationEventsRequest::default()),
    )
    .await;
    for sequence in 1..=3 {
        assert_eq!(
            next(&mut scoped).await,
            (sequence, 3, conversation.clone()),
            "opened, inbound message, reply: 1, 2, 3 with the workspace's head"
        );
    }

    // Live: another workspace's event is neither sent nor counted.
    as_workspace(&mut env, other, async |env| {
        env.inbound(&env.new_contact().await).await;
    })
    .await;
    let later = env.inbound(&env.new_contact().await).await.conversation_id;
    assert_eq!(next(&mut scoped).await, (4, 5, later.clone()));
    assert_eq!(next(&mut scoped).await, (5, 5, later.clone()));

    let partition = open(
        &env,
        env.req(pb::StreamConversationEventsRequest::default()),
    )
    .await
    .message()
    .await
    .unwrap()
    .unwrap()
    .event
    .unwrap()
    .partition;
    let mut resumed = open(
        &env,
        env.req(pb::StreamConversationEventsRequest {
            cursor: vec![contact_pb::PartitionCursor {
                partition,
                sequence: 3,
            }],
            partitions: vec![],
        }),
    )
    .await;
    assert_eq!(next(&mut resumed).await, (4, 5, later.clone()));
    assert_eq!(next(&mut resumed).await, (5, 5, later));
}

async fn an_unscoped_stream_keeps_partition_sequences(backend: Backend) {
    let Some(mut env) = spawn_env(backend).await else {
        return;
    };
    let (conversation, _) = interleave(&mut env).await;
    let mut unscoped = open(
        &env,
        tonic::Request::new(pb::StreamConversationEventsRequest::default()),
    )
    .await;
    let mut read = Vec::new();
    for _ in 0..6 {
        read.push(next(&mut unscoped).await);
    }
    let positions: Vec<(u64, u64)> = read.iter().map(|(s, h, _)| (*s, *h)).collect();
    assert_eq!(positions, (1..=6).map(|s| (s, 6)).collect::<Vec<_>>());
    let mine: Vec<u64> = read
        .iter()
        .filter(|(_, _, c)| *c == conversation)
        .map(|(s, _, _)| *s)
        .collect();
    assert_eq!(
        mine,
        [3, 4, 6],
        "this workspace's events at their partition positions"
    );

    let mut resumed = open(
        &env,
        tonic::Request::new(pb::StreamConversationEventsRequest {
            cursor: vec![contact_pb::PartitionCursor {
                partition: partition_of(&env, env.workspace).await,
                sequence: 4,
            }],
            partitions: vec![],
        }),
    )
    .await;
    assert_eq!(next(&mut resumed).await.0, 5);
}
