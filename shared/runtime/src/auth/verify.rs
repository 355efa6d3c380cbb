//! Checking a bearer token: its shape, the key it names, its signature, its times, its issuer and
//! audience, then charla's own claims. Every failure says why, with a machine-readable reason.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{TokenData, Validation};
use serde::Deserialize;
use uuid::Uuid;

use super::keys::{KeySet, short};
use super::{Caller, Role};
use crate::ApiError;
use crate::workspace::WorkspaceId;

/// Seconds of clock skew tolerated between the token's issuer and this machine.
const LEEWAY_SECS: u64 = 30;

/// Checks tokens against a key set, and the issuer and audience when configured.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: KeySet,
    issuer: Option<String>,
    audience: Option<String>,
}

/// charla's claims; `exp`, `iss` and `aud` are checked by the JWT library.
#[derive(Debug, Deserialize)]
struct Claims {
    role: Option<String>,
    workspace_id: Option<String>,
    sub: Option<String>,
}

impl Verifier {
    /// A verifier over `keys`, requiring `issuer` and `audience` when given.
    pub fn new(keys: KeySet, issuer: Option<String>, audience: Option<String>) -> Self {
        Self {
            keys,
            issuer,
            audience,
        }
    }

    /// The key set.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// The caller a compact JWT speaks for, or UNAUTHENTICATED saying why not.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthenticated("TOKEN_MALFORMED", "the bearer token is not a JWT"))?;
        let key = self
            .keys
            .find(header.kid.as_deref())
            .map_err(|why| unauthenticated("UNKNOWN_KEY", why))?;
        if header.alg != key.algorithm {
            return Err(unauthenticated(
                "WRONG_ALGORITHM",
                format!(
                    "the token is signed with {:?}, but key `{}` is for {:?}",
                    header.alg,
                    key.kid.as_deref().unwrap_or(""),
                    key.algorithm
                ),
            ));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        let data: TokenData<Claims> = jsonwebtoken::decode(token, &key.key, &validation)
            .map_err(|error| self.rejection(error.into_kind()))?;
        caller_of(data.claims)
    }

    fn rejection(&self, kind: ErrorKind) -> ApiError {
        match kind {
            ErrorKind::ExpiredSignature => {
                unauthenticated("TOKEN_EXPIRED", "the token has expired")
            }
            ErrorKind::ImmatureSignature => {
                unauthenticated("TOKEN_NOT_YET_VALID", "the token is not valid yet (`nbf`)")
            }
            ErrorKind::InvalidSignature => unauthenticated(
                "BAD_SIGNATURE",
                "the token's signature does not match its key",
            ),
            ErrorKind::InvalidAudience => unauthenticated(
                "WRONG_AUDIENCE",
                format!(
                    "the token's audience (`aud`) is not `{}`",
                    self.audience.as_deref().unwrap_or_default()
                ),
            ),
            ErrorKind::InvalidIssuer => unauthenticated(
                "WRONG_ISSUER",
                format!(
                    "the token's issuer (`iss`) is not `{}`",
                    self.issuer.as_deref().unwrap_or_default()
                ),
            ),
            ErrorKind::MissingRequiredClaim(claim) => unauthenticated(
                "MISSING_CLAIM",
                format!("the token has no `{}` claim", short(&claim)),
            ),
            _ => unauthenticated(
                "TOKEN_MALFORMED",
                "the token's signature or claims can't be read",
            ),
        }
    }
}

fn caller_of(claims: Claims) -> Result<Caller, ApiError> {
    let role = match claims.role.as_deref() {
        Some("agent") => Role::Agent,
        Some("admin") => Role::Admin,
        Some("service") => Role::Service,
        Some(other) => {
            return Err(unauthenticated(
                "BAD_CLAIM",
                format!(
                    "the token's `role` is `{}`: agent, admin or service",
                    short(other)
                ),
            ));
        }
        None => {
            return Err(unauthenticated(
                "MISSING_CLAIM",
                "the token has no `role` claim",
            ));
        }
    };
    let workspace = match claims.workspace_id.as_deref() {
        Some(text) => Some(Uuid::parse_str(text).map(WorkspaceId::new).map_err(|_| {
            unauthenticated("BAD_CLAIM", "the token's `workspace_id` is not a UUID")
        })?),
        None if role == Role::Service => None,
        None => {
            return Err(unauthenticated(
                "MISSING_CLAIM",
                "the token has no `workspace_id` claim (only service tokens may omit it)",
            ));
        }
    };
    Ok(Caller {
        role,
        workspace,
        subject: claims.sub.map(|sub| short(&sub)),
    })
}

pub(crate) fn unauthenticated(reason: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Unauthenticated {
        reason,
        message: message.into(),
    }
}
