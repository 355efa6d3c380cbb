//! The one mapping of the contact domain's errors to API errors (and so to gRPC codes).

use charla_runtime::ApiError;

use crate::domain::ContactError;

impl From<ContactError> for ApiError {
    fn from(error: ContactError) -> Self {
        let message = error.to_string();
        match error {
            ContactError::NotFound(id) => ApiError::not_found("charla.contact.v1.Contact", id),
            ContactError::IdentityTaken { identity, owner } => {
                ApiError::already_exists("IDENTITY_TAKEN", message)
                    .with_metadata("contact_id", owner.to_string())
                    .with_metadata("identity", identity.to_string())
            }
            ContactError::IdentityNotFound { identity, .. } => {
                ApiError::not_found("charla.contact.v1.ChannelIdentity", identity)
            }
            ContactError::MergeIntoSelf => ApiError::invalid(
                "secondary_contact_id",
                "must differ from primary_contact_id",
            ),
            ContactError::Merged { contact, into } => {
                ApiError::precondition("CONTACT_MERGED", message)
                    .with_metadata("contact_id", contact.to_string())
                    .with_metadata("merged_into_contact_id", into.to_string())
            }
        }
    }
}
