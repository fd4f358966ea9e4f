//! The bucket security check shown on the admin bucket page, and the "test connection"
//! probe. Every check asks the server one question; a server that does not implement it
//! (SeaweedFS answers 501 for the public access block API), refuses it, or cannot be reached
//! gives `Unknown`, never a guess.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, ExpirationStatus, ServerSideEncryption};
use bytes::Bytes;
use futures_util::TryStreamExt;

use super::error::Failure;
use super::{S3Store, sse};
use crate::infra::storage::blob::{ObjectKey, Result, StorageError};

/// What is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The bucket encrypts new objects by default.
    DefaultEncryption,
    /// All four public access block settings are on.
    PublicAccessBlock,
    /// Versioning state (enabled keeps overwritten and deleted objects recoverable).
    Versioning,
    /// A lifecycle rule aborts incomplete multipart uploads (abandoned parts hold PHI).
    AbortIncompleteUploads,
}

impl Check {
    pub fn label(self) -> &'static str {
        match self {
            Self::DefaultEncryption => "Default encryption",
            Self::PublicAccessBlock => "Public access blocked",
            Self::Versioning => "Versioning",
            Self::AbortIncompleteUploads => "Lifecycle rule aborting incomplete uploads",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    Ok,
    Bad,
    /// The server does not support the query, refused it, or did not answer.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityCheck {
    pub check: Check,
    pub state: CheckState,
    pub detail: String,
}

impl SecurityCheck {
    fn new(check: Check, state: CheckState, detail: impl Into<String>) -> Self {
        Self {
            check,
            state,
            detail: detail.into(),
        }
    }
}

/// `Unknown` with the reason, or `Bad` with `missing` when the server says "not configured".
fn from_failure<E>(
    check: Check,
    err: &SdkError<E>,
    not_configured: &[&str],
    missing: &str,
) -> SecurityCheck
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let failure = Failure::from_sdk(err);
    let code = failure.code.clone().unwrap_or_default();
    if not_configured.contains(&code.as_str()) {
        return SecurityCheck::new(check, CheckState::Bad, missing);
    }
    let detail = if failure.is_not_implemented() {
        "not supported by this server".to_string()
    } else if matches!(failure.status, Some(401 | 403)) {
        "these credentials may not read this setting".to_string()
    } else if failure.unreachable {
        "the server did not answer".to_string()
    } else {
        match failure.status {
            Some(status) => format!("the server answered HTTP {status} {code}")
                .trim()
                .to_string(),
            None => "the request failed".to_string(),
        }
    };
    SecurityCheck::new(check, CheckState::Unknown, detail)
}

impl S3Store {
    /// Asks the server about the bucket's security settings, one entry per [`Check`].
    pub async fn security_report(&self) -> Vec<SecurityCheck> {
        vec![
            self.check_encryption().await,
            self.check_public_access().await,
            self.check_versioning().await,
            self.check_lifecycle().await,
        ]
    }

