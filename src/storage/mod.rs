//! Storage: sealed secrets (and, later, the BlobStore backends).

pub mod secrets;
