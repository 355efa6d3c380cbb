//! Credentials and tenant isolation over every RPC of every service, through the real gRPC surface
//! of the three services started in process:
//! - every RPC the descriptors list, called with a raw codec (so a new RPC is covered without
//!   editing this file), refuses a call without a usable token saying why (ErrorInfo reason), and
//!   a caller whose role is too low naming the role it needs;
//! - a valid token of workspace B naming workspace A's ids gets the answer a never-seen id gets,
//!   and no answer, error or event carries anything of A; a service token naming A does see A;
//! - each key of the key set signs tokens the services accept; a token whose algorithm is not its
//!   key's is refused.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::metrics::v1 as metrics_pb;
use charla_runtime::auth::Role;
use charla_runtime::clock::ManualClock;
use charla_runtime::config::RuntimeConfig;
use charla_runtime::test_clock::ServiceClock;
use charla_runtime::workspace::WORKSPACE_HEADER;
use charla_testing::auth::{TestChannel, TestKey, claims, sign, test_jwks_path};
use charla_testing::{Backend, backend_tests, fresh_database_url, in_workspace, token, with_token};
use contact_pb::contact_service_client::ContactServiceClient;
use metrics_pb::metrics_service_client::MetricsServiceClient;
use pb::conversation_service_client::ConversationServiceClient;
use prost::Message;
use prost::bytes::{Buf, BufMut};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};
use tonic_types::StatusExt;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_unusable_credentials_and_too_low_roles() {
    let Some(services) = Services::start(Backend::Sqlite).await else {
        return;
    };
    let rpcs = every_rpc();
    let services_named: Vec<&str> = rpcs.iter().map(|rpc| rpc.service.as_str()).collect();
    for service in [
        "charla.contact.v1.ContactService",
        "charla.conversation.v1.ConversationService",
        "charla.conversation.v1.TestClockService",
        "charla.metrics.v1.MetricsService",
    ] {
        assert!(
            services_named.contains(&service),
            "{service} is not in the descriptors"
        );
    }
    for (name, _) in REQUIRED_ROLES {
        assert!(
            rpcs.iter().any(|rpc| rpc.matches(name)),
            "REQUIRED_ROLES names `{name}`, which no descriptor has"
        );
    }

    // Which server serves which service, from health checking (which, like reflection, needs no
    // token): the test clock is served where it is on (conversation and metrics here). Reflection
    // lists exactly those, plus health and itself.
    let mut open_calls = 0;
    let mut targets: Vec<(&Rpc, &'static str, Channel)> = Vec::new();
    for (server, addr) in services.servers() {
        let channel = plain_channel(addr).await;
        let mut listed = reflected_services(&channel).await;
        open_calls += 1;
        assert_eq!(health(&channel, "").await, Some(ServingStatus::Serving));
        open_calls += 1;
        let mut served = vec![
            "grpc.health.v1.Health".to_owned(),
            "grpc.reflection.v1.ServerReflection".to_owned(),
            "grpc.reflection.v1alpha.ServerReflection".to_owned(),
        ];
        for rpc in &rpcs {
            let status = health(&channel, &rpc.service).await;
            open_calls += 1;
            if status == Some(ServingStatus::Serving) {
                targets.push((rpc, server, channel.clone()));
                served.push(rpc.service.clone());
            }
        }
        served.sort();
        served.dedup();
        listed.sort();
        assert_eq!(listed, served, "{server}: reflection lists what it serves");
    }
    for rpc in &rpcs {
        assert!(
            targets
                .iter()
                .any(|(served, _, _)| served.path() == rpc.path()),
            "no server serves {}",
            rpc.path()
        );
    }

    let mut checked = 0;
    let bad = bad_credentials(Uuid::now_v7());
    for (rpc, server, channel) in &targets {
        for case in &bad {
            let status = call_raw(channel, rpc, case.authorization.as_deref())
                .await
                .expect_err("a call without a usable token fails");
            let what = format!("{} on {server} with {}", rpc.path(), case.name);
            assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
            assert_eq!(
                reason(&status).as_deref(),
                Some(case.reason),
                "{what}: {status:?}"
            );
            checked += 1;
        }
    }

    // Every role against every RPC: too low is PERMISSION_DENIED naming the role needed; enough
    // gets past the role check (empty bodies then fail validation, or succeed harmlessly in a
    // workspace of their own).
    let workspace = Uuid::now_v7();
    let roles = [
        (Role::Agent, token(Role::Agent, Some(workspace))),
        (Role::Admin, token(Role::Admin, Some(workspace))),
        (Role::Service, token(Role::Service, None)),
    ];
    for (rpc, server, channel) in &targets {
        let needed = rpc.required_role();
        for (role, token) in &roles {
            let result = call_raw(channel, rpc, Some(&format!("Bearer {token}"))).await;
            let what = format!("{} on {server} as {role} (needs {needed})", rpc.path());
            if *role < needed {
                let status = result.expect_err("a role too low is refused");
                assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
                assert_eq!(
                    reason(&status).as_deref(),
                    Some("ROLE_NOT_ALLOWED"),
                    "{what}"
                );
                assert_eq!(
                    charla_testing::error_info_value(&status, "required_role").as_deref(),
                    Some(needed.as_str()),
                    "{what}: {status:?}"
                );
            } else if let Err(status) = result {
                assert!(
                    !matches!(
                        status.code(),
                        Code::Unauthenticated
                            | Code::PermissionDenied
                            | Code::Internal
                            | Code::Unknown
                            | Code::Unimplemented
                    ),
                    "{what}: {status:?}"
                );
            }
            checked += 1;
        }
    }
    println!(
        "credentials: {checked} (RPC, case) pairs checked: {} RPCs ({} served) × {} unusable \
         credentials + 3 roles; {open_calls} health and reflection calls without a token",
        rpcs.len(),
        targets.len(),
        bad.len()
    );
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_signs_accepted_tokens_and_a_mismatched_algorithm_is_refused() {
    let Some(services) = Services::start(Backend::Sqlite).await else {
        return;
    };
    let workspace = Uuid::now_v7();
    let mut conversations = services.conversations().await;
    let mut contacts = services.contacts().await;
    let mut metrics = services.metrics().await;
    for key in [TestKey::Hs256, TestKey::Rs256, TestKey::EdDsa] {
        let token = sign(key, &claims(Role::Admin, Some(workspace)));
        let settings = conversations
            .get_workspace_settings(with_token(&token, pb::GetWorkspaceSettingsRequest {}))
            .await
            .unwrap_or_else(|status| panic!("{key:?}: {status:?}"))
            .into_inner()
            .settings
            .expect("settings");
        assert_eq!(settings.workspace_id, workspace.to_string(), "{key:?}");
        contacts
            .list_contacts(with_token(
                &token,
                contact_pb::ListContactsRequest::default(),
            ))
            .await
            .unwrap_or_else(|status| panic!("{key:?}: {status:?}"));
        metrics
            .get_dashboard(with_token(
                &token,
                metrics_pb::GetDashboardRequest::default(),
            ))
            .await
            .unwrap_or_else(|status| panic!("{key:?}: {status:?}"));
    }

    let claims = claims(Role::Admin, Some(workspace));
    let hs256 = jsonwebtoken::EncodingKey::from_secret(&hs256_secret());
    let rs256 = jsonwebtoken::EncodingKey::from_rsa_der(
        &std::fs::read(test_jwks_path().with_file_name("rsa-test-private.der"))
            .expect("the test RSA key"),
    );
    let mismatched = [
        (
            "HS256 under the RS256 key's kid",
            signed(
                jsonwebtoken::Algorithm::HS256,
                "test-rs256",
                &hs256,
                &claims,
            ),
        ),
        (
            "HS256 under the Ed25519 key's kid",
            signed(
                jsonwebtoken::Algorithm::HS256,
                "test-eddsa",
                &hs256,
                &claims,
            ),
        ),
        (
            "RS256 under the HS256 key's kid",
            signed(
                jsonwebtoken::Algorithm::RS256,
                "test-hs256",
                &rs256,
                &claims,
            ),
        ),
    ];
    for (case, token) in mismatched {
        let status = conversations
            .get_workspace_settings(with_token(&token, pb::GetWorkspaceSettingsRequest {}))
            .await
            .expect_err(case);
        assert_eq!(status.code(), Code::Unauthenticated, "{case}: {status:?}");
        assert_eq!(
            reason(&status).as_deref(),
            Some("WRONG_ALGORITHM"),
            "{case}"
        );
    }
    services.stop().await;
}

backend_tests!(a_token_of_workspace_b_sees_nothing_of_workspace_a);

async fn a_token_of_workspace_b_sees_nothing_of_workspace_a(backend: Backend) {
    let Some(services) = Services::start(backend).await else {
        return;
    };
    let a = WorkspaceA::fill(&services).await;
    let before = a.snapshot(&services).await;
    let mut b = WorkspaceB::new(&services, &a).await;

    b.reads_before_writing(&a).await;
    b.names_a_ids(&a).await;
    b.reuses_a_keys(&a).await;
    let marker = b.streams_show_only_b().await;
    service_token_sees_a(&services, &a, &marker).await;

    assert_eq!(
        a.snapshot(&services).await,
        before,
        "workspace A changed while B called"
    );
    println!(
        "credentials: {} answers to workspace B checked for workspace A's data ({backend:?})",
        b.probe.checked
    );
    services.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The services

/// The three services on fresh databases, conversation and metrics on one manual clock.
struct Services {
    contact: SocketAddr,
    conversation: SocketAddr,
    metrics: SocketAddr,
    clock: ManualClock,
    running: Vec<(CancellationToken, JoinHandle<()>)>,
}

/// When the manual clock starts: a whole hour, so report ranges around it are whole quarters.
fn start_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_452_800)
}

fn config(database_url: &str) -> RuntimeConfig {
    let mut config = RuntimeConfig::new(
        "127.0.0.1:0".parse().expect("an address"),
        database_url,
        charla_testing::auth_config(),
    );
    // One partition on both engines (PostgreSQL's default is 16): the checks of the unscoped
    // streams read up to B's marker and rely on one partition's commit order (A wrote first).
    config.event_partitions = Some(1);
    config
}

impl Services {
    /// `None` when the backend is unavailable (skipped).
    async fn start(backend: Backend) -> Option<Self> {
        let contact_db = fresh_database_url(backend).await?;
        let conversation_db = fresh_database_url(backend).await?;
        let metrics_db = fresh_database_url(backend).await?;
        let clock = ManualClock::new(start_time());
        let mut running = Vec::new();

        let shutdown = CancellationToken::new();
        let app =
            charla_contact::build(&config(&contact_db), ServiceClock::System, shutdown.clone())
                .await
                .expect("the contact service starts");
        let contact = serve(app, shutdown, &mut running);

        let shutdown = CancellationToken::new();
        let app = charla_conversation::build(
            &config(&conversation_db),
            &charla_conversation::ServiceConfig::new(format!("http://{contact}")),
            ServiceClock::Test(clock.clone()),
            shutdown.clone(),
        )
        .await
        .expect("the conversation service starts");
        let conversation = serve(app, shutdown, &mut running);

        let shutdown = CancellationToken::new();
        let app = charla_metrics::build(
            &config(&metrics_db),
            &charla_metrics::ServiceConfig::new(format!("http://{conversation}")),
            ServiceClock::Test(clock.clone()),
            shutdown.clone(),
        )
        .await
        .expect("the metrics service starts");
        let metrics = serve(app, shutdown, &mut running);

        Some(Self {
            contact,
            conversation,
            metrics,
            clock,
            running,
        })
    }

    fn servers(&self) -> [(&'static str, SocketAddr); 3] {
        [
            ("contact", self.contact),
            ("conversation", self.conversation),
            ("metrics", self.metrics),
        ]
    }

    async fn contacts(&self) -> ContactServiceClient<TestChannel> {
        ContactServiceClient::new(charla_testing::connect(format!("http://{}", self.contact)).await)
    }

    async fn conversations(&self) -> ConversationServiceClient<TestChannel> {
        ConversationServiceClient::new(
            charla_testing::connect(format!("http://{}", self.conversation)).await,
        )
    }

    async fn metrics(&self) -> MetricsServiceClient<TestChannel> {
        MetricsServiceClient::new(charla_testing::connect(format!("http://{}", self.metrics)).await)
    }

    async fn stop(mut self) {
        while let Some((shutdown, task)) = self.running.pop() {
            shutdown.cancel();
            task.await.expect("the service stops cleanly");
        }
    }
}

fn serve(
    app: charla_runtime::app::Application,
    shutdown: CancellationToken,
    running: &mut Vec<(CancellationToken, JoinHandle<()>)>,
) -> SocketAddr {
    let addr = app.local_addr();
    let task = tokio::spawn(async move { app.run().await.expect("the service serves") });
    running.push((shutdown, task));
    addr
}

/// A channel that adds nothing to the calls made on it.
async fn plain_channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("a URL")
        .connect()
        .await
        .expect("connect")
}

async fn health(channel: &Channel, service: &str) -> Option<ServingStatus> {
    let answer = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await;
    match answer {
        Ok(response) => ServingStatus::try_from(response.into_inner().status).ok(),
        Err(status) if status.code() == Code::NotFound => None,
        Err(status) => panic!("health check of `{service}` without a token: {status:?}"),
    }
}

async fn reflected_services(channel: &Channel) -> Vec<String> {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers without a token")
        .into_inner();
    let answer: ServerReflectionResponse = answers
        .message()
        .await
        .expect("a reflection answer")
        .expect("one answer");
    match answer.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => list
            .service
            .into_iter()
            .map(|service| service.name)
            .collect(),
        other => panic!("reflection answered {other:?}"),
    }
}