    async fn check_encryption(&self) -> SecurityCheck {
        let check = Check::DefaultEncryption;
        match self
            .client
            .get_bucket_encryption()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Err(e) => from_failure(
                check,
                &e,
                &["ServerSideEncryptionConfigurationNotFoundError"],
                "no default encryption; objects are encrypted only when medport asks for it",
            ),
            Ok(out) => {
                let algorithms: Vec<&str> = out
                    .server_side_encryption_configuration()
                    .map(|c| c.rules())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|rule| rule.apply_server_side_encryption_by_default())
                    .map(|default| default.sse_algorithm().as_str())
                    .collect();
                let strong = algorithms.iter().any(|a| {
                    [
                        ServerSideEncryption::Aes256.as_str(),
                        ServerSideEncryption::AwsKms.as_str(),
                        ServerSideEncryption::AwsKmsDsse.as_str(),
                    ]
                    .contains(a)
                });
                if strong {
                    SecurityCheck::new(check, CheckState::Ok, algorithms.join(", "))
                } else {
                    SecurityCheck::new(check, CheckState::Bad, "no default encryption rule")
                }
            }
        }
    }

    async fn check_public_access(&self) -> SecurityCheck {
        let check = Check::PublicAccessBlock;
        match self
            .client
            .get_public_access_block()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Err(e) => from_failure(
                check,
                &e,
                &["NoSuchPublicAccessBlockConfiguration"],
                "no public access block on the bucket",
            ),
            Ok(out) => {
                let Some(c) = out.public_access_block_configuration() else {
                    return SecurityCheck::new(check, CheckState::Bad, "no public access block");
                };
                let off: Vec<&str> = [
                    ("BlockPublicAcls", c.block_public_acls()),
                    ("IgnorePublicAcls", c.ignore_public_acls()),
                    ("BlockPublicPolicy", c.block_public_policy()),
                    ("RestrictPublicBuckets", c.restrict_public_buckets()),
                ]
                .into_iter()
                .filter(|(_, on)| *on != Some(true))
                .map(|(name, _)| name)
                .collect();
                if off.is_empty() {
                    SecurityCheck::new(check, CheckState::Ok, "all four settings on")
                } else {
                    SecurityCheck::new(check, CheckState::Bad, format!("off: {}", off.join(", ")))
                }
            }
        }
    }

    async fn check_versioning(&self) -> SecurityCheck {
        let check = Check::Versioning;
        match self
            .client
            .get_bucket_versioning()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Err(e) => from_failure(check, &e, &[], ""),
            Ok(out) => match out.status() {
                Some(BucketVersioningStatus::Enabled) => SecurityCheck::new(
                    check,
                    CheckState::Ok,
                    "enabled; deleted objects stay as noncurrent versions until a lifecycle \
                     rule expires them",
                ),
                Some(BucketVersioningStatus::Suspended) => SecurityCheck::new(
                    check,
                    CheckState::Bad,
                    "suspended; overwritten or deleted objects cannot be recovered",
                ),
                _ => SecurityCheck::new(
                    check,
                    CheckState::Bad,
                    "never enabled; overwritten or deleted objects cannot be recovered",
                ),
            },
        }
    }

    async fn check_lifecycle(&self) -> SecurityCheck {
        let check = Check::AbortIncompleteUploads;
        let out = match self
            .client
            .get_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Err(e) => {
                return from_failure(
                    check,
                    &e,
                    &["NoSuchLifecycleConfiguration"],
                    "no lifecycle configuration; abandoned uploads keep their parts",
                );
            }
            Ok(out) => out,
        };
        let rule = out.rules().iter().find_map(|rule| {
            let days = rule
                .abort_incomplete_multipart_upload()?
                .days_after_initiation()?;
            let narrowed = rule.filter().is_some_and(|f| {
                f.tag().is_some()
                    || f.and().is_some()
                    || f.object_size_greater_than().is_some()
                    || f.object_size_less_than().is_some()
            });
            // Old-style rules carry the prefix on the rule itself.
            #[allow(deprecated)]
            let prefix = rule
                .filter()
                .and_then(|f| f.prefix())
                .or(rule.prefix())
                .unwrap_or_default();
            (*rule.status() == ExpirationStatus::Enabled && !narrowed).then_some((days, prefix))
        });
        match rule {
            Some((days, "")) => {
                SecurityCheck::new(check, CheckState::Ok, format!("after {days} days"))
            }
            Some((days, prefix)) => SecurityCheck::new(
                check,
                CheckState::Ok,
                format!("after {days} days, for keys under {prefix:?}"),
            ),
            None => SecurityCheck::new(
                check,
                CheckState::Bad,
                "no enabled rule aborts incomplete multipart uploads",
            ),
        }
    }

    /// "Test connection": `HeadBucket`, then a tiny object under `.medport-probe/` is
    /// written (with the configured encryption), read back, compared and deleted. The error
    /// names the step that failed.
    pub async fn probe(&self) -> Result<()> {
        self.health().await?;
        let id = uuid::Uuid::now_v7();
        let key = ObjectKey::parse(&format!(".medport-probe/{id}"))
            .ok_or_else(|| StorageError::Io("generated an invalid probe key".into()))?;
        let payload = Bytes::from(format!("medport connection probe {id}\n"));
        let written = self.put_probe(&key, payload.clone()).await;
        let checked = match written {
            Ok(()) => self.read_probe(&key, &payload).await,
            Err(e) => return Err(e),
        };
        let deleted = self.delete(&key).await;
        checked?;
        deleted
    }

    async fn put_probe(&self, key: &ObjectKey, payload: Bytes) -> Result<()> {
        let (encryption, kms_key_id) = sse::requested(&self.sse);
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .body(ByteStream::from(payload))
            .set_server_side_encryption(encryption)
            .set_ssekms_key_id(kms_key_id)
            .send()
            .await
            .map_err(|e| self.write_error("probe: PutObject", &Failure::from_sdk(&e)))?;
        match (sse::header(&self.sse), out.server_side_encryption()) {
            (Some(wanted), Some(actual)) if actual.as_str() != wanted => {
                // Best effort: the probe object holds no PHI, but do not leave it behind.
                let _ = self.delete(key).await;
                Err(StorageError::Config(format!(
                    "probe: the server stored the object with encryption {}, not {wanted}",
                    actual.as_str()
                )))
            }
            _ => Ok(()),
        }
    }

    async fn read_probe(&self, key: &ObjectKey, payload: &Bytes) -> Result<()> {
        let (info, body) = self.get(key, None).await.map_err(|e| match e {
            StorageError::NotFound => {
                StorageError::Io("probe: the object just written cannot be read".into())
            }
            other => other,
        })?;
        let chunks: Vec<Bytes> = body.try_collect().await?;
        if chunks.concat() != payload.as_ref() {
            return Err(StorageError::Integrity(
                "probe: the object read back differs from what was written".into(),
            ));
        }
        if let Some(wanted) = sse::header(&self.sse)
            && info.sse.as_deref() != Some(wanted)
        {
            return Err(StorageError::Config(format!(
                "probe: the object is stored with encryption {}, not {wanted}",
                info.sse.as_deref().unwrap_or("none")
            )));
        }
        Ok(())
    }
}
