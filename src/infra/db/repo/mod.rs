//! Queries, one module per table or aggregate. Every SQL statement is meant to live here;
//! `tests/layering.rs` lists the modules that still run their own.

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
