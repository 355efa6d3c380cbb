//! What every charla server offers besides its API: health checking, reflection, gRPC-Web.

use charla_proto::charla::contact::v1 as pb;
use charla_runtime::auth::Role;
use charla_testing::Backend;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::helpers::{TestApp, spawn_app};

async fn channel(app: &TestApp) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_contact_service_reports_serving_to_health_checks() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let mut health = HealthClient::new(channel(&app).await);
    for service in ["", "charla.contact.v1.ContactService"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service `{service}`");
    }
}

/// One reflection request, one answer.
async fn reflect(address: std::net::SocketAddr, request: MessageRequest) -> MessageResponse {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    response.message_response.expect("an answer")
}

/// The services reflection lists on the server at `address`, sorted.
async fn listed(address: std::net::SocketAddr) -> Vec<String> {
    let answer = reflect(address, MessageRequest::ListServices(String::new())).await;
    let MessageResponse::ListServicesResponse(list) = answer else {
        panic!("expected a service list, got {answer:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    names
}

const ALWAYS_LISTED: [&str; 4] = [
    "charla.contact.v1.ContactService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

#[tokio::test]
async fn reflection_lists_only_what_the_contact_port_serves() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    assert_eq!(
        listed(app.addr).await,
        ALWAYS_LISTED,
        "no ConversationService, MetricsService or TestClockService (test clock off)"
    );
}

#[tokio::test]
async fn with_the_test_clock_on_reflection_lists_the_test_clock_service() {
    let url = charla_testing::fresh_database_url(Backend::Sqlite)
        .await
        .unwrap();
    let config = charla_runtime::config::RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        &url,
        charla_testing::auth_config(),
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let clock = charla_runtime::test_clock::ServiceClock::test_from_now();
    let app = charla_contact::build(&config, clock, shutdown.clone())
        .await
        .unwrap();
    let address = app.local_addr();
    let served = tokio::spawn(app.run());
    let mut expected = ALWAYS_LISTED.map(str::to_owned).to_vec();
    expected.push("charla.conversation.v1.TestClockService".into());
    expected.sort();
    assert_eq!(listed(address).await, expected);
    shutdown.cancel();
    served.await.unwrap().unwrap();
}

/// grpcurl and other tools decode `grpc-status-details-bin` by resolving the detail types by name.
#[tokio::test]
async fn the_error_detail_types_resolve_by_name() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    for name in [
        "google.rpc.BadRequest",
        "google.rpc.ErrorInfo",
        "google.rpc.ResourceInfo",
        "google.rpc.PreconditionFailure",
        "google.rpc.RetryInfo",
        "google.rpc.QuotaFailure",
        "google.rpc.DebugInfo",
        "google.rpc.RequestInfo",
        "google.rpc.Help",
        "google.rpc.LocalizedMessage",
        "google.rpc.Status",
    ] {
        let answer = reflect(
            app.addr,
            MessageRequest::FileContainingSymbol(name.to_owned()),
        )
        .await;
        let MessageResponse::FileDescriptorResponse(files) = answer else {
            panic!("{name}: expected its file, got {answer:?}");
        };
        let message = name.trim_start_matches("google.rpc.");
        let defines = files.file_descriptor_proto.iter().any(|raw| {
            let file = prost_types::FileDescriptorProto::decode(raw.as_slice()).unwrap();
            file.package() == "google.rpc" && file.message_type.iter().any(|m| m.name() == message)
        });
        assert!(defines, "{name} is not in the file reflection returned");
    }
}

/// A browser's gRPC-Web call over HTTP/1.1, written by hand so nothing but the server is involved.
#[tokio::test]
async fn grpc_web_calls_over_http1_are_served() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let created = app.create("Web", None).await;
    let message = pb::GetContactRequest {
        contact_id: created.contact_id.clone(),
    }
    .encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let head = format!(
        "POST /charla.contact.v1.ContactService/GetContact HTTP/1.1\r\nhost: {}\r\n\
         content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\nauthorization: Bearer {}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        app.addr,
        charla_testing::token(Role::Agent, Some(app.workspace)),
        body.len()
    );
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&body).await.unwrap();
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("application/grpc-web"), "{text}");
    assert!(text.contains("grpc-status:0"), "{text}");
    assert!(
        text.contains(&created.contact_id),
        "the contact is in the body"
    );
}

