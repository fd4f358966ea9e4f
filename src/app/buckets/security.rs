//! The security check on the bucket page: one line per fact, green, red or grey. For S3
//! buckets the server is asked (`S3Store::security_report`); where it cannot answer the line
//! says "unknown". The local store's equivalents are facts of medport itself.

use super::model::Bucket;
use super::opener::{CHECK_TIMEOUTS, Opener};
use crate::infra::storage::blob::BlobStore;
use crate::infra::storage::s3::CheckState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    Good,
    Bad,
    /// Unknown, or not applicable.
    Neutral,
}

impl ItemState {
    /// The badge style.
    pub fn badge(self) -> &'static str {
        match self {
            Self::Good => "badge-ok",
            Self::Bad => "badge-bad",
            Self::Neutral => "badge-muted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityItem {
    pub label: String,
    pub state: ItemState,
    /// "yes", "no", "unknown", "n/a"...
    pub verdict: String,
    pub detail: String,
}

fn item(label: &str, state: ItemState, verdict: &str, detail: impl Into<String>) -> SecurityItem {
    SecurityItem {
        label: label.to_string(),
        state,
        verdict: verdict.to_string(),
        detail: detail.into(),
    }
}

/// What holds for the local store by construction.
fn local_items() -> Vec<SecurityItem> {
    vec![
        item(
            "Encrypted at rest",
            ItemState::Good,
            "yes",
            "AES-256-GCM per object; data keys sealed with the master key",
        ),
        item(
            "Public access blocked",
            ItemState::Good,
            "yes",
            "files are served only through medport, to signed-in users",
        ),
        item(
            "Versioning",
            ItemState::Neutral,
            "n/a",
            "the local store keeps one version of each file",
        ),
        item(
            "Incomplete uploads cleaned up",
            ItemState::Neutral,
            "n/a",
            "abandoned uploads are removed by medport's cleanup",
        ),
    ]
}

impl Opener {
    /// The security check for one bucket.
    pub async fn security_check(&self, bucket: &Bucket) -> Vec<SecurityItem> {
        let store = match self.open(bucket, CHECK_TIMEOUTS).await {
            Ok(store) => store,
            Err(reason) => {
                return vec![item(
                    "Security check",
                    ItemState::Neutral,
                    "unknown",
                    format!("the bucket could not be reached: {reason}"),
                )];
            }
        };
        match store {
            BlobStore::Local(_) => local_items(),
            BlobStore::S3(s3) => s3
                .security_report()
                .await
                .into_iter()
                .map(|check| {
                    let (state, verdict) = match check.state {
                        CheckState::Ok => (ItemState::Good, "yes"),
                        CheckState::Bad => (ItemState::Bad, "no"),
                        CheckState::Unknown => (ItemState::Neutral, "unknown"),
                    };
                    item(check.check.label(), state, verdict, check.detail)
                })
                .collect(),
        }
    }
}
