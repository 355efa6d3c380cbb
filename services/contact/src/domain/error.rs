//! The ways a contact operation can be refused.

use super::contact::{ChannelIdentity, ContactId};

/// Why a contact operation could not be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ContactError {
    /// No such contact in the workspace.
    #[error("contact {0} not found")]
    NotFound(ContactId),
    /// Another contact of the workspace already has this identity.
    #[error("channel identity {identity} already belongs to contact {owner}")]
    IdentityTaken {
        identity: ChannelIdentity,
        owner: ContactId,
    },
    /// The contact does not have this identity.
    #[error("contact {contact} has no channel identity {identity}")]
    IdentityNotFound {
        contact: ContactId,
        identity: ChannelIdentity,
    },
    /// A contact can't be merged into itself.
    #[error("a contact can't be merged into itself")]
    MergeIntoSelf,
    /// The contact was merged into another and can't take part in this operation.
    #[error("contact {contact} was merged into contact {into}")]
    Merged { contact: ContactId, into: ContactId },
}