/// An import whose client keeps its stream open holds a slot until it ends; with every slot
/// held, more calls are shed at once with RESOURCE_EXHAUSTED, and served again after.
#[tokio::test]
async fn calls_beyond_the_concurrency_limit_are_shed() {
    let url = charla_testing::fresh_database_url(Backend::Sqlite)
        .await
        .unwrap();
    let mut config = charla_runtime::config::RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        &url,
        charla_testing::auth_config(),
    );
    config.max_concurrent_requests = 1;
    let app = crate::helpers::spawn_configured(config, uuid::Uuid::now_v7()).await;
    let (rows, stream) = tokio::sync::mpsc::channel::<pb::ImportContactsRequest>(1);
    let held = {
        let mut client = app.client().await;
        let request = app.req(tokio_stream::wrappers::ReceiverStream::new(stream));
        tokio::spawn(async move { client.import_contacts(request).await })
    };
    let mut client = app.client().await;
    let mut shed = None;
    for _ in 0..200 {
        match client
            .list_contacts(app.req(pb::ListContactsRequest::default()))
            .await
        {
            Err(status) => {
                shed = Some(status);
                break;
            }
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
    let shed = shed.expect("a call is shed while the only slot is held");
    assert_eq!(shed.code(), tonic::Code::ResourceExhausted, "{shed:?}");
    drop(rows);
    held.await.unwrap().expect("the held import completes");
    client
        .list_contacts(app.req(pb::ListContactsRequest::default()))
        .await
        .expect("served again once the slot is free");
}

/// A call that takes longer than the request timeout to answer is cancelled by the server: here
/// a write stuck behind another connection's lock on the database. (Imports answer before the
/// timeout instead: see `import::an_import_near_the_request_timeout_answers_with_what_it_wrote`.)
#[tokio::test]
async fn a_call_past_the_request_timeout_is_cancelled() {
    use sqlx::Connection;
    let url = charla_testing::fresh_database_url(Backend::Sqlite)
        .await
        .unwrap();
    let mut config = charla_runtime::config::RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        &url,
        charla_testing::auth_config(),
    );
    config.request_timeout_secs = 1;
    let app = crate::helpers::spawn_configured(config, uuid::Uuid::now_v7()).await;
    let mut holder = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let result = app
        .client()
        .await
        .create_contact(app.req(pb::CreateContactRequest {
            contact: Some(pb::Contact {
                first_name: "Stuck".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        }))
        .await;
    charla_testing::assert_code(result, tonic::Code::Cancelled);
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
}

async fn health_status(channel: tonic::transport::Channel, service: &str) -> i32 {
    HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

/// SIGTERM: health answers NOT_SERVING on every name at once, while the server still accepts calls
/// for the drain delay (so a load balancer stops routing first), then it stops.
#[tokio::test]
async fn a_draining_server_reports_not_serving_on_every_name_before_it_stops_accepting() {
    let url = charla_testing::fresh_database_url(Backend::Sqlite)
        .await
        .unwrap();
    let mut config = charla_runtime::config::RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        url,
        charla_testing::auth_config(),
    );
    config.drain_delay_ms = 1_500;
    let app = crate::helpers::spawn_configured(config, uuid::Uuid::now_v7()).await;
    let names = ["", "charla.contact.v1.ContactService"];
    let before = channel(&app).await;
    for name in names {
        assert_eq!(
            health_status(before.clone(), name).await,
            ServingStatus::Serving as i32
        );
    }

    app.signal_shutdown();
    let started = std::time::Instant::now();
    let mut drained = false;
    while !drained && started.elapsed() < std::time::Duration::from_secs(1) {
        drained = health_status(before.clone(), "").await == ServingStatus::NotServing as i32;
    }
    assert!(drained, "health answers NOT_SERVING once the drain starts");
    // Still accepting: a new connection is served, and every name says NOT_SERVING.
    let during = channel(&app).await;
    for name in names {
        assert_eq!(
            health_status(during.clone(), name).await,
            ServingStatus::NotServing as i32,
            "`{name}`"
        );
    }
    let addr = app.addr;
    app.stop().await;
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1_500),
        "the server kept accepting for the drain delay"
    );
    let after = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await;
    assert!(after.is_err(), "a stopped server accepts no connection");
}
