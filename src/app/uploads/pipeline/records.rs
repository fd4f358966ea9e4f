//! The pipeline's database writes. Each is one write transaction, and every state change is
//! recorded with its audit event in that same transaction.
//!
//! One writer at a time per upload, across instances: a request takes the upload's lease
//! (`uploads::lease`) before touching storage and every write here checks it still holds
//! it, so two PATCHes (or a PATCH and the cleanup worker) never interleave.

use chrono::NaiveDateTime;
use serde_json::json;

use crate::app::audit::{self, Actor, Event, Origin, Outcome};
use crate::app::buckets::Bucket;
use crate::app::error::AppError;
use crate::app::uploads::hasher::part_digest;
use crate::app::uploads::lease::WRITE_TTL;
use crate::app::uploads::model::{ScanStatus, UploadStatus};
use crate::domain::ids::{BucketId, UploadId};
use crate::infra::db::repo::{upload_parts, upload_tails, uploads as repo};
use crate::infra::db::{DbConnection, write_tx};
use crate::infra::metrics::{Refused, metrics};
use crate::infra::storage::blob::{ObjectKey, PartInfo, PartNumber};

use super::request::UploadRequest;

/// Who did it and from where, for audit events.
#[derive(Clone)]
pub struct Audited {
    pub actor: Actor,
    pub origin: Origin,
}

impl Audited {
    fn event(&self, action: &'static str, outcome: Outcome, id: &UploadId) -> Event {
        Event::new(self.actor.clone(), action, outcome)
            .origin(self.origin.clone())
            .target("upload", id.as_str())
    }
}

/// A new upload row, before storage is touched.
pub struct NewRow<'a> {
    pub id: &'a UploadId,
    pub user_id: &'a str,
    pub api_key_id: Option<&'a str>,
    pub bucket: &'a Bucket,
    pub request: &'a UploadRequest,
    pub part_size: u64,
    pub object_key: &'a ObjectKey,
    pub hash_state: Vec<u8>,
    pub expires_at: NaiveDateTime,
    pub now: NaiveDateTime,
    /// Set when a sender without an account sends through an upload request.
    pub sender: Option<&'a crate::app::uploads::uploader::SenderScope>,
    /// The writer's lease the row is written with (`Lease::for_new_row`), if any.
    pub lease: Option<&'a str>,
}

fn to_i64(v: u64) -> Result<i64, AppError> {
    i64::try_from(v).map_err(|_| AppError::internal("size out of range"))
}

/// Bytes the bucket holds or has promised to uploads in progress.
pub(super) fn reserved(conn: &mut DbConnection, bucket: &BucketId) -> Result<u64, AppError> {
    let sizes = repo::declared_sizes(conn, bucket.as_str(), &UploadStatus::holding_space())?;
    sizes.into_iter().try_fold(0u64, |sum, s| {
        sum.checked_add(u64::try_from(s).unwrap_or(0))
            .ok_or_else(|| AppError::internal("bucket usage overflows"))
    })
}

/// Why a new upload did not fit.
enum NoRoom {
    /// The bucket's size limit; the bytes it has free.
    Bucket(u64),
    /// The limits of the upload request a sender sends through.
    Request(crate::app::requests::quota::Full),
}

