//! One application error. Each variant maps to a status; what the user sees is a fixed,
//! friendly text for that status (rendered by `web::error_pages`), while the cause goes to
//! the log with the request id. Nothing internal ever reaches a response body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::db::DbError;
use crate::storage::blob::StorageError;

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
    /// protocol); the message is shown to the user, so it must be written for them.
    #[error("refused ({0}): {1}")]
    Refused(StatusCode, String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::from(e))
    }
}

impl AppError {
    /// A refusal with `status` and a message for the user.
    pub fn refused(status: u16, message: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        Self::Refused(status, message.into())
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

impl<R> From<diesel::result::Error> for Refusable<R> {
    fn from(e: diesel::result::Error) -> Self {
        Self::Error(e.into())
    }
}

/// Attached to error responses so the error-page layer can say something useful that is
/// safe to show. Only `BadRequest` carries a message of its own.
#[derive(Debug, Clone)]
pub struct PublicMessage(pub String);

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SeeOther(_) => StatusCode::SEE_OTHER,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Refused(status, _) => *status,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Db(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Db(e) if e.is_full() => StatusCode::INSUFFICIENT_STORAGE,
            Self::Db(DbError::Query(diesel::result::Error::NotFound)) => StatusCode::NOT_FOUND,
            Self::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Storage(e) => match e {
                StorageError::NotFound | StorageError::NoSuchUpload => StatusCode::NOT_FOUND,
                StorageError::InvalidPart(_) => StatusCode::BAD_REQUEST,
                StorageError::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
                StorageError::Full => StatusCode::INSUFFICIENT_STORAGE,
                StorageError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                // Tampering or corruption is never answered with data; it is logged loudly.
                StorageError::Integrity(_) | StorageError::Config(_) | StorageError::Io(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::SeeOther(location) = self {
            return HttpResponse::SeeOther()
                .insert_header((actix_web::http::header::LOCATION, location.as_str()))
                .finish();
        }
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        let mut res = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.insert_header((actix_web::http::header::RETRY_AFTER, "5"));
        }
        let mut res = res.finish();
        if let Self::BadRequest(msg) | Self::Refused(_, msg) = self {
            res.extensions_mut().insert(PublicMessage(msg.clone()));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_map_to_precise_statuses() {
        let status = |e: StorageError| AppError::from(e).status_code().as_u16();
        assert_eq!(status(StorageError::NotFound), 404);
        assert_eq!(status(StorageError::NoSuchUpload), 404);
        assert_eq!(status(StorageError::InvalidPart("x".into())), 400);
        assert_eq!(status(StorageError::RangeNotSatisfiable), 416);
        assert_eq!(status(StorageError::Full), 507);
        assert_eq!(status(StorageError::Unavailable("down".into())), 503);
        assert_eq!(status(StorageError::Integrity("tag".into())), 500);
        let unavailable = AppError::from(StorageError::Unavailable("down".into())).error_response();
        assert!(unavailable.headers().contains_key("retry-after"));
    }

    #[test]
    fn a_full_sqlite_database_is_507_not_500() {
        use diesel::{Connection as _, RunQueryDsl as _, connection::SimpleConnection as _};
        let mut conn = diesel::SqliteConnection::establish(":memory:").unwrap();
        // A database capped at a few pages is a full disk as SQLite reports it.
        conn.batch_execute("CREATE TABLE t (b BLOB); PRAGMA max_page_count = 4;")
            .unwrap();
        let err = (0..64)
            .find_map(|_| {
                diesel::sql_query("INSERT INTO t VALUES (zeroblob(4096))")
                    .execute(&mut conn)
                    .err()
            })
            .unwrap();
        let err = AppError::from(err);
        assert_eq!(err.status_code().as_u16(), 507, "{err}");
    }
}
