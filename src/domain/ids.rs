//! Row identifiers. Each table gets its own type so a user id can never be passed where an
//! upload id is expected. Values are UUIDv7 (time-ordered, so new rows index well) held in
//! canonical text form: 36 characters, lowercase, hyphenated. SQLite stores that text and
//! PostgreSQL parses it into `uuid`, so both backends see one spelling.

use uuid::Uuid;

/// Length of the hyphenated form, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
const HYPHENATED_LEN: usize = 36;

/// Only the hyphenated form is accepted from outside. The `uuid` crate also reads the simple,
/// braced and `urn:uuid:` forms; allowing those would give one row several valid URLs.
fn canonical(raw: &str) -> Option<String> {
    let hyphens_in_place = raw.len() == HYPHENATED_LEN
        && raw
            .bytes()
            .enumerate()
            .all(|(i, b)| matches!(i, 8 | 13 | 18 | 23) == (b == b'-'));
    if !hyphens_in_place {
        return None;
    }
    let uuid = Uuid::try_parse(raw).ok()?;
    Some(uuid.hyphenated().to_string())
}

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh UUIDv7.
            #[allow(
                clippy::new_without_default,
                reason = "a Default that silently mints a new id would be a trap"
            )]
            pub fn new() -> Self {
                Self(Uuid::now_v7().hyphenated().to_string())
            }

            /// Parses an id taken from a URL, form or header. Only the hyphenated form is
            /// accepted (any letter case); the result is lowercase.
            pub fn parse(raw: &str) -> Option<Self> {
                canonical(raw).map(Self)
            }

            /// A value read back from our own database, which only ever stores canonical ids.
            /// Never use this for input from outside.
            pub fn from_db(value: String) -> Self {
                Self(value)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

define_id!(
    /// A row in `users`.
    UserId
);
define_id!(
    /// A row in `api_keys`.
    ApiKeyId
);
define_id!(
    /// A row in `buckets`.
    BucketId
);
define_id!(
    /// A row in `uploads`; also the tus upload id in `/tus/{id}`, `/uploads/{id}` and
    /// `/files/{id}/download`.
    UploadId
);
define_id!(
    /// A row in `upload_batches`: one folder or CD sent at once.
    BatchId
);
define_id!(
    /// A row in `upload_requests`: a link through which people without an account send files.
    RequestId
);
define_id!(
    /// A row in `request_submissions`: one sender's visit through a request's link.
    SubmissionId
);
define_id!(
    /// A row in `webhooks`.
    WebhookId
);
define_id!(
    /// A row in `webhook_deliveries`; also the `id` of the JSON body and `Medport-Delivery`.
    DeliveryId
);
define_id!(
    /// A row in `email_outbox`.
    EmailId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_canonical_v7() {
        let id = UserId::new();
        assert_eq!(id.as_str().len(), HYPHENATED_LEN);
        let uuid = Uuid::parse_str(id.as_str()).unwrap();
        assert_eq!(uuid.get_version_num(), 7);
        assert_eq!(UserId::parse(id.as_str()), Some(id.clone()));
        assert_ne!(UserId::new(), id);
    }

    #[test]
    fn new_ids_sort_by_creation_time() {
        let first = UploadId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = UploadId::new();
        assert!(first < second);
    }

    #[test]
    fn parse_returns_lowercase() {
        let id = BucketId::parse("0192F3A4-5B6C-7D8E-9FA0-B1C2D3E4F506").unwrap();
        assert_eq!(id.as_str(), "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f506");
        assert_eq!(id.to_string(), id.as_str());
        assert_eq!(id.into_string(), "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f506");
    }

    #[test]
    fn parse_refuses_other_forms() {
        for bad in [
            "",
            "not-a-uuid",
            "0192f3a45b6c7d8e9fa0b1c2d3e4f506",
            "{0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f506}",
            "urn:uuid:0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f506",
            " 0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f506",
            "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f50g",
            "0192f3a45-b6c-7d8e-9fa0-b1c2d3e4f506",
            "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5é",
        ] {
            assert!(ApiKeyId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn from_db_keeps_the_value() {
        let id = UserId::from_db("0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f506".to_string());
        assert_eq!(id.as_str(), "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f506");
    }
}
