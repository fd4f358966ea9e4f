//! Queries, one module per table or aggregate. Every SQL statement is meant to live here;
//! `tests/layering.rs` lists the modules that still run their own.

pub mod api_keys;
pub mod audit_events;
pub mod login_throttles;
pub mod sessions;
pub mod uploads;
pub mod users;
