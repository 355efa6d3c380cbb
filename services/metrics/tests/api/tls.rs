//! Every service on mutual TLS: the metrics service reads the conversation stream over TLS (and
//! the conversation service checks contacts over TLS). Certificates are made by the test.

use std::net::SocketAddr;
use std::time::Duration;

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_proto::charla::conversation::v1 as conversation_pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_proto::charla::metrics::v1 as pb;
use charla_proto::charla::metrics::v1::metrics_service_client::MetricsServiceClient;
use charla_runtime::app::Application;
use charla_runtime::config::RuntimeConfig;
use charla_runtime::test_clock::ServiceClock;
use charla_testing::tls::TestPki;
use charla_testing::{Backend, fresh_database_url, in_workspace};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn config(pki: &TestPki) -> RuntimeConfig {
    let url = fresh_database_url(Backend::Sqlite).await.unwrap();
    let mut config = RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        url,
        charla_testing::auth_config(),
    );
    config.tls = pki.service_config(true);
    config
}

fn serve(app: Application) -> SocketAddr {
    let addr = app.local_addr();
    tokio::spawn(app.run());
    addr
}

fn https(addr: SocketAddr) -> String {
    format!("https://127.0.0.1:{}", addr.port())
}

#[tokio::test]
async fn the_metrics_consumer_reads_conversation_events_over_mutual_tls() {
    let pki = TestPki::new();
    let shutdown = CancellationToken::new();
    let clock = ServiceClock::System;
    let contact = charla_contact::build(&config(&pki).await, clock.clone(), shutdown.clone())
        .await
        .unwrap();
    let contact = serve(contact);
    let conversation = charla_conversation::build(
        &config(&pki).await,
        &charla_conversation::ServiceConfig::new(https(contact)),
        clock.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let conversation = serve(conversation);
    let metrics = charla_metrics::build(
        &config(&pki).await,
        &charla_metrics::ServiceConfig::new(https(conversation)),
        clock,
        shutdown.clone(),
    )
    .await
    .unwrap();
    let metrics = serve(metrics);

    let workspace = Uuid::now_v7();
    let client = Some(&pki.client);
    let contact_id = ContactServiceClient::new(pki.connect(contact, client).await.unwrap())
        .create_contact(in_workspace(
            workspace,
            contact_pb::CreateContactRequest {
                contact: Some(contact_pb::Contact {
                    first_name: "Susana".into(),
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
        .contact_id;
    ConversationServiceClient::new(pki.connect(conversation, client).await.unwrap())
        .open_conversation(in_workspace(
            workspace,
            conversation_pb::OpenConversationRequest {
                contact_id,
                channel: Some(conversation_pb::Channel {
                    channel_type: contact_pb::ChannelType::Whatsapp as i32,
                    channel_id: "wa-main".into(),
                }),
                source: conversation_pb::OpenSource::User as i32,
                actor_id: "agent-ana".into(),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap();

    let mut reports = MetricsServiceClient::new(pki.connect(metrics, client).await.unwrap());
    let mut open_count = 0;
    for _ in 0..100 {
        open_count = reports
            .get_dashboard(in_workspace(workspace, pb::GetDashboardRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .dashboard
            .unwrap()
            .open_count;
        if open_count == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open_count, 1, "the opening reached the metrics over TLS");
    shutdown.cancel();
}
