//! Opening a bucket's storage backend (`Opener::open` gives the `BlobStore` the upload
//! pipeline writes to), and the checks the admin pages run against it: the health badge and
//! "test connection". Every failure becomes a short reason that is safe to show (no
//! credentials, no internals); details go to the log.
//!
//! Before any connection the endpoint is resolved again and every address checked
//! (`Endpoint::check_resolved`), so a name re-pointed at a forbidden address since the
//! bucket was saved is refused here too.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use secrecy::{ExposeSecret, SecretString};

use super::model::{Backend, Bucket};
use super::open_stores::{OpenStores, S3Settings};
use super::queries;
use crate::app::error::AppError;
use crate::config::{DefaultBucket, Settings};
use crate::domain::bucket::{Endpoint, EndpointPolicy};
use crate::infra::crypto::secrets::{self, Keyring, SealContext, SealError};
use crate::infra::db::Database;
use crate::infra::storage::blob::{BlobStore, ObjectKey, PartNumber, StorageError};
use crate::infra::storage::local::LocalStore;
use crate::infra::storage::s3::{S3Config, S3Store, S3Timeouts};

/// The prefix of "test connection" objects; nothing else is ever written under it.
pub const PROBE_PREFIX: &str = ".medport-probe/";

/// Short limits for checks an admin waits for: one attempt, a few seconds.
pub const CHECK_TIMEOUTS: S3Timeouts = S3Timeouts {
    connect: Duration::from_secs(3),
    attempt: Duration::from_secs(8),
    operation: Duration::from_secs(10),
    part_min_bytes_per_sec: 256 * 1024,
    stall_grace: Duration::from_secs(5),
    max_attempts: 1,
};

/// The health badge's bound, whatever the backend does.
const HEALTH_LIMIT: Duration = Duration::from_secs(10);
/// Each "test connection" step's bound.
const STEP_LIMIT: Duration = Duration::from_secs(12);

/// What opening needs from the application.
#[derive(Clone)]
pub struct Opener {
    pub db: Database,
    pub settings: Arc<Settings>,
    pub keyring: Arc<Keyring>,
}

impl Opener {
    fn policy(&self) -> EndpointPolicy {
        EndpointPolicy {
            allow_loopback: self.settings.allow_loopback_endpoints,
        }
    }

    /// Opens the bucket's backend, or says why not (safe to show).
    pub async fn open(&self, bucket: &Bucket, timeouts: S3Timeouts) -> Result<BlobStore, String> {
        match bucket.backend {
            Backend::Local => self.open_local().await,
            Backend::S3 => self.open_s3(bucket, timeouts).await,
        }
    }

    async fn open_local(&self) -> Result<BlobStore, String> {
        let root = self.settings.data_dir.join("objects");
        let keyring = self.keyring.clone();
        let opened = tokio::task::spawn_blocking(move || LocalStore::new(root, keyring))
            .await
            .map_err(|_| "the check was cancelled".to_string())?;
        opened.map(BlobStore::Local).map_err(|e| {
            tracing::warn!(error = %e, "cannot open the local store");
            safe_reason(&e)
        })
    }

    async fn open_s3(&self, bucket: &Bucket, timeouts: S3Timeouts) -> Result<BlobStore, String> {
        let secret = self.secret(bucket).await?;
        self.open_s3_with(bucket, secret, timeouts).await
    }

    /// The bucket's backend with the normal (patient) timeouts. An S3 client opened earlier
    /// for the same settings and secret is reused, with the connections it keeps open: a
    /// new client per request cost every small file a TLS configuration built anew and a
    /// new connection.
    pub async fn open_shared(
        &self,
        bucket: &Bucket,
        stores: &OpenStores,
    ) -> Result<BlobStore, String> {
        if bucket.backend == Backend::Local {
            return self.open_local().await;
        }
        let secret = self.secret(bucket).await?;
        let settings = S3Settings::of(bucket, &secret);
        if let Some(store) = stores.get(&bucket.id, &settings) {
            return Ok(store);
        }
        let store = self
            .open_s3_with(bucket, secret, S3Timeouts::default())
            .await?;
        stores.put(&bucket.id, settings, store.clone());
        Ok(store)
    }

