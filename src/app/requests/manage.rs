//! The owner's side of upload requests: create one for a bucket they may use (the link's
//! token is returned once), see how it stands, extend it, close it, revoke it. Admins see
//! and manage every request; auditors cannot make or change one.

use chrono::{NaiveDateTime, TimeDelta};
use serde_json::json;

use crate::app::accounts::passwords;
use crate::app::audit::{self, Actor, Event, Origin, Outcome};
use crate::app::buckets;
use crate::app::error::AppError;
use crate::app::requests::{self, UploadRequest, Usage, receipt};
use crate::domain::clock::Clock;
use crate::domain::ids::{BucketId, RequestId, UserId};
use crate::domain::password::Password;
use crate::domain::role::Role;
use crate::domain::upload_request::{
    ExpiryDays, Instructions, Limits, LinkToken, Passphrase, RequiredFields, SenderDetails, Title,
};
use crate::infra::crypto::secrets::Keyring;
use crate::infra::db::repo::{request_submissions, upload_requests as repo};
use crate::infra::db::{Database, write_tx};

/// Most requests one list shows (newest first).
pub const LIST_LIMIT: i64 = 500;

/// The signed-in user managing requests.
#[derive(Debug, Clone)]
pub struct Manager {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub origin: Origin,
}

impl Manager {
    fn actor(&self) -> Actor {
        Actor::user(self.user_id.as_str(), &self.email)
    }

    fn may_make(&self) -> Result<(), AppError> {
        match self.role {
            Role::Auditor => Err(AppError::Forbidden),
            Role::Admin | Role::Uploader => Ok(()),
        }
    }

    fn may_see(&self, request: &UploadRequest) -> bool {
        self.role == Role::Admin || request.owner_id == self.user_id
    }

    fn event(&self, action: &'static str, id: &RequestId) -> Event {
        Event::new(self.actor(), action, Outcome::Success)
            .origin(self.origin.clone())
            .target("upload_request", id.as_str())
    }
}

/// A request as its form gave it, every field checked.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub bucket: BucketId,
    pub title: Title,
    pub instructions: Instructions,
    pub expires: ExpiryDays,
    pub limits: Limits,
    pub passphrase: Option<Passphrase>,
    pub required: RequiredFields,
}

/// A new request and its link's token, which exists nowhere else once this is dropped.
pub struct Created {
    pub request: UploadRequest,
    pub token: LinkToken,
}

fn expiry(now: NaiveDateTime, days: ExpiryDays) -> NaiveDateTime {
    now + TimeDelta::days(i64::from(days.days()))
}

fn to_i64(v: u64) -> Result<i64, AppError> {
    i64::try_from(v).map_err(AppError::internal)
}

/// Creates a request in a bucket the user may upload to (else 404, as for a bucket that
/// does not exist).
pub async fn create(
    db: &Database,
    clock: &Clock,
    bcrypt_cost: u32,
    who: &Manager,
    new: NewRequest,
) -> Result<Created, AppError> {
    who.may_make()?;
    let passphrase_hash = match new.passphrase.clone() {
        None => None,
        Some(p) => Some(
            tokio::task::spawn_blocking(move || {
                passwords::hash(&Password::for_login(p.expose()), bcrypt_cost)
            })
            .await
            .map_err(AppError::internal)?
            .map_err(AppError::internal)?,
        ),
    };
    let token = crate::infra::crypto::random_token()
        .ok()
        .and_then(|t| LinkToken::parse(&t))
        .ok_or_else(|| AppError::internal("cannot make a link token"))?;
    let now = clock.now_naive();
    let row = repo::Row {
        id: RequestId::new().into_string(),
        owner_id: who.user_id.as_str().to_string(),
        bucket_id: new.bucket.as_str().to_string(),
        token_hash: requests::token_hash(&token),
        title: new.title.as_str().to_string(),
        instructions: new.instructions.as_str().to_string(),
        passphrase_hash,
        required_fields: new.required.to_db(),
        max_files: to_i64(new.limits.files())?,
        max_bytes: to_i64(new.limits.bytes())?,
        expires_at: expiry(now, new.expires),
        closed_at: None,
        revoked_at: None,
        reminded_at: None,
        first_file_at: None,
        last_activity_at: None,
        created_at: now,
        updated_at: now,
    };
    let event = who
        .event("request.create", &RequestId::from_db(row.id.clone()))
        .details(json!({
            "bucket": row.bucket_id,
            "expires_at": row.expires_at.to_string(),
            "max_files": row.max_files,
            "max_bytes": row.max_bytes,
            "passphrase": row.passphrase_hash.is_some(),
            "required_fields": row.required_fields,
        }));
    let (user, role, stored) = (who.user_id.clone(), who.role, row.clone());
    db.run(move |conn| {
        write_tx(conn, |conn| {
            if buckets::visible_bucket(conn, &user, role, &new.bucket)?.is_none() {
                return Err(AppError::NotFound);
            }
            repo::insert(conn, &stored)?;
            audit::record(conn, &event)?;
            Ok(())
        })
    })
    .await?;
    Ok(Created {
        request: UploadRequest::from_row(row),
        token,
    })
}

