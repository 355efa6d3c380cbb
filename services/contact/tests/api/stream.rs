//! StreamContactEvents: every change once, in order, pushed live, resumable from a cursor.

use std::time::Duration;

use charla_proto::charla::contact::v1 as pb;
use charla_testing::{Backend, assert_invalid_field, backend_tests, in_workspace};
use tonic::Streaming;

use crate::helpers::{spawn_app, spawn_app_on, whatsapp};

backend_tests!(
    the_stream_replays_history_then_pushes_new_events,
    the_stream_resumes_from_a_cursor_after_a_restart,
    a_workspace_scoped_stream_sees_only_its_workspace,
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
    assert_eq!(info.partition_count, 1);
    assert_eq!(
        info.heads,
        [pb::PartitionCursor {
            partition: 0,
            sequence: 2
        }]
    );
}

/// The next event, failing the test if none arrives within a generous bound (this guards against
/// a hang; it measures nothing).
async fn next_event(stream: &mut Streaming<pb::StreamContactEventsResponse>) -> pb::ContactEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event arrives")
        .expect("the stream is healthy")
        .expect("the stream is open")
        .event
        .expect("an event")
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

async fn a_workspace_scoped_stream_sees_only_its_workspace(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let other = uuid::Uuid::now_v7();
    client
        .create_contact(in_workspace(
            other,
            pb::CreateContactRequest {
                contact: Some(pb::Contact {
                    first_name: "Elsewhere".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap();
    let mine = app.create("Víctor", None).await;
    let mut stream = client
        .stream_contact_events(app.req(from_start()))
        .await
        .unwrap()
        .into_inner();
    let event = next_event(&mut stream).await;
    assert_eq!(event.contact_id, mine.contact_id);
    assert_eq!(
        event.sequence, 2,
        "the other workspace's event is skipped, not renumbered"
    );
}

async fn a_stream_with_an_unknown_partition_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut client = app.client().await;
    let result = client
        .stream_contact_events(pb::StreamContactEventsRequest {
            cursor: vec![],
            partitions: vec![5],
        })
        .await;
    assert_invalid_field(result.map(|_| ()), "partitions");
    let result = client
        .stream_contact_events(pb::StreamContactEventsRequest {
            cursor: vec![pb::PartitionCursor {
                partition: 9,
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
