//! Parsing helpers for the gRPC edge: each turns a raw field into a checked value or an
//! INVALID_ARGUMENT naming the field.
//!
//! Every string a request carries goes through [`text`] before anything else reads it (the other
//! helpers here call it first), so a value one database refuses is refused by both, by name.

use uuid::Uuid;

use crate::ApiError;

/// Any string field, before it is read: refuses NUL characters. PostgreSQL can't store them in
/// text (the call would fail deep in the store) while SQLite stores them and hands them to every
/// reader, so both refuse them here instead, naming the field.
pub fn text<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    if value.contains('\0') {
        return Err(ApiError::invalid(field, "must not contain NUL characters"));
    }
    Ok(value)
}

/// Each string of a repeated field through [`text`], named `field[index]`.
pub fn text_list<'a>(field: &str, values: &'a [String]) -> Result<Vec<&'a str>, ApiError> {
    values
        .iter()
        .enumerate()
        .map(|(index, value)| text(&format!("{field}[{index}]"), value))
        .collect()
}

/// The characters of a bad value an error message quotes: enough to recognise it, never the
/// megabyte a hostile caller sent.
pub const QUOTE_CHARS: usize = 32;

/// `value` quoted for an error message or a field path (`"ab\n…"`): at most [`QUOTE_CHARS`]
/// characters of it, escaped, with an ellipsis when cut.
pub fn quote(value: &str) -> String {
    let mut quoted: String = value.chars().take(QUOTE_CHARS).collect();
    let cut = quoted.len() < value.len();
    quoted = format!("{quoted:?}");
    if cut {
        quoted.insert(quoted.len() - 1, '…');
    }
    quoted
}

/// A required id field: present and a UUID.
pub fn required_id(field: &str, value: &str) -> Result<Uuid, ApiError> {
    let value = text(field, value)?;
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
    let trimmed = text(field, value)?.trim();
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
    if text("page_token", value)?.is_empty() {
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
    fn nul_characters_are_refused_in_every_kind_of_text() {
        let nul = ApiError::invalid("f", "must not contain NUL characters");
        assert_eq!(text("f", "a\0b"), Err(nul.clone()));
        assert_eq!(optional_text("f", "a\0", 10), Err(nul.clone()));
        assert_eq!(required_text("f", "\0", 10), Err(nul.clone()));
        assert_eq!(optional_id("f", "\0"), Err(nul));
        assert!(page_token("\0").is_err());
        assert_eq!(
            text_list("tags", &["ok".into(), "b\0d".into()]),
            Err(ApiError::invalid(
                "tags[1]",
                "must not contain NUL characters"
            ))
        );
    }

    #[test]
    fn quotes_keep_a_short_escaped_prefix() {
        assert_eq!(quote("ab\0"), "\"ab\\0\"");
        let long = quote(&"ñ".repeat(1_000_000));
        assert_eq!(long, format!("\"{}…\"", "ñ".repeat(QUOTE_CHARS)));
    }

    #[test]
    fn page_sizes_default_and_stay_in_range() {
        assert_eq!(page_size(0), Ok(50));
        assert_eq!(page_size(1000), Ok(1000));
        assert!(page_size(1001).is_err());
        assert!(page_size(-1).is_err());
    }
}