fn reason(status: &Status) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
}

// ---------------------------------------------------------------------------------------------
// Every RPC, called from its descriptor

/// One RPC as the descriptors describe it.
#[derive(Debug)]
struct Rpc {
    /// The full service name, `charla.contact.v1.ContactService`.
    service: String,
    method: String,
    client_streaming: bool,
    server_streaming: bool,
}

/// The roles the API promises beyond `agent`, by service or `service/method`: written down here
/// so that a change of policy is a visible change to this test. Anything not listed needs `agent`.
const REQUIRED_ROLES: &[(&str, Role)] = &[
    (
        "charla.contact.v1.ContactService/DeleteContact",
        Role::Admin,
    ),
    (
        "charla.contact.v1.ContactService/ImportContacts",
        Role::Admin,
    ),
    (
        "charla.contact.v1.ContactService/StreamContactEvents",
        Role::Admin,
    ),
    (
        "charla.contact.v1.ContactService/GetContactEventStreamInfo",
        Role::Service,
    ),
    (
        "charla.conversation.v1.ConversationService/UpdateWorkspaceSettings",
        Role::Admin,
    ),
    (
        "charla.conversation.v1.ConversationService/ImportConversations",
        Role::Admin,
    ),
    (
        "charla.conversation.v1.ConversationService/StreamConversationEvents",
        Role::Admin,
    ),
    (
        "charla.conversation.v1.ConversationService/GetConversationEventStreamInfo",
        Role::Service,
    ),
    ("charla.conversation.v1.TestClockService", Role::Service),
    (
        "charla.metrics.v1.MetricsService/UpdateReportSettings",
        Role::Admin,
    ),
    (
        "charla.metrics.v1.MetricsService/RebuildAggregates",
        Role::Service,
    ),
];

impl Rpc {
    fn path(&self) -> String {
        format!("/{}/{}", self.service, self.method)
    }

    fn matches(&self, name: &str) -> bool {
        name == self.service || name == &self.path()[1..]
    }

    fn required_role(&self) -> Role {
        REQUIRED_ROLES
            .iter()
            .find(|(name, _)| self.matches(name))
            .map_or(Role::Agent, |(_, role)| *role)
    }
}

/// Every RPC of every service in charla's descriptors.
fn every_rpc() -> Vec<Rpc> {
    let set = prost_types::FileDescriptorSet::decode(charla_proto::FILE_DESCRIPTOR_SET)
        .expect("the descriptors decode");
    let mut rpcs = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                rpcs.push(Rpc {
                    service: format!("{}.{}", file.package(), service.name()),
                    method: method.name().to_owned(),
                    client_streaming: method.client_streaming(),
                    server_streaming: method.server_streaming(),
                });
            }
        }
    }
    rpcs
}

