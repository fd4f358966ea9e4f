//! Storage: sealed secrets (and, later, the BlobStore backends).

pub mod blob;
pub mod local;
pub mod s3;
