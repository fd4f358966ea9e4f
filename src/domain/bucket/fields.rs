//! A bucket's single text fields: display name, notes, credentials.
//! Errors never contain the value of a secret.

use crate::domain::FieldError;

const DISPLAY_NAME_MAX: usize = 100;
const NOTES_MAX: usize = 2000;
const ACCESS_KEY_ID_MAX: usize = 128;
const SECRET_KEY_MAX: usize = 256;
const KMS_KEY_ID_MAX: usize = 2048;

fn printable_token(raw: &str, field: &'static str, max: usize) -> Result<String, FieldError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(FieldError::new(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(FieldError::new(
            field,
            "may contain only printable characters without spaces",
        ));
    }
    Ok(value.to_string())
}

pub fn parse_access_key_id(raw: &str) -> Result<String, FieldError> {
    printable_token(raw, "access_key_id", ACCESS_KEY_ID_MAX)
}

pub fn parse_kms_key_id(raw: &str) -> Result<String, FieldError> {
    printable_token(raw, "kms_key_id", KMS_KEY_ID_MAX)
}

/// Checks a secret key without copying it; the error never contains it.
pub fn check_secret_key(raw: &str) -> Result<(), FieldError> {
    if raw.is_empty() {
        return Err(FieldError::new("secret_key", "is required"));
    }
    if raw.chars().count() > SECRET_KEY_MAX || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(FieldError::new(
            "secret_key",
            format!("must be 1 to {SECRET_KEY_MAX} printable characters without spaces"),
        ));
    }
    Ok(())
}

pub fn parse_display_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(FieldError::new("display_name", "is required"));
    }
    if name.chars().count() > DISPLAY_NAME_MAX {
        return Err(FieldError::new(
            "display_name",
            format!("must be at most {DISPLAY_NAME_MAX} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "display_name",
            "must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

pub fn parse_notes(raw: &str) -> Result<String, FieldError> {
    let notes = raw.trim();
    if notes.chars().count() > NOTES_MAX {
        return Err(FieldError::new(
            "notes",
            format!("must be at most {NOTES_MAX} characters"),
        ));
    }
    if notes
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(FieldError::new(
            "notes",
            "must not contain control characters",
        ));
    }
    Ok(notes.to_string())
}
