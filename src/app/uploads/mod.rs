//! Uploads: the one pipeline every upload goes through (tus and the plain form), the pure
//! building blocks it uses (safe file names, magic bytes, tus headers, the clamd client), the
//! scanner that settles completed uploads, the cleanup worker, and the typed upload row.
//!
//! Audit actions: `upload.create`, `upload.reject`, `upload.complete`, `upload.abort`,
//! `upload.expire`, `upload.cleanup_failed`, `upload.scan` (clean), `upload.quarantine`,
//! `upload.rescan`, `file.download`.

pub mod batches;
pub mod cancel;
pub mod cleanup;
pub mod context;
pub mod details;
pub mod download;
pub mod filename;
pub mod hasher;
pub mod layout;
pub mod lease;
pub mod model;
pub mod pipeline;
pub mod recovery;
pub mod scanner;
pub mod sniff;
pub mod tus_headers;
pub mod uploader;

pub use context::UploadContext;
pub use model::{ScanStatus, Upload, UploadStatus};
pub use uploader::Uploader;
