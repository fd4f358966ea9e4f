//! What medport does, independent of HTTP: accounts (users, sign-in rules, TOTP, API
//! keys), buckets, uploads (pipeline, scanner, cleanup), the audit trail, incident response,
//! key rotation and notifications (e-mail, webhooks). The application error has kinds, not
//! HTTP statuses; `web` maps them.

pub mod accounts;
pub mod audit;
pub mod backup;
pub mod buckets;
pub mod check;
pub mod dicomweb;
pub mod error;
pub mod incident;
pub mod key_rotation;
pub mod metrics;
pub mod notifications;
pub mod requests;
pub mod studies;
pub mod uploads;
