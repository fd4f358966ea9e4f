//! STOW-RS (PS3.18 10.5): a `multipart/related; type="application/dicom"` body whose parts
//! are DICOM Part 10 instances. Each part goes through the one upload pipeline, exactly as a
//! tus or form upload does (name, type, size and quota checks, sniffing, SHA-256,
//! completion, the study index, scanning, audit), streamed as it arrives: one part's bytes
//! are in flight at a time, and only its reservation is outstanding.
//!
//! A part's size is not known before its boundary, so it is created with an upper bound:
//! what is left of the request (or the largest file accepted, for a chunked request), cut
//! down to the room left in the bucket. When the part ends, its size becomes what arrived.
//! Its header is read as it streams past (`inspect`), so an instance of another study than
//! the path's, or one whose header does not parse, is cancelled before completion and
//! leaves nothing in storage.

mod inspect;
mod media_type;
pub mod multipart;
mod response;

use futures_util::StreamExt as _;
use serde_json::json;

use crate::app::audit::{self, Event, Outcome};
use crate::app::buckets::{self, SYSTEM_BUCKET_ID};
use crate::app::error::AppError;
use crate::app::uploads::pipeline::{self, RawRequest, UploadRequest};
use crate::app::uploads::{UploadContext, Uploader};
use crate::domain::DicomUid;
use crate::domain::ids::{BucketId, UploadId};

use inspect::Verdict;
use multipart::{MultipartReader, PartHead};

pub use media_type::parse_content_type;
pub use multipart::Boundary;
pub use response::{FailedInstance, FailureReason, StoreOutcome, StoredInstance};

/// Most parts stored from one request. Each part is a whole upload (rows, audit events,
/// an object); past this, parts are read and reported as failed (out of resources) so a
/// client learns which to send again in another request.
pub const MAX_PARTS: usize = 1000;

/// Smallest DICOM Part 10 file: preamble and `DICM` (at 128).
const SMALLEST_PART10: u64 = 132;

/// A store request, checked before its body is read.
#[derive(Debug, Clone)]
pub struct StowRequest {
    /// The study in the path (`POST /dicomweb/studies/{study}`).
    pub study: Option<DicomUid>,
    pub bucket: Option<BucketId>,
    pub boundary: Boundary,
    /// The request's Content-Length, when it has one.
    pub length: Option<u64>,
}

/// Stores every part of `body`. Request-level refusals (no `upload` scope, a bucket the
/// user may not use or that takes no DICOM, a body with no part at all) are errors; what
/// became of each part is in the outcome.
pub async fn store<S, E>(
    ctx: &UploadContext,
    who: &Uploader,
    request: StowRequest,
    body: S,
) -> Result<StoreOutcome, AppError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    who.require_upload(&ctx.db).await?;
    check_bucket(ctx, who, request.bucket.as_ref()).await?;
    let mut reader = MultipartReader::new(body, &request.boundary);
    let mut outcome = StoreOutcome {
        study: request.study.clone(),
        ..StoreOutcome::default()
    };
    let mut parts = 0usize;
    loop {
        let head = match reader.next_part().await {
            Ok(Some(head)) => head,
            Ok(None) => break,
            Err(e) if parts == 0 => {
                return Err(AppError::BadRequest(format!(
                    "The body is not a multipart/related body: {e}."
                )));
            }
            Err(e) => {
                outcome.malformed = Some(e.to_string());
                break;
            }
        };
        parts += 1;
        let result = if parts > MAX_PARTS {
            Err(failed(None, FailureReason::OutOfResources))
        } else {
            store_part(ctx, who, &request, &mut reader, parts, &head).await
        };
        match result {
            Ok(stored) => outcome.stored.push(stored),
            Err(failure) => outcome.failed.push(failure),
        }
    }
    if parts == 0 {
        return Err(AppError::BadRequest("The body holds no part.".into()));
    }
    audit_request(ctx, who, &request, &outcome).await?;
    Ok(outcome)
}

