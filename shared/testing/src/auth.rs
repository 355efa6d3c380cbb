//! Credentials for tests: the test key set the services are started with, tokens of every role
//! signed with each of its keys, and channels that present a service token on calls that carry
//! no token of their own.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use charla_runtime::auth::Role;
use charla_runtime::auth::config::AuthConfig;
use charla_runtime::auth::keys::KeySet;
use charla_runtime::auth::mint::{TokenRequest, mint};
use charla_runtime::workspace::WorkspaceId;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

/// The audience the test services require, and test tokens carry.
pub const TEST_AUDIENCE: &str = "charla-test";

/// The key set the test services trust: an HS256, an RS256 and an Ed25519 key.
pub fn test_jwks_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("keys/test-jwks.json")
}

/// Authentication settings of a test service: the test key set, the test audience.
pub fn auth_config() -> AuthConfig {
    AuthConfig {
        auth_audience: Some(TEST_AUDIENCE.to_owned()),
        ..AuthConfig::with_key_set(test_jwks_path())
    }
}

/// A key a test signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKey {
    /// The key set's HS256 key.
    Hs256,
    /// The key set's RS256 key.
    Rs256,
    /// The key set's Ed25519 key.
    EdDsa,
    /// An HS256 key under the HS256 key's `kid` that the services don't trust.
    Untrusted,
}

/// A token signed with `key` over `claims` as given (for tokens the services must refuse).
pub fn sign(key: TestKey, claims: &serde_json::Value) -> String {
    let (algorithm, kid, encoding) = match key {
        TestKey::Hs256 => (
            Algorithm::HS256,
            "test-hs256",
            EncodingKey::from_secret(
                &base64::Engine::decode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    jwk_field(0, "k"),
                )
                .expect("test key"),
            ),
        ),
        TestKey::Rs256 => (
            Algorithm::RS256,
            "test-rs256",
            EncodingKey::from_rsa_der(include_bytes!("../keys/rsa-test-private.der")),
        ),
        TestKey::EdDsa => {
            let keys = KeySet::read(&test_jwks_path()).expect("the test key set");
            let key = keys.signing_key().expect("the Ed25519 key signs").clone();
            return key.sign(claims).expect("sign");
        }
        TestKey::Untrusted => (
            Algorithm::HS256,
            "test-hs256",
            EncodingKey::from_secret(b"another secret, not the one the services trust"),
        ),
    };
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &encoding).expect("sign")
}

fn jwk_field(index: usize, field: &str) -> String {
    let text = std::fs::read_to_string(test_jwks_path()).expect("the test key set");
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    value["keys"][index][field]
        .as_str()
        .expect("the field")
        .to_owned()
}

/// The claims of a valid token for `role` in `workspace`, expiring in an hour.
pub fn claims(role: Role, workspace: Option<Uuid>) -> serde_json::Value {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let mut claims = serde_json::json!({
        "sub": "test",
        "role": role.as_str(),
        "iat": now,
        "exp": now + 3600,
        "aud": TEST_AUDIENCE,
    });
    if let Some(workspace) = workspace {
        claims["workspace_id"] = workspace.to_string().into();
    }
    claims
}

/// A valid token for `role` in `workspace`, signed with the key services sign with.
pub fn token(role: Role, workspace: Option<Uuid>) -> String {
    let keys = KeySet::read(&test_jwks_path()).expect("the test key set");
    let request = TokenRequest {
        role,
        workspace: workspace.map(WorkspaceId::new),
        subject: "test".into(),
        valid_for: Duration::from_secs(3600),
        issuer: None,
        audience: Some(TEST_AUDIENCE.into()),
    };
    mint(
        keys.signing_key().expect("a signing key"),
        &request,
        SystemTime::now(),
    )
    .expect("mint")
}

/// `request` with `authorization: Bearer <token>`.
pub fn with_token<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).expect("a JWT is valid metadata"),
    );
    request
}

/// A request of `role` in `workspace`.
pub fn as_role<T>(role: Role, workspace: Uuid, message: T) -> tonic::Request<T> {
    with_token(&token(role, Some(workspace)), message)
}

/// A request of an admin of `workspace`.
pub fn in_workspace<T>(workspace: Uuid, message: T) -> tonic::Request<T> {
    as_role(Role::Admin, workspace, message)
}

/// Presents a service token on calls that carry no `authorization` of their own.
#[derive(Debug, Clone)]
pub struct DefaultServiceToken(MetadataValue<tonic::metadata::Ascii>);

impl Interceptor for DefaultServiceToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if !request.metadata().contains_key("authorization") {
            request
                .metadata_mut()
                .insert("authorization", self.0.clone());
        }
        Ok(request)
    }
}

/// A channel to a test service; calls without a token of their own present a service token.
pub type TestChannel = InterceptedService<Channel, DefaultServiceToken>;

/// Connects to `url` (`http://host:port`).
pub async fn connect(url: impl Into<String>) -> TestChannel {
    let url = url.into();
    let channel = Channel::from_shared(url.clone())
        .expect("a valid URL")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    with_service_token(channel)
}

/// `channel`, presenting a service token on calls that carry none.
pub fn with_service_token(channel: Channel) -> TestChannel {
    let bearer = MetadataValue::try_from(format!("Bearer {}", token(Role::Service, None)))
        .expect("a JWT is valid metadata");
    InterceptedService::new(channel, DefaultServiceToken(bearer))
}
