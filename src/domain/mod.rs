//! Validated values. Handlers turn raw input into these at the edge and work with them only.

pub mod api_key;
pub mod bucket;
pub mod clock;
pub mod common_passwords;
mod dicom_uid;
pub mod email;
pub mod ids;
mod local_path;
pub mod password;
mod relative_path;
pub mod role;
pub mod upload_request;
pub mod webhook;

pub use dicom_uid::DicomUid;
pub use local_path::LocalPath;
pub use relative_path::RelativePath;

/// A validation failure on one form field, with a message written for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }

    /// The message for `field` among a form's errors (the first, when there are several).
    pub fn message_for<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a str> {
        errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}
