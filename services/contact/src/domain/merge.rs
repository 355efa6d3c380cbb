//! What a merge does to the primary contact's profile.

use super::contact::Profile;

/// The primary's profile after absorbing the secondary's: the primary's values win, the
/// secondary's fill the primary's empty fields, tags are united and custom fields the primary
/// lacks are added.
pub fn merge_profiles(primary: &Profile, secondary: &Profile) -> Profile {
    let mut merged = primary.clone();
    if merged.first_name.is_empty() {
        merged.first_name = secondary.first_name.clone();
    }
    if merged.last_name.is_empty() {
        merged.last_name = secondary.last_name.clone();
    }
    if merged.email.is_none() {
        merged.email = secondary.email.clone();
    }
    if merged.phone.is_none() {
        merged.phone = secondary.phone.clone();
    }
    if merged.language.is_none() {
        merged.language = secondary.language.clone();
    }
    merged.custom_fields.fill_from(&secondary.custom_fields);
    merged.tags.union_with(&secondary.tags);
    merged
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::{CustomFields, CustomValue, Email, FieldKey, Name, Tag, Tags};

    fn tags(names: &[&str]) -> Tags {
        Tags::new(names.iter().map(|t| Tag::parse(t).unwrap())).unwrap()
    }

    #[test]
    fn the_primary_keeps_its_values_and_gains_what_it_lacked() {
        let key = |k: &str| FieldKey::parse(k).unwrap();
        let primary = Profile {
            first_name: Name::parse("Ana").unwrap(),
            tags: tags(&["vip"]),
            custom_fields: CustomFields::new(BTreeMap::from([(
                key("plan"),
                CustomValue::text("pro").unwrap(),
            )]))
            .unwrap(),
            ..Profile::default()
        };
        let secondary = Profile {
            first_name: Name::parse("Anita").unwrap(),
            last_name: Name::parse("García").unwrap(),
            email: Email::parse("ana@example.com").unwrap(),
            tags: tags(&["lead", "vip"]),
            custom_fields: CustomFields::new(BTreeMap::from([
                (key("plan"), CustomValue::text("free").unwrap()),
                (key("city"), CustomValue::text("Quito").unwrap()),
            ]))
            .unwrap(),
            ..Profile::default()
        };
        let merged = merge_profiles(&primary, &secondary);
        assert_eq!(merged.first_name.as_str(), "Ana");
        assert_eq!(merged.last_name.as_str(), "García");
        assert_eq!(merged.email, secondary.email);
        assert_eq!(merged.tags, tags(&["vip", "lead"]));
        assert_eq!(
            merged.custom_fields.get(&key("plan")),
            Some(&CustomValue::Text("pro".into()))
        );
        assert_eq!(
            merged.custom_fields.get(&key("city")),
            Some(&CustomValue::Text("Quito".into()))
        );
    }
}
