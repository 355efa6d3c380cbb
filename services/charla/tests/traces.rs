//! Traces across services: `charla serve` processes export OTLP to a collector inside this test
//! (opentelemetry-proto's TraceService). A caller's W3C trace context reaches the conversation
//! service, its call to the contact service carries it on, and the metrics service's span for
//! the resulting event links back to the change that caused it.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_testing::in_workspace;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

/// The caller's trace and span, as a W3C `traceparent` carries them.
const TRACE_ID: &str = "5e1f1c2a7b3d4e8f9a0b1c2d3e4f5a6b";
const CALLER_SPAN: &str = "a1b2c3d4e5f60718";
/// The trace of the merge.
const MERGE_TRACE_ID: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// One exported span, flattened: what the checks need.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    links: Vec<(String, String)>,
}

/// Spans received, in arrival order.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Exported>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| attribute.value.as_ref()?.value.as_ref())
                .map(|value| match value {
                    Value::StringValue(name) => name.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    received.push(Exported {
                        service: service.clone(),
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        links: span
                            .links
                            .iter()
                            .map(|link| (hex(&link.trace_id), hex(&link.span_id)))
                            .collect(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    /// Waits until the spans received so far satisfy `seen` (or fails, naming `what`).
    async fn wait_for(&self, what: &str, seen: impl Fn(&[Exported]) -> bool) {
        for _ in 0..300 {
            if seen(&self.0.lock().unwrap()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the collector never saw {what}; it got: {:#?}",
            self.0.lock().unwrap()
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `charla serve` process, ended when the test ends.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(service: &str, port: u16, collector: SocketAddr, env: &[(&str, String)]) -> Served {
    let child = Command::new(env!("CARGO_BIN_EXE_charla"))
        .args(["serve", service])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("CHARLA_AUTH_JWKS", charla_testing::auth::test_jwks_path())
        .env("CHARLA_AUTH_AUDIENCE", charla_testing::auth::TEST_AUDIENCE)
        .env("CHARLA_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("OTEL_SERVICE_NAME")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start charla serve");
    Served(child)
}

async fn connect(port: u16) -> charla_testing::auth::TestChannel {
    for _ in 0..300 {
        let url = format!("http://127.0.0.1:{port}");
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect()
            .await
        {
            return charla_testing::auth::with_service_token(channel);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_conversation_and_contact_and_consumers_link_back_to_the_change() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    let served = collector.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(served))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });

    let dir = std::env::temp_dir().join(format!("charla-traces-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = |name: &str| format!("sqlite:{}", dir.join(format!("{name}.db")).display());
    let [contact_port, conversation_port, metrics_port] = [free_port(), free_port(), free_port()];
    let _contact = serve(
        "contact",
        contact_port,
        collector_addr,
        &[("CHARLA_DATABASE_URL", db("contact"))],
    );
    let _conversation = serve(
        "conversation",
        conversation_port,
        collector_addr,
        &[
            ("CHARLA_DATABASE_URL", db("conversation")),
            (
                "CHARLA_CONTACT_URL",
                format!("http://127.0.0.1:{contact_port}"),
            ),
        ],
    );
    let _metrics = serve(
        "metrics",
        metrics_port,
        collector_addr,
        &[
            ("CHARLA_DATABASE_URL", db("metrics")),
            (
                "CHARLA_CONVERSATION_URL",
                format!("http://127.0.0.1:{conversation_port}"),
            ),
        ],
    );

    let workspace = uuid::Uuid::now_v7();
    let contact = ContactServiceClient::new(connect(contact_port).await)
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
    let primary_id = contact.contact_id.clone();
    let mut request = in_workspace(
        workspace,
        pb::RecordMessageRequest {
            message_id: "wamid.1".into(),
            contact_id: contact.contact_id,
            channel: Some(pb::Channel {
                channel_type: contact_pb::ChannelType::Whatsapp as i32,
                channel_id: "wa".into(),
            }),
            direction: pb::MessageDirection::Inbound as i32,
            author_kind: pb::AuthorKind::Contact as i32,
            ..Default::default()
        },
    );
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{CALLER_SPAN}-01").parse().unwrap(),
    );
    let recorded = ConversationServiceClient::new(connect(conversation_port).await)
        .record_message(request)
        .await
        .unwrap()
        .into_inner();
    assert!(recorded.opened_conversation);

    collector
        .wait_for("contact, conversation and the metrics link", |spans| {
            let by_id: HashMap<&str, &Exported> = spans
                .iter()
                .map(|span| (span.span_id.as_str(), span))
                .collect();
            let Some(recorded) = spans.iter().find(|span| {
                span.service == "charla-conversation"
                    && span.name == "charla.conversation.v1.ConversationService/RecordMessage"
                    && span.trace_id == TRACE_ID
                    && span.parent_span_id == CALLER_SPAN
            }) else {
                return false;
            };
            let contact_called = spans.iter().any(|span| {
                span.service == "charla-contact"
                    && span.name.starts_with("charla.contact.v1.ContactService/")
                    && span.trace_id == TRACE_ID
                    && by_id
                        .get(span.parent_span_id.as_str())
                        .is_some_and(|parent| parent.service == "charla-conversation")
            });
            // A link, not a child: the consumer's span is in a trace of its own.
            let metrics_linked = spans.iter().any(|span| {
                span.service == "charla-metrics"
                    && span.name == "apply conversation events"
                    && span.trace_id != TRACE_ID
                    && span
                        .links
                        .contains(&(TRACE_ID.to_owned(), recorded.span_id.clone()))
            });
            contact_called && metrics_linked
        })
        .await;

    // The contact event hop: a merge (in a trace of its own) reaches the conversation service's
    // contact consumer, whose span links back to the merge.
    let mut contacts = ContactServiceClient::new(connect(contact_port).await);
    let secondary = contacts
        .create_contact(in_workspace(
            workspace,
            contact_pb::CreateContactRequest {
                contact: Some(contact_pb::Contact {
                    first_name: "Susi".into(),
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
    // Defaults for whatever else MergeContactsRequest grows.
    #[allow(clippy::needless_update)]
    let mut merge = in_workspace(
        workspace,
        contact_pb::MergeContactsRequest {
            primary_contact_id: primary_id,
            secondary_contact_id: secondary.contact_id,
            ..Default::default()
        },
    );
    merge.metadata_mut().insert(
        "traceparent",
        format!("00-{MERGE_TRACE_ID}-{CALLER_SPAN}-01")
            .parse()
            .unwrap(),
    );
    contacts.merge_contacts(merge).await.unwrap();
    collector
        .wait_for("the conversation service's link to the merge", |spans| {
            let Some(merge) = spans.iter().find(|span| {
                span.service == "charla-contact"
                    && span.name == "charla.contact.v1.ContactService/MergeContacts"
                    && span.trace_id == MERGE_TRACE_ID
            }) else {
                return false;
            };
            spans.iter().any(|span| {
                span.service == "charla-conversation"
                    && span.name == "apply contact event"
                    && span
                        .links
                        .contains(&(MERGE_TRACE_ID.to_owned(), merge.span_id.clone()))
            })
        })
        .await;
    let _ = std::fs::remove_dir_all(&dir);
}
