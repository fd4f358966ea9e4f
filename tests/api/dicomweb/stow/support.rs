//! An uploader with a key, and the instances the STOW tests send.

use crate::helpers::TestApp;
use crate::helpers::dicom::Instance;
use crate::tus_support::api_key;

/// A study UID no other test file uses.
pub const STUDY: &str = "1.2.826.0.1.3680043.99.81";
/// Another study, for instances that do not belong to [`STUDY`].
pub const OTHER_STUDY: &str = "1.2.826.0.1.3680043.99.82";

/// A new uploader, signed in, and their key with `scopes`.
pub async fn uploader_key(app: &TestApp, scopes: &[&str]) -> String {
    app.uploader().await;
    api_key(app, scopes).await
}

/// Instance `n` of series 1 of `study`.
pub fn instance(study: &str, n: i32) -> Instance {
    Instance::of(study, 1, n)
}