/// The bucket must be one the user may upload to and must take DICOM files: otherwise no
/// part could be stored, and the request is refused before its body is read.
async fn check_bucket(
    ctx: &UploadContext,
    who: &Uploader,
    bucket: Option<&BucketId>,
) -> Result<(), AppError> {
    let id = bucket
        .cloned()
        .unwrap_or_else(|| BucketId::from_db(SYSTEM_BUCKET_ID.to_string()));
    let (user, role, lookup) = (who.user_id.clone(), who.role, id.clone());
    let found = ctx
        .db
        .run(move |conn| buckets::visible_bucket(conn, &user, role, &lookup))
        .await?;
    let (reason, error) = match found {
        None => ("bucket not visible", AppError::NotFound),
        Some(b) if !b.extensions.allows("dcm") => (
            "type not allowed in bucket",
            AppError::refused(
                415,
                "This bucket does not accept DICOM files; choose another with `bucket`.",
            ),
        ),
        Some(_) => return Ok(()),
    };
    // Audited like a tus creation refused for its bucket.
    let event = Event::new(who.actor(), "dicomweb.store", Outcome::Denied)
        .origin(who.origin.clone())
        .details(json!({ "bucket": id.as_str(), "reason": reason }));
    audit::record_alone(&ctx.db, event).await?;
    Err(error)
}

fn failed(
    header: Option<&crate::infra::dicom::InstanceHeader>,
    reason: FailureReason,
) -> FailedInstance {
    FailedInstance {
        sop_class_uid: header.and_then(|h| h.sop_class_uid.clone()),
        sop_instance_uid: header.map(|h| h.sop_instance_uid.clone()),
        reason,
    }
}

/// One part through the pipeline. On any failure after creation the upload is cancelled
/// (a no-op when the pipeline already refused it), so nothing of it stays in storage.
async fn store_part<S, E>(
    ctx: &UploadContext,
    who: &Uploader,
    request: &StowRequest,
    reader: &mut MultipartReader<S>,
    number: usize,
    head: &PartHead,
) -> Result<StoredInstance, FailedInstance>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    if !is_dicom_part(head) {
        return Err(failed(None, FailureReason::CannotUnderstand));
    }
    let max = ctx.settings.uploads.max_size;
    let left = request
        .length
        .map_or(max, |length| length.saturating_sub(reader.position()));
    let mut body = reader.part_body();
    // A part too short for a Part 10 file, or without `DICM` where it belongs, is refused
    // before an upload is started for it: a flood of tiny parts costs no rows or objects.
    // The pipeline sniffs every part it receives all the same.
    let mut start = bytes::BytesMut::new();
    while start.len() < SMALLEST_PART10 as usize {
        match body.next().await {
            Some(Ok(chunk)) => start.extend_from_slice(&chunk),
            Some(Err(_)) => return Err(failed(None, FailureReason::CannotUnderstand)),
            None => break,
        }
    }
    if start.len() < SMALLEST_PART10 as usize || &start[128..132] != b"DICM" {
        return Err(failed(None, FailureReason::NotDicom));
    }
    let room = pipeline::room_left(ctx, who, request.bucket.as_ref())
        .await
        .map_err(|e| processing_failure(&e))?;
    let bound = left.min(max).min(room.unwrap_or(u64::MAX));
    if bound < SMALLEST_PART10 {
        return Err(failed(None, FailureReason::OutOfResources));
    }
    let filename = format!("{number}.dcm");
    let upload_request = UploadRequest::parse(
        &RawRequest {
            filename: Some(&filename),
            filetype: Some("application/dicom"),
            bucket: request.bucket.as_ref().map(BucketId::as_str),
            size: bound,
            ..RawRequest::default()
        },
        max,
    )
    .map_err(|e| failed(None, reason_for(&e)))?;
    let whole = futures_util::stream::once(std::future::ready(Ok(start.freeze()))).chain(body);
    let (body, verdict) = inspect::inspect(whole, request.study.clone());
    let (upload, appended) =
        pipeline::create_and_receive(ctx, who, upload_request, None, true, body)
            .await
            .map_err(|e| failed(None, reason_for(&e)))?;
    let verdict = verdict.lock().ok().and_then(|mut v| v.take());
    match (appended, verdict) {
        (Ok(_), Some(Verdict::Instance(h))) => Ok(StoredInstance {
            sop_class_uid: h.sop_class_uid,
            sop_instance_uid: h.sop_instance_uid,
            study_uid: h.study_uid,
            series_uid: h.series_uid,
        }),
        (Ok(_), _) => {
            // The inspected body only ends cleanly on a readable instance.
            tracing::error!(upload = %upload.id, "a STOW part completed without its header");
            Err(failed(None, FailureReason::ProcessingFailure))
        }
        (Err(e), verdict) => {
            cancel(ctx, who, &upload.id).await;
            Err(match verdict {
                Some(Verdict::OtherStudy(h)) => failed(Some(&h), FailureReason::OtherStudy),
                Some(Verdict::Directory) => failed(None, FailureReason::SopClassNotSupported),
                Some(Verdict::Unreadable(why)) => {
                    tracing::info!(upload = %upload.id, %why, "STOW part refused");
                    failed(None, FailureReason::CannotUnderstand)
                }
                Some(Verdict::Instance(h)) => failed(Some(&h), reason_for(&e)),
                None => failed(None, reason_for(&e)),
            })
        }
    }
}

