//! Incident response: the controls an administrator (Admin → Security) or an operator (the
//! command line) reaches for when a compromise is suspected.
//!
//! - `confirm`: the phrase an administrator types before a control runs.
//! - `sessions`: end every session at once.
//! - `api_keys`: revoke every API key, or every key of one user.
//! - `buckets`: run "test connection" on every bucket, bounded in time.
//!
//! The page and the command line call the same functions here, so both make the same change
//! and record the same audit event (`incident.*`), naming who asked and how (`via`).

pub mod api_keys;
pub mod buckets;
pub mod confirm;
pub mod sessions;

pub use crate::app::accounts::api_keys::ChangedBy;
