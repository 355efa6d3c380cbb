//! StreamContactEvents: every change once, in order, pushed live, resumable from a cursor.

use std::time::Duration;

use charla_proto::charla::contact::v1 as pb;
use charla_runtime::event_log;
use charla_runtime::workspace::WorkspaceId;
use charla_testing::{Backend, assert_invalid_field, backend_tests, in_workspace};
use tonic::Streaming;

use crate::helpers::{TestApp, spawn_app, spawn_app_on, whatsapp};

backend_tests!(
    the_stream_replays_history_then_pushes_new_events,
    the_stream_resumes_from_a_cursor_after_a_restart,
    a_workspace_scoped_stream_sees_only_its_workspace,
    a_workspace_scoped_stream_numbers_its_own_events_and_resumes_there,
    a_stream_with_an_unknown_partition_is_refused,
    stopping_the_service_ends_open_streams,
    the_stream_info_gives_partitions_and_heads,
);

async fn the_stream_info_gives_partitions_and_heads(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create("Wilma", None).await;
    app.create("Xenia", None).await;
    let info = app
        .client()
        .await
        .get_contact_event_stream_info(pb::GetContactEventStreamInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    // A new log's default: 1 partition on SQLite, 16 on PostgreSQL.
    let expected = match backend {
        Backend::Sqlite => 1,
        Backend::Postgres => 16,
    };
    assert_eq!(info.partition_count, expected);
    let mine = partition_of(app.workspace, expected);
    let heads: Vec<(u32, u64)> = info
        .heads
        .iter()
        .map(|head| (head.partition, head.sequence))
        .filter(|(_, sequence)| *sequence > 0)
        .collect();
    assert_eq!(
        heads,
        [(mine, 2)],
        "both events in the workspace's partition"
    );
}

/// The partition of `workspace`'s events among `partitions`.
fn partition_of(workspace: uuid::Uuid, partitions: u32) -> u32 {
    event_log::partition_of(WorkspaceId::new(workspace), partitions)
}

/// The partition count of the app's contact event log.
async fn partition_count(app: &TestApp) -> u32 {
    app.client()
        .await
        .get_contact_event_stream_info(pb::GetContactEventStreamInfoRequest {})
        .await
        .expect("stream info")
        .into_inner()
        .partition_count
}

/// The next response, failing the test if none arrives within a generous bound (this guards
/// against a hang; it measures nothing).
async fn next_response(
    stream: &mut Streaming<pb::StreamContactEventsResponse>,
) -> pb::StreamContactEventsResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event arrives")
        .expect("the stream is healthy")
        .expect("the stream is open")
}

/// The next event (see [`next_response`]).
async fn next_event(stream: &mut Streaming<pb::StreamContactEventsResponse>) -> pb::ContactEvent {
    next_response(stream).await.event.expect("an event")
}

/// (sequence, partition head, contact) of the next event.
async fn next_position(
    stream: &mut Streaming<pb::StreamContactEventsResponse>,
) -> (u64, u64, String) {
    let response = next_response(stream).await;
    let event = response.event.expect("an event");
    (event.sequence, response.partition_head, event.contact_id)
}

fn from_start() -> pb::StreamContactEventsRequest {
    pb::StreamContactEventsRequest::default()
}

