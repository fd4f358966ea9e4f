//! The outside world: the database (pool, schema, queries), object storage behind one
//! contract (local encrypted store, S3), the master key and sealing, the clamd client and
//! the data directory's permissions, the OpenID Provider, and outbound HTTP and SMTP.

pub mod clamd;
pub mod crypto;
pub mod data_dir;
pub mod db;
pub mod dicom;
pub mod http_client;
pub mod metrics;
pub mod oidc;
pub mod smtp;
pub mod storage;
