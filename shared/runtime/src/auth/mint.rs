//! Minting tokens with a key set's signing key: `charla token`, `charla up`'s ready-made token,
//! and the service tokens a service presents to its peers.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::Role;
use super::keys::SigningKey;
use crate::workspace::WorkspaceId;

/// What a new token says.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub role: Role,
    pub workspace: Option<WorkspaceId>,
    pub subject: String,
    pub valid_for: Duration,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    workspace_id: Option<String>,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// A signed token for `request`, valid from `now`.
pub fn mint(key: &SigningKey, request: &TokenRequest, now: SystemTime) -> Result<String, String> {
    let iat = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| "the clock is before 1970")?
        .as_secs();
    let claims = Claims {
        sub: &request.subject,
        role: request.role.as_str(),
        workspace_id: request.workspace.map(|w| w.to_string()),
        iat,
        exp: iat.saturating_add(request.valid_for.as_secs()),
        iss: request.issuer.as_deref(),
        aud: request.audience.as_deref(),
    };
    key.sign(&claims)
}
