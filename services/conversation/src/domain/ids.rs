//! Identifiers.

use std::fmt;

use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a known id.
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A conversation's id (UUID v7, so ids sort by opening time).
    ConversationId
);
uuid_id!(
    /// A contact's id, as the contact service knows it.
    ContactId
);

impl ConversationId {
    /// A new id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The longest id accepted, in characters.
            pub const MAX_CHARS: usize = $max;

            /// A non-empty id of at most `MAX_CHARS` characters, without surrounding spaces.
            pub fn parse(value: &str) -> Result<Self, String> {
                if value.trim().is_empty() {
                    return Err("is required".into());
                }
                if value.trim() != value {
                    return Err("must not start or end with spaces".into());
                }
                if value.chars().count() > Self::MAX_CHARS {
                    return Err(format!("must be at most {} characters", Self::MAX_CHARS));
                }
                Ok(Self(value.to_owned()))
            }

            /// The id.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

text_id!(
    /// A message's id as the channel adapter gives it (a provider's id: not always a UUID).
    MessageId,
    256
);
text_id!(
    /// Who acted: a user, a workflow, a bot, an AI agent or an API client, by the caller's id.
    ActorId,
    128
);
text_id!(
    /// A conversation's id in the system it was imported from.
    ExternalId,
    256
);
