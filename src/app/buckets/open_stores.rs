//! The S3 clients kept open between requests, one per bucket, each reused only while the
//! bucket's connection settings and secret key are the ones it was opened with (another
//! instance's edit changes the row, and the next request opens a new client). An entry is
//! also dropped after [`KEEP_FOR`], so that opening re-checks the endpoint's addresses now
//! and then even for a bucket nobody edits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::model::Bucket;
use crate::domain::bucket::Encryption;
use crate::domain::ids::BucketId;
use crate::infra::storage::blob::BlobStore;

/// How long an opened client is reused at most.
pub const KEEP_FOR: Duration = Duration::from_secs(600);

/// What an S3 client was opened with; the secret key only as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    endpoint: Option<String>,
    region: Option<String>,
    bucket_name: String,
    path_style: bool,
    access_key_id: Option<String>,
    encryption: Encryption,
    is_system: bool,
    secret: [u8; 32],
}

impl S3Settings {
    pub fn of(bucket: &Bucket, secret: &SecretString) -> Self {
        Self {
            endpoint: bucket.endpoint.clone(),
            region: bucket.region.clone(),
            bucket_name: bucket.bucket_name.clone(),
            path_style: bucket.path_style,
            access_key_id: bucket.access_key_id.clone(),
            encryption: bucket.encryption.clone(),
            is_system: bucket.is_system,
            secret: Sha256::digest(secret.expose_secret().as_bytes()).into(),
        }
    }
}

struct Opened {
    settings: S3Settings,
    store: BlobStore,
    at: Instant,
}

/// Shared by every clone (one per process, in the upload context).
#[derive(Clone, Default)]
pub struct OpenStores(Arc<Mutex<HashMap<BucketId, Opened>>>);

impl OpenStores {
    /// The client opened for `bucket` with these settings, unless it is older than
    /// [`KEEP_FOR`].
    pub fn get(&self, bucket: &BucketId, settings: &S3Settings) -> Option<BlobStore> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(bucket)
            .filter(|o| o.settings == *settings && o.at.elapsed() < KEEP_FOR)
            .map(|o| o.store.clone())
    }

    /// Keeps `store` for `bucket`, in place of any client opened with other settings.
    pub fn put(&self, bucket: &BucketId, settings: S3Settings, store: BlobStore) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(
            bucket.clone(),
            Opened {
                settings,
                store,
                at: Instant::now(),
            },
        );
    }
}
