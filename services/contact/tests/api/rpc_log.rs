//! One log line per call, through the real server: method, code, latency, workspace and trace id;
//! never the token or what the message carried.

use std::io::Write;
use std::sync::{Arc, Mutex};

use charla_proto::charla::contact::v1 as pb;
use charla_runtime::auth::Role;
use charla_testing::Backend;
use tracing_subscriber::fmt::MakeWriter;

use crate::helpers::spawn_app;

/// Log output kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// The JSON rpc lines logged so far.
    fn rpc_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("JSON lines"))
            .filter(|line| line["target"] == "charla::rpc")
            .collect()
    }

    /// Waits (briefly) for the line of `method`'s `nth` call: the server writes it as the
    /// answer's last frame goes out, which may be just after the client has it.
    async fn line_of(&self, method: &str, nth: usize) -> serde_json::Value {
        for _ in 0..200 {
            let lines: Vec<_> = self
                .rpc_lines()
                .into_iter()
                .filter(|line| line["rpc.method"] == method)
                .collect();
            if let Some(line) = lines.get(nth) {
                return line.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("no log line for call {nth} of {method}:\n{}", self.text());
    }
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

// One thread: the server's tasks run where the capturing subscriber is installed.
#[tokio::test(flavor = "current_thread")]
async fn every_call_logs_one_json_line_with_method_code_latency_workspace_and_trace_id() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _installed = tracing::subscriber::set_default(subscriber);

    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let mut client = app.client().await;
    let token = charla_testing::auth::token(Role::Admin, Some(app.workspace));

    let secret_name = "Zacarías-the-secret-first-name";
    let mut request = app.req(pb::CreateContactRequest {
        contact: Some(pb::Contact {
            first_name: secret_name.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    client.create_contact(request).await.expect("created");

    let bad = client
        .get_contact(app.req(pb::GetContactRequest {
            contact_id: "not-a-uuid".into(),
        }))
        .await;
    assert_eq!(bad.unwrap_err().code(), tonic::Code::InvalidArgument);

    let unauthenticated = client
        .get_contact(charla_testing::auth::with_token(
            "not.a.token",
            pb::GetContactRequest {
                contact_id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await;
    assert_eq!(
        unauthenticated.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );

    let created = captured.line_of("CreateContact", 0).await;
    assert_eq!(created["rpc.service"], "charla.contact.v1.ContactService");
    assert_eq!(created["grpc.code"], "OK");
    assert_eq!(created["workspace"], app.workspace.to_string());
    assert_eq!(created["trace_id"], TRACE_ID);
    assert_eq!(created["level"], "INFO");
    let latency = created["latency_ms"].as_f64().expect("a latency in ms");
    assert!(latency > 0.0 && latency < 30_000.0, "{latency}");

    let invalid = captured.line_of("GetContact", 0).await;
    assert_eq!(invalid["grpc.code"], "INVALID_ARGUMENT");
    assert_eq!(invalid["workspace"], app.workspace.to_string());
    assert!(invalid.get("trace_id").is_none(), "{invalid}");

    let refused = captured.line_of("GetContact", 1).await;
    assert_eq!(refused["grpc.code"], "UNAUTHENTICATED");
    assert!(refused.get("workspace").is_none(), "{refused}");

    let everything = captured.text();
    assert!(!everything.contains(&token), "a token was logged");
    assert!(!everything.contains("not.a.token"), "a token was logged");
    assert!(
        !everything.contains(secret_name),
        "a message body was logged"
    );
    app.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_path_no_service_declares_is_logged_as_other() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(captured.clone())
        .finish();
    let _installed = tracing::subscriber::set_default(subscriber);
    let app = spawn_app(Backend::Sqlite).await.unwrap();

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let made_up = grpc
        .unary::<_, (), _>(
            charla_testing::auth::in_workspace(app.workspace, ()),
            "/charla.contact.v1.ContactService/MadeUpMethodName"
                .parse()
                .unwrap(),
            tonic_prost::ProstCodec::<(), ()>::default(),
        )
        .await;
    assert_eq!(made_up.unwrap_err().code(), tonic::Code::Unimplemented);

    let line = captured.line_of("_OTHER", 0).await;
    assert_eq!(line["rpc.service"], "_OTHER");
    assert_eq!(line["grpc.code"], "UNIMPLEMENTED");
    assert!(!captured.text().contains("MadeUpMethodName"));
    app.stop().await;
}