/// A part is `application/dicom` (parameters such as `transfer-syntax` allowed) or says
/// nothing, which means the root type.
fn is_dicom_part(head: &PartHead) -> bool {
    head.content_type.as_deref().is_none_or(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/dicom"))
    })
}

async fn cancel(ctx: &UploadContext, who: &Uploader, id: &UploadId) {
    if let Err(e) = pipeline::terminate(ctx, who, id).await {
        tracing::debug!(upload = %id, error = %e, "nothing to cancel after a failed STOW part");
    }
}

/// The failure reason for a refusal of the pipeline.
fn reason_for(e: &AppError) -> FailureReason {
    match e {
        AppError::Refused(413, _) | AppError::PayloadTooLarge => FailureReason::OutOfResources,
        AppError::Refused(415, _) | AppError::UnsupportedMediaType => FailureReason::NotDicom,
        // The part's body broke off or the multipart body around it is malformed.
        AppError::BadRequest(_) => FailureReason::CannotUnderstand,
        AppError::Refused(507, _) => FailureReason::OutOfResources,
        other => processing_failure(other).reason,
    }
}

fn processing_failure(e: &AppError) -> FailedInstance {
    tracing::warn!(error = %e, "STOW part not stored");
    failed(None, FailureReason::ProcessingFailure)
}

/// One `dicomweb.store` event per request, with the counts (the pipeline audits each
/// instance's own steps).
async fn audit_request(
    ctx: &UploadContext,
    who: &Uploader,
    request: &StowRequest,
    outcome: &StoreOutcome,
) -> Result<(), AppError> {
    let ok = outcome.status() == 200;
    let mut event = Event::new(
        who.actor(),
        "dicomweb.store",
        if ok {
            Outcome::Success
        } else {
            Outcome::Failure
        },
    )
    .origin(who.origin.clone())
    .details(json!({
        "bucket": request.bucket.as_ref().map_or(SYSTEM_BUCKET_ID, BucketId::as_str),
        "stored": outcome.stored.len(),
        "failed": outcome.failed.len(),
        "malformed": outcome.malformed.is_some(),
    }));
    if let Some(study) = &request.study {
        event = event.target("study", study.as_str());
    }
    audit::record_alone(&ctx.db, event).await?;
    Ok(())
}
