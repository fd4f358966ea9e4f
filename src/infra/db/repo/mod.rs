//! Queries, one module per table or aggregate. Every SQL statement is meant to live here;
//! `tests/layering.rs` lists the modules that still run their own.

/// Runs `$body` with `$c` bound to the backend's own connection, for the statements every
/// page view runs. Through the multi-backend connection, Diesel writes a statement's SQL
/// again on each of its passes (the cache check, the binds, the cache key), a sixth of a
/// page's instructions; the backend's own connection finds a statement of fixed shape in
/// its cache by type, without writing any SQL.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::infra::db::DbConnection::Sqlite($c) => $body,
            $crate::infra::db::DbConnection::Postgresql($c) => $body,
        }
    };
}
pub(crate) use on_backend;

pub mod api_keys;
pub mod audit_events;
pub mod audit_reads;
pub mod bucket_grants;
pub mod buckets;
pub mod dicom_instances;
pub mod dicomweb;
pub mod email_outbox;
mod leased_queue;
pub mod login_throttles;
pub mod oidc_identities;
pub mod request_submissions;
pub mod server;
pub mod sessions;
pub mod studies;
pub mod upload_batches;
pub mod upload_parts;
pub mod upload_requests;
pub mod upload_tails;
pub mod uploads;
pub mod users;
pub mod webhook_deliveries;
pub mod webhooks;