    async fn open_s3_with(
        &self,
        bucket: &Bucket,
        secret: SecretString,
        timeouts: S3Timeouts,
    ) -> Result<BlobStore, String> {
        let policy = self.policy();
        let endpoint = match &bucket.endpoint {
            None => None,
            Some(raw) => {
                let endpoint = Endpoint::parse(raw, policy)
                    .map_err(|e| format!("endpoint refused: it {}", e.message))?;
                endpoint
                    .check_resolved(policy)
                    .await
                    .map_err(|e| format!("endpoint refused: {}", e.message))?;
                Some(endpoint.url().clone())
            }
        };
        let region = bucket.region.clone().ok_or("no region is set")?;
        let access_key_id = bucket
            .access_key_id
            .clone()
            .ok_or("no access key id is set")?;
        S3Store::new(S3Config {
            endpoint,
            region,
            bucket: bucket.bucket_name.clone(),
            path_style: bucket.path_style,
            access_key_id,
            secret_access_key: secret,
            sse: bucket.encryption.clone(),
            timeouts,
            // Endpoints typed into the bucket form are re-checked at every connection; the
            // system bucket's come from the operator's configuration.
            connect_policy: (!bucket.is_system).then_some(EndpointPolicy {
                allow_loopback: self.settings.allow_loopback_endpoints,
            }),
        })
        .map(BlobStore::S3)
        .map_err(|e| safe_reason(&e))
    }

    /// The secret key: from the configuration for the system bucket, else opened from its
    /// sealed column (bound to this row and field, so a value moved here fails).
    async fn secret(&self, bucket: &Bucket) -> Result<SecretString, String> {
        if bucket.is_system {
            return match &self.settings.default_bucket {
                DefaultBucket::S3(s3) => Ok(s3.secret_access_key.clone()),
                DefaultBucket::Local => Err("the configuration has no S3 secret key".into()),
            };
        }
        let id = bucket.id.clone();
        let sealed = self
            .db
            .run(move |conn| queries::sealed_secret(conn, &id).map_err(AppError::from))
            .await
            .map_err(|_| "the stored settings could not be read".to_string())?
            .ok_or("no secret key is stored; enter one on the edit page")?;
        let ctx = SealContext {
            table: "buckets",
            row_id: bucket.id.as_str(),
            field: "secret_key",
        };
        let opened = secrets::open(&self.keyring, &ctx, &sealed).map_err(|e| {
            tracing::warn!(bucket = %bucket.id, error = %e, "cannot open a bucket's secret key");
            match e {
                SealError::Integrity | SealError::Format => {
                    "the stored secret key failed its integrity check (altered or moved); enter it again on the edit page".to_string()
                }
                SealError::UnknownKey => {
                    "the stored secret key was sealed with a master key this server does not have".to_string()
                }
                SealError::Random | SealError::Seal => "the stored secret key could not be opened".to_string(),
            }
        })?;
        let text = String::from_utf8(opened.expose_secret().clone())
            .map_err(|_| "the stored secret key is not valid text; enter it again".to_string())?;
        Ok(SecretString::from(text))
    }
}

/// A short reason for a storage failure, safe for an admin page: the storage layer's
/// messages carry operations, status codes and causes, never credentials or content.
pub fn safe_reason(e: &StorageError) -> String {
    let text = match e {
        StorageError::Unavailable(_) => {
            "no answer (connection refused, timed out or the server failed)".to_string()
        }
        StorageError::Integrity(_) => "stored data failed its integrity check".to_string(),
        StorageError::Full => "the storage is full".to_string(),
        StorageError::NotFound => "the object was not found".to_string(),
        other => other.to_string(),
    };
    let clean: String = text.chars().filter(|c| !c.is_control()).take(240).collect();
    clean
}

/// The health badge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Reachable,
    Unreachable(String),
}

