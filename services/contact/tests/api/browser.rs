//! Calls from web pages on other origins (CORS), over HTTP/1.1 written by hand so nothing but the
//! server is involved: preflights answered without credentials, only for the allowed origins, and
//! gRPC-Web answers a page's script may read.

use std::collections::HashMap;
use std::net::SocketAddr;

use charla_proto::charla::contact::v1 as pb;
use charla_runtime::auth::Role;
use charla_runtime::config::RuntimeConfig;
use charla_testing::Backend;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, spawn_app, spawn_configured};

const ALLOWED: &str = "http://app.example.test:8080";

/// A service allowing `origins` (`CHARLA_CORS_ALLOWED_ORIGINS`, read as the binary reads it).
async fn spawn_allowing(origins: &str) -> TestApp {
    use clap::Parser;
    #[derive(Parser)]
    struct Settings {
        #[command(flatten)]
        runtime: RuntimeConfig,
    }
    let url = charla_testing::fresh_database_url(Backend::Sqlite)
        .await
        .unwrap();
    let settings = Settings::parse_from([
        "contact",
        "--database-url",
        &url,
        "--cors-allowed-origins",
        origins,
    ]);
    let mut config = RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        &url,
        charla_testing::auth_config(),
    );
    config.cors = settings.runtime.cors;
    spawn_configured(config, uuid::Uuid::now_v7()).await
}

/// An HTTP/1.1 answer: status code, headers (names in lower case), body.
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The comma-separated values of a header, in lower case.
    fn list(&self, name: &str) -> Vec<String> {
        self.header(name)
            .unwrap_or_default()
            .split(',')
            .map(|value| value.trim().to_ascii_lowercase())
            .filter(|value| !value.is_empty())
            .collect()
    }
}

async fn send(addr: SocketAddr, head: &str, body: &[u8]) -> Answer {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(body).await.unwrap();
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await.unwrap();
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Answer {
        status: status.parse().unwrap(),
        headers,
        body: response[split + 4..].to_vec(),
    }
}

/// What a browser sends before a page's gRPC-Web call: no token, only what the call will carry.
async fn preflight(addr: SocketAddr, origin: &str) -> Answer {
    let head = format!(
        "OPTIONS /charla.contact.v1.ContactService/ListContacts HTTP/1.1\r\nhost: {addr}\r\n\
         origin: {origin}\r\naccess-control-request-method: POST\r\n\
         access-control-request-headers: authorization,content-type,x-grpc-web,x-user-agent,grpc-timeout\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n"
    );
    send(addr, &head, b"").await
}

/// A page's gRPC-Web call of `method` with `message`, from `origin`.
async fn grpc_web(app: &TestApp, origin: &str, method: &str, message: &[u8]) -> Answer {
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    let head = format!(
        "POST /charla.contact.v1.ContactService/{method} HTTP/1.1\r\nhost: {}\r\norigin: {origin}\r\n\
         content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\nauthorization: Bearer {}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        app.addr,
        charla_testing::token(Role::Agent, Some(app.workspace)),
        body.len()
    );
    send(app.addr, &head, &body).await
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_without_credentials() {
    let app = spawn_allowing(&format!("https://other.example.test,{ALLOWED}")).await;
    let answer = preflight(app.addr, ALLOWED).await;
    assert!(
        matches!(answer.status, 200 | 204),
        "status {}",
        answer.status
    );
    assert_eq!(answer.header("access-control-allow-origin"), Some(ALLOWED));
    let methods = answer.list("access-control-allow-methods");
    assert!(methods.contains(&"post".to_owned()), "{methods:?}");
    let headers = answer.list("access-control-allow-headers");
    for name in [
        "authorization",
        "x-workspace-id",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "content-type",
    ] {
        assert!(headers.contains(&name.to_owned()), "{name}: {headers:?}");
    }
    let max_age: u64 = answer
        .header("access-control-max-age")
        .expect("a max-age")
        .parse()
        .unwrap();
    assert!(max_age >= 600, "{max_age}");
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        None,
        "tokens travel in a header, never cookies"
    );
}

#[tokio::test]
async fn other_origins_get_no_allow_origin_so_browsers_refuse() {
    let app = spawn_allowing(ALLOWED).await;
    for origin in ["http://evil.example.test", "http://app.example.test:8081"] {
        let answer = preflight(app.addr, origin).await;
        assert_eq!(
            answer.header("access-control-allow-origin"),
            None,
            "{origin}"
        );
    }
    // And none at all by default.
    let default = spawn_app(Backend::Sqlite).await.unwrap();
    let answer = preflight(default.addr, ALLOWED).await;
    assert_eq!(answer.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn any_origin_when_asked_for() {
    let app = spawn_allowing("*").await;
    let answer = preflight(app.addr, "http://127.0.0.1:43210").await;
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
}

/// The call itself: the page may read the origin grant and the status headers, whether the call
/// succeeds (status in the body's trailer frame) or fails at once (status in the headers).
#[tokio::test]
async fn grpc_web_answers_carry_the_origin_grant_and_expose_the_status() {
    let app = spawn_allowing(ALLOWED).await;
    let created = grpc_web(
        &app,
        ALLOWED,
        "CreateContact",
        &pb::CreateContactRequest {
            contact: Some(pb::Contact {
                first_name: "Browser".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        }
        .encode_to_vec(),
    )
    .await;
    assert_eq!(created.status, 200);
    assert_eq!(created.header("access-control-allow-origin"), Some(ALLOWED));
    let body = String::from_utf8_lossy(&created.body);
    assert!(body.contains("grpc-status:0"), "{body}");
    assert!(body.contains("Browser"), "{body}");

    let refused = grpc_web(
        &app,
        ALLOWED,
        "GetContact",
        &pb::GetContactRequest {
            contact_id: "not-an-id".into(),
        }
        .encode_to_vec(),
    )
    .await;
    assert_eq!(refused.header("access-control-allow-origin"), Some(ALLOWED));
    assert_eq!(
        refused.header("grpc-status"),
        Some(&*(tonic::Code::InvalidArgument as i32).to_string())
    );
    assert!(refused.header("grpc-status-details-bin").is_some());
    let exposed = refused.list("access-control-expose-headers");
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(&name.to_owned()), "{name}: {exposed:?}");
    }
}