/// Inserts the row if the bucket's size limit (and, for a sender, the request's limits)
/// allow it (checked arithmetic, counting uploads in progress), with `upload.create`;
/// otherwise 413 and `upload.reject`.
pub fn insert(conn: &mut DbConnection, row: &NewRow<'_>, who: &Audited) -> Result<(), AppError> {
    let result = write_tx(conn, |conn| {
        // Serialises reservations per bucket, so two uploads cannot both take the last free
        // bytes (nor the last free file of a request: a request has one bucket).
        repo::lock_bucket(conn, row.bucket.id.as_str())?;
        if let Some(limit) = row.bucket.size_limit {
            let used = reserved(conn, &row.bucket.id)?;
            let fits = used
                .checked_add(row.request.size)
                .is_some_and(|total| total <= limit);
            if !fits {
                return Ok(Err(NoRoom::Bucket(limit.saturating_sub(used))));
            }
        }
        if let Some(scope) = row.sender {
            let admitted = crate::app::requests::quota::admit(
                conn,
                &scope.request,
                row.request.size,
                row.now,
            )?;
            if let Err(full) = admitted {
                return Ok(Err(NoRoom::Request(full)));
            }
        }
        repo::insert(
            conn,
            &repo::NewUpload {
                id: row.id.as_str(),
                user_id: row.user_id,
                bucket_id: row.bucket.id.as_str(),
                api_key_id: row.api_key_id,
                filename: row.request.filename.as_str(),
                content_type: row.request.content_type.as_deref(),
                extension: row.request.extension,
                declared_size: to_i64(row.request.size)?,
                upload_offset: 0,
                part_size: to_i64(row.part_size)?,
                object_key: row.object_key.as_str(),
                status: UploadStatus::Active.as_str(),
                hash_state: Some(row.hash_state.as_slice()),
                client_checksum: row.request.checksum.as_deref(),
                expires_at: row.expires_at,
                created_at: row.now,
                updated_at: row.now,
                batch_id: row.request.batch.as_ref().map(|b| b.as_str()),
                relative_path: row.request.relative_path.as_ref().map(|p| p.as_str()),
                request_id: row.sender.map(|s| s.request.as_str()),
                submission_id: row.sender.map(|s| s.submission.as_str()),
                lease_token: row.lease,
                lease_until: row.lease.map(|_| row.now + WRITE_TTL),
            },
        )?;
        let mut details = json!({
            "bucket": row.bucket.id.as_str(),
            "filename": row.request.filename.as_str(),
            "size": row.request.size,
        });
        if let Some(scope) = row.sender {
            details["upload_request"] = json!(scope.request.as_str());
            crate::infra::db::repo::upload_requests::touch(conn, scope.request.as_str(), row.now)?;
        }
        let event = who
            .event("upload.create", Outcome::Success, row.id)
            .details(details);
        audit::record(conn, &event)?;
        Ok::<_, AppError>(Ok(()))
    })?;
    let no_room = match result {
        Ok(()) => {
            metrics().uploads_started.inc();
            return Ok(());
        }
        Err(no_room) => no_room,
    };
    metrics().refused(Refused::BucketFull);
    let (reason, message) = match &no_room {
        NoRoom::Bucket(free) => (
            "bucket size limit",
            format!(
                "This bucket has {} free; the file is {}.",
                crate::app::buckets::size::human(*free),
                crate::app::buckets::size::human(row.request.size)
            ),
        ),
        NoRoom::Request(full) => (full.reason(), full.message()),
    };
    let event = Event::new(who.actor.clone(), "upload.reject", Outcome::Denied)
        .origin(who.origin.clone())
        .details(json!({
            "bucket": row.bucket.id.as_str(),
            "filename": row.request.filename.as_str(),
            "size": row.request.size,
            "reason": reason,
        }));
    write_tx(conn, |conn| audit::record(conn, &event).map(drop))?;
    Err(AppError::refused(413, message))
}

/// Records an audit event of its own (a refusal before any row exists).
pub fn audit_only(conn: &mut DbConnection, event: &Event) -> Result<(), AppError> {
    write_tx(conn, |conn| audit::record(conn, event).map(drop))?;
    Ok(())
}

pub fn set_storage_id(
    conn: &mut DbConnection,
    id: &UploadId,
    storage_id: &str,
) -> Result<(), AppError> {
    write_tx(conn, |conn| {
        repo::set_storage_id(conn, id.as_str(), storage_id)
    })?;
    Ok(())
}

/// A part stored in the backend, with the digest it is recorded with.
#[derive(Debug, Clone)]
pub struct StoredPart {
    pub info: PartInfo,
    /// `hasher::part_digest` at the part's end.
    pub digest: String,
}

impl StoredPart {
    /// The part `info` names, whose last byte leaves the file's digest in `state`
    /// (`FileHasher::save`).
    pub fn ending_at(info: PartInfo, state: &[u8]) -> Self {
        Self {
            info,
            digest: part_digest(state),
        }
    }
}

