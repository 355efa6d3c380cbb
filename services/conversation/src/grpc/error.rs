//! The one mapping of the conversation domain's errors to API errors (and so to gRPC codes).

use charla_runtime::ApiError;

use crate::domain::ConversationError;

impl From<ConversationError> for ApiError {
    fn from(error: ConversationError) -> Self {
        let message = error.to_string();
        match error {
            ConversationError::NotFound(id) => {
                ApiError::not_found("charla.conversation.v1.Conversation", id)
            }
            ConversationError::AlreadyOpen { contact, open } => {
                ApiError::precondition("CONVERSATION_ALREADY_OPEN", message)
                    .with_metadata("contact_id", contact.to_string())
                    .with_metadata("conversation_id", open.to_string())
            }
            ConversationError::Closed(id) => ApiError::precondition("CONVERSATION_CLOSED", message)
                .with_metadata("conversation_id", id.to_string()),
            ConversationError::ClosingNoteRequired { field } => {
                ApiError::invalid(field, "is required by the workspace's closing note policy")
            }
            ConversationError::UnknownCategory { category, known } => ApiError::invalid(
                "category",
                format!("`{category}` is not one of the workspace's closing categories {known:?}"),
            ),
            ConversationError::InvalidSettings { field, description } => {
                ApiError::invalid(field, description)
            }
            ConversationError::NoWelcomeEvents(_) => {
                ApiError::invalid("channel.channel_type", message)
            }
            ConversationError::ContactNotFound(contact) => {
                ApiError::not_found("charla.contact.v1.Contact", contact)
            }
            ConversationError::ContactBlocked(contact) => {
                ApiError::precondition("CONTACT_BLOCKED", message)
                    .with_metadata("contact_id", contact.to_string())
            }
            ConversationError::ContactMerged { contact, into } => {
                ApiError::precondition("CONTACT_MERGED", message)
                    .with_metadata("contact_id", contact.to_string())
                    .with_metadata("merged_into_contact_id", into.to_string())
            }
        }
    }
}
