//! A contact, its identities on channels, and its status.

use std::fmt;
use std::time::SystemTime;

pub use charla_runtime::channel::ChannelType;
use charla_runtime::workspace::WorkspaceId;
use uuid::Uuid;

use super::fields::{CustomFields, Email, Language, Name, Phone, Tags};

/// A contact's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContactId(Uuid);

impl ContactId {
    /// A new id (UUID v7: ids sort by creation time).
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps a known id.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How a contact is known on one channel of a workspace; unique within the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelIdentity {
    /// The kind of channel.
    pub channel_type: ChannelType,
    /// The workspace's channel (a WhatsApp number, a Facebook page...).
    pub channel_id: String,
    /// The contact's id on that channel.
    pub external_id: String,
}

impl fmt::Display for ChannelIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.channel_type.as_str(),
            self.channel_id,
            self.external_id
        )
    }
}

/// Whether a contact can get new conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactStatus {
    /// An ordinary contact.
    Active,
    /// Blocked: no conversation can be opened for it.
    Blocked,
    /// Merged into another contact, which now owns its identities.
    Merged { into: ContactId },
}

/// The editable part of a contact.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    pub first_name: Name,
    pub last_name: Name,
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    pub language: Option<Language>,
    pub custom_fields: CustomFields,
    pub tags: Tags,
}

/// A contact as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: ContactId,
    pub workspace: WorkspaceId,
    pub profile: Profile,
    pub identities: Vec<ChannelIdentity>,
    pub status: ContactStatus,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
}

impl Contact {
    /// A new, active contact.
    pub fn new(
        workspace: WorkspaceId,
        profile: Profile,
        identities: Vec<ChannelIdentity>,
        now: SystemTime,
    ) -> Self {
        Self {
            id: ContactId::generate(),
            workspace,
            profile,
            identities,
            status: ContactStatus::Active,
            created_at: now,
            updated_at: now,
        }
    }

    /// The contact it was merged into, if it was.
    pub fn merged_into(&self) -> Option<ContactId> {
        match self.status {
            ContactStatus::Merged { into } => Some(into),
            _ => None,
        }
    }
}

/// A profile field an update can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileField {
    FirstName,
    LastName,
    Email,
    Phone,
    Language,
    CustomFields,
    Tags,
}

impl Profile {
    /// Takes the named fields from `changes`; the others stay.
    pub fn apply(&mut self, changes: Profile, fields: &[ProfileField]) {
        let Profile {
            first_name,
            last_name,
            email,
            phone,
            language,
            custom_fields,
            tags,
        } = changes;
        for field in fields {
            match field {
                ProfileField::FirstName => self.first_name = first_name.clone(),
                ProfileField::LastName => self.last_name = last_name.clone(),
                ProfileField::Email => self.email = email.clone(),
                ProfileField::Phone => self.phone = phone.clone(),
                ProfileField::Language => self.language = language.clone(),
                ProfileField::CustomFields => self.custom_fields = custom_fields.clone(),
                ProfileField::Tags => self.tags = tags.clone(),
            }
        }
    }
}
