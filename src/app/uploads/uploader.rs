//! Who is uploading, as the pipeline sees it: a signed-in browser or a script with an API
//! key. The web layer builds it (`web::uploader`); the pipeline only sees this one type.

use crate::app::accounts::api_keys::KeyUse;
use crate::app::audit::{Actor, Origin};
use crate::app::error::AppError;
use crate::domain::api_key::Scope;
use crate::domain::ids::{ApiKeyId, BucketId, RequestId, SubmissionId, UserId};
use crate::domain::role::Role;
use crate::infra::db::Database;

#[derive(Clone)]
pub struct Uploader {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    /// Set when the request came with an API key.
    pub api_key_id: Option<ApiKeyId>,
    pub origin: Origin,
    key: Option<KeyUse>,
    sender: Option<SenderScope>,
}

/// What a sender without an account may do: add files to one request, in one visit (a
/// submission), and see only what that visit sent. Their files belong to the request's
/// owner, whose id `Uploader::user_id` then holds.
#[derive(Debug, Clone)]
pub struct SenderScope {
    pub request: RequestId,
    pub submission: SubmissionId,
    /// The request's bucket: every file of the request goes there.
    pub bucket: BucketId,
    /// The receipt number: how the audit trail names the sender.
    pub receipt: String,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("user_id", &self.user_id)
            .field("api_key_id", &self.api_key_id)
            .finish_non_exhaustive()
    }
}

impl Uploader {
    /// One of this uploader's own uploads; 404 for anyone else's, as for one that does not
    /// exist, so ids reveal nothing.
    pub async fn own_upload(
        &self,
        db: &crate::infra::db::Database,
        id: &crate::domain::ids::UploadId,
    ) -> Result<crate::app::uploads::model::Upload, AppError> {
        let lookup = id.clone();
        db.run(move |conn| crate::app::uploads::model::find(conn, &lookup))
            .await?
            .filter(|u| {
                self.owns(
                    u.user_id.as_str(),
                    u.submission_id.as_ref().map(|s| s.as_str()),
                )
            })
            .ok_or(AppError::NotFound)
    }

    /// Whether a row (an upload, a batch) is this principal's: the user's, and for a sender
    /// only what this visit added.
    pub fn owns(&self, user_id: &str, submission: Option<&str>) -> bool {
        self.user_id.as_str() == user_id
            && match &self.sender {
                None => true,
                Some(scope) => submission == Some(scope.submission.as_str()),
            }
    }

    pub fn sender(&self) -> Option<&SenderScope> {
        self.sender.as_ref()
    }

    /// A signed-in browser (the CSRF layer has already checked its token).
    pub fn signed_in(user_id: UserId, email: String, role: Role, origin: Origin) -> Self {
        Self {
            user_id,
            email,
            role,
            api_key_id: None,
            origin,
            key: None,
            sender: None,
        }
    }

    /// A sender through an upload request, acting for the request's owner (`owner`, with
    /// the owner's address and role: if the owner may no longer upload, neither may they).
    pub fn for_sender(
        owner: UserId,
        owner_email: String,
        owner_role: Role,
        scope: SenderScope,
        origin: Origin,
    ) -> Self {
        Self {
            user_id: owner,
            email: owner_email,
            role: owner_role,
            api_key_id: None,
            origin,
            key: None,
            sender: Some(scope),
        }
    }

    /// A script with an accepted API key.
    pub fn with_key(key: KeyUse, role: Role) -> Self {
        Self {
            user_id: key.user_id.clone(),
            email: key.email.clone(),
            role,
            api_key_id: Some(key.key_id.clone()),
            origin: key.origin.clone(),
            key: Some(key),
            sender: None,
        }
    }

    /// Who the audit trail names. A sender has no account: they are named by their receipt
    /// number, never as the owner.
    pub fn actor(&self) -> Actor {
        match &self.sender {
            Some(scope) => Actor::sender(&scope.receipt),
            None => Actor::user(self.user_id.as_str(), &self.email),
        }
    }

    /// May this principal write uploads? Auditors never; an API key needs scope `upload`
    /// (its refusal is audited).
    pub async fn require_upload(&self, db: &Database) -> Result<(), AppError> {
        if self.role == Role::Auditor {
            return Err(AppError::Forbidden);
        }
        match &self.key {
            Some(key) => key.require(db, Scope::Upload).await,
            None => Ok(()),
        }
    }
}
