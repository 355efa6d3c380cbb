//! The gRPC edge's conversions: proto messages into checked domain values (naming the field of
//! anything wrong) and domain values back into proto messages.

use std::collections::{BTreeMap, BTreeSet};

use charla_proto::charla::contact::v1 as pb;
use charla_runtime::ApiError;
use charla_runtime::clock::to_timestamp;
use charla_runtime::validate::{quote, required_text, text};

use crate::domain::{
    ChannelIdentity, ChannelType, Contact, ContactStatus, CustomFields, CustomValue, Email,
    FieldKey, Language, Name, Phone, Profile, ProfileField, Tag, Tags,
};

/// The proto form of a contact.
pub fn contact_to_proto(contact: &Contact) -> pb::Contact {
    let profile = &contact.profile;
    let text = |value: Option<&str>| value.unwrap_or_default().to_owned();
    pb::Contact {
        contact_id: contact.id.to_string(),
        workspace_id: contact.workspace.to_string(),
        first_name: profile.first_name.as_str().to_owned(),
        last_name: profile.last_name.as_str().to_owned(),
        email: text(profile.email.as_ref().map(Email::as_str)),
        phone: text(profile.phone.as_ref().map(Phone::as_str)),
        language: text(profile.language.as_ref().map(Language::as_str)),
        custom_fields: profile
            .custom_fields
            .iter()
            .map(|(key, value)| (key.as_str().to_owned(), custom_value_to_proto(value)))
            .collect(),
        tags: profile.tags.iter().map(|t| t.as_str().to_owned()).collect(),
        identities: contact.identities.iter().map(identity_to_proto).collect(),
        status: match contact.status {
            ContactStatus::Active => pb::ContactStatus::Active,
            ContactStatus::Blocked => pb::ContactStatus::Blocked,
            ContactStatus::Merged { .. } => pb::ContactStatus::Merged,
        } as i32,
        merged_into_contact_id: contact
            .merged_into()
            .map(|id| id.to_string())
            .unwrap_or_default(),
        create_time: Some(to_timestamp(contact.created_at)),
        update_time: Some(to_timestamp(contact.updated_at)),
    }
}

fn custom_value_to_proto(value: &CustomValue) -> pb::CustomFieldValue {
    use pb::custom_field_value::Kind;
    let kind = match value {
        CustomValue::Text(text) => Kind::TextValue(text.clone()),
        CustomValue::Number(number) => Kind::NumberValue(*number),
        CustomValue::Bool(flag) => Kind::BoolValue(*flag),
        CustomValue::Time(time) => Kind::TimeValue(to_timestamp(*time)),
    };
    pb::CustomFieldValue { kind: Some(kind) }
}

/// The proto form of an identity.
pub fn identity_to_proto(identity: &ChannelIdentity) -> pb::ChannelIdentity {
    pb::ChannelIdentity {
        channel_type: identity.channel_type.to_proto() as i32,
        channel_id: identity.channel_id.clone(),
        external_id: identity.external_id.clone(),
    }
}

/// A channel identity field (`field` is its path, such as `identity`).
pub fn parse_identity(
    field: &str,
    identity: Option<&pb::ChannelIdentity>,
) -> Result<ChannelIdentity, ApiError> {
    let identity = identity.ok_or_else(|| ApiError::invalid(field, "is required"))?;
    Ok(ChannelIdentity {
        channel_type: ChannelType::parse(&format!("{field}.channel_type"), identity.channel_type)?,
        channel_id: required_text(&format!("{field}.channel_id"), &identity.channel_id, 128)?,
        external_id: required_text(&format!("{field}.external_id"), &identity.external_id, 256)?,
    })
}

/// The identities of a contact message, without duplicates.
pub fn parse_identities(
    field: &str,
    identities: &[pb::ChannelIdentity],
) -> Result<Vec<ChannelIdentity>, ApiError> {
    let mut seen = BTreeSet::new();
    let mut parsed = Vec::new();
    for (index, identity) in identities.iter().enumerate() {
        let identity = parse_identity(&format!("{field}[{index}]"), Some(identity))?;
        if seen.insert(identity.clone()) {
            parsed.push(identity);
        }
    }
    Ok(parsed)
}