/// Messages as bytes: any RPC can be called without its generated types.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self {
        *self
    }

    fn decoder(&mut self) -> Self {
        *self
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Calls `rpc` with an empty message (one, on a client stream) and `authorization` as given. For
/// a server stream, only whether the call was accepted: the stream is dropped.
async fn call_raw(channel: &Channel, rpc: &Rpc, authorization: Option<&str>) -> Result<(), Status> {
    fn request<T>(message: T, authorization: Option<&str>) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(value) = authorization {
            let value = MetadataValue::try_from(value).expect("ASCII metadata");
            request.metadata_mut().insert("authorization", value);
        }
        request
    }
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|error| Status::unavailable(error.to_string()))?;
    let path = PathAndQuery::try_from(rpc.path()).expect("a path");
    let one = || tokio_stream::iter([Vec::new()]);
    match (rpc.client_streaming, rpc.server_streaming) {
        (false, false) => grpc
            .unary(request(Vec::new(), authorization), path, RawCodec)
            .await
            .map(drop),
        (true, false) => grpc
            .client_streaming(request(one(), authorization), path, RawCodec)
            .await
            .map(drop),
        (false, true) => grpc
            .server_streaming(request(Vec::new(), authorization), path, RawCodec)
            .await
            .map(drop),
        (true, true) => grpc
            .streaming(request(one(), authorization), path, RawCodec)
            .await
            .map(drop),
    }
}

/// An `authorization` the services must refuse, and the reason they must give.
struct BadCredential {
    name: &'static str,
    authorization: Option<String>,
    reason: &'static str,
}

/// Every way of presenting unusable credentials, for an admin of `workspace` otherwise.
fn bad_credentials(workspace: Uuid) -> Vec<BadCredential> {
    let valid = claims(Role::Admin, Some(workspace));
    let iat = valid["iat"].as_u64().expect("iat");
    let changed = |change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut claims = valid.clone();
        change(claims.as_object_mut().expect("an object"));
        claims
    };
    let bearer = |token: String| Some(format!("Bearer {token}"));
    let hs256 = jsonwebtoken::EncodingKey::from_secret(&hs256_secret());
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"test-hs256"}"#),
        URL_SAFE_NO_PAD.encode(valid.to_string())
    );
    let case = |name, authorization, reason| BadCredential {
        name,
        authorization,
        reason,
    };
    vec![
        case("no token", None, "NO_TOKEN"),
        case(
            "`Bearer` with garbage",
            Some("Bearer not-a-jwt".into()),
            "TOKEN_MALFORMED",
        ),
        case(
            "another scheme",
            Some("Basic YWRtaW46YWRtaW4=".into()),
            "TOKEN_MALFORMED",
        ),
        case("an unsigned token", bearer(unsigned), "TOKEN_MALFORMED"),
        case(
            "an expired token",
            bearer(sign(
                TestKey::Hs256,
                &changed(&|c| {
                    c.insert("iat".into(), (iat - 7200).into());
                    c.insert("exp".into(), (iat - 3600).into());
                }),
            )),
            "TOKEN_EXPIRED",
        ),
        case(
            "a token not valid yet",
            bearer(sign(
                TestKey::Hs256,
                &changed(&|c| {
                    c.insert("nbf".into(), (iat + 3600).into());
                }),
            )),
            "TOKEN_NOT_YET_VALID",
        ),
        case(
            "a token without `exp`",
            bearer(sign(
                TestKey::Hs256,
                &changed(&|c| {
                    c.remove("exp");
                }),
            )),
            "MISSING_CLAIM",
        ),
        case(
            "a token signed with an untrusted key",
            bearer(sign(TestKey::Untrusted, &valid)),
            "BAD_SIGNATURE",
        ),
        case(
            "a token of an unknown key",
            bearer(signed(
                jsonwebtoken::Algorithm::HS256,
                "retired-key",
                &hs256,
                &valid,
            )),
            "UNKNOWN_KEY",
        ),
        case(
            "a token whose algorithm is not its key's",
            bearer(signed(
                jsonwebtoken::Algorithm::HS256,
                "test-rs256",
                &hs256,
                &valid,
            )),
            "WRONG_ALGORITHM",
        ),
        case(
            "a token for another audience",
            bearer(sign(
                TestKey::EdDsa,
                &changed(&|c| {
                    c.insert("aud".into(), "another-service".into());
                }),
            )),
            "WRONG_AUDIENCE",
        ),
        case(
            "a token without `role`",
            bearer(sign(
                TestKey::Rs256,
                &changed(&|c| {
                    c.remove("role");
                }),
            )),
            "MISSING_CLAIM",
        ),
        case(
            "a token of an unknown role",
            bearer(sign(
                TestKey::Hs256,
                &changed(&|c| {
                    c.insert("role".into(), "root".into());
                }),
            )),
            "BAD_CLAIM",
        ),
        case(
            "an agent token without `workspace_id`",
            bearer(sign(TestKey::Hs256, &claims(Role::Agent, None))),
            "MISSING_CLAIM",
        ),
    ]
}

/// The test key set's HS256 secret.
fn hs256_secret() -> Vec<u8> {
    let jwks: Value =
        serde_json::from_slice(&std::fs::read(test_jwks_path()).expect("the JWKS")).expect("JSON");
    let key = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|key| key["kid"] == "test-hs256")
        .expect("the HS256 key");
    URL_SAFE_NO_PAD
        .decode(key["k"].as_str().expect("k"))
        .expect("base64url")
}

/// `claims` signed with `key` by `algorithm`, the header naming `kid` whatever key that is.
fn signed(
    algorithm: jsonwebtoken::Algorithm,
    kid: &str,
    key: &jsonwebtoken::EncodingKey,
    claims: &Value,
) -> String {
    let mut header = jsonwebtoken::Header::new(algorithm);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

// ---------------------------------------------------------------------------------------------
// Workspace A: something of every kind

const FIRST_NAME: &str = "Aliciaqz";
const LAST_NAME: &str = "Vandermeerqz";
const OTHER_NAME: &str = "Brunoqz";
const EMAIL: &str = "alicia.qz@a-tenant.example";
const PHONE: &str = "+34600123987";
const SUMMARY: &str = "refund 4711 promised to aliciaqz";
const OLD_SUMMARY: &str = "imported qz history";
const CATEGORY: &str = "qz-refunds";
const ASSIGNEE: &str = "qz-agent-ana";
const TEAM: &str = "qz-team-billing";
/// A's keys that B may reuse in its own workspace: identities, message ids, an external id.
const WA_ID: &str = "qz-wa-5550001";
const SMS_ID: &str = "qz-sms-5550002";
const TELEGRAM_ID: &str = "qz-tg-5550003";
const FIRST_MESSAGE: &str = "qz-message-1";
const EXTERNAL_ID: &str = "qz-history-1";

fn identity(
    channel_type: contact_pb::ChannelType,
    external_id: &str,
) -> contact_pb::ChannelIdentity {
    contact_pb::ChannelIdentity {
        channel_type: channel_type as i32,
        channel_id: "line-1".into(),
        external_id: external_id.into(),
    }
}

fn whatsapp() -> pb::Channel {
    pb::Channel {
        channel_type: contact_pb::ChannelType::Whatsapp as i32,
        channel_id: "line-1".into(),
    }
}

fn inbound(message_id: &str, contact: &str) -> pb::RecordMessageRequest {
    pb::RecordMessageRequest {
        message_id: message_id.into(),
        contact_id: contact.into(),
        channel: Some(whatsapp()),
        direction: pb::MessageDirection::Inbound as i32,
        author_kind: pb::AuthorKind::Contact as i32,
        ..Default::default()
    }
}

fn timestamp(time: SystemTime) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp::from(time))
}

fn hours_ago(hours: u64) -> Option<prost_types::Timestamp> {
    timestamp(start_time() - Duration::from_secs(hours * 3600))
}

/// A closed historical conversation of `contact`, three to two hours before the clock's start.
fn history(
    external_id: &str,
    contact: &str,
    message_id: &str,
    summary: &str,
) -> pb::ImportConversationsRequest {
    pb::ImportConversationsRequest {
        conversation: Some(pb::HistoricalConversation {
            external_id: external_id.into(),
            contact_id: contact.into(),
            channel: Some(whatsapp()),
            opened_at: hours_ago(3),
            opened_by: pb::OpenSource::InboundMessage as i32,
            messages: vec![pb::HistoricalMessage {
                message_id: message_id.into(),
                sent_at: hours_ago(3),
                direction: pb::MessageDirection::Inbound as i32,
                author_kind: pb::AuthorKind::Contact as i32,
                author_id: String::new(),
            }],
            closed_at: hours_ago(2),
            closed_by: pb::CloseSource::User as i32,
            closing_summary: summary.into(),
            ..Default::default()
        }),
    }
}

/// The day around the clock's start, in whole quarters.
fn report_range() -> (
    Option<prost_types::Timestamp>,
    Option<prost_types::Timestamp>,
) {
    let day = Duration::from_secs(24 * 3600);
    (timestamp(start_time() - day), timestamp(start_time() + day))
}

