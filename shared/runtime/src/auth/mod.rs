//! Who is calling, and what they may do. Every call but health checking and reflection carries
//! `authorization: Bearer <JWT>`; [`layer`] verifies it once for every service and leaves a
//! [`Caller`] in the request, and handlers ask [`authorize`] (or [`authorize_service`],
//! [`stream_scope`]) for the workspace they act in. The workspace comes from the token, never from
//! a request field; only a `service` token, which speaks for the platform's own backends, names the
//! workspace it acts in with the `x-workspace-id` metadata.

pub mod config;
pub mod credential;
pub mod keys;
pub mod layer;
pub mod mint;
pub mod verify;

use std::fmt;

use uuid::Uuid;

use crate::ApiError;
use crate::workspace::{WORKSPACE_HEADER, WorkspaceId};

/// What a token lets its bearer do. Each role can do what the ones before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A workspace's contacts, conversations and metrics.
    Agent,
    /// An agent's calls, plus workspace settings, imports, deletes and the workspace's event streams.
    Admin,
    /// The platform's own backends: any workspace (named by `x-workspace-id`), cross-workspace
    /// event streams, stream info, rebuilds and the test clock.
    Service,
}

impl Role {
    /// The claim value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Admin => "admin",
            Self::Service => "service",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verified caller of one call, as its token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's role.
    pub role: Role,
    /// The token's workspace (service tokens may have none).
    pub workspace: Option<WorkspaceId>,
    /// The token's subject, for logs.
    pub subject: Option<String>,
}

/// The caller of a request, as the authentication layer left it.
pub fn caller_of<T>(request: &tonic::Request<T>) -> Result<&Caller, ApiError> {
    request
        .extensions()
        .get::<Caller>()
        .ok_or_else(|| verify::unauthenticated("NO_TOKEN", "the call carries no credentials"))
}

/// The workspace a call acts in, when its caller holds at least `needed`: the token's workspace,
/// or for a service token the one `x-workspace-id` names.
pub fn authorize<T>(request: &tonic::Request<T>, needed: Role) -> Result<WorkspaceId, ApiError> {
    let caller = require(request, needed)?;
    acting_workspace(request, caller)?.ok_or_else(|| {
        ApiError::invalid(
            WORKSPACE_HEADER,
            "a service token must name the workspace it acts in",
        )
    })
}

/// For the internal surface: the caller must hold a service token. Answers the workspace it
/// narrows the call to, if any.
pub fn authorize_service<T>(request: &tonic::Request<T>) -> Result<Option<WorkspaceId>, ApiError> {
    let caller = require(request, Role::Service)?;
    acting_workspace(request, caller)
}

/// Which events an event stream may show its caller: a service sees every workspace unless it
/// names one; an admin sees only its own workspace.
pub fn stream_scope<T>(request: &tonic::Request<T>) -> Result<Option<WorkspaceId>, ApiError> {
    let caller = require(request, Role::Admin)?;
    acting_workspace(request, caller)
}

fn require<T>(request: &tonic::Request<T>, needed: Role) -> Result<&Caller, ApiError> {
    let caller = caller_of(request)?;
    if caller.role < needed {
        return Err(ApiError::PermissionDenied {
            reason: "ROLE_NOT_ALLOWED",
            message: format!(
                "this call needs the `{needed}` role; the token's role is `{}`",
                caller.role
            ),
            metadata: vec![("required_role", needed.to_string())],
        });
    }
    Ok(caller)
}

fn acting_workspace<T>(
    request: &tonic::Request<T>,
    caller: &Caller,
) -> Result<Option<WorkspaceId>, ApiError> {
    let named = match request.metadata().get(WORKSPACE_HEADER) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| Uuid::parse_str(text.trim()).ok())
                .map(WorkspaceId::new)
                .ok_or_else(|| ApiError::invalid(WORKSPACE_HEADER, "must be a UUID"))?,
        ),
    };
    match (caller.workspace, named) {
        (Some(own), Some(named)) if own != named => Err(ApiError::PermissionDenied {
            reason: "OTHER_WORKSPACE",
            message: format!("`{WORKSPACE_HEADER}` names a workspace the token is not for"),
            metadata: Vec::new(),
        }),
        (Some(own), _) => Ok(Some(own)),
        (None, named) if caller.role == Role::Service => Ok(named),
        (None, _) => Err(verify::unauthenticated(
            "MISSING_CLAIM",
            "the token has no `workspace_id` claim",
        )),
    }
}
