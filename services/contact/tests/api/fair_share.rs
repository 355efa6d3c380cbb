//! Fair sharing: one workspace's calls in flight and open streams are bounded on their own, so a
//! busy tenant leaves room for the others (and for charla's own service calls).

use charla_proto::charla::contact::v1 as pb;
use charla_runtime::auth::Role;
use charla_runtime::config::RuntimeConfig;
use charla_testing::{as_role, assert_code, fresh_database_url, in_workspace};
use tonic::Code;
use uuid::Uuid;

use crate::helpers::spawn_configured;

/// The ErrorInfo reason of a failed call.
fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

/// Settings of a contact service on a fresh SQLite file.
async fn sqlite_config() -> RuntimeConfig {
    let url = fresh_database_url(charla_testing::Backend::Sqlite)
        .await
        .unwrap();
    RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        url,
        charla_testing::auth_config(),
    )
}

#[tokio::test]
async fn a_workspace_with_all_its_streams_open_is_refused_and_others_are_not() {
    let mut config = sqlite_config().await;
    config.max_streams_per_workspace = 2;
    let busy = Uuid::now_v7();
    let app = spawn_configured(config, busy).await;
    let client = app.client().await;
    let open = |workspace| {
        let mut client = client.clone();
        async move {
            client
                .stream_contact_events(in_workspace(
                    workspace,
                    pb::StreamContactEventsRequest::default(),
                ))
                .await
        }
    };
    let first = open(busy).await.expect("a first stream");
    let _second = open(busy).await.expect("a second stream");
    let refused = assert_code(open(busy).await, Code::ResourceExhausted);
    assert_eq!(reason(&refused), "WORKSPACE_STREAM_LIMIT", "{refused:?}");
    let _other = open(Uuid::now_v7())
        .await
        .expect("another workspace still streams");
    // A service stream of the busy workspace is bounded only by the process-wide limit.
    let mut service = tonic::Request::new(pb::StreamContactEventsRequest::default());
    service
        .metadata_mut()
        .insert("x-workspace-id", busy.to_string().parse().unwrap());
    client
        .clone()
        .stream_contact_events(service)
        .await
        .expect("a service stream");

    drop(first);
    // The slot comes back once the server sees the stream go.
    let mut reopened = None;
    for _ in 0..100 {
        if let Ok(stream) = open(busy).await {
            reopened = Some(stream);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(reopened.is_some(), "a closed stream frees its slot");
    app.stop().await;
}

#[tokio::test]
async fn a_workspace_with_all_its_calls_in_flight_is_refused_and_others_are_not() {
    let mut config = sqlite_config().await;
    config.max_concurrent_requests_per_workspace = 1;
    let busy = Uuid::now_v7();
    let app = spawn_configured(config, busy).await;
    let mut client = app.client().await;

    // An import whose rows are still coming is a call in flight.
    let importer = client.clone();
    let start_import = || {
        let (rows, receiver) = tokio::sync::mpsc::channel::<pb::ImportContactsRequest>(1);
        let mut importer = importer.clone();
        let import = tokio::spawn(async move {
            importer
                .import_contacts(in_workspace(
                    busy,
                    tokio_stream::wrappers::ReceiverStream::new(receiver),
                ))
                .await
        });
        (rows, import)
    };
    let (mut rows, mut import) = start_import();
    let list = || pb::ListContactsRequest::default();
    let mut refused = None;
    for _ in 0..500 {
        // The import may have reached the server while a list call held the only slot, and been
        // refused itself (which one arrives first depends on how the tasks happen to be polled).
        if import.is_finished() {
            (rows, import) = start_import();
        }
        match client
            .list_contacts(as_role(Role::Agent, busy, list()))
            .await
        {
            Err(status) => {
                refused = Some(status);
                break;
            }
            // The import may not have reached the server yet.
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    let refused = refused.expect("a second call of the busy workspace is refused");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(reason(&refused), "WORKSPACE_CALL_LIMIT");
    client
        .list_contacts(as_role(Role::Agent, Uuid::now_v7(), list()))
        .await
        .expect("another workspace is served");

    rows.send(pb::ImportContactsRequest {
        external_id: String::new(),
        contact: Some(pb::Contact {
            first_name: "Ana".into(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    drop(rows);
    import.await.unwrap().expect("the import finishes");
    let listed = client
        .list_contacts(as_role(Role::Agent, busy, list()))
        .await
        .expect("the workspace is served again")
        .into_inner();
    assert_eq!(listed.contacts.len(), 1);
    app.stop().await;
}
