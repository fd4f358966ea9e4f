//! The sender's side: the link shows the request; the sender says who they are (and gives
//! the passphrase, when there is one); that starts a submission, whose id in the sender's
//! session is their whole right to upload (`sender`); finishing writes the receipt.
//!
//! A link that is unknown, expired, closed or revoked, or whose owner can no longer sign in,
//! is one answer: "not valid" (`None`), so tokens cannot be told apart.

use chrono::NaiveDateTime;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::app::accounts::{passwords, throttle};
use crate::app::audit::{self, Actor, Event, Origin, Outcome};
use crate::app::error::AppError;
use crate::app::requests::notices::{self, Portal};
use crate::app::requests::{self, Status, UploadRequest, Usage, quota, receipt};
use crate::app::uploads::Uploader;
use crate::app::uploads::model::UploadStatus;
use crate::app::uploads::uploader::SenderScope;
use crate::domain::clock::Clock;
use crate::domain::ids::{RequestId, SubmissionId, UserId};
use crate::domain::password::Password;
use crate::domain::role::Role;
use crate::domain::upload_request::{LinkToken, SenderDetails};
use crate::infra::crypto::secrets::Keyring;
use crate::infra::db::repo::{request_submissions, upload_requests as repo, users};
use crate::infra::db::{Database, DbConnection, DbError, write_tx};

/// An open request, as its link shows it.
#[derive(Clone)]
pub struct Link {
    pub request: UploadRequest,
    pub usage: Usage,
    /// Checked by `begin`; never shown.
    passphrase_hash: Option<String>,
}

impl Link {
    pub fn is_full(&self) -> bool {
        self.usage.is_full(self.request.limits)
    }
}

/// The owner, if they can still act: a disabled owner's links stop working with them.
fn active_owner(
    conn: &mut DbConnection,
    owner: &UserId,
) -> Result<Option<users::UserRow>, DbError> {
    Ok(users::by_id(conn, owner.as_str())?.filter(|u| !u.disabled))
}

/// A request that takes files now, with its passphrase hash and its owner.
struct Opened {
    request: UploadRequest,
    passphrase_hash: Option<String>,
    owner: users::UserRow,
}

/// `row` if it is open and its owner can still act.
fn open_request(
    conn: &mut DbConnection,
    row: repo::Row,
    now: NaiveDateTime,
) -> Result<Option<Opened>, AppError> {
    let passphrase_hash = row.passphrase_hash.clone();
    let request = UploadRequest::from_row(row);
    if request.status(now) != Status::Open {
        return Ok(None);
    }
    Ok(active_owner(conn, &request.owner_id)?.map(|owner| Opened {
        request,
        passphrase_hash,
        owner,
    }))
}

/// The request a link opens, or `None` for any link that is not valid. Reads only.
pub async fn open(db: &Database, clock: &Clock, raw_token: &str) -> Result<Option<Link>, AppError> {
    let Some(token) = LinkToken::parse(raw_token) else {
        return Ok(None);
    };
    let now = clock.now_naive();
    db.run(move |conn| {
        let Some(row) = repo::find_by_token_hash(conn, &requests::token_hash(&token))? else {
            return Ok(None);
        };
        let Some(Opened {
            request,
            passphrase_hash,
            ..
        }) = open_request(conn, row, now)?
        else {
            return Ok(None);
        };
        let usage = Usage::of(conn, &request.id)?;
        Ok(Some(Link {
            request,
            usage,
            passphrase_hash,
        }))
    })
    .await
}

/// Why a sender could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    WrongPassphrase,
    /// Too many wrong passphrases, for this link or from this address: the message says how
    /// long to wait.
    Throttled(String),
    Full,
    /// Closed, revoked or expired since the link was opened.
    NotOpen,
}

/// A submission started: the sender's session holds its id.
#[derive(Debug, Clone)]
pub struct Started {
    pub submission: SubmissionId,
    pub receipt: String,
}

fn throttle_key(kind: &str, value: &str) -> String {
    hex::encode(Sha256::digest(
        format!("medport-request-{kind}\0{value}").as_bytes(),
    ))
}

/// The passphrase is throttled per link and per address, in the sign-in throttle's table
/// and with its delays (growing, capped, never a lockout).
fn throttle_keys(request: &RequestId, origin: &Origin) -> Vec<String> {
    let mut keys = vec![throttle_key("link", request.as_str())];
    if let Some(ip) = &origin.ip {
        keys.push(throttle_key("address", ip));
    }
    keys
}

/// A receipt number people can read out on the phone: 80 random bits, base32 in groups.
fn receipt_number() -> Result<String, AppError> {
    let bytes = crate::infra::crypto::random_bytes::<10>().map_err(AppError::internal)?;
    let text = data_encoding::BASE32_NOPAD.encode(&bytes);
    let groups: Vec<&str> = (0..text.len())
        .step_by(4)
        .map(|i| &text[i..(i + 4).min(text.len())])
        .collect();
    Ok(format!("R-{}", groups.join("-")))
}

