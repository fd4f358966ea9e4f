//! How S3 failures become [`StorageError`]s.
//!
//! The rule the rest of the application relies on: `Unavailable` means "try again later"
//! (503 with `Retry-After`) and is used only for failures that say nothing about the request
//! itself: no connection, timeouts, 5xx and throttling (after the SDK's own retries). A
//! refusal (wrong credentials, missing bucket, wrong region, KMS problems) is `Config`, so an
//! operator sees a clear message instead of an endless retry loop.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::infra::storage::blob::StorageError;

/// What went wrong, in the terms the S3 store needs to decide. Built once per failure so the
/// decisions below are plain data and testable without a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failure {
    pub(super) status: Option<u16>,
    pub(super) code: Option<String>,
    /// No answer at all: connection refused or reset, DNS failure, timeout.
    pub(super) unreachable: bool,
    /// The request body we streamed failed (our own `InvalidPart` is reported instead).
    pub(super) body_failed: bool,
    pub(super) message: String,
}

impl Failure {
    pub(super) fn from_sdk<E>(err: &SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let (code, message) = match err.as_service_error() {
            Some(service) => (
                service.code().map(str::to_string),
                service.message().unwrap_or_default().to_string(),
            ),
            None => (None, String::new()),
        };
        let (unreachable, body_failed, detail) = match err {
            SdkError::TimeoutError(_) => (true, false, "timed out".to_string()),
            SdkError::DispatchFailure(dispatch) => {
                let what = if dispatch.is_timeout() {
                    "timed out"
                } else if dispatch.is_io() {
                    "connection failed"
                } else {
                    "request failed"
                };
                (!dispatch.is_user(), dispatch.is_user(), what.to_string())
            }
            SdkError::ConstructionFailure(_) => (false, false, "invalid request".to_string()),
            SdkError::ResponseError(_) => (false, false, "unreadable response".to_string()),
            _ => (false, false, message),
        };
        Self {
            status,
            code,
            unreachable,
            body_failed,
            message: detail,
        }
    }

    fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }

    fn describe(&self, op: &str) -> String {
        let mut text = op.to_string();
        if let Some(status) = self.status {
            text.push_str(&format!(": HTTP {status}"));
        }
        if let Some(code) = &self.code {
            text.push_str(&format!(" {code}"));
        }
        if !self.message.is_empty() {
            text.push_str(&format!(": {}", self.message));
        }
        text
    }

    /// The general mapping; callers handle the answers that mean something special for
    /// their operation (404 on `head`, `NoSuchUpload` on `abort`) before calling this.
    pub(super) fn into_storage_error(self, op: &str) -> StorageError {
        let code = self.code();
        if self.unreachable {
            return StorageError::Unavailable(self.describe(op));
        }
        if self.body_failed {
            return StorageError::Io(self.describe(op));
        }
        match (self.status, code) {
            (_, "NoSuchUpload") => StorageError::NoSuchUpload,
            (_, "NoSuchKey") => StorageError::NotFound,
            (_, "InvalidRange") | (Some(416), _) => StorageError::RangeNotSatisfiable,
            (_, "InvalidPart" | "InvalidPartOrder" | "EntityTooSmall" | "EntityTooLarge") => {
                StorageError::InvalidPart(self.describe(op))
            }
            (_, "NoSuchBucket") => {
                StorageError::Config(format!("{}: the bucket does not exist", self.describe(op)))
            }
            (
                _,
                "AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "InvalidToken"
                | "ExpiredToken"
                | "AccountProblem"
                | "AllAccessDisabled",
            )
            | (Some(401 | 403), _) => StorageError::Config(format!(
                "{}: access refused; check the access key, secret key and the bucket policy",
                self.describe(op)
            )),
            (
                _,
                "AuthorizationHeaderMalformed"
                | "PermanentRedirect"
                | "IllegalLocationConstraintException",
            )
            | (Some(301), _) => StorageError::Config(format!(
                "{}: wrong region or endpoint for this bucket",
                self.describe(op)
            )),
            (_, c) if c.starts_with("KMS.") || c == "KMSNotFound" => {
                StorageError::Config(format!("{}: the KMS key was refused", self.describe(op)))
            }
            (_, "SlowDown" | "ServiceUnavailable" | "RequestTimeout" | "InternalError")
            | (Some(429 | 500..=599), _) => StorageError::Unavailable(self.describe(op)),
            _ => StorageError::Io(self.describe(op)),
        }
    }

    /// Whether the server answered "not found" (404 with or without a code: `HeadObject`
    /// and `HeadBucket` answers have no body).
    pub(super) fn is_not_found(&self) -> bool {
        self.status == Some(404) || matches!(self.code(), "NoSuchKey" | "NotFound")
    }

    pub(super) fn is_no_such_upload(&self) -> bool {
        self.code() == "NoSuchUpload"
    }

    /// The server does not implement this request (SeaweedFS answers 501 for the public
    /// access block API).
    pub(super) fn is_not_implemented(&self) -> bool {
        self.status == Some(501) || self.code() == "NotImplemented"
    }

    pub(super) fn is_server_error(&self) -> bool {
        matches!(self.status, Some(500..=599))
    }
}