/// The profile fields of a contact message (`field` is its path, such as `contact`). Every string
/// goes through `text` (NUL refused) before its own parser sees it.
pub fn parse_profile(field: &str, contact: &pb::Contact) -> Result<Profile, ApiError> {
    let at = |name: &str| format!("{field}.{name}");
    let parse = |name: &str, value: &str| -> Result<String, ApiError> {
        text(&at(name), value).map(str::to_owned)
    };
    let named =
        |name: &'static str| move |description: String| ApiError::invalid(at(name), description);
    let mut custom_fields = BTreeMap::new();
    for (key, value) in &contact.custom_fields {
        let path = format!("{field}.custom_fields[{}]", quote(key));
        let key = FieldKey::parse(text(&path, key)?).map_err(|e| ApiError::invalid(&path, e))?;
        custom_fields.insert(key, parse_custom_value(&path, value)?);
    }
    let mut tags = Vec::with_capacity(contact.tags.len());
    for (index, tag) in contact.tags.iter().enumerate() {
        let path = format!("{field}.tags[{index}]");
        tags.push(Tag::parse(text(&path, tag)?).map_err(|e| ApiError::invalid(path, e))?);
    }
    Ok(Profile {
        first_name: Name::parse(&parse("first_name", &contact.first_name)?)
            .map_err(named("first_name"))?,
        last_name: Name::parse(&parse("last_name", &contact.last_name)?)
            .map_err(named("last_name"))?,
        email: Email::parse(&parse("email", &contact.email)?).map_err(named("email"))?,
        phone: Phone::parse(&parse("phone", &contact.phone)?).map_err(named("phone"))?,
        language: Language::parse(&parse("language", &contact.language)?)
            .map_err(named("language"))?,
        custom_fields: CustomFields::new(custom_fields).map_err(named("custom_fields"))?,
        tags: Tags::new(tags).map_err(named("tags"))?,
    })
}

fn parse_custom_value(field: &str, value: &pb::CustomFieldValue) -> Result<CustomValue, ApiError> {
    use pb::custom_field_value::Kind;
    let invalid = |description: String| ApiError::invalid(field, description);
    match &value.kind {
        None => Err(invalid("must have a value".into())),
        Some(Kind::TextValue(value)) => CustomValue::text(text(field, value)?).map_err(invalid),
        Some(Kind::NumberValue(number)) => CustomValue::number(*number).map_err(invalid),
        Some(Kind::BoolValue(flag)) => Ok(CustomValue::Bool(*flag)),
        Some(Kind::TimeValue(time)) => {
            charla_runtime::clock::parse_timestamp(field, time).map(CustomValue::Time)
        }
    }
}

/// The fields an `update_mask` names.
pub fn parse_update_mask(
    mask: Option<&prost_types::FieldMask>,
) -> Result<Vec<ProfileField>, ApiError> {
    const UPDATABLE: &str = "first_name, last_name, email, phone, language, custom_fields, tags";
    let mask = mask.ok_or_else(|| ApiError::invalid("update_mask", "is required"))?;
    if mask.paths.is_empty() {
        return Err(ApiError::invalid(
            "update_mask",
            "must name at least one field",
        ));
    }
    mask.paths
        .iter()
        .map(|path| match path.as_str() {
            "first_name" => Ok(ProfileField::FirstName),
            "last_name" => Ok(ProfileField::LastName),
            "email" => Ok(ProfileField::Email),
            "phone" => Ok(ProfileField::Phone),
            "language" => Ok(ProfileField::Language),
            "custom_fields" => Ok(ProfileField::CustomFields),
            "tags" => Ok(ProfileField::Tags),
            other => Err(ApiError::invalid(
                "update_mask",
                format!(
                    "{} can't be updated; updatable fields: {UPDATABLE}",
                    quote(other)
                ),
            )),
        })
        .collect()
}
