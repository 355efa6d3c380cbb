//! The listener over TLS, with and without client certificates (mutual TLS), through real gRPC,
//! gRPC-Web over HTTP/1.1 included; certificates are made by the test.

use std::sync::Arc;

use charla_proto::charla::contact::v1 as pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_runtime::config::RuntimeConfig;
use charla_testing::tls::TestPki;
use charla_testing::{Backend, fresh_database_url};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{TestApp, spawn_configured};

async fn spawn_tls(pki: &TestPki, mutual: bool) -> TestApp {
    let url = fresh_database_url(Backend::Sqlite).await.unwrap();
    let mut config = RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        url,
        charla_testing::auth_config(),
    );
    config.tls = pki.service_config(mutual);
    spawn_configured(config, uuid::Uuid::now_v7()).await
}

/// Health, then a contact created and read back: what a client needs to work.
async fn health_and_a_call(app: &TestApp, channel: Channel) -> Result<(), tonic::Status> {
    let status = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "charla.contact.v1.ContactService".into(),
        })
        .await?
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    let mut client = ContactServiceClient::new(channel);
    let created = client
        .create_contact(app.req(pb::CreateContactRequest {
            contact: Some(pb::Contact {
                first_name: "Tls".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        }))
        .await?
        .into_inner()
        .contact
        .unwrap();
    let read = client
        .get_contact(app.req(pb::GetContactRequest {
            contact_id: created.contact_id.clone(),
        }))
        .await?
        .into_inner();
    assert_eq!(read.contact.unwrap().contact_id, created.contact_id);
    Ok(())
}

/// Connects with TLS presenting `identity`, and makes the calls; the error if refused (with
/// TLS 1.3 the client's handshake ends before the server has judged its certificate, so a
/// refusal may surface at the first call instead of at connect).
async fn tls_calls(
    pki: &TestPki,
    app: &TestApp,
    identity: Option<&charla_testing::tls::PemPair>,
) -> Result<(), String> {
    let channel = pki
        .connect(app.addr, identity)
        .await
        .map_err(|error| error.to_string())?;
    health_and_a_call(app, channel)
        .await
        .map_err(|status| status.to_string())
}

#[tokio::test]
async fn a_tls_listener_serves_tls_clients_and_refuses_plaintext() {
    let pki = TestPki::new();
    let app = spawn_tls(&pki, false).await;
    tls_calls(&pki, &app, None)
        .await
        .expect("a TLS client is served");

    let plaintext = Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        let refused = health_and_a_call(&app, channel).await;
        assert!(refused.is_err(), "a plaintext client is refused");
    }
    app.stop().await;
}

#[tokio::test]
async fn with_mutual_tls_only_clients_with_a_certificate_from_the_ca_are_served() {
    let pki = TestPki::new();
    let app = spawn_tls(&pki, true).await;
    let anonymous = tls_calls(&pki, &app, None).await;
    assert!(
        anonymous.is_err(),
        "a client without a certificate is refused"
    );
    let stranger = tls_calls(&pki, &app, Some(&pki.stranger)).await;
    assert!(
        stranger.is_err(),
        "a certificate from another CA is refused"
    );
    tls_calls(&pki, &app, Some(&pki.client))
        .await
        .expect("a client with a certificate from the CA is served");
    app.stop().await;
}

/// A gRPC-Web client that offers only HTTP/1.1 in its TLS handshake, as many non-browser
/// clients do, is served on the TLS listener.
#[tokio::test]
async fn grpc_web_over_http1_is_served_on_a_tls_listener() {
    let pki = TestPki::new();
    let app = spawn_tls(&pki, false).await;
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(&pki.ca).unwrap();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut socket = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("the TLS handshake with HTTP/1.1 only");
    assert_eq!(socket.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));

    let message = pb::ListContactsRequest::default().encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let head = format!(
        "POST /charla.contact.v1.ContactService/ListContacts HTTP/1.1\r\nhost: localhost\r\n\
         content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\nauthorization: Bearer {}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        charla_testing::token(charla_runtime::auth::Role::Agent, Some(app.workspace)),
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&body).await.unwrap();
    let mut response = Vec::new();
    // The server may close without a TLS close_notify once it has answered.
    let _ = socket.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("application/grpc-web"), "{text}");
    assert!(text.contains("grpc-status:0"), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn a_service_with_an_unusable_certificate_refuses_to_start_naming_it() {
    let pki = TestPki::new();
    let url = fresh_database_url(Backend::Sqlite).await.unwrap();
    let mut config = RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        url,
        charla_testing::auth_config(),
    );
    config.tls = pki.service_config(false);
    config.tls.tls_cert = Some(pki.service.key.clone());
    let error = charla_contact::build(
        &config,
        charla_runtime::test_clock::ServiceClock::System,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .err()
    .expect("the service refuses to start");
    let error = error.to_string();
    assert!(error.starts_with("CHARLA_TLS_CERT ("), "{error}");
    assert!(error.contains("no PEM certificate"), "{error}");
}
