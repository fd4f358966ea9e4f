//! The application error as HTTP: each kind of `AppError` gets its status here, and only
//! here. Error bodies are replaced by fixed, friendly text (`web::error_pages`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::app::error::AppError;
use crate::infra::storage::blob::StorageError;

/// Attached to error responses so the error-page layer can say something useful that is
/// safe to show. Only `BadRequest`, `Refused` and `Conflict` carry a message of their own.
#[derive(Debug, Clone)]
pub struct PublicMessage(pub String);

/// Attached to error responses whose kind has a more precise stable code than its status
/// (JSON error bodies use it as `error`).
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::SeeOther(_) => StatusCode::SEE_OTHER,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden => StatusCode::FORBIDDEN,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Refused(status, _) => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            AppError::Conflict(..) => StatusCode::CONFLICT,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Db(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Db(e) if e.is_full() => StatusCode::INSUFFICIENT_STORAGE,
            AppError::Db(e) if e.is_not_found() => StatusCode::NOT_FOUND,
            AppError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Storage(e) => match e {
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
        if let AppError::SeeOther(location) = self {
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
        if let AppError::BadRequest(msg) | AppError::Refused(_, msg) | AppError::Conflict(_, msg) =
            self
        {
            res.extensions_mut().insert(PublicMessage(msg.clone()));
        }
        if let AppError::Conflict(code, _) = self {
            res.extensions_mut().insert(ErrorCode(code));
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
        let err = AppError::from(crate::infra::db::DbError::from(err));
        assert_eq!(err.status_code().as_u16(), 507, "{err}");
    }
}