/// Starts a sender's visit through `link` (just opened): checks the passphrase (throttled),
/// refuses a request that is full or no longer open, and records the sender's details,
/// sealed.
pub async fn begin(
    db: &Database,
    keyring: &Keyring,
    clock: &Clock,
    link: &Link,
    passphrase: &str,
    sender: SenderDetails,
    origin: &Origin,
) -> Result<Result<Started, Refusal>, AppError> {
    let now = clock.now_naive();
    let request = &link.request;
    let keys = throttle_keys(&request.id, origin);
    if let Some(stored) = link.passphrase_hash.clone() {
        let checked = keys.clone();
        let blocked = db
            .run(move |conn| {
                let mut latest: Option<NaiveDateTime> = None;
                for key in &checked {
                    if let Some(until) = throttle::blocked_until(conn, key, now)? {
                        latest = Some(latest.map_or(until, |l| l.max(until)));
                    }
                }
                Ok::<_, DbError>(latest)
            })
            .await?;
        if let Some(until) = blocked {
            return Ok(Err(Refusal::Throttled(wait_message(until, now))));
        }
        let candidate = passphrase.to_string();
        let matches = tokio::task::spawn_blocking(move || {
            passwords::verify(&Password::for_login(&candidate), &stored)
        })
        .await
        .map_err(AppError::internal)?;
        if !matches {
            record_wrong_passphrase(db, &request.id, keys, origin, now).await?;
            return Ok(Err(Refusal::WrongPassphrase));
        }
    }
    let submission = SubmissionId::new();
    let number = receipt_number()?;
    let sealed = receipt::seal_sender(keyring, &submission, &sender)?;
    let row = request_submissions::Row {
        id: submission.as_str().to_string(),
        request_id: request.id.as_str().to_string(),
        receipt_number: number.clone(),
        sender_sealed: sealed,
        started_at: now,
        finished_at: None,
        receipt_hash: None,
    };
    let event = Event::new(Actor::sender(&number), "request.open", Outcome::Success)
        .origin(origin.clone())
        .target("upload_request", request.id.as_str())
        .details(json!({ "submission": submission.as_str(), "receipt": number }));
    let request_id = request.id.clone();
    let started = db
        .run(move |conn| {
            write_tx(conn, |conn| {
                // Checked again in the transaction: the link was read a moment ago.
                match quota::open_with_usage(conn, &request_id, now)? {
                    None => return Ok(Err(Refusal::NotOpen)),
                    Some((open, used)) if used.is_full(open.limits) => {
                        return Ok(Err(Refusal::Full));
                    }
                    Some(_) => {}
                }
                for key in &keys {
                    throttle::clear(conn, key)?;
                }
                request_submissions::insert(conn, &row)?;
                repo::touch(conn, request_id.as_str(), now)?;
                audit::record(conn, &event)?;
                Ok::<_, AppError>(Ok(()))
            })
        })
        .await?;
    Ok(started.map(|()| Started {
        submission,
        receipt: number,
    }))
}

fn wait_message(until: NaiveDateTime, now: NaiveDateTime) -> String {
    format!(
        "Too many wrong passphrases. Please wait {} and try again.",
        throttle::wait_for(until, now)
    )
}

/// A wrong passphrase: counted against the link and the address, and audited, together.
/// While a key is throttled nothing is written at all (`begin` refuses first), so guessing
/// cannot fill the audit trail.
async fn record_wrong_passphrase(
    db: &Database,
    request: &RequestId,
    keys: Vec<String>,
    origin: &Origin,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    let failure = Event::new(Actor::anonymous(), "request.passphrase", Outcome::Failure)
        .origin(origin.clone())
        .target("upload_request", request.as_str());
    let throttled = Event::new(Actor::anonymous(), "request.throttled", Outcome::Denied)
        .origin(origin.clone())
        .target("upload_request", request.as_str());
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let mut starts_throttle = false;
            for key in &keys {
                let (failures, _) = throttle::record_failure(conn, key, now)?;
                starts_throttle |= failures == throttle::FREE_ATTEMPTS;
            }
            audit::record(conn, &failure)?;
            if starts_throttle {
                audit::record(conn, &throttled)?;
            }
            Ok::<_, DbError>(())
        })
    })
    .await?;
    Ok(())
}

/// A sender's visit under way: their right to upload, and the request it is for.
pub struct Visit {
    pub uploader: Uploader,
    pub request: UploadRequest,
}

