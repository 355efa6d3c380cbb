//! The id an imported contact had in the system it came from: what makes ImportContacts rows
//! idempotent.

use std::fmt;

use super::fields::Invalid;

/// A contact's id in the system it was imported from: 1 to 256 characters, unique in the
/// workspace, compared exactly (no trimming, no case folding: it is someone else's key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExternalId(String);

impl ExternalId {
    pub const MAX_CHARS: usize = 256;

    /// `None` for an empty value (a row without one).
    pub fn parse(value: &str) -> Result<Option<Self>, Invalid> {
        if value.is_empty() {
            return Ok(None);
        }
        if value.trim() != value {
            return Err("must not start or end with spaces".into());
        }
        if value.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        // PostgreSQL's text can't hold NUL; refusing it everywhere keeps SQLite the same.
        if value.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Some(Self(value.to_owned())))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_external_id_is_none_and_a_good_one_is_kept_as_given() {
        assert_eq!(ExternalId::parse(""), Ok(None));
        let id = ExternalId::parse("CRM-0042/ä").unwrap().unwrap();
        assert_eq!(id.as_str(), "CRM-0042/ä");
    }

    #[test]
    fn a_bad_external_id_says_what_is_wrong() {
        assert!(ExternalId::parse(" a").unwrap_err().contains("spaces"));
        assert!(ExternalId::parse("   ").unwrap_err().contains("spaces"));
        assert!(ExternalId::parse("a\0b").unwrap_err().contains("control"));
        let long = "x".repeat(ExternalId::MAX_CHARS + 1);
        assert!(ExternalId::parse(&long).unwrap_err().contains("256"));
        assert!(ExternalId::parse(&long[1..]).is_ok());
    }
}
