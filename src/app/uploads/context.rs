//! What the upload pipeline, the scanner and the cleanup worker share: the database, the
//! bucket opener, the settings and the clock. One value, registered as app data and handed to
//! background tasks.

use std::sync::Arc;

use crate::app::buckets::Bucket;
use crate::app::buckets::open_stores::OpenStores;
use crate::app::buckets::opener::Opener;
use crate::app::error::AppError;
use crate::app::uploads::pipeline::{PartBudget, PartBuffers};
use crate::config::Settings;
use crate::domain::clock::Clock;
use crate::infra::crypto::secrets::Keyring;
use crate::infra::db::Database;
use crate::infra::storage::blob::BlobStore;

#[derive(Clone)]
pub struct UploadContext {
    pub db: Database,
    pub settings: Arc<Settings>,
    pub keyring: Arc<Keyring>,
    pub clock: Clock,
    /// Memory for parts on their way to storage, shared by every upload.
    pub part_budget: PartBudget,
    /// Buffers of stored parts, reused for the next parts instead of freed.
    pub part_buffers: PartBuffers,
    /// S3 clients kept open between requests.
    pub stores: OpenStores,
}

impl UploadContext {
    pub fn new(db: Database, settings: Arc<Settings>, keyring: Arc<Keyring>, clock: Clock) -> Self {
        let part_budget = PartBudget::new(settings.uploads.part_buffer);
        let part_buffers = PartBuffers::new(settings.uploads.part_buffer);
        Self {
            db,
            settings,
            keyring,
            clock,
            part_budget,
            part_buffers,
            stores: OpenStores::default(),
        }
    }

    pub fn opener(&self) -> Opener {
        Opener {
            db: self.db.clone(),
            settings: self.settings.clone(),
            keyring: self.keyring.clone(),
        }
    }

    /// The bucket's storage backend with the normal (patient) timeouts. A bucket that cannot
    /// be opened is "storage unavailable" (503) to the client; the reason goes to the log.
    pub async fn store_for(&self, bucket: &Bucket) -> Result<BlobStore, AppError> {
        self.opener()
            .open_shared(bucket, &self.stores)
            .await
            .map_err(|reason| {
                tracing::warn!(bucket = %bucket.id, %reason, "cannot open bucket storage");
                AppError::Unavailable("bucket storage cannot be opened".into())
            })
    }
}