/// The visit a sender's session holds: `None` once it is finished, the request is no longer
/// open, or its owner can no longer act.
pub async fn sender(
    db: &Database,
    clock: &Clock,
    submission: &SubmissionId,
    origin: Origin,
) -> Result<Option<Visit>, AppError> {
    let (id, now) = (submission.clone(), clock.now_naive());
    db.run(move |conn| {
        let Some(row) = request_submissions::find(conn, id.as_str())? else {
            return Ok(None);
        };
        if row.finished_at.is_some() {
            return Ok(None);
        }
        let Some(request) = repo::find(conn, &row.request_id)? else {
            return Ok(None);
        };
        let Some(Opened { request, owner, .. }) = open_request(conn, request, now)? else {
            return Ok(None);
        };
        let role = Role::parse(&owner.role).map_err(|_| AppError::internal("unknown role"))?;
        let scope = SenderScope {
            request: request.id.clone(),
            submission: id,
            bucket: request.bucket_id.clone(),
            receipt: row.receipt_number,
        };
        let uploader =
            Uploader::for_sender(request.owner_id.clone(), owner.email, role, scope, origin);
        Ok(Some(Visit { uploader, request }))
    })
    .await
}

/// Ends the sender's visit with a receipt: one `request.received` event lists every file
/// received with its SHA-256, and its chain hash is the receipt's proof. Refused while a
/// file is still arriving, and when none has arrived.
pub async fn finish(
    db: &Database,
    keyring: &Keyring,
    clock: &Clock,
    portal: &Portal,
    who: &Uploader,
) -> Result<SubmissionId, AppError> {
    let scope = who.sender().ok_or(AppError::Forbidden)?.clone();
    let (actor, origin, now) = (who.actor(), who.origin.clone(), clock.now_naive());
    let (keyring, portal) = (keyring.clone(), portal.clone());
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let rows = request_submissions::files(
                conn,
                scope.request.as_str(),
                Some(scope.submission.as_str()),
            )?;
            if rows
                .iter()
                .any(|f| f.status == UploadStatus::Active.as_str())
            {
                return Err(AppError::conflict(
                    "still_uploading",
                    "Some files are still being sent. Wait until every file has finished, \
                     or cancel the ones you do not want to send.",
                ));
            }
            let files = receipt::arrived(rows);
            if files.is_empty() {
                return Err(AppError::conflict(
                    "nothing_received",
                    "No file has arrived yet. Send at least one file, then finish.",
                ));
            }
            let listed = receipt::digests(&files);
            let event = Event::new(actor, "request.received", Outcome::Success)
                .origin(origin)
                .target("upload_request", scope.request.as_str())
                .details(json!({
                    "submission": scope.submission.as_str(),
                    "receipt": scope.receipt,
                    "files": listed,
                }));
            let (_, hash) = audit::record_hashed(conn, &event)?;
            if !request_submissions::finish(conn, scope.submission.as_str(), now, &hash)? {
                return Err(AppError::conflict(
                    "already_finished",
                    "This sending is already finished.",
                ));
            }
            repo::touch(conn, scope.request.as_str(), now)?;
            // Told in the same commit: a receipt exists exactly when its messages do.
            let visit = request_submissions::find(conn, scope.submission.as_str())?
                .ok_or_else(|| AppError::internal("a finished visit vanished"))?;
            let request = requests::find(conn, &scope.request)?
                .ok_or_else(|| AppError::internal("a visit without its request"))?;
            let receipt = receipt::Receipt {
                number: scope.receipt.clone(),
                title: request.title.clone(),
                received_at: now,
                sender: receipt::open_sender(&keyring, &visit)?,
                files,
                audit_hash: hash,
            };
            notices::received(conn, &request, &receipt, scope.submission.as_str(), &portal)?;
            Ok(scope.submission.clone())
        })
    })
    .await
}

/// A finished visit's receipt (the sender's session keeps the submission's id for this).
pub async fn receipt(
    db: &Database,
    keyring: &Keyring,
    submission: &SubmissionId,
) -> Result<Option<receipt::Receipt>, AppError> {
    let (id, keyring) = (submission.clone(), keyring.clone());
    db.run(move |conn| receipt::load(conn, &keyring, &id)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_numbers_are_grouped_and_distinct() {
        let a = receipt_number().unwrap();
        let b = receipt_number().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("R-"));
        assert_eq!(a.len(), 2 + 16 + 3);
        assert!(a[2..].split('-').all(|g| g.len() == 4));
    }

    #[test]
    fn link_and_address_are_throttled_apart() {
        let id = RequestId::new();
        let origin = Origin {
            ip: Some("192.0.2.1".into()),
            request_id: None,
        };
        let keys = throttle_keys(&id, &origin);
        assert_eq!(keys.len(), 2);
        assert_ne!(keys[0], keys[1]);
        assert_eq!(throttle_keys(&id, &Origin::default()).len(), 1);
    }
}
