//! The checked values a contact's profile is made of. Each type's `parse` is its only constructor
//! from outside input and says, in a few words, what is wrong with a bad value.

use std::collections::BTreeMap;
use std::time::SystemTime;

/// What is wrong with a value, in a few words ("must be at most 256 characters").
pub type Invalid = String;

fn at_most(value: &str, max: usize) -> Result<(), Invalid> {
    if value.chars().count() > max {
        Err(format!("must be at most {max} characters"))
    } else {
        Ok(())
    }
}

/// A first or last name: at most 256 characters, possibly empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub const MAX_CHARS: usize = 256;

    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let value = value.trim();
        at_most(value, Self::MAX_CHARS)?;
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An email address, lower-cased: one `@` between a local part and a domain with a dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub const MAX_CHARS: usize = 320;

    /// `None` for an empty value.
    pub fn parse(value: &str) -> Result<Option<Self>, Invalid> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(None);
        }
        at_most(value, Self::MAX_CHARS)?;
        let well_formed = match value.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
                    && !value.chars().any(char::is_whitespace)
            }
            None => false,
        };
        if !well_formed {
            return Err("must be an email address like name@example.com".into());
        }
        Ok(Some(Self(value.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number in E.164 form: `+` and 8 to 15 digits. Spaces, dashes, dots and brackets in the
/// input are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// `None` for an empty value.
    pub fn parse(value: &str) -> Result<Option<Self>, Invalid> {
        let compact: String = value
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        if compact.is_empty() {
            return Ok(None);
        }
        let digits = compact.strip_prefix('+').unwrap_or("");
        if !(8..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err("must be an E.164 number: + and 8 to 15 digits".into());
        }
        Ok(Some(Self(compact)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A BCP 47 language tag such as `es` or `pt-BR`: letters first, then letter-or-digit subtags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language(String);

impl Language {
    pub const MAX_CHARS: usize = 35;

    /// `None` for an empty value.
    pub fn parse(value: &str) -> Result<Option<Self>, Invalid> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(None);
        }
        at_most(value, Self::MAX_CHARS)?;
        let mut subtags = value.split('-');
        let primary_ok = subtags.next().is_some_and(|p| {
            (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphabetic())
        });
        let rest_ok = subtags
            .all(|s| (1..=8).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric()));
        if !primary_ok || !rest_ok {
            return Err("must be a language tag such as es or pt-BR".into());
        }
        Ok(Some(Self(value.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A custom field's key: 1 to 64 characters of `a-z`, `0-9` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldKey(String);

impl FieldKey {
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let valid = (1..=64).contains(&value.len())
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err("keys must be 1 to 64 characters of a-z, 0-9 and _".into());
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A custom field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum CustomValue {
    Text(String),
    Number(f64),
    Bool(bool),
    Time(SystemTime),
}

impl CustomValue {
    pub const MAX_TEXT_CHARS: usize = 2048;

    /// A text value of at most 2048 characters.
    pub fn text(value: &str) -> Result<Self, Invalid> {
        at_most(value, Self::MAX_TEXT_CHARS)?;
        Ok(Self::Text(value.to_owned()))
    }

    /// A finite number.
    pub fn number(value: f64) -> Result<Self, Invalid> {
        if !value.is_finite() {
            return Err("must be a finite number".into());
        }
        Ok(Self::Number(value))
    }
}

/// A contact's custom fields: at most 100.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomFields(BTreeMap<FieldKey, CustomValue>);

impl CustomFields {
    pub const MAX_FIELDS: usize = 100;

    pub fn new(fields: BTreeMap<FieldKey, CustomValue>) -> Result<Self, Invalid> {
        if fields.len() > Self::MAX_FIELDS {
            return Err(format!("must have at most {} fields", Self::MAX_FIELDS));
        }
        Ok(Self(fields))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&FieldKey, &CustomValue)> {
        self.0.iter()
    }

    pub fn get(&self, key: &FieldKey) -> Option<&CustomValue> {
        self.0.get(key)
    }

    /// Adds the fields of `other` that this map lacks, within the limit of 100.
    pub fn fill_from(&mut self, other: &CustomFields) {
        for (key, value) in other.iter() {
            if self.0.len() >= Self::MAX_FIELDS {
                break;
            }
            self.0.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
}

/// A tag: 1 to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let value = value.trim();
        if value.is_empty() {
            return Err("tags must not be empty".into());
        }
        at_most(value, Self::MAX_CHARS)?;
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A contact's tags: at most 100, without duplicates, in the order first given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(Vec<Tag>);

impl Tags {
    pub const MAX_TAGS: usize = 100;

    pub fn new(tags: impl IntoIterator<Item = Tag>) -> Result<Self, Invalid> {
        let mut unique = Self::default();
        for tag in tags {
            unique.push(tag);
        }
        if unique.0.len() > Self::MAX_TAGS {
            return Err(format!("must have at most {} tags", Self::MAX_TAGS));
        }
        Ok(unique)
    }

    fn push(&mut self, tag: Tag) {
        if !self.0.contains(&tag) {
            self.0.push(tag);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tag> {
        self.0.iter()
    }

    /// Adds the tags of `other` that this list lacks, within the limit of 100.
    pub fn union_with(&mut self, other: &Tags) {
        for tag in other.iter() {
            if self.0.len() >= Self::MAX_TAGS {
                break;
            }
            self.push(tag.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lower_cased_and_must_look_like_addresses() {
        assert_eq!(
            Email::parse(" Ana@Example.COM ").unwrap().unwrap().as_str(),
            "ana@example.com"
        );
        assert_eq!(Email::parse("").unwrap(), None);
        for bad in [
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
            "a@b@c.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn phones_are_compacted_to_e164() {
        assert_eq!(
            Phone::parse("+34 600-123 456").unwrap().unwrap().as_str(),
            "+34600123456"
        );
        for bad in ["600123456", "+12", "+1234567890123456", "+34abc12345"] {
            assert!(Phone::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn languages_are_bcp47_shaped() {
        assert!(Language::parse("pt-BR").unwrap().is_some());
        assert!(Language::parse("es-419").unwrap().is_some());
        assert!(Language::parse("e").is_err());
        assert!(Language::parse("es_ES").is_err());
    }

    #[test]
    fn tags_drop_duplicates_and_keep_order() {
        let tags = Tags::new(["vip", "lead", "vip"].map(|t| Tag::parse(t).unwrap())).unwrap();
        let names: Vec<_> = tags.iter().map(Tag::as_str).collect();
        assert_eq!(names, ["vip", "lead"]);
        assert!(Tag::parse("  ").is_err());
        assert!(Tag::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn field_keys_are_snake_case() {
        assert!(FieldKey::parse("order_id_2").is_ok());
        assert!(FieldKey::parse("Order").is_err());
        assert!(FieldKey::parse("").is_err());
        assert!(CustomValue::number(f64::NAN).is_err());
    }
}
