//! The ways a conversation operation can be refused.

use charla_runtime::channel::ChannelType;

use super::ids::{ContactId, ConversationId};

/// Why a conversation operation could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversationError {
    /// No such conversation in the workspace.
    #[error("conversation {0} not found")]
    NotFound(ConversationId),
    /// The contact already has an open conversation (a contact has at most one).
    #[error("contact {contact} already has open conversation {open}")]
    AlreadyOpen {
        contact: ContactId,
        open: ConversationId,
    },
    /// The conversation is closed; closed conversations never reopen.
    #[error("conversation {0} is closed")]
    Closed(ConversationId),
    /// The workspace's closing-note policy requires this field.
    #[error("{field} is required by the workspace's closing note policy")]
    ClosingNoteRequired { field: &'static str },
    /// The category is not one of the workspace's.
    #[error("`{category}` is not one of the workspace's closing categories {known:?}")]
    UnknownCategory {
        category: String,
        known: Vec<String>,
    },
    /// A settings value is out of bounds.
    #[error("{field}: {description}")]
    InvalidSettings {
        field: &'static str,
        description: String,
    },
    /// Welcome events exist only on Facebook Messenger and Viber.
    #[error("{} channels have no welcome events (only Facebook Messenger and Viber do)", .0.as_str())]
    NoWelcomeEvents(ChannelType),
    /// The contact service does not know the contact.
    #[error("contact {0} not found")]
    ContactNotFound(ContactId),
    /// The contact is blocked: no conversation can be opened for it.
    #[error("contact {0} is blocked")]
    ContactBlocked(ContactId),
    /// The contact was merged into another one, which gets its conversations now.
    #[error("contact {contact} was merged into contact {into}")]
    ContactMerged { contact: ContactId, into: ContactId },
}
