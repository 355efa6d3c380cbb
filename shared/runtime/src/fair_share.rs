//! Fair sharing between tenants: besides the process-wide limit, each workspace may have only so
//! many calls in flight and so many event or dashboard streams open, so one busy or hostile
//! tenant can't take every slot from the others. Service tokens (charla's own backends) are
//! bounded by the process-wide limit only.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::{Stream, StreamExt};

use crate::ApiError;
use crate::auth::{Caller, Role, caller_of};
use crate::workspace::WorkspaceId;

/// How much of a process one workspace may use.
#[derive(Debug, Clone, Copy)]
pub struct WorkspaceQuota {
    /// Calls of one workspace in flight at once (until each call's answer starts).
    pub calls: usize,
    /// Server streams of one workspace open at once.
    pub streams: usize,
}

/// Semaphores per workspace, made on first use and forgotten when idle.
#[derive(Debug)]
struct PerWorkspace {
    size: usize,
    semaphores: Mutex<HashMap<WorkspaceId, Arc<Semaphore>>>,
}

/// Idle entries are swept once the map holds this many workspaces.
const SWEEP_AT: usize = 4096;

impl PerWorkspace {
    fn new(size: usize) -> Self {
        Self {
            size,
            semaphores: Mutex::new(HashMap::new()),
        }
    }

    fn try_acquire(&self, workspace: WorkspaceId) -> Option<OwnedSemaphorePermit> {
        // The permit is taken under the lock, so a sweep can't drop a semaphore between its
        // lookup and its use (which would give the workspace a second, full one).
        let mut map = self.semaphores.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SWEEP_AT {
            map.retain(|_, s| s.available_permits() < self.size);
        }
        map.entry(workspace)
            .or_insert_with(|| Arc::new(Semaphore::new(self.size)))
            .clone()
            .try_acquire_owned()
            .ok()
    }
}

/// The per-workspace limits of one process.
#[derive(Debug)]
pub struct FairShare {
    quota: WorkspaceQuota,
    calls: PerWorkspace,
    streams: PerWorkspace,
}

impl FairShare {
    /// Limits of `quota` for every workspace.
    pub fn new(quota: WorkspaceQuota) -> Arc<Self> {
        Arc::new(Self {
            quota,
            calls: PerWorkspace::new(quota.calls),
            streams: PerWorkspace::new(quota.streams),
        })
    }

    fn limited(caller: &Caller) -> Option<WorkspaceId> {
        caller.workspace.filter(|_| caller.role != Role::Service)
    }

    fn admit_call(&self, caller: &Caller) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        let Some(workspace) = Self::limited(caller) else {
            return Ok(None);
        };
        self.calls
            .try_acquire(workspace)
            .map(Some)
            .ok_or_else(|| ApiError::ResourceExhausted {
                reason: "WORKSPACE_CALL_LIMIT",
                message: format!(
                    "this workspace already has {} calls in flight on this server; retry with \
                     backoff",
                    self.quota.calls
                ),
            })
    }
}

/// A stream slot of a workspace, taken before a server stream starts and released when it ends.
#[derive(Debug)]
pub struct StreamSlot {
    _permit: Option<OwnedSemaphorePermit>,
}

impl StreamSlot {
    /// `stream`, holding this slot until it is dropped.
    pub fn hold<S>(self, stream: S) -> Pin<Box<dyn Stream<Item = S::Item> + Send>>
    where
        S: Stream + Send + 'static,
    {
        let slot = self;
        Box::pin(stream.map(move |item| {
            let _held = &slot;
            item
        }))
    }
}

/// Takes a stream slot of the caller's workspace: RESOURCE_EXHAUSTED when its workspace has all
/// its streams open. Server-streaming handlers call it before they start.
pub fn stream_slot<T>(request: &tonic::Request<T>) -> Result<StreamSlot, ApiError> {
    let caller = caller_of(request)?;
    let share = request.extensions().get::<Arc<FairShare>>();
    let (Some(share), Some(workspace)) = (share, FairShare::limited(caller)) else {
        return Ok(StreamSlot { _permit: None });
    };
    let permit =
        share
            .streams
            .try_acquire(workspace)
            .ok_or_else(|| ApiError::ResourceExhausted {
                reason: "WORKSPACE_STREAM_LIMIT",
                message: format!(
                    "this workspace already has {} streams open on this server; close one first",
                    share.quota.streams
                ),
            })?;
    Ok(StreamSlot {
        _permit: Some(permit),
    })
}

/// The tower layer that admits each authenticated call under its workspace's call limit, and
/// hands handlers the limits (for [`hold_stream_slot`]). It runs after authentication.
#[derive(Debug, Clone)]
pub struct FairShareLayer {
    share: Arc<FairShare>,
}

impl FairShareLayer {
    /// Admits calls under `share`.
    pub fn new(share: Arc<FairShare>) -> Self {
        Self { share }
    }
}

impl<S> tower::Layer<S> for FairShareLayer {
    type Service = Admit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admit {
            inner,
            share: self.share.clone(),
        }
    }
}

/// See [`FairShareLayer`].
#[derive(Debug, Clone)]
pub struct Admit<S> {
    inner: S,
    share: Arc<FairShare>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Admit<S>
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
        let admitted = match request.extensions().get::<Caller>() {
            // Health checks and reflection carry no caller and are not limited.
            None => Ok(None),
            Some(caller) => self.share.admit_call(caller),
        };
        match admitted {
            Ok(permit) => {
                request.extensions_mut().insert(self.share.clone());
                let call = self.inner.call(request);
                Box::pin(async move {
                    let response = call.await;
                    drop(permit);
                    response
                })
            }
            Err(error) => Box::pin(std::future::ready(Ok(
                tonic::Status::from(error).into_http()
            ))),
        }
    }
}
