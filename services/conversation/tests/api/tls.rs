//! The conversation service calling the contact service over mutual TLS: it verifies the contact
//! service against the peer CA and presents its own certificate, which the contact service
//! demands. Certificates are made by the test.

use std::net::SocketAddr;

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_runtime::config::RuntimeConfig;
use charla_runtime::test_clock::ServiceClock;
use charla_runtime::tls::TlsConfig;
use charla_testing::tls::TestPki;
use charla_testing::{Backend, assert_code, fresh_database_url, in_workspace};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::whatsapp;

async fn runtime(tls: TlsConfig) -> RuntimeConfig {
    let url = fresh_database_url(Backend::Sqlite).await.unwrap();
    let mut config = RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        url,
        charla_testing::auth_config(),
    );
    config.tls = tls;
    config
}

/// Starts the contact service demanding client certificates from the test CA.
async fn contact_service(pki: &TestPki, shutdown: &CancellationToken) -> SocketAddr {
    let config = runtime(pki.service_config(true)).await;
    let app = charla_contact::build(&config, ServiceClock::System, shutdown.clone())
        .await
        .expect("the contact service starts");
    let addr = app.local_addr();
    tokio::spawn(app.run());
    addr
}

/// Starts the conversation service with `tls`, calling the contact service at `contact_url`.
async fn conversation_service(
    tls: TlsConfig,
    contact_url: String,
    shutdown: &CancellationToken,
) -> SocketAddr {
    let config = runtime(tls).await;
    let mut service = charla_conversation::ServiceConfig::new(contact_url);
    service.contact_timeout_ms = 1000;
    let app = charla_conversation::build(&config, &service, ServiceClock::System, shutdown.clone())
        .await
        .expect("the conversation service starts");
    let addr = app.local_addr();
    tokio::spawn(app.run());
    addr
}

async fn open(
    client: &mut ConversationServiceClient<tonic::transport::Channel>,
    workspace: Uuid,
    contact_id: &str,
) -> Result<pb::OpenConversationResponse, tonic::Status> {
    client
        .open_conversation(in_workspace(
            workspace,
            pb::OpenConversationRequest {
                contact_id: contact_id.into(),
                channel: Some(whatsapp()),
                source: pb::OpenSource::User as i32,
                actor_id: "agent-ana".into(),
                request_id: String::new(),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn the_contact_check_of_an_opening_goes_over_mutual_tls() {
    let pki = TestPki::new();
    let shutdown = CancellationToken::new();
    let contact_addr = contact_service(&pki, &shutdown).await;
    let contact_url = format!("https://127.0.0.1:{}", contact_addr.port());
    let conversation_addr =
        conversation_service(pki.service_config(true), contact_url, &shutdown).await;

    let workspace = Uuid::now_v7();
    let contact =
        ContactServiceClient::new(pki.connect(contact_addr, Some(&pki.client)).await.unwrap())
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
            .unwrap();

    let mut conversations = ConversationServiceClient::new(
        pki.connect(conversation_addr, Some(&pki.client))
            .await
            .unwrap(),
    );
    let opened = open(&mut conversations, workspace, &contact.contact_id)
        .await
        .expect("the contact check passes over TLS");
    assert!(opened.opened);
    assert_eq!(opened.conversation.unwrap().contact_id, contact.contact_id);
    // The answer really comes from the contact service: an unknown contact is NOT_FOUND.
    assert_code(
        open(&mut conversations, workspace, &Uuid::now_v7().to_string()).await,
        Code::NotFound,
    );
    shutdown.cancel();
}

#[tokio::test]
async fn without_a_client_certificate_the_contact_check_is_refused() {
    let pki = TestPki::new();
    let shutdown = CancellationToken::new();
    let contact_addr = contact_service(&pki, &shutdown).await;
    // Trusts the contact service but has no certificate to present (and listens in plaintext).
    let tls = TlsConfig {
        peer_tls_ca: Some(pki.ca.clone()),
        ..TlsConfig::default()
    };
    let contact_url = format!("https://127.0.0.1:{}", contact_addr.port());
    let conversation_addr = conversation_service(tls, contact_url, &shutdown).await;
    let mut conversations =
        ConversationServiceClient::connect(format!("http://{conversation_addr}"))
            .await
            .unwrap();
    assert_code(
        open(
            &mut conversations,
            Uuid::now_v7(),
            &Uuid::now_v7().to_string(),
        )
        .await,
        Code::Unavailable,
    );
    shutdown.cancel();
}

#[tokio::test]
async fn a_plaintext_contact_url_is_refused_once_peers_are_expected_over_tls() {
    let pki = TestPki::new();
    let config = runtime(pki.service_config(false)).await;
    let service = charla_conversation::ServiceConfig::new("http://127.0.0.1:50051");
    let error = charla_conversation::build(
        &config,
        &service,
        ServiceClock::System,
        CancellationToken::new(),
    )
    .await
    .err()
    .expect("the service refuses to start");
    let error = error.to_string();
    assert!(error.starts_with("CHARLA_CONTACT_URL"), "{error}");
    assert!(error.contains("CHARLA_PEER_TLS_CA"), "{error}");
}