struct WorkspaceA {
    workspace: Uuid,
    /// Identities on WhatsApp and SMS, email, phone; one closed conversation, one imported.
    contact: String,
    /// One open, assigned conversation.
    other_contact: String,
    closed: String,
    open: String,
    imported: String,
    create_request: String,
    close_request: String,
}

impl WorkspaceA {
    async fn fill(services: &Services) -> Self {
        let workspace = Uuid::now_v7();
        let req = |message| in_workspace(workspace, message);
        let mut contacts = services.contacts().await;
        let mut conversations = services.conversations().await;

        conversations
            .update_workspace_settings(in_workspace(
                workspace,
                pb::UpdateWorkspaceSettingsRequest {
                    settings: Some(pb::WorkspaceSettings {
                        closing_note_policy: pb::ClosingNotePolicy::CategoryAndSummaryRequired
                            as i32,
                        closing_categories: vec![CATEGORY.into()],
                        auto_close_after: Some(prost_types::Duration {
                            seconds: 6 * 3600,
                            nanos: 0,
                        }),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec![
                            "closing_note_policy".into(),
                            "closing_categories".into(),
                            "auto_close_after".into(),
                        ],
                    }),
                },
            ))
            .await
            .expect("A's settings");

        let create_request = Uuid::now_v7().to_string();
        let contact = contacts
            .create_contact(in_workspace(
                workspace,
                contact_pb::CreateContactRequest {
                    contact: Some(contact_pb::Contact {
                        first_name: FIRST_NAME.into(),
                        last_name: LAST_NAME.into(),
                        email: EMAIL.into(),
                        phone: PHONE.into(),
                        identities: vec![
                            identity(contact_pb::ChannelType::Whatsapp, WA_ID),
                            identity(contact_pb::ChannelType::Sms, SMS_ID),
                        ],
                        ..Default::default()
                    }),
                    request_id: create_request.clone(),
                },
            ))
            .await
            .expect("A's contact")
            .into_inner()
            .contact
            .expect("a contact")
            .contact_id;
        let other_contact = contacts
            .resolve_contact(in_workspace(
                workspace,
                contact_pb::ResolveContactRequest {
                    identity: Some(identity(contact_pb::ChannelType::Telegram, TELEGRAM_ID)),
                    profile: Some(contact_pb::Contact {
                        first_name: OTHER_NAME.into(),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .expect("A's other contact")
            .into_inner()
            .contact
            .expect("a contact")
            .contact_id;

        let imported = conversations
            .import_conversations(req(tokio_stream::iter([history(
                EXTERNAL_ID,
                &contact,
                "qz-old-message",
                OLD_SUMMARY,
            )])))
            .await
            .expect("A's history")
            .into_inner();
        assert_eq!(imported.imported_count, 1, "{imported:?}");
        let imported = imported.results[0].conversation_id.clone();

        let closed = record(
            &mut conversations,
            workspace,
            inbound(FIRST_MESSAGE, &contact),
        )
        .await
        .expect("a conversation")
        .conversation_id;
        services.clock.advance(Duration::from_secs(60));
        assign(&mut conversations, workspace, &closed).await;
        services.clock.advance(Duration::from_secs(90));
        record(
            &mut conversations,
            workspace,
            pb::RecordMessageRequest {
                direction: pb::MessageDirection::Outbound as i32,
                author_kind: pb::AuthorKind::User as i32,
                author_id: ASSIGNEE.into(),
                ..inbound("qz-message-2", &contact)
            },
        )
        .await;
        services.clock.advance(Duration::from_secs(300));
        let close_request = Uuid::now_v7().to_string();
        conversations
            .close_conversation(in_workspace(
                workspace,
                pb::CloseConversationRequest {
                    conversation_id: closed.clone(),
                    source: pb::CloseSource::User as i32,
                    actor_id: ASSIGNEE.into(),
                    category: CATEGORY.into(),
                    summary: SUMMARY.into(),
                    request_id: close_request.clone(),
                },
            ))
            .await
            .expect("A closes");

        let open = record(
            &mut conversations,
            workspace,
            inbound("qz-message-3", &other_contact),
        )
        .await
        .expect("a conversation")
        .conversation_id;
        assign(&mut conversations, workspace, &open).await;

        let a = Self {
            workspace,
            contact,
            other_contact,
            closed,
            open,
            imported,
            create_request,
            close_request,
        };
        a.wait_for_metrics(services).await;
        a
    }

    /// Until A's metrics show its three conversations, so B's zeros say something.
    async fn wait_for_metrics(&self, services: &Services) {
        let mut metrics = services.metrics().await;
        let (start_time, end_time) = report_range();
        for _ in 0..500 {
            let report = metrics
                .get_conversation_metrics(in_workspace(
                    self.workspace,
                    metrics_pb::GetConversationMetricsRequest {
                        start_time,
                        end_time,
                        granularity: metrics_pb::Granularity::Day as i32,
                        ..Default::default()
                    },
                ))
                .await
                .expect("A's metrics")
                .into_inner();
            let totals = report.totals.unwrap_or_default();
            // The open conversation's assignment comes after its opening: wait for both, so the
            // live counts A is compared against later are final too.
            let live = metrics
                .get_dashboard(in_workspace(
                    self.workspace,
                    metrics_pb::GetDashboardRequest::default(),
                ))
                .await
                .expect("A's dashboard")
                .into_inner()
                .dashboard
                .unwrap_or_default();
            if totals.closed_count == 2
                && totals.opened_count == 3
                && live.open_count == 1
                && live.unassigned_count == 0
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the metrics service did not take in A's conversations");
    }

    /// What only A has, and B never sends: none of it may reach B.
    fn private(&self) -> Vec<String> {
        let mut private = vec![
            self.workspace.to_string(),
            self.contact.clone(),
            self.other_contact.clone(),
            self.closed.clone(),
            self.open.clone(),
            self.imported.clone(),
        ];
        private.extend(
            [
                FIRST_NAME,
                LAST_NAME,
                OTHER_NAME,
                EMAIL,
                PHONE,
                SUMMARY,
                OLD_SUMMARY,
                CATEGORY,
                ASSIGNEE,
                TEAM,
            ]
            .map(String::from),
        );
        private
    }

    /// Everything of A: its private data and the keys B may reuse in its own workspace.
    fn everything(&self) -> Vec<String> {
        let mut all = self.private();
        all.extend(
            [WA_ID, SMS_ID, TELEGRAM_ID, FIRST_MESSAGE, EXTERNAL_ID]
                .map(String::from)
                .into_iter()
                .chain([self.create_request.clone(), self.close_request.clone()]),
        );
        all
    }

    /// A's contacts, conversations, settings and dashboard as a service token naming A sees them.
    async fn snapshot(&self, services: &Services) -> String {
        let req = |message| service_in(self.workspace, message);
        let mut contacts = services.contacts().await;
        let mut conversations = services.conversations().await;
        let mut snapshot = String::new();
        for contact in [&self.contact, &self.other_contact] {
            let contact = contacts
                .get_contact(req(contact_pb::GetContactRequest {
                    contact_id: contact.clone(),
                }))
                .await
                .expect("a service token naming A sees A's contacts")
                .into_inner();
            snapshot += &format!("{contact:?}\n");
        }
        for conversation in [&self.closed, &self.open, &self.imported] {
            let conversation = conversations
                .get_conversation(service_in(
                    self.workspace,
                    pb::GetConversationRequest {
                        conversation_id: conversation.clone(),
                    },
                ))
                .await
                .expect("a service token naming A sees A's conversations")
                .into_inner();
            snapshot += &format!("{conversation:?}\n");
        }
        let settings = conversations
            .get_workspace_settings(service_in(
                self.workspace,
                pb::GetWorkspaceSettingsRequest {},
            ))
            .await
            .expect("A's settings")
            .into_inner();
        let dashboard = services
            .metrics()
            .await
            .get_dashboard(service_in(
                self.workspace,
                metrics_pb::GetDashboardRequest::default(),
            ))
            .await
            .expect("A's dashboard")
            .into_inner();
        snapshot += &format!("{settings:?}\n{dashboard:?}\n");
        for secret in [FIRST_NAME, EMAIL, PHONE, SUMMARY, CATEGORY, ASSIGNEE] {
            assert!(snapshot.contains(secret), "A's snapshot lacks {secret}");
        }
        snapshot
    }
}

async fn record(
    conversations: &mut ConversationServiceClient<TestChannel>,
    workspace: Uuid,
    message: pb::RecordMessageRequest,
) -> Option<pb::Conversation> {
    conversations
        .record_message(in_workspace(workspace, message))
        .await
        .expect("record a message")
        .into_inner()
        .conversation
}

async fn assign(
    conversations: &mut ConversationServiceClient<TestChannel>,
    workspace: Uuid,
    conversation: &str,
) {
    conversations
        .assign_conversation(in_workspace(
            workspace,
            pb::AssignConversationRequest {
                conversation_id: conversation.into(),
                assignee_user_id: ASSIGNEE.into(),
                team_id: TEAM.into(),
                ..Default::default()
            },
        ))
        .await
        .expect("assign");
}

/// A request with a service token acting in `workspace`.
fn service_in<T>(workspace: Uuid, message: T) -> tonic::Request<T> {
    let mut request = with_token(&token(Role::Service, None), message);
    request.metadata_mut().insert(
        WORKSPACE_HEADER,
        workspace.to_string().parse().expect("a UUID is metadata"),
    );
    request
}

// ---------------------------------------------------------------------------------------------
// Workspace B, naming A's ids and reusing A's keys

/// What one call answered: its code (none when it succeeded), what may be compared with another
/// call's answer, and everything it carried (metadata and error details included).
struct Answer {
    code: Option<Code>,
    comparable: String,
    full: String,
}

impl Answer {
    fn of<T: Debug + Message>(result: Result<tonic::Response<T>, Status>) -> Self {
        match result {
            Ok(response) => Self {
                code: None,
                comparable: lossy(&response.get_ref().encode_to_vec()),
                full: shown(&Ok(response)),
            },
            Err(status) => Self {
                code: Some(status.code()),
                comparable: format!(
                    "{:?}: {} {}",
                    status.code(),
                    status.message(),
                    lossy(status.details())
                ),
                full: shown::<()>(&Err(status)),
            },
        }
    }
}

/// Bytes as text, so that strings inside them (nested `google.rpc.Status` details, which `Debug`
/// shows as numbers) can be searched for.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Everything a result carries as searchable text: its `Debug` (metadata included) and its
/// encoded message or error details.
fn shown<T: Debug + Message>(result: &Result<tonic::Response<T>, Status>) -> String {
    match result {
        Ok(response) => format!(
            "{response:?}\n{}",
            lossy(&response.get_ref().encode_to_vec())
        ),
        Err(status) => format!("{status:?}\n{}", lossy(status.details())),
    }
}

/// Messages as searchable text.
fn shown_all<T: Debug + Message>(messages: &[T]) -> String {
    messages
        .iter()
        .map(|message| format!("{message:?}\n{}\n", lossy(&message.encode_to_vec())))
        .collect()
}

/// Sends `message` with `token` through `client.method`: what was sent, and the result.
macro_rules! send {
    ($client:expr, $method:ident, $token:expr, $message:expr) => {{
        let message = $message;
        let sent = format!("{message:?}");
        (
            sent,
            $client.clone().$method(with_token($token, message)).await,
        )
    }};
}

/// As `send!`, the result as an [`Answer`].
macro_rules! ask {
    ($client:expr, $method:ident, $token:expr, $message:expr) => {{
        let (sent, result) = send!($client, $method, $token, $message);
        (sent, Answer::of(result))
    }};
}

/// The ids a probe names: workspace A's, or ids nobody has.
struct Target {
    contact: String,
    other_contact: String,
    closed: String,
    open: String,
    identity: contact_pb::ChannelIdentity,
}

impl Target {
    fn unknown() -> Self {
        Self {
            contact: Uuid::now_v7().to_string(),
            other_contact: Uuid::now_v7().to_string(),
            closed: Uuid::now_v7().to_string(),
            open: Uuid::now_v7().to_string(),
            identity: identity(contact_pb::ChannelType::Whatsapp, "nobody-has-this"),
        }
    }

    /// `text` with these ids replaced by what they stand for.
    fn mask(&self, text: &str) -> String {
        [
            (&self.contact, "<contact>"),
            (&self.other_contact, "<other contact>"),
            (&self.closed, "<closed>"),
            (&self.open, "<open>"),
            (&self.identity.external_id, "<identity>"),
        ]
        .iter()
        .fold(text.to_owned(), |text, (id, mask)| {
            text.replace(id.as_str(), mask)
        })
    }
}

/// Checks B's answers against A's data.
struct Probe {
    private: Vec<String>,
    everything: Vec<String>,
    a: Target,
    unknown: Target,
    checked: usize,
}

const NOT_FOUND: &[Option<Code>] = &[Some(Code::NotFound)];
const DENIED: &[Option<Code>] = &[Some(Code::PermissionDenied)];
const SUCCEEDS: &[Option<Code>] = &[None];

impl Probe {
    /// Nothing of A in `answer` but what `sent` named itself.
    fn reveals_nothing(&mut self, what: &str, sent: &str, answer: &str) {
        for secret in &self.everything {
            assert!(
                sent.contains(secret.as_str()) || !answer.contains(secret.as_str()),
                "{what}: the answer reveals `{secret}` of workspace A: {answer}"
            );
        }
        self.checked += 1;
    }

    /// Nothing of A's private data in `text`, whatever B sent before (for lists and streams that
    /// carry B's own uses of A's keys).
    fn reveals_nothing_private(&mut self, what: &str, text: &str) {
        for secret in &self.private {
            assert!(
                !text.contains(secret.as_str()),
                "{what}: reveals `{secret}` of workspace A: {text}"
            );
        }
        self.checked += 1;
    }

    /// The answer to a call that must succeed, once checked for A's data.
    fn succeeds<T: Debug + Message>(
        &mut self,
        what: &str,
        (sent, result): (String, Result<tonic::Response<T>, Status>),
    ) -> T {
        self.reveals_nothing(what, &sent, &shown(&result));
        result
            .unwrap_or_else(|status| panic!("{what}: {status:?}"))
            .into_inner()
    }

    /// The answer to a call that must succeed, whose answer may carry B's own uses of A's keys,
    /// once checked for A's private data.
    fn succeeds_in_b<T: Debug + Message>(
        &mut self,
        what: &str,
        (_, result): (String, Result<tonic::Response<T>, Status>),
    ) -> T {
        self.reveals_nothing_private(what, &shown(&result));
        result
            .unwrap_or_else(|status| panic!("{what}: {status:?}"))
            .into_inner()
    }

    /// `call` naming A's ids answers with one of `expected` (`None`: success), reveals nothing of
    /// A, and answers exactly as it does naming ids nobody has: B can't even tell A's exist.
    async fn like_unknown(
        &mut self,
        what: &str,
        expected: &[Option<Code>],
        call: impl AsyncFn(&Target) -> (String, Answer),
    ) {
        let (sent, on_a) = call(&self.a).await;
        let (_, on_unknown) = call(&self.unknown).await;
        self.reveals_nothing(what, &sent, &on_a.full);
        assert!(
            expected.contains(&on_a.code),
            "{what}: expected {expected:?}, got {}",
            on_a.full
        );
        assert!(
            self.a.mask(&on_a.comparable) == self.unknown.mask(&on_unknown.comparable),
            "{what}: A's ids are answered otherwise than ids nobody has:\n{}\n{}",
            on_a.full,
            on_unknown.full
        );
    }
}

struct WorkspaceB {
    workspace: Uuid,
    admin: String,
    agent: String,
    /// A workspace nobody uses: before writing, B must look exactly like it.
    fresh: Uuid,
    contacts: ContactServiceClient<TestChannel>,
    conversations: ConversationServiceClient<TestChannel>,
    metrics: MetricsServiceClient<TestChannel>,
    probe: Probe,
}

impl WorkspaceB {
    async fn new(services: &Services, a: &WorkspaceA) -> Self {
        let workspace = Uuid::now_v7();
        Self {
            workspace,
            admin: token(Role::Admin, Some(workspace)),
            agent: token(Role::Agent, Some(workspace)),
            fresh: Uuid::now_v7(),
            contacts: services.contacts().await,
            conversations: services.conversations().await,
            metrics: services.metrics().await,
            probe: Probe {
                private: a.private(),
                everything: a.everything(),
                a: Target {
                    contact: a.contact.clone(),
                    other_contact: a.other_contact.clone(),
                    closed: a.closed.clone(),
                    open: a.open.clone(),
                    identity: identity(contact_pb::ChannelType::Whatsapp, WA_ID),
                },
                unknown: Target::unknown(),
                checked: 0,
            },
        }
    }

    /// B's tokens: an admin's and an agent's.
    fn tokens(&self) -> [(&'static str, String); 2] {
        [("admin", self.admin.clone()), ("agent", self.agent.clone())]
    }

    /// `what` answers B as it answers a workspace nobody uses, and reveals nothing of A.
    fn same_as_fresh(&mut self, what: &str, sent: &str, on_b: &Answer, on_fresh: &Answer) {
        self.probe.reveals_nothing(what, sent, &on_b.full);
        assert_eq!(on_b.code, None, "{what}: {}", on_b.full);
        assert_eq!(
            on_b.comparable
                .replace(&self.workspace.to_string(), "<workspace>"),
            on_fresh
                .comparable
                .replace(&self.fresh.to_string(), "<workspace>"),
            "{what}"
        );
    }

    /// Before B writes anything: settings, lists and reports are a fresh workspace's.
    async fn reads_before_writing(&mut self, a: &WorkspaceA) {
        let fresh = token(Role::Admin, Some(self.fresh));
        let (start_time, end_time) = report_range();
        for (role, token) in self.tokens() {
            let settings = pb::GetWorkspaceSettingsRequest {};
            let (sent, on_b) = ask!(self.conversations, get_workspace_settings, &token, settings);
            let (_, on_fresh) = ask!(self.conversations, get_workspace_settings, &fresh, settings);
            self.same_as_fresh(
                &format!("GetWorkspaceSettings as {role}"),
                &sent,
                &on_b,
                &on_fresh,
            );

            for group_by in [
                metrics_pb::GroupBy::Unspecified,
                metrics_pb::GroupBy::Assignee,
            ] {
                let report = metrics_pb::GetConversationMetricsRequest {
                    start_time,
                    end_time,
                    granularity: metrics_pb::Granularity::Hour as i32,
                    group_by: group_by as i32,
                    ..Default::default()
                };
                let (sent, on_b) = ask!(
                    self.metrics,
                    get_conversation_metrics,
                    &token,
                    report.clone()
                );
                let (_, on_fresh) = ask!(self.metrics, get_conversation_metrics, &fresh, report);
                self.same_as_fresh(
                    &format!("GetConversationMetrics as {role}"),
                    &sent,
                    &on_b,
                    &on_fresh,
                );
            }
            let (sent, on_b) = ask!(self.metrics, get_dashboard, &token, Default::default());
            let (_, on_fresh) = ask!(self.metrics, get_dashboard, &fresh, Default::default());
            self.same_as_fresh(&format!("GetDashboard as {role}"), &sent, &on_b, &on_fresh);
            let watched = read_stream(
                &format!("WatchDashboard as {role}"),
                self.metrics
                    .watch_dashboard(with_token(&token, Default::default()))
                    .await,
                |_| true,
            )
            .await;
            assert_eq!(
                on_b.comparable,
                lossy(&watched[0].encode_to_vec()),
                "WatchDashboard as {role} starts with B's dashboard"
            );

            for subject in [
                metrics_pb::LeaderboardSubject::Users,
                metrics_pb::LeaderboardSubject::Teams,
            ] {
                let leaderboard = metrics_pb::GetLeaderboardRequest {
                    subject: subject as i32,
                    ranking: metrics_pb::LeaderboardRanking::ClosedCount as i32,
                    start_time,
                    end_time,
                    ..Default::default()
                };
                let answer = send!(self.metrics, get_leaderboard, &token, leaderboard);
                let answer = self
                    .probe
                    .succeeds(&format!("GetLeaderboard as {role}"), answer);
                assert!(
                    answer.entries.is_empty(),
                    "GetLeaderboard as {role}: {answer:?}"
                );
            }
            let export = metrics_pb::ExportConversationsRequest {
                start_time,
                end_time,
                filter: None,
                ..Default::default()
            };
            let rows = read_stream(
                &format!("ExportConversations as {role}"),
                self.metrics
                    .export_conversations(with_token(&token, export))
                    .await,
                |_| false,
            )
            .await;
            assert!(rows.is_empty(), "ExportConversations as {role}: {rows:?}");

            for filter in [
                contact_pb::ListContactsRequest::default(),
                contact_pb::ListContactsRequest {
                    name: FIRST_NAME.into(),
                    ..Default::default()
                },
                contact_pb::ListContactsRequest {
                    email: EMAIL.into(),
                    ..Default::default()
                },
                contact_pb::ListContactsRequest {
                    phone: PHONE.into(),
                    ..Default::default()
                },
            ] {
                let answer = send!(self.contacts, list_contacts, &token, filter);
                let answer = self
                    .probe
                    .succeeds(&format!("ListContacts as {role}"), answer);
                assert!(
                    answer.contacts.is_empty(),
                    "ListContacts as {role}: {answer:?}"
                );
            }
            for filter in [
                pb::ListConversationsRequest::default(),
                pb::ListConversationsRequest {
                    assignee_user_id: ASSIGNEE.into(),
                    ..Default::default()
                },
                pb::ListConversationsRequest {
                    contact_id: a.contact.clone(),
                    ..Default::default()
                },
            ] {
                let answer = send!(self.conversations, list_conversations, &token, filter);
                let answer = self
                    .probe
                    .succeeds(&format!("ListConversations as {role}"), answer);
                assert!(
                    answer.conversations.is_empty(),
                    "ListConversations as {role}: {answer:?}"
                );
            }
        }
    }

    /// Every call that names a contact, conversation or identity, naming A's.
    async fn names_a_ids(&mut self, a: &WorkspaceA) {
        let own = self.create_contact("Beaqz-own").await;
        let contacts = self.contacts.clone();
        let conversations = self.conversations.clone();
        let p = &mut self.probe;
        for (role, token) in [("admin", &self.admin), ("agent", &self.agent)] {
            let admin_only = if role == "admin" { NOT_FOUND } else { DENIED };
            let what = |rpc: &str| format!("{rpc} as {role}");

            p.like_unknown(&what("GetContact"), NOT_FOUND, async |t: &Target| {
                let message = contact_pb::GetContactRequest {
                    contact_id: t.contact.clone(),
                };
                ask!(contacts, get_contact, token, message)
            })
            .await;
            // A's contact is left out of the answer, as an id nobody has is.
            p.like_unknown(&what("BatchGetContacts"), &[None], async |t: &Target| {
                let message = contact_pb::BatchGetContactsRequest {
                    contact_ids: vec![t.contact.clone()],
                };
                ask!(contacts, batch_get_contacts, token, message)
            })
            .await;
            p.like_unknown(&what("UpdateContact"), NOT_FOUND, async |t: &Target| {
                let message = contact_pb::UpdateContactRequest {
                    contact: Some(contact_pb::Contact {
                        contact_id: t.contact.clone(),
                        first_name: "Mallory".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["first_name".into()],
                    }),
                };
                ask!(contacts, update_contact, token, message)
            })
            .await;
            p.like_unknown(&what("DeleteContact"), admin_only, async |t: &Target| {
                let message = contact_pb::DeleteContactRequest {
                    contact_id: t.contact.clone(),
                };
                ask!(contacts, delete_contact, token, message)
            })
            .await;
            p.like_unknown(&what("BlockContact"), NOT_FOUND, async |t: &Target| {
                let message = contact_pb::BlockContactRequest {
                    contact_id: t.other_contact.clone(),
                };
                ask!(contacts, block_contact, token, message)
            })
            .await;
            p.like_unknown(&what("UnblockContact"), NOT_FOUND, async |t: &Target| {
                let message = contact_pb::UnblockContactRequest {
                    contact_id: t.contact.clone(),
                };
                ask!(contacts, unblock_contact, token, message)
            })
            .await;
            p.like_unknown(
                &what("AddChannelIdentity"),
                NOT_FOUND,
                async |t: &Target| {
                    let message = contact_pb::AddChannelIdentityRequest {
                        contact_id: t.contact.clone(),
                        identity: Some(identity(contact_pb::ChannelType::Viber, "mallory-viber")),
                    };
                    ask!(contacts, add_channel_identity, token, message)
                },
            )
            .await;
            p.like_unknown(
                &what("RemoveChannelIdentity"),
                NOT_FOUND,
                async |t: &Target| {
                    let message = contact_pb::RemoveChannelIdentityRequest {
                        contact_id: t.contact.clone(),
                        identity: Some(t.identity.clone()),
                    };
                    ask!(contacts, remove_channel_identity, token, message)
                },
            )
            .await;
            for (primary, secondary) in [("a", "a other"), ("own", "a"), ("a", "own")] {
                p.like_unknown(&what("MergeContacts"), NOT_FOUND, async |t: &Target| {
                    let pick = |which| match which {
                        "a" => t.contact.clone(),
                        "a other" => t.other_contact.clone(),
                        _ => own.clone(),
                    };
                    let message = contact_pb::MergeContactsRequest {
                        primary_contact_id: pick(primary),
                        secondary_contact_id: pick(secondary),
                        ..Default::default()
                    };
                    ask!(contacts, merge_contacts, token, message)
                })
                .await;
            }

            for (source, has_open) in [(pb::OpenSource::User, true), (pb::OpenSource::Api, false)] {
                p.like_unknown(&what("OpenConversation"), NOT_FOUND, async |t: &Target| {
                    let message = pb::OpenConversationRequest {
                        contact_id: if has_open {
                            &t.other_contact
                        } else {
                            &t.contact
                        }
                        .clone(),
                        channel: Some(whatsapp()),
                        source: source as i32,
                        ..Default::default()
                    };
                    ask!(conversations, open_conversation, token, message)
                })
                .await;
            }
            p.like_unknown(
                &what("HandleWelcomeEvent"),
                NOT_FOUND,
                async |t: &Target| {
                    let message = pb::HandleWelcomeEventRequest {
                        contact_id: t.contact.clone(),
                        channel: Some(pb::Channel {
                            channel_type: contact_pb::ChannelType::FacebookMessenger as i32,
                            channel_id: "page-1".into(),
                        }),
                    };
                    ask!(conversations, handle_welcome_event, token, message)
                },
            )
            .await;
            p.like_unknown(
                &what("RecordMessage inbound"),
                NOT_FOUND,
                async |t: &Target| {
                    let id = format!("mallory-{}", Uuid::now_v7());
                    ask!(
                        conversations,
                        record_message,
                        token,
                        inbound(&id, &t.contact)
                    )
                },
            )
            .await;
            // An outbound message for an unknown contact is recorded without a conversation
            // until hostile-input validation makes it NOT_FOUND; either way, as for nobody's.
            let outbound = &[Some(Code::NotFound), None];
            p.like_unknown(
                &what("RecordMessage outbound"),
                outbound,
                async |t: &Target| {
                    let message = pb::RecordMessageRequest {
                        direction: pb::MessageDirection::Outbound as i32,
                        author_kind: pb::AuthorKind::User as i32,
                        author_id: "mallory".into(),
                        ..inbound(&format!("mallory-{}", Uuid::now_v7()), &t.other_contact)
                    };
                    ask!(conversations, record_message, token, message)
                },
            )
            .await;
            for open in [true, false] {
                p.like_unknown(&what("CloseConversation"), NOT_FOUND, async |t: &Target| {
                    let message = pb::CloseConversationRequest {
                        conversation_id: if open { &t.open } else { &t.closed }.clone(),
                        source: pb::CloseSource::User as i32,
                        summary: "closed by mallory".into(),
                        ..Default::default()
                    };
                    ask!(conversations, close_conversation, token, message)
                })
                .await;
                p.like_unknown(&what("GetConversation"), NOT_FOUND, async |t: &Target| {
                    let message = pb::GetConversationRequest {
                        conversation_id: if open { &t.open } else { &t.closed }.clone(),
                    };
                    ask!(conversations, get_conversation, token, message)
                })
                .await;
            }
            p.like_unknown(
                &what("AssignConversation"),
                NOT_FOUND,
                async |t: &Target| {
                    let message = pb::AssignConversationRequest {
                        conversation_id: t.open.clone(),
                        assignee_user_id: "mallory".into(),
                        ..Default::default()
                    };
                    ask!(conversations, assign_conversation, token, message)
                },
            )
            .await;
            p.like_unknown(
                &what("UnassignConversation"),
                NOT_FOUND,
                async |t: &Target| {
                    let message = pb::UnassignConversationRequest {
                        conversation_id: t.open.clone(),
                        clear_assignee_user: true,
                        clear_team: true,
                        actor_id: String::new(),
                    };
                    ask!(conversations, unassign_conversation, token, message)
                },
            )
            .await;
            // An unknown contact is NOT_FOUND (a known one with nothing open answers unset).
            p.like_unknown(
                &what("GetOpenConversation"),
                NOT_FOUND,
                async |t: &Target| {
                    let message = pb::GetOpenConversationRequest {
                        contact_id: t.other_contact.clone(),
                        ..Default::default()
                    };
                    ask!(conversations, get_open_conversation, token, message)
                },
            )
            .await;
            p.like_unknown(&what("ListConversations"), SUCCEEDS, async |t: &Target| {
                let message = pb::ListConversationsRequest {
                    contact_id: t.other_contact.clone(),
                    ..Default::default()
                };
                ask!(conversations, list_conversations, token, message)
            })
            .await;
            let refused = if role == "admin" { SUCCEEDS } else { DENIED };
            p.like_unknown(&what("ImportConversations"), refused, async |t: &Target| {
                let items = vec![history(
                    "mallory-history",
                    &t.contact,
                    "mallory-message",
                    "mallory",
                )];
                let sent = format!("{items:?}");
                let result = conversations
                    .clone()
                    .import_conversations(with_token(token, tokio_stream::iter(items)))
                    .await;
                if let Ok(response) = &result {
                    assert_eq!(response.get_ref().refused_count, 1, "{response:?}");
                }
                (sent, Answer::of(result))
            })
            .await;

            // A's workspace named in the metadata: refused, not served.
            let mut request = with_token(
                token,
                contact_pb::GetContactRequest {
                    contact_id: a.contact.clone(),
                },
            );
            request.metadata_mut().insert(
                WORKSPACE_HEADER,
                a.workspace.to_string().parse().expect("metadata"),
            );
            let sent = format!("{request:?}");
            let status = contacts
                .clone()
                .get_contact(request)
                .await
                .expect_err("a token for B can't act in A");
            p.reveals_nothing(
                &what("x-workspace-id: A"),
                &sent,
                &shown::<()>(&Err(status.clone())),
            );
            assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
            assert_eq!(reason(&status).as_deref(), Some("OTHER_WORKSPACE"));
        }
    }

    /// B's own writes with A's identities, message id, idempotency keys and external id: each
    /// acts in B alone (uniqueness is per workspace).
    async fn reuses_a_keys(&mut self, a: &WorkspaceA) {
        let a_ids = [
            &a.contact,
            &a.other_contact,
            &a.closed,
            &a.open,
            &a.imported,
        ];
        let b = self.workspace.to_string();
        let resolve = contact_pb::ResolveContactRequest {
            identity: Some(identity(contact_pb::ChannelType::Whatsapp, WA_ID)),
            profile: None,
        };
        let answer = send!(self.contacts, resolve_contact, &self.admin, resolve.clone());
        let resolved = self
            .probe
            .succeeds("ResolveContact of A's identity", answer);
        let contact = resolved.contact.expect("a contact");
        assert!(
            resolved.created,
            "resolving A's identity in B creates B's contact"
        );
        assert!(!a_ids.contains(&&contact.contact_id));
        assert_eq!(contact.workspace_id, b);
        let answer = send!(self.contacts, resolve_contact, &self.agent, resolve);
        let again = self
            .probe
            .succeeds("ResolveContact of A's identity again", answer);
        assert!(!again.created);
        assert_eq!(
            again.contact.expect("a contact").contact_id,
            contact.contact_id
        );

        let create = contact_pb::CreateContactRequest {
            contact: Some(contact_pb::Contact {
                first_name: "Beaqz-twin".into(),
                ..Default::default()
            }),
            request_id: a.create_request.clone(),
        };
        let answer = send!(self.contacts, create_contact, &self.admin, create);
        let twin = self
            .probe
            .succeeds("CreateContact with A's request id", answer);
        let twin = twin.contact.expect("a contact");
        assert!(!a_ids.contains(&&twin.contact_id));
        assert_eq!(
            (twin.first_name.as_str(), twin.workspace_id.as_str()),
            ("Beaqz-twin", b.as_str())
        );

        let add = contact_pb::AddChannelIdentityRequest {
            contact_id: twin.contact_id.clone(),
            identity: Some(identity(contact_pb::ChannelType::Sms, SMS_ID)),
        };
        let answer = send!(self.contacts, add_channel_identity, &self.agent, add);
        self.probe
            .succeeds("AddChannelIdentity of A's identity", answer);

        let answer = send!(
            self.conversations,
            record_message,
            &self.agent,
            inbound(FIRST_MESSAGE, &twin.contact_id)
        );
        let recorded = self
            .probe
            .succeeds("RecordMessage with A's message id", answer);
        assert!(
            recorded.recorded && recorded.opened_conversation,
            "{recorded:?}"
        );
        let conversation = recorded.conversation.expect("a conversation");
        assert!(!a_ids.contains(&&conversation.conversation_id));
        assert_eq!(conversation.workspace_id, b);

        let close = pb::CloseConversationRequest {
            conversation_id: conversation.conversation_id.clone(),
            source: pb::CloseSource::User as i32,
            request_id: a.close_request.clone(),
            ..Default::default()
        };
        let answer = send!(self.conversations, close_conversation, &self.agent, close);
        let closed = self
            .probe
            .succeeds("CloseConversation with A's request id", answer);
        let closed = closed.conversation.expect("a conversation");
        assert_eq!(closed.conversation_id, conversation.conversation_id);
        assert_eq!(closed.status, pb::ConversationStatus::Closed as i32);

        let items = vec![history(
            EXTERNAL_ID,
            &twin.contact_id,
            "qz-old-message",
            "B's history",
        )];
        let sent = format!("{items:?}");
        let result = self
            .conversations
            .import_conversations(with_token(&self.admin, tokio_stream::iter(items)))
            .await;
        let imported = self
            .probe
            .succeeds("ImportConversations with A's external id", (sent, result));
        let result = &imported.results[0];
        assert_eq!(
            result.outcome,
            pb::ImportOutcome::Imported as i32,
            "{imported:?}"
        );
        assert!(!a_ids.contains(&&result.conversation_id));

        let rows = vec![contact_pb::ImportContactsRequest {
            contact: Some(contact_pb::Contact {
                contact_id: a.contact.clone(),
                first_name: "Beaqz-import".into(),
                ..Default::default()
            }),
            external_id: String::new(),
        }];
        let sent = format!("{rows:?}");
        let result = self
            .contacts
            .import_contacts(with_token(&self.admin, tokio_stream::iter(rows)))
            .await;
        let imported = self
            .probe
            .succeeds("ImportContacts naming A's contact id", (sent, result));
        assert_eq!(imported.created_count, 1, "{imported:?}");
        assert!(!a_ids.contains(&&imported.results[0].contact_id));

        let update = pb::UpdateWorkspaceSettingsRequest {
            settings: Some(pb::WorkspaceSettings {
                closing_categories: vec!["b-category".into()],
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["closing_categories".into()],
            }),
        };
        let answer = send!(
            self.conversations,
            update_workspace_settings,
            &self.admin,
            update.clone()
        );
        let settings = self.probe.succeeds("UpdateWorkspaceSettings", answer);
        assert_eq!(settings.settings.expect("settings").workspace_id, b);
        let (sent, denied) = ask!(
            self.conversations,
            update_workspace_settings,
            &self.agent,
            update
        );
        self.probe
            .reveals_nothing("UpdateWorkspaceSettings as agent", &sent, &denied.full);
        assert_eq!(denied.code, Some(Code::PermissionDenied), "{}", denied.full);

        // Everything B now lists is B's own.
        let answer = send!(
            self.contacts,
            list_contacts,
            &self.agent,
            Default::default()
        );
        let listed = self.probe.succeeds_in_b("ListContacts", answer);
        assert_eq!(listed.contacts.len(), 4, "{listed:?}");
        assert!(listed.contacts.iter().all(|c| c.workspace_id == b));
        let answer = send!(
            self.conversations,
            list_conversations,
            &self.agent,
            Default::default()
        );
        let listed = self.probe.succeeds_in_b("ListConversations", answer);
        assert_eq!(listed.conversations.len(), 2, "{listed:?}");
        assert!(listed.conversations.iter().all(|c| c.workspace_id == b));
    }

    /// B's admin reads B's event streams from the start, up to B's last events: every event
    /// before them is B's (with one partition, the stream is in commit order, and A wrote first).
    /// Answers B's last contact.
    async fn streams_show_only_b(&mut self) -> String {
        let marker = self.create_contact("Beaqz-marker").await;
        let opened = self
            .conversations
            .record_message(with_token(
                &self.agent,
                inbound("b-marker-message", &marker),
            ))
            .await
            .expect("B records a message")
            .into_inner()
            .conversation
            .expect("a conversation")
            .conversation_id;
        let b = self.workspace.to_string();

        let events = read_stream(
            "StreamContactEvents as B's admin",
            self.contacts
                .stream_contact_events(with_token(&self.admin, Default::default()))
                .await,
            |e: &contact_pb::StreamContactEventsResponse| {
                e.event.as_ref().is_some_and(|e| e.contact_id == marker)
            },
        )
        .await;
        assert!(events.len() > 1, "{events:?}");
        for event in &events {
            assert_eq!(
                event.event.as_ref().expect("an event").workspace_id,
                b,
                "{event:?}"
            );
        }
        self.probe
            .reveals_nothing_private("StreamContactEvents", &shown_all(&events));

        let events = read_stream(
            "StreamConversationEvents as B's admin",
            self.conversations
                .stream_conversation_events(with_token(&self.admin, Default::default()))
                .await,
            |e: &pb::StreamConversationEventsResponse| {
                e.event
                    .as_ref()
                    .is_some_and(|e| e.conversation_id == opened)
            },
        )
        .await;
        assert!(events.len() > 1, "{events:?}");
        for event in &events {
            assert_eq!(
                event.event.as_ref().expect("an event").workspace_id,
                b,
                "{event:?}"
            );
        }
        self.probe
            .reveals_nothing_private("StreamConversationEvents", &shown_all(&events));
        marker
    }

    async fn create_contact(&mut self, name: &str) -> String {
        let create = contact_pb::CreateContactRequest {
            contact: Some(contact_pb::Contact {
                first_name: name.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        };
        let answer = send!(self.contacts, create_contact, &self.admin, create);
        let created = self.probe.succeeds("CreateContact", answer);
        created.contact.expect("a contact").contact_id
    }
}

/// The internal surface: a service token naming A sees A, on every call and on the streams; one
/// naming no workspace sees every workspace's events.
async fn service_token_sees_a(services: &Services, a: &WorkspaceA, b_marker: &str) {
    let contact = services
        .contacts()
        .await
        .get_contact(service_in(
            a.workspace,
            contact_pb::GetContactRequest {
                contact_id: a.contact.clone(),
            },
        ))
        .await
        .expect("a service token naming A sees A's contact")
        .into_inner()
        .contact
        .expect("a contact");
    assert_eq!(
        (contact.first_name.as_str(), contact.email.as_str()),
        (FIRST_NAME, EMAIL)
    );

    let a_events = read_stream(
        "StreamContactEvents as a service naming A",
        services
            .contacts()
            .await
            .stream_contact_events(service_in(a.workspace, Default::default()))
            .await,
        |e: &contact_pb::StreamContactEventsResponse| {
            e.event
                .as_ref()
                .is_some_and(|e| e.contact_id == a.other_contact)
        },
    )
    .await;
    let workspaces: Vec<_> = a_events
        .iter()
        .map(|e| e.event.as_ref().expect("an event").workspace_id.clone())
        .collect();
    assert!(
        workspaces.iter().all(|w| *w == a.workspace.to_string()),
        "{a_events:?}"
    );
    assert!(format!("{a_events:?}").contains(FIRST_NAME));

    let all = read_stream(
        "StreamContactEvents as a service naming no workspace",
        services
            .contacts()
            .await
            .stream_contact_events(with_token(&token(Role::Service, None), Default::default()))
            .await,
        |e: &contact_pb::StreamContactEventsResponse| {
            e.event.as_ref().is_some_and(|e| e.contact_id == b_marker)
        },
    )
    .await;
    let text = format!("{all:?}");
    assert!(
        text.contains(&a.contact) && text.contains(b_marker),
        "{text}"
    );

    let a_events = read_stream(
        "StreamConversationEvents as a service naming A",
        services
            .conversations()
            .await
            .stream_conversation_events(service_in(a.workspace, Default::default()))
            .await,
        |e: &pb::StreamConversationEventsResponse| {
            e.event
                .as_ref()
                .is_some_and(|e| e.conversation_id == a.open)
        },
    )
    .await;
    assert!(format!("{a_events:?}").contains(SUMMARY));
}

/// The messages of a server stream up to the first that `last` accepts, or to its end; panics
/// when the stream fails or stalls.
async fn read_stream<T: Debug>(
    what: &str,
    result: Result<tonic::Response<tonic::Streaming<T>>, Status>,
    last: impl Fn(&T) -> bool,
) -> Vec<T> {
    let mut stream = result
        .unwrap_or_else(|status| panic!("{what}: {status:?}"))
        .into_inner();
    let mut messages = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap_or_else(|_| panic!("{what}: stalled after {messages:?}"))
            .unwrap_or_else(|status| panic!("{what}: {status:?}"));
        let Some(message) = next else {
            return messages;
        };
        let done = last(&message);
        messages.push(message);
        if done {
            return messages;
        }
    }
}
