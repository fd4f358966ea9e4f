//! Buckets: where uploaded files are stored, managed by administrators through web forms.
//!
//! - `model`: the typed bucket (backend, encryption, limits) read from the `buckets` table;
//!   the sealed secret key is never part of it.
//! - `form`: raw form input -> a validated `BucketSpec`, with one message per bad field.
//! - `queries`: read-only lookups, including [`visible_to`] for the upload pages.
//! - `service`: create / update / delete and grants, each change committed with its audit
//!   event in one write transaction.
//! - `system`: the system default bucket, kept in step with the configuration at start-up.
//! - `opener`: opening a bucket's storage backend, health and "test connection";
//!   `open_stores`: the S3 clients kept open between requests.
//! - `security`: the security check shown on the bucket page.
//! - `extensions`, `size`: the global file-type allowlist and byte sizes for people.

pub mod extensions;
pub mod grants;
pub mod model;
pub mod open_stores;
pub mod opener;
pub mod queries;
mod rules;
pub mod security;
pub mod service;
pub mod size;
pub mod spec;
pub mod system;

pub use crate::domain::bucket::Encryption;
pub use extensions::{ALLOWED_EXTENSIONS, Extensions, UNNAMED_DICOM, extension_of, type_of};
pub use model::{Backend, Bucket};
pub use queries::{visible_bucket, visible_to};
pub use system::{SYSTEM_BUCKET_ID, SystemBucketError, ensure_system_bucket};