async fn the_stream_replays_history_then_pushes_new_events(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let first = app.create("Quim", Some(whatsapp("q"))).await;
    let second = app.create("Rosa", None).await;
    let mut stream = client
        .stream_contact_events(from_start())
        .await
        .unwrap()
        .into_inner();
    let replayed = [next_event(&mut stream).await, next_event(&mut stream).await];
    assert_eq!([replayed[0].sequence, replayed[1].sequence], [1, 2]);
    assert_eq!(replayed[0].contact_id, first.contact_id);
    assert_eq!(replayed[0].workspace_id, app.workspace.to_string());
    assert!(matches!(
        &replayed[0].payload,
        Some(pb::contact_event::Payload::Created(created)) if created.contact.as_ref() == Some(&first)
    ));

    client
        .merge_contacts(app.req(pb::MergeContactsRequest {
            primary_contact_id: first.contact_id.clone(),
            secondary_contact_id: second.contact_id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let updated = next_event(&mut stream).await;
    let merged = next_event(&mut stream).await;
    assert_eq!((updated.sequence, merged.sequence), (3, 4));
    assert!(matches!(
        updated.payload,
        Some(pb::contact_event::Payload::Updated(_))
    ));
    assert_eq!(merged.contact_id, second.contact_id);
    assert_eq!(
        merged.payload,
        Some(pb::contact_event::Payload::Merged(pb::ContactsMerged {
            primary_contact_id: first.contact_id,
            secondary_contact_id: second.contact_id,
        }))
    );
}

async fn the_stream_resumes_from_a_cursor_after_a_restart(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create("Sara", None).await;
    app.create("Tomás", None).await;
    let mut stream = app
        .client()
        .await
        .stream_contact_events(from_start())
        .await
        .unwrap()
        .into_inner();
    next_event(&mut stream).await;
    let last_seen = next_event(&mut stream).await;
    drop(stream);
    let (url, workspace) = (app.database_url.clone(), app.workspace);
    app.stop().await;

    let app = spawn_app_on(&url, workspace).await;
    let third = app.create("Úrsula", None).await;
    let mut stream = app
        .client()
        .await
        .stream_contact_events(pb::StreamContactEventsRequest {
            cursor: vec![pb::PartitionCursor {
                partition: last_seen.partition,
                sequence: last_seen.sequence,
            }],
            partitions: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    let next = next_event(&mut stream).await;
    assert_eq!(next.sequence, last_seen.sequence + 1);
    assert_eq!(next.contact_id, third.contact_id);
}

/// Creates a contact in another workspace than the app's.
async fn create_elsewhere(app: &TestApp, workspace: uuid::Uuid, first_name: &str) -> String {
    app.client()
        .await
        .create_contact(in_workspace(
            workspace,
            pb::CreateContactRequest {
                contact: Some(pb::Contact {
                    first_name: first_name.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap()
        .contact_id
}

async fn a_workspace_scoped_stream_sees_only_its_workspace(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    create_elsewhere(&app, uuid::Uuid::now_v7(), "Elsewhere").await;
    let mine = app.create("Víctor", None).await;
    let mut stream = client
        .stream_contact_events(app.req(from_start()))
        .await
        .unwrap()
        .into_inner();
    let event = next_event(&mut stream).await;
    assert_eq!(event.contact_id, mine.contact_id);
    assert_eq!(
        event.sequence, 1,
        "numbered among the workspace's own events: the other workspace's is not counted"
    );
}

/// Another workspace writes in the same partition before, between and after this workspace's
/// events: the scoped stream counts 1, 2, 3 with the workspace's own head, resumes from a
/// workspace cursor, while the unscoped stream keeps partition sequences.
async fn a_workspace_scoped_stream_numbers_its_own_events_and_resumes_there(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let partitions = partition_count(&app).await;
    let mine = partition_of(app.workspace, partitions);
    let other = std::iter::repeat_with(uuid::Uuid::now_v7)
        .find(|other| partition_of(*other, partitions) == mine)
        .expect("a workspace in the same partition");
    let elsewhere_first = create_elsewhere(&app, other, "Otra").await;
    let first = app.create("Ana", None).await.contact_id;
    create_elsewhere(&app, other, "Otro").await;
    let second = app.create("Berta", None).await.contact_id;

    let mut scoped = client
        .stream_contact_events(app.req(from_start()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_position(&mut scoped).await, (1, 2, first.clone()));
    assert_eq!(next_position(&mut scoped).await, (2, 2, second.clone()));
    create_elsewhere(&app, other, "Otra más").await;
    let third = app.create("Carla", None).await.contact_id;
    assert_eq!(
        next_position(&mut scoped).await,
        (3, 3, third.clone()),
        "a live event: the head is still the workspace's"
    );

    let partition = next_event(
        &mut client
            .stream_contact_events(app.req(from_start()))
            .await
            .unwrap()
            .into_inner(),
    )
    .await
    .partition;
    let mut resumed = client
        .stream_contact_events(app.req(pb::StreamContactEventsRequest {
            cursor: vec![pb::PartitionCursor {
                partition,
                sequence: 2,
            }],
            partitions: vec![],
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_position(&mut resumed).await, (3, 3, third.clone()));

    let mut unscoped = client
        .stream_contact_events(from_start())
        .await
        .unwrap()
        .into_inner();
    let mut read = Vec::new();
    for _ in 0..6 {
        read.push(next_position(&mut unscoped).await);
    }
    let sequences: Vec<(u64, u64)> = read.iter().map(|(s, h, _)| (*s, *h)).collect();
    assert_eq!(
        sequences,
        (1..=6).map(|s| (s, 6)).collect::<Vec<_>>(),
        "the unscoped stream counts every workspace's events of the partition"
    );
    assert_eq!(read[0].2, elsewhere_first);
    assert_eq!(read[5].2, third);
}

async fn a_stream_with_an_unknown_partition_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let partitions = partition_count(&app).await;
    let result = client
        .stream_contact_events(pb::StreamContactEventsRequest {
            cursor: vec![],
            partitions: vec![partitions],
        })
        .await;
    assert_invalid_field(result.map(|_| ()), "partitions");
    let result = client
        .stream_contact_events(pb::StreamContactEventsRequest {
            cursor: vec![pb::PartitionCursor {
                partition: partitions + 4,
                sequence: 1,
            }],
            partitions: vec![],
        })
        .await;
    assert_invalid_field(result.map(|_| ()), "cursor");
}

async fn stopping_the_service_ends_open_streams(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut stream = app
        .client()
        .await
        .stream_contact_events(from_start())
        .await
        .unwrap()
        .into_inner();
    // The stream is idle, waiting for events; stopping must still drain and return.
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("the service drains open streams and stops");
    let end = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the stream ends");
    assert!(matches!(end, Ok(None) | Err(_)));
}
