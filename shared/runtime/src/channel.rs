//! The kinds of messaging channel: vocabulary every service shares (contacts have identities on
//! them, conversations happen on them, metrics break down by them).

use charla_proto::charla::contact::v1 as pb;

use crate::ApiError;

/// A kind of messaging channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelType {
    FacebookMessenger,
    Instagram,
    Whatsapp,
    Telegram,
    Viber,
    Line,
    Wechat,
    Sms,
    Email,
    Webchat,
    Twitter,
    Custom,
}

impl ChannelType {
    /// Every channel type.
    pub const ALL: [ChannelType; 12] = [
        Self::FacebookMessenger,
        Self::Instagram,
        Self::Whatsapp,
        Self::Telegram,
        Self::Viber,
        Self::Line,
        Self::Wechat,
        Self::Sms,
        Self::Email,
        Self::Webchat,
        Self::Twitter,
        Self::Custom,
    ];

    /// A stable name, for storage.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::FacebookMessenger => "facebook_messenger",
            Self::Instagram => "instagram",
            Self::Whatsapp => "whatsapp",
            Self::Telegram => "telegram",
            Self::Viber => "viber",
            Self::Line => "line",
            Self::Wechat => "wechat",
            Self::Sms => "sms",
            Self::Email => "email",
            Self::Webchat => "webchat",
            Self::Twitter => "twitter",
            Self::Custom => "custom",
        }
    }

    /// The channel type stored under `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|channel| channel.as_str() == name)
    }

    /// Whether the channel sends welcome events (a contact opening the chat before writing):
    /// Facebook Messenger and Viber do.
    pub fn has_welcome_events(&self) -> bool {
        matches!(self, Self::FacebookMessenger | Self::Viber)
    }

    /// The proto value.
    pub fn to_proto(self) -> pb::ChannelType {
        match self {
            Self::FacebookMessenger => pb::ChannelType::FacebookMessenger,
            Self::Instagram => pb::ChannelType::Instagram,
            Self::Whatsapp => pb::ChannelType::Whatsapp,
            Self::Telegram => pb::ChannelType::Telegram,
            Self::Viber => pb::ChannelType::Viber,
            Self::Line => pb::ChannelType::Line,
            Self::Wechat => pb::ChannelType::Wechat,
            Self::Sms => pb::ChannelType::Sms,
            Self::Email => pb::ChannelType::Email,
            Self::Webchat => pb::ChannelType::Webchat,
            Self::Twitter => pb::ChannelType::Twitter,
            Self::Custom => pb::ChannelType::Custom,
        }
    }

    /// A required channel type field: one of the known values, not UNSPECIFIED.
    pub fn parse(field: &str, value: i32) -> Result<Self, ApiError> {
        Self::parse_optional(field, value)?.ok_or_else(|| ApiError::invalid(field, "is required"))
    }

    /// An optional channel type field (a filter): UNSPECIFIED means none.
    pub fn parse_optional(field: &str, value: i32) -> Result<Option<Self>, ApiError> {
        let proto = pb::ChannelType::try_from(value)
            .map_err(|_| ApiError::invalid(field, format!("unknown channel type {value}")))?;
        Ok(Self::ALL
            .into_iter()
            .find(|channel| channel.to_proto() == proto))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_proto_values_round_trip() {
        for channel in ChannelType::ALL {
            assert_eq!(ChannelType::from_name(channel.as_str()), Some(channel));
            assert_eq!(
                ChannelType::parse("c", channel.to_proto() as i32),
                Ok(channel)
            );
        }
        assert!(ChannelType::parse("c", 0).is_err());
        assert!(ChannelType::parse("c", 99).is_err());
    }
}