/// One line of the request list.
#[derive(Debug, Clone)]
pub struct Listed {
    pub request: UploadRequest,
    pub owner_email: String,
    pub usage: Usage,
}

/// The user's own requests, or every request for an admin; newest first.
pub async fn list(db: &Database, who: &Manager) -> Result<Vec<Listed>, AppError> {
    let owner = (who.role != Role::Admin).then(|| who.user_id.as_str().to_string());
    if who.role == Role::Auditor {
        return Ok(Vec::new());
    }
    db.run(move |conn| {
        repo::list(conn, owner.as_deref(), LIST_LIMIT)?
            .into_iter()
            .map(|(row, owner_email)| {
                let request = UploadRequest::from_row(row);
                let usage = Usage::of(conn, &request.id)?;
                Ok(Listed {
                    request,
                    owner_email,
                    usage,
                })
            })
            .collect()
    })
    .await
}

/// One sender's visit, as the owner sees it.
#[derive(Debug, Clone)]
pub struct Submission {
    pub id: String,
    pub receipt_number: String,
    pub sender: SenderDetails,
    pub started_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    pub receipt_hash: Option<String>,
    pub files: usize,
}

/// A request with everything its owner may want to know.
#[derive(Debug, Clone)]
pub struct Details {
    pub request: UploadRequest,
    pub owner_email: String,
    pub usage: Usage,
    pub submissions: Vec<Submission>,
    pub files: Vec<receipt::ReceiptFile>,
}

/// The request if this user may see it; 404 otherwise, as for one that does not exist.
pub async fn details(
    db: &Database,
    keyring: &Keyring,
    who: &Manager,
    id: &RequestId,
) -> Result<Details, AppError> {
    let (who, id, keyring) = (who.clone(), id.clone(), keyring.clone());
    db.run(move |conn| {
        let request = requests::find(conn, &id)?
            .filter(|r| who.may_see(r))
            .ok_or(AppError::NotFound)?;
        let owner_email = crate::infra::db::repo::users::by_id(conn, request.owner_id.as_str())?
            .map(|u| u.email)
            .unwrap_or_default();
        let usage = Usage::of(conn, &id)?;
        let files: Vec<receipt::ReceiptFile> = request_submissions::files(conn, id.as_str(), None)?
            .into_iter()
            .map(receipt::ReceiptFile::from_row)
            .collect();
        let submissions = request_submissions::of_request(conn, id.as_str())?
            .into_iter()
            .map(|row| {
                let sender = receipt::open_sender(&keyring, &row)?;
                let count = files
                    .iter()
                    .filter(|f| f.submission_id.as_deref() == Some(row.id.as_str()))
                    .count();
                Ok(Submission {
                    id: row.id,
                    receipt_number: row.receipt_number,
                    sender,
                    started_at: row.started_at,
                    finished_at: row.finished_at,
                    receipt_hash: row.receipt_hash,
                    files: count,
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        Ok(Details {
            request,
            owner_email,
            usage,
            submissions,
            files,
        })
    })
    .await
}

/// What the owner can do to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Open for this many more days from now (also reopens an expired request).
    Extend(ExpiryDays),
    /// No more files; the link stops working.
    Close,
    /// The link was given to the wrong person: it stops working at once, for good.
    Revoke,
}

/// Applies `change`; false when the request's state did not allow it (a revoked request
/// cannot be extended; closing twice changes nothing).
pub async fn change(
    db: &Database,
    clock: &Clock,
    who: &Manager,
    id: &RequestId,
    change: Change,
) -> Result<bool, AppError> {
    who.may_make()?;
    let now = clock.now_naive();
    let (who, id) = (who.clone(), id.clone());
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let request = requests::find(conn, &id)?
                .filter(|r| who.may_see(r))
                .ok_or(AppError::NotFound)?;
            let (changed, event) = match change {
                Change::Extend(days) => {
                    let until = expiry(now, days);
                    (
                        repo::set_expiry(conn, id.as_str(), until, now)?,
                        who.event("request.extend", &id).details(json!({
                            "expires_at": until.to_string(),
                            "was": request.expires_at.to_string(),
                        })),
                    )
                }
                Change::Close => (
                    repo::close(conn, id.as_str(), now)?,
                    who.event("request.close", &id),
                ),
                Change::Revoke => (
                    repo::revoke(conn, id.as_str(), now)?,
                    who.event("request.revoke", &id),
                ),
            };
            if changed {
                audit::record(conn, &event)?;
            }
            Ok(changed)
        })
    })
    .await
}