impl Opener {
    /// HeadBucket (S3) or the local store's write probe, bounded in time.
    pub async fn health(&self, bucket: &Bucket) -> Health {
        let check = async {
            let store = self.open(bucket, CHECK_TIMEOUTS).await?;
            store.health().await.map_err(|e| {
                tracing::info!(bucket = %bucket.id, error = %e, "bucket health check failed");
                safe_reason(&e)
            })
        };
        match tokio::time::timeout(HEALTH_LIMIT, check).await {
            Ok(Ok(())) => Health::Reachable,
            Ok(Err(reason)) => Health::Unreachable(reason),
            Err(_) => Health::Unreachable(format!(
                "no answer within {} seconds",
                HEALTH_LIMIT.as_secs()
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    Ok,
    Failed,
    /// Not run because an earlier step failed.
    Skipped,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

/// One step of "test connection".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepResult {
    pub label: &'static str,
    pub state: StepState,
    pub detail: String,
}

/// The steps, in order (the incident page's column headings).
pub const STEPS: [&str; 4] = [
    "Reach the bucket",
    "Write a test object",
    "Read it back",
    "Delete it",
];

async fn bounded<T>(
    step: impl std::future::Future<Output = Result<T, StorageError>>,
) -> Result<T, String> {
    match tokio::time::timeout(STEP_LIMIT, step).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            tracing::info!(error = %e, "bucket connection test step failed");
            Err(safe_reason(&e))
        }
        Err(_) => Err(format!("no answer within {} seconds", STEP_LIMIT.as_secs())),
    }
}

/// The "test connection" object, written and read the way uploads are.
struct Probe<'a>(&'a BlobStore);

impl Probe<'_> {
    /// One multipart part, completed.
    async fn write(&self, key: &ObjectKey, payload: &Bytes) -> Result<(), StorageError> {
        let one = PartNumber::new(1).ok_or_else(|| StorageError::Io("bad part number".into()))?;
        let id = self.0.create_multipart(key).await?;
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(payload.clone())]);
        let len = payload.len() as u64;
        let written = match self.0.upload_part(key, &id, one, body, len).await {
            Ok(part) => self.0.complete(key, &id, &[part]).await.map(drop),
            Err(e) => Err(e),
        };
        if written.is_err() {
            // Best effort: leave no parts behind.
            let _ = self.0.abort(key, &id).await;
        }
        written
    }

    async fn read(&self, key: &ObjectKey, payload: &Bytes) -> Result<(), StorageError> {
        let (_, stream) = self.0.get(key, None).await?;
        let chunks: Vec<Bytes> = stream.try_collect().await?;
        if chunks.concat() != payload.as_ref() {
            return Err(StorageError::Integrity(
                "the object read back differs from what was written".into(),
            ));
        }
        Ok(())
    }
}

/// Adds one step's result; true when it succeeded.
fn record(results: &mut Vec<StepResult>, outcome: Result<(), String>) -> bool {
    let (state, detail) = match outcome {
        Ok(()) => (StepState::Ok, String::new()),
        Err(reason) => (StepState::Failed, reason),
    };
    results.push(StepResult {
        label: STEPS[results.len().min(STEPS.len() - 1)],
        state,
        detail,
    });
    state == StepState::Ok
}

impl Opener {
    /// "Test connection": reach the bucket, then write, read back and delete a tiny object
    /// under [`PROBE_PREFIX`]. Every step is listed; after a failure the rest are skipped.
    pub async fn test_connection(&self, bucket: &Bucket) -> Vec<StepResult> {
        let mut results = Vec::new();
        let store = match self.open(bucket, CHECK_TIMEOUTS).await {
            Ok(store) => store,
            Err(reason) => {
                record(&mut results, Err(reason));
                return finish(results);
            }
        };
        let reached = bounded(store.health()).await;
        if !record(&mut results, reached) {
            return finish(results);
        }
        let id = uuid::Uuid::now_v7();
        let Some(key) = ObjectKey::parse(&format!("{PROBE_PREFIX}{id}")) else {
            record(&mut results, Err("could not name a test object".into()));
            return finish(results);
        };
        let payload = Bytes::from(format!("medport connection test {id}\n"));
        if !record(
            &mut results,
            bounded(Probe(&store).write(&key, &payload)).await,
        ) {
            return finish(results);
        }
        let read = bounded(Probe(&store).read(&key, &payload)).await;
        record(&mut results, read);
        // The delete runs even when the read failed: the object must not stay behind.
        let deleted = bounded(store.delete(&key)).await;
        record(&mut results, deleted);
        finish(results)
    }
}

/// Marks the steps that did not run.
fn finish(mut results: Vec<StepResult>) -> Vec<StepResult> {
    for label in STEPS.iter().skip(results.len()) {
        results.push(StepResult {
            label,
            state: StepState::Skipped,
            detail: String::new(),
        });
    }
    results
}
