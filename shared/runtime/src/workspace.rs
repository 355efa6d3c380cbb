//! The workspace a call is scoped to. Until authentication lands it comes from the
//! `x-workspace-id` request metadata; every handler takes it from here, never from a request field.

use std::fmt;

use uuid::Uuid;

use crate::ApiError;

/// The metadata key that carries the caller's workspace.
pub const WORKSPACE_HEADER: &str = "x-workspace-id";

/// A workspace's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspaceId(Uuid);

impl WorkspaceId {
    /// Wraps a known workspace UUID.
    pub fn new(id: Uuid) -> Self {
        Self(id)
    }

    /// The UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The workspace of a call: UNAUTHENTICATED without one, INVALID_ARGUMENT when it isn't a UUID.
pub fn workspace_of<T>(request: &tonic::Request<T>) -> Result<WorkspaceId, ApiError> {
    workspace_in(request.metadata())
}

/// The workspace named by call metadata, if it names one at all.
pub fn optional_workspace_of<T>(
    request: &tonic::Request<T>,
) -> Result<Option<WorkspaceId>, ApiError> {
    if request.metadata().get(WORKSPACE_HEADER).is_none() {
        return Ok(None);
    }
    workspace_in(request.metadata()).map(Some)
}

fn workspace_in(metadata: &tonic::metadata::MetadataMap) -> Result<WorkspaceId, ApiError> {
    let value = metadata.get(WORKSPACE_HEADER).ok_or_else(|| {
        ApiError::Unauthenticated(format!(
            "no workspace: send the workspace id in the `{WORKSPACE_HEADER}` metadata"
        ))
    })?;
    value
        .to_str()
        .ok()
        .and_then(|text| Uuid::parse_str(text.trim()).ok())
        .map(WorkspaceId)
        .ok_or_else(|| ApiError::invalid(WORKSPACE_HEADER, "must be a UUID"))
}
