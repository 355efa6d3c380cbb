//! The workspace a call is scoped to. It comes from the caller's token (see `crate::auth`); only a
//! service token names the workspace it acts in with the `x-workspace-id` metadata.

use std::fmt;

use uuid::Uuid;

/// The metadata key with which a service token names the workspace it acts in.
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
