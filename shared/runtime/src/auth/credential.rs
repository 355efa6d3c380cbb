//! The credential a service presents when it calls another charla service: a `service` token,
//! either minted here from the key set's private key (refreshed well before it expires) or read
//! from a file that something else keeps fresh (a Kubernetes Secret, re-read when it changes).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;

use super::Role;
use super::keys::SigningKey;
use super::mint::{TokenRequest, mint};

/// How long a minted service token is valid.
const MINTED_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// A minted token is replaced once it is this old, well before it expires.
const MINTED_REFRESH: Duration = Duration::from_secs(5 * 60);
/// A token file is read again this often, so a rotated Secret is picked up.
const FILE_REREAD: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
enum Source {
    Minted {
        key: SigningKey,
        request: TokenRequest,
    },
    File(PathBuf),
}

/// A service credential; as a tonic interceptor it puts `authorization: Bearer …` on each call.
#[derive(Clone)]
pub struct ServiceCredential {
    source: Source,
    cached: Arc<Mutex<Option<(String, Instant)>>>,
}

impl std::fmt::Debug for ServiceCredential {
    // Never the token: it acts in every workspace.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            Source::Minted { request, .. } => format!("minted for {}", request.subject),
            Source::File(path) => format!("file {}", path.display()),
        };
        f.debug_struct("ServiceCredential")
            .field("source", &source)
            .finish_non_exhaustive()
    }
}

impl ServiceCredential {
    /// Tokens minted with `key` for `subject`, carrying `issuer` and `audience` when set.
    pub fn minted(
        key: SigningKey,
        subject: String,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Self {
        let request = TokenRequest {
            role: Role::Service,
            workspace: None,
            subject,
            valid_for: MINTED_LIFETIME,
            issuer,
            audience,
        };
        Self::new(Source::Minted { key, request })
    }

    /// The token in the file at `path`.
    pub fn from_file(path: PathBuf) -> Self {
        Self::new(Source::File(path))
    }

    fn new(source: Source) -> Self {
        Self {
            source,
            cached: Arc::new(Mutex::new(None)),
        }
    }

    /// The current token.
    pub fn token(&self) -> Result<String, String> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        let fresh_for = match self.source {
            Source::Minted { .. } => MINTED_REFRESH,
            Source::File(_) => FILE_REREAD,
        };
        if let Some((token, made)) = cached.as_ref()
            && made.elapsed() < fresh_for
        {
            return Ok(token.clone());
        }
        let token = match &self.source {
            Source::Minted { key, request } => mint(key, request, SystemTime::now())?,
            Source::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => text.trim().to_owned(),
                // A Secret being rotated may be missing for a moment: keep the token we have.
                Err(error) => match cached.as_ref() {
                    Some((token, _)) => {
                        tracing::warn!(%error, path = %path.display(), "can't re-read the service token; keeping the last one");
                        return Ok(token.clone());
                    }
                    None => {
                        return Err(format!(
                            "can't read the service token {}: {error}",
                            path.display()
                        ));
                    }
                },
            },
        };
        *cached = Some((token.clone(), Instant::now()));
        Ok(token)
    }
}

impl Interceptor for ServiceCredential {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let token = self.token().map_err(tonic::Status::unauthenticated)?;
        let value = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
            tonic::Status::unauthenticated("the service token is not valid metadata")
        })?;
        request.metadata_mut().insert("authorization", value);
        // Every peer call carries the caller's trace context, so one trace spans the services.
        crate::telemetry::inject_current_into(request.metadata_mut());
        Ok(request)
    }
}

/// A channel to a peer service that presents this service's credential on every call.
pub type AuthenticatedChannel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, ServiceCredential>;