/// Bytes to make durable for upload `id` by the holder of lease `token`: `parts`, and the
/// offset from `from` to `to` with the digest state at `to`.
#[derive(Clone, Copy)]
pub struct Progress<'a> {
    pub id: &'a UploadId,
    pub token: &'a str,
    pub from: u64,
    pub to: u64,
    pub hash_state: &'a [u8],
    pub parts: &'a [StoredPart],
    /// The last byte: the upload moves to `completing`.
    pub finished: bool,
    pub now: NaiveDateTime,
}

/// Makes progress durable: records the parts (idempotently: the same number with the same
/// digest is a no-op, a different digest is refused) and moves the offset with the digest
/// state covering exactly those bytes; the last byte also moves the upload to `completing`
/// and returns the tails written down for it, which completion sweeps (no writer adds one
/// once the last byte is in). Only the lease holder can, and only from the offset it
/// started at.
pub fn commit(conn: &mut DbConnection, step: &Progress<'_>) -> Result<Vec<u64>, AppError> {
    write_tx(conn, |conn| {
        progress(conn, step)?;
        if step.finished {
            tails(conn, step.id)
        } else {
            Ok(Vec::new())
        }
    })
}

/// [`commit`] inside the caller's transaction, without reading the tails back.
fn progress(conn: &mut DbConnection, step: &Progress<'_>) -> Result<(), AppError> {
    let Progress {
        id,
        token,
        from,
        to,
        hash_state,
        parts,
        finished,
        now,
    } = *step;
    for part in parts {
        let number = i32::from(part.info.number.get());
        let existing = upload_parts::digest_of(conn, id.as_str(), number)?;
        match existing {
            Some(digest) if digest == part.digest => {}
            Some(_) => {
                return Err(AppError::internal(format!(
                    "part {number} of upload {id} is already recorded with other content"
                )));
            }
            None => {
                upload_parts::insert(
                    conn,
                    &upload_parts::NewPart {
                        upload_id: id.as_str(),
                        part_number: number,
                        size: to_i64(part.info.size)?,
                        etag: &part.info.etag,
                        digest: &part.digest,
                        created_at: now,
                    },
                )?;
            }
        }
    }
    let step = repo::Advance {
        from: to_i64(from)?,
        to: to_i64(to)?,
        from_status: UploadStatus::Active.as_str(),
        // The last byte moves the upload to `completing` in the same write, so a crash
        // right after it leaves an upload the recovery pass completes, never an `active`
        // one whose offset says "done" and that would later expire.
        to_status: if finished {
            UploadStatus::Completing.as_str()
        } else {
            UploadStatus::Active.as_str()
        },
        hash_state,
        lease_until: now + WRITE_TTL,
        now,
    };
    if !repo::advance(conn, id.as_str(), token, &step)? {
        return Err(AppError::refused(
            409,
            "The upload changed while this request was running. Ask for its offset and resume.",
        ));
    }
    Ok(())
}

/// Fixes the size of an open-ended upload (never larger than reserved).
pub fn set_size(
    conn: &mut DbConnection,
    id: &UploadId,
    token: &str,
    size: u64,
) -> Result<(), AppError> {
    let size = to_i64(size)?;
    let set = write_tx(conn, |conn| {
        repo::settle_size(conn, id.as_str(), token, size)
    })?;
    if set {
        Ok(())
    } else {
        Err(AppError::internal(
            "could not settle the size of a form upload",
        ))
    }
}

/// The parts recorded for an upload, in order, for the completion request.
pub fn parts(conn: &mut DbConnection, id: &UploadId) -> Result<Vec<PartInfo>, AppError> {
    let rows = upload_parts::of(conn, id.as_str())?;
    rows.into_iter()
        .map(
            |upload_parts::Recorded {
                 part_number: n,
                 size,
                 etag,
             }| {
                let number = u64::try_from(n)
                    .ok()
                    .and_then(PartNumber::new)
                    .ok_or_else(|| AppError::internal("stored part number out of range"))?;
                let size = u64::try_from(size).map_err(|_| AppError::internal("negative part"))?;
                Ok(PartInfo { number, size, etag })
            },
        )
        .collect()
}

/// The stored digest state of an upload.
pub fn hash_state(conn: &mut DbConnection, id: &UploadId) -> Result<Option<Vec<u8>>, AppError> {
    Ok(repo::hash_state(conn, id.as_str())?)
}

