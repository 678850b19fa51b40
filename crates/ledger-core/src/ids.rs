//! Identifiers that come from outside (partner, customer, record, coupon ids): short,
//! printable and safe to embed in a stream name.

use crate::CoreError;

/// Longest identifier accepted from outside.
pub const MAX_ID_LEN: usize = 64;

/// Checks an identifier: 1 to 64 characters of `A-Z a-z 0-9 _ - .`, and not `.` or `..`:
/// an id must travel in a URL path as written, and clients resolve those two away
/// (`/v1/partners/../funds` is `/v1/funds`).
pub fn validate_id(field: &'static str, value: &str) -> Result<(), CoreError> {
    let reason = if value.is_empty() {
        "must not be empty".to_string()
    } else if value.len() > MAX_ID_LEN {
        format!("must be at most {MAX_ID_LEN} characters")
    } else if !value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        "may hold only letters, digits, '_', '-' and '.'".to_string()
    } else if value == "." || value == ".." {
        "must not be '.' or '..' (a URL path would not carry it as written)".to_string()
    } else {
        return Ok(());
    };
    Err(CoreError::InvalidField { field, reason })
}

/// Checks free text (names, remarks, comments): at most `max` characters, no control
/// characters.
pub fn validate_text(field: &'static str, value: &str, max: usize) -> Result<(), CoreError> {
    if value.chars().count() > max {
        return Err(CoreError::InvalidField { field, reason: format!("must be at most {max} characters") });
    }
    if value.chars().any(char::is_control) {
        return Err(CoreError::InvalidField { field, reason: "must not contain control characters".into() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_and_plain() {
        assert!(validate_id("partner_id", "P-001_a.b").is_ok());
        assert!(validate_id("partner_id", "...").is_ok(), "only the dot segments are refused");
        for bad in ["", "a b", "a/b", "é", &"x".repeat(65), "a\u{0}", ".", ".."] {
            assert_eq!(validate_id("partner_id", bad).unwrap_err().code(), "INVALID_FIELD", "{bad:?}");
        }
    }

    #[test]
    fn text_has_no_control_characters() {
        assert!(validate_text("remark", "银河科技 Q3", 10).is_ok());
        assert!(validate_text("remark", "a\nb", 10).is_err());
        assert!(validate_text("remark", "abcdefghijk", 10).is_err());
    }
}