/// Maps any SDK failure of operation `op` with the general rules.
pub(super) fn storage_error<E>(op: &str, err: &SdkError<E>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let failure = Failure::from_sdk(err);
    tracing::debug!(op, status = ?failure.status, code = ?failure.code, "S3 request failed");
    failure.into_storage_error(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: Option<u16>, code: &str) -> Failure {
        Failure {
            status,
            code: (!code.is_empty()).then(|| code.to_string()),
            unreachable: false,
            body_failed: false,
            message: String::new(),
        }
    }

    fn map(status: Option<u16>, code: &str) -> StorageError {
        failure(status, code).into_storage_error("op")
    }

    #[test]
    fn outages_are_unavailable_and_refusals_are_config() {
        let unreachable = Failure {
            unreachable: true,
            ..failure(None, "")
        };
        assert!(matches!(
            unreachable.into_storage_error("op"),
            StorageError::Unavailable(_)
        ));
        for (status, code) in [
            (Some(500), "InternalError"),
            (Some(503), "SlowDown"),
            (Some(503), ""),
            (Some(429), ""),
            (Some(400), "RequestTimeout"),
        ] {
            assert!(
                matches!(map(status, code), StorageError::Unavailable(_)),
                "{status:?} {code}"
            );
        }
        for (status, code) in [
            (Some(403), "SignatureDoesNotMatch"),
            (Some(403), "InvalidAccessKeyId"),
            (Some(403), ""),
            (Some(404), "NoSuchBucket"),
            (Some(400), "AuthorizationHeaderMalformed"),
            (Some(301), ""),
            (Some(400), "KMS.NotFoundException"),
        ] {
            assert!(
                matches!(map(status, code), StorageError::Config(_)),
                "{status:?} {code}"
            );
        }
    }

    #[test]
    fn request_errors_keep_their_meaning() {
        assert!(matches!(
            map(Some(404), "NoSuchUpload"),
            StorageError::NoSuchUpload
        ));
        assert!(matches!(
            map(Some(404), "NoSuchKey"),
            StorageError::NotFound
        ));
        assert!(matches!(
            map(Some(416), "InvalidRange"),
            StorageError::RangeNotSatisfiable
        ));
        assert!(matches!(
            map(Some(400), "EntityTooSmall"),
            StorageError::InvalidPart(_)
        ));
        assert!(matches!(map(Some(400), "BadDigest"), StorageError::Io(_)));
        assert!(failure(Some(404), "").is_not_found());
        assert!(failure(Some(501), "").is_not_implemented());
    }

    #[test]
    fn messages_name_the_operation_and_code() {
        let text = failure(Some(403), "SignatureDoesNotMatch")
            .into_storage_error("HeadBucket")
            .to_string();
        assert!(text.contains("HeadBucket"), "{text}");
        assert!(text.contains("403"), "{text}");
        assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    }
}