/// Moves an upload from `from` to `to` (holding the lease), with its audit event. Returns
/// whether the row was in `from`.
#[allow(clippy::too_many_arguments)]
pub fn transition(
    conn: &mut DbConnection,
    id: &UploadId,
    token: Option<&str>,
    from: &[UploadStatus],
    to: UploadStatus,
    reason: Option<&str>,
    now: NaiveDateTime,
    event: Option<Event>,
) -> Result<bool, AppError> {
    write_tx(conn, |conn| {
        let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let moved = repo::transition(conn, id.as_str(), token, &from, to.as_str(), reason, now)?;
        if moved && let Some(event) = &event {
            audit::record(conn, event)?;
        }
        Ok(moved)
    })
}

/// What completion found: the digest, whether a scan follows, the audit event, and the DICOM
/// index row to write with it.
pub struct Verdict<'a> {
    pub sha256: &'a str,
    pub scan: bool,
    pub now: NaiveDateTime,
    pub event: &'a Event,
    pub index: Option<&'a crate::app::studies::index::Prepared>,
    /// The upload request the file came through, whose owner hears of it.
    pub request: Option<&'a crate::domain::ids::RequestId>,
    pub portal: &'a crate::app::requests::notices::Portal,
    /// The webhook event of an upload completed without a scan.
    pub completed: Option<&'a crate::app::notifications::webhooks::BucketEvent>,
    /// The last byte, when it is committed with the verdict rather than before it.
    pub last_byte: Option<Progress<'a>>,
}

/// The end of a verified upload: `completed` (no scanner), or `completing` with the scan
/// pending. Stores the file's SHA-256.
pub fn verified(
    conn: &mut DbConnection,
    id: &UploadId,
    token: &str,
    verdict: &Verdict<'_>,
) -> Result<(), AppError> {
    let Verdict {
        sha256,
        scan,
        now,
        event,
        index,
        request,
        portal,
        completed,
        last_byte,
    } = *verdict;
    write_tx(conn, |conn| {
        // Only an upload created and stored whole by one request commits its last byte
        // here: it never had a tail to sweep before its verdict.
        if let Some(step) = &last_byte {
            progress(conn, step)?;
        }
        if let Some(request) = request {
            crate::app::requests::notices::file_received(conn, request, now, portal)?;
        }
        if let Some(index) = index {
            index.record(conn, now)?;
        }
        let (status, scan_status, completed_at) = if scan {
            (
                UploadStatus::Completing,
                Some(ScanStatus::Pending.as_str()),
                None,
            )
        } else {
            (UploadStatus::Completed, None, Some(now))
        };
        // Releases the lease too: the scanner takes over at once; the writer's own release
        // is then a no-op.
        let written = repo::verified(
            conn,
            id.as_str(),
            token,
            UploadStatus::Completing.as_str(),
            status.as_str(),
            scan_status,
            sha256,
            completed_at,
            now,
        )?;
        if !written {
            return Err(AppError::internal("the upload changed during completion"));
        }
        audit::record(conn, event)?;
        if let Some(completed) = completed {
            completed.queue(conn)?;
        }
        Ok(())
    })
}

impl Audited {
    pub fn on(&self, action: &'static str, outcome: Outcome, id: &UploadId) -> Event {
        self.event(action, outcome, id)
    }
}

/// Writes down that a tail object ending at `offset` is about to be stored (see the
/// `upload_tails` migration). Idempotent.
pub fn note_tail(conn: &mut DbConnection, id: &UploadId, offset: u64) -> Result<(), AppError> {
    Ok(upload_tails::note(conn, id.as_str(), to_i64(offset)?)?)
}

/// Every tail offset written down for the upload.
pub fn tails(conn: &mut DbConnection, id: &UploadId) -> Result<Vec<u64>, AppError> {
    let offsets = upload_tails::offsets(conn, id.as_str())?;
    Ok(offsets
        .into_iter()
        .filter_map(|o| u64::try_from(o).ok())
        .collect())
}

/// Forgets tails whose objects are gone.
pub fn forget_tails(
    conn: &mut DbConnection,
    id: &UploadId,
    offsets: &[u64],
) -> Result<(), AppError> {
    let offsets = offsets
        .iter()
        .map(|&o| to_i64(o))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(upload_tails::forget(conn, id.as_str(), &offsets)?)
}
