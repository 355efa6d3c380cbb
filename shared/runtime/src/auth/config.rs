//! The authentication settings every service shares, read from the environment.

use std::path::PathBuf;

use clap::Args;

use super::credential::ServiceCredential;
use super::keys::{KeySet, KeySetError};
use super::verify::Verifier;

/// Where development mode keeps its key set when `CHARLA_AUTH_JWKS` is not set.
pub const DEV_JWKS_PATH: &str = "charla-dev-jwks.json";

/// Why authentication can't be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// Neither a key set nor development mode.
    #[error(
        "no key set: set CHARLA_AUTH_JWKS to a JWKS file, or CHARLA_DEV_MODE=true to make a \
         development key set (never in production)"
    )]
    NoKeySet,
    /// The key set can't be read.
    #[error("CHARLA_AUTH_JWKS: {0}")]
    KeySet(#[from] KeySetError),
    /// No way to call peer services.
    #[error(
        "no service credential for calls to other services: the key set holds no private key \
         (an `oct` key, or an Ed25519 key with `d`) to mint one; set CHARLA_SERVICE_TOKEN_FILE"
    )]
    NoServiceCredential,
}

/// Who may call, and how this service proves itself to the services it calls.
#[derive(Debug, Clone, Default, Args)]
pub struct AuthConfig {
    /// JWKS file (RFC 7517) whose keys verify callers' tokens; `kid` picks the key. HS256
    /// (`oct`), RS256 (`RSA`), ES256 (`EC`) and EdDSA (Ed25519 `OKP`) keys.
    #[arg(long, env = "CHARLA_AUTH_JWKS")]
    pub auth_jwks: Option<PathBuf>,

    /// When set, tokens must carry this issuer (`iss`).
    #[arg(long, env = "CHARLA_AUTH_ISSUER")]
    pub auth_issuer: Option<String>,

    /// When set, tokens must carry this audience (`aud`).
    #[arg(long, env = "CHARLA_AUTH_AUDIENCE")]
    pub auth_audience: Option<String>,

    /// Development mode: without CHARLA_AUTH_JWKS, use (and create if missing) a key set in
    /// `charla-dev-jwks.json` in the working directory. Never in production.
    #[arg(long, env = "CHARLA_DEV_MODE", default_value_t = false)]
    pub dev_mode: bool,

    /// A file holding the token this service presents to the services it calls (re-read when it
    /// changes). Without it, the service mints short-lived service tokens with the key set's
    /// private key.
    #[arg(long, env = "CHARLA_SERVICE_TOKEN_FILE")]
    pub service_token_file: Option<PathBuf>,
}

impl AuthConfig {
    /// Settings that verify tokens with the key set at `jwks`.
    pub fn with_key_set(jwks: impl Into<PathBuf>) -> Self {
        Self {
            auth_jwks: Some(jwks.into()),
            ..Self::default()
        }
    }

    /// The verifier these settings describe; in development mode it warns that it is.
    pub fn verifier(&self) -> Result<Verifier, AuthSetupError> {
        let keys = match (&self.auth_jwks, self.dev_mode) {
            (Some(path), _) => KeySet::read(path)?,
            (None, true) => {
                tracing::warn!(
                    jwks = DEV_JWKS_PATH,
                    "development mode: tokens are checked against a development key set; \
                     never use this in production"
                );
                KeySet::read_or_create(std::path::Path::new(DEV_JWKS_PATH))?
            }
            (None, false) => return Err(AuthSetupError::NoKeySet),
        };
        Ok(Verifier::new(
            keys,
            self.auth_issuer.clone(),
            self.auth_audience.clone(),
        ))
    }

    /// The credential this service presents to `service_name`'s peers.
    pub fn service_credential(
        &self,
        verifier: &Verifier,
        service_name: &str,
    ) -> Result<ServiceCredential, AuthSetupError> {
        if let Some(path) = &self.service_token_file {
            return Ok(ServiceCredential::from_file(path.clone()));
        }
        let key = verifier
            .keys()
            .signing_key()
            .ok_or(AuthSetupError::NoServiceCredential)?;
        Ok(ServiceCredential::minted(
            key.clone(),
            format!("charla-{service_name}"),
            self.auth_issuer.clone(),
            self.auth_audience.clone(),
        ))
    }
}
