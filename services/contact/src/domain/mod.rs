//! The contact domain: what a contact is and the rules for changing it. Plain Rust: no gRPC, no
//! SQL; values are checked when they are built, so the rest of the service handles only valid ones.

mod contact;
mod error;
mod external_id;
mod fields;
mod merge;

pub use contact::{
    ChannelIdentity, ChannelType, Contact, ContactId, ContactStatus, Profile, ProfileField,
};
pub use error::ContactError;
pub use external_id::ExternalId;
pub use fields::{CustomFields, CustomValue, Email, FieldKey, Language, Name, Phone, Tag, Tags};
pub use merge::merge_profiles;
