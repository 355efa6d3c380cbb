//! Parsing helpers for the gRPC edge: each turns a raw field into a checked value or an
//! INVALID_ARGUMENT naming the field.

use uuid::Uuid;

use crate::ApiError;

/// A required id field: present and a UUID.
pub fn required_id(field: &str, value: &str) -> Result<Uuid, ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    Uuid::parse_str(value).map_err(|_| ApiError::invalid(field, "must be a UUID"))
}

/// An optional id field: empty means absent, anything else must be a UUID.
pub fn optional_id(field: &str, value: &str) -> Result<Option<Uuid>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    required_id(field, value).map(Some)
}

/// An optional text field of at most `max_chars` characters, trimmed; empty means absent.
pub fn optional_text(field: &str, value: &str, max_chars: usize) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.chars().count() > max_chars {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// A required text field of 1 to `max_chars` characters, trimmed.
pub fn required_text(field: &str, value: &str, max_chars: usize) -> Result<String, ApiError> {
    let text = optional_text(field, value, max_chars)?;
    if text.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    Ok(text)
}

/// The largest page any list returns.
pub const MAX_PAGE_SIZE: i32 = 1000;
/// The page size when the request leaves it at 0.
pub const DEFAULT_PAGE_SIZE: i32 = 50;

/// A `page_size`: 0 means the default; negative or above the maximum is refused.
pub fn page_size(value: i32) -> Result<u32, ApiError> {
    match value {
        0 => Ok(DEFAULT_PAGE_SIZE as u32),
        1..=MAX_PAGE_SIZE => Ok(value as u32),
        _ => Err(ApiError::invalid(
            "page_size",
            format!("must be between 0 and {MAX_PAGE_SIZE}"),
        )),
    }
}

/// A `page_token` of a list ordered by UUID v7 id: the last id of the previous page.
pub fn page_token(value: &str) -> Result<Option<Uuid>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    Uuid::parse_str(value)
        .map(Some)
        .map_err(|_| ApiError::invalid("page_token", "is not a token this list returned"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_the_field_when_missing_or_malformed() {
        assert_eq!(
            required_id("contact_id", ""),
            Err(ApiError::invalid("contact_id", "is required"))
        );
        assert_eq!(
            required_id("contact_id", "nope"),
            Err(ApiError::invalid("contact_id", "must be a UUID"))
        );
        assert_eq!(optional_id("team_id", ""), Ok(None));
    }

    #[test]
    fn text_is_trimmed_and_bounded_in_characters_not_bytes() {
        assert_eq!(optional_text("name", "  ñandú ", 5), Ok("ñandú".into()));
        assert!(optional_text("name", "ñandús", 5).is_err());
        assert!(required_text("name", "   ", 5).is_err());
    }

    #[test]
    fn page_sizes_default_and_stay_in_range() {
        assert_eq!(page_size(0), Ok(50));
        assert_eq!(page_size(1000), Ok(1000));
        assert!(page_size(1001).is_err());
        assert!(page_size(-1).is_err());
    }
}
