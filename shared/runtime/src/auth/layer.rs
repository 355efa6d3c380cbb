//! The tower layer that authenticates every call before any service sees it: health checking and
//! reflection pass without credentials (probes and tools use them); everything else needs a valid
//! bearer token, and goes on with the verified [`Caller`] in its request extensions.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::verify::{Verifier, unauthenticated};
use crate::ApiError;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Paths served without credentials.
const OPEN_PREFIXES: [&str; 2] = ["/grpc.health.v1.Health/", "/grpc.reflection."];

/// Adds [`Authenticate`] around a service.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    verifier: Arc<Verifier>,
}

impl AuthLayer {
    /// Authenticates with `verifier`.
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self { verifier }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// Verifies the bearer token of each call, answering UNAUTHENTICATED itself when it is unusable.
#[derive(Debug, Clone)]
pub struct Authenticate<S> {
    inner: S,
    verifier: Arc<Verifier>,
}

impl<S, B> tower::Service<http::Request<B>> for Authenticate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if OPEN_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) {
            return Box::pin(self.inner.call(request));
        }
        match bearer_token(request.headers()).and_then(|token| self.verifier.verify(token)) {
            Ok(caller) => {
                crate::rpc_log::note_caller(&request, &caller);
                request.extensions_mut().insert(caller);
                Box::pin(self.inner.call(request))
            }
            Err(error) => {
                let response = tonic::Status::from(error).into_http();
                Box::pin(std::future::ready(Ok(response)))
            }
        }
    }
}

fn bearer_token(headers: &http::HeaderMap) -> Result<&str, ApiError> {
    let value = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        unauthenticated(
            "NO_TOKEN",
            "no credentials: send `authorization: Bearer <JWT>` metadata",
        )
    })?;
    let malformed = || unauthenticated("TOKEN_MALFORMED", "`authorization` must be `Bearer <JWT>`");
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = text.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(malformed());
    }
    Ok(token.trim())
}
