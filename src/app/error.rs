//! One application error, with kinds and no HTTP: `web::error` maps each kind to a status,
//! and what the user sees is a fixed, friendly text for that status, while the cause goes to
//! the log with the request id. Nothing internal ever reaches a response body.

use crate::infra::db::DbError;
use crate::infra::storage::blob::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Not a failure: send the browser elsewhere (sign-in, TOTP enrolment, password change).
    #[error("redirect to {0}")]
    SeeOther(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The message is shown to the user: it must be written for them.
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unauthorized")]
    Unauthorized,
    #[error("forbidden")]
    Forbidden,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// A refusal with its own status (409, 410, 412, 413, 415, 423, 460 in the tus
    /// protocol, which names them); the message is shown to the user, so it must be written
    /// for them.
    #[error("refused ({0}): {1}")]
    Refused(u16, String),
    /// The thing's state forbids the request (409): a stable snake_case code that scripts
    /// can branch on, and a message for people (so it must be written for them).
    #[error("conflict ({0}): {1}")]
    Conflict(&'static str, String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl AppError {
    /// A refusal with `status` and a message for the user.
    pub fn refused(status: u16, message: impl Into<String>) -> Self {
        Self::Refused(status, message.into())
    }

    /// A 409 with a stable `code` and a message for the user.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict(code, message.into())
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }
}

/// The result of a service step that can be refused by a rule the user may read about
/// (kept apart from failures, which become error pages).
#[derive(Debug)]
pub enum Refusable<R> {
    Refused(R),
    Error(AppError),
}

impl<R> From<AppError> for Refusable<R> {
    fn from(e: AppError) -> Self {
        Self::Error(e)
    }
}

impl<R> From<DbError> for Refusable<R> {
    fn from(e: DbError) -> Self {
        Self::Error(e.into())
    }
}
