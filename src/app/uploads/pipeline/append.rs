//! Receiving bytes (a tus PATCH, the body of a creation-with-upload, a form upload): stream
//! them into fixed-size parts, make each durable before the offset moves, keep a partial
//! tail in storage between requests, and complete the upload when the last byte is in.
//!
//! One part is held in memory while it is being filled and up to [`PARTS_IN_FLIGHT`] more
//! while they are sent to storage, so memory per upload is a few parts (40 MiB for every
//! file up to 78 GiB) whatever the file's size; every one of them, the one being filled
//! too, comes out of the instance's part budget (`in_flight::PartBudget`), so memory stays
//! bounded however many uploads run at once. Parts are recorded strictly in order: the
//! offset only ever covers a prefix of the file that is durable.
//!
//! A file that fits in one part (`layout::stored_whole`) has no multipart upload: its bytes
//! are stored whole with one request when the last one arrives, so that it costs storage one
//! write instead of five round trips.
//!
//! With an `Upload-Checksum` nothing of the request becomes durable until the whole body
//! matched it: parts are sent but not recorded, so a mismatch (460) leaves the offset, the
//! recorded parts and the old tail exactly as they were.

use bytes::{Bytes, BytesMut};
use chrono::NaiveDateTime;
use futures_util::{Stream, StreamExt as _};
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;

use crate::app::audit::Outcome;
use crate::app::buckets::queries as bucket_queries;
use crate::app::buckets::{Bucket, UNNAMED_DICOM};
use crate::app::error::AppError;
use crate::app::uploads::UploadContext;
use crate::app::uploads::Uploader;
use crate::app::uploads::hasher::{ChunkHasher, FileHasher};
use crate::app::uploads::layout::{next_part, split, tail_key};
use crate::app::uploads::lease::{Lease, WRITE_RENEW_EVERY};
use crate::app::uploads::model::{Upload, UploadStatus};
use crate::app::uploads::sniff::{self, SniffError};
use crate::app::uploads::tus_headers::UploadChecksum;
use crate::domain::ids::UploadId;
use crate::infra::metrics::{Refused, metrics};
use crate::infra::storage::blob::{BlobStore, MultipartId, ObjectKey, PartInfo, StorageError};

use super::finish::{self, Received, StoredWhole, Uncommitted};
use super::in_flight::{InFlight, Sending};
use super::leftovers;
use super::records::{self, Audited, StoredPart};
use super::storage_io::{abort_quietly, delete_quietly, put_part, read_small};

/// Parts sent to storage concurrently per upload. One is not enough to keep an S3 server
/// busy (each part waits for its round trip); more only costs memory. Only parts still being
/// sent count (see `in_flight`).
const PARTS_IN_FLIGHT: usize = 4;

/// Where the upload stands after a request.
#[derive(Debug, Clone)]
pub struct Appended {
    pub offset: u64,
    pub expires_at: NaiveDateTime,
    /// The last byte arrived: the upload is verified (and being scanned, or completed).
    pub finished: bool,
}

/// The upload `id` if it belongs to `who` and may still receive bytes; 404 for anything
/// that is not theirs or is finished, 410 once expired.
pub async fn writable(
    ctx: &UploadContext,
    who: &Uploader,
    id: &UploadId,
) -> Result<Upload, AppError> {
    let upload = who.own_upload(&ctx.db, id).await?;
    match upload.status {
        UploadStatus::Active if upload.expires_at > ctx.clock.now_naive() => Ok(upload),
        UploadStatus::Active | UploadStatus::Expired | UploadStatus::CleanupFailed => {
            Err(AppError::refused(
                410,
                "This upload expired before it was finished. Please start it again.",
            ))
        }
        _ => Err(AppError::NotFound),
    }
}

/// Appends `body` at `claimed_offset`.
pub async fn append<S, E>(
    ctx: &UploadContext,
    who: &Uploader,
    id: &UploadId,
    claimed_offset: u64,
    checksum: Option<UploadChecksum>,
    body: S,
) -> Result<Appended, AppError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    who.require_upload(&ctx.db).await?;
    let upload = writable(ctx, who, id).await?;
    if upload.offset != claimed_offset {
        return Err(AppError::refused(
            409,
            format!(
                "Upload-Offset is {claimed_offset} but the server has {} bytes. Resume from there.",
                upload.offset
            ),
        ));
    }
    let lease = Lease::take_for_write(ctx, id, UploadStatus::Active).await?;
    let audited = super::create::audited(who);
    let result = match Writer::open(ctx, &lease, upload, checksum).await {
        Ok(w) => receive_with(w, body, &audited, false).await,
        Err(e) => Err(e),
    };
    release_unless_finished(ctx, lease, &result).await;
    result
}

/// Creates an upload and receives its first bytes in the same request (tus
/// creation-with-upload, a form upload, a STOW-RS instance). The row is written with this
/// request's lease held, and the writer starts from what creation knows (the bucket, an
/// empty digest state), so the bytes cost no second look-up of either. A failure to create
/// is the outer error; once the upload exists, what became of its bytes is the inner one.
/// `open_ended`: the size given is an upper bound and the upload is what arrives (a form).
pub async fn create_and_receive<S, E>(
    ctx: &UploadContext,
    who: &Uploader,
    request: super::UploadRequest,
    checksum: Option<UploadChecksum>,
    open_ended: bool,
    body: S,
) -> Result<(Upload, Result<Appended, AppError>), AppError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let (upload, bucket, lease) = super::create::create_leased(ctx, who, request).await?;
    let audited = super::create::audited(who);
    let started = Writer::start(
        ctx,
        &lease,
        upload.clone(),
        bucket,
        FileHasher::new(),
        checksum,
    );
    let result = match started.await {
        Ok(mut w) => {
            w.created_here = true;
            receive_with(w, body, &audited, open_ended).await
        }
        Err(e) => Err(e),
    };
    release_unless_finished(ctx, lease, &result).await;
    Ok((upload, result))
}

/// Ends a writer's lease after its request. A finished upload's verdict already released
/// it in the verdict's own commit, so that costs no second write.
async fn release_unless_finished(
    ctx: &UploadContext,
    lease: Lease,
    result: &Result<Appended, AppError>,
) {
    if !matches!(result, Ok(Appended { finished: true, .. })) {
        lease.release(ctx).await;
    }
}

/// What the body loop ended with.
enum Ended {
    Complete,
    /// The client went away or the body broke: keep what arrived (unless a checksum must
    /// cover it).
    Interrupted(String),
    Failed(AppError),
}

/// Room for the part starting at `start`: a whole part, or what is left of a smaller file
/// (a 1 MiB file never holds an 8 MiB buffer).
fn part_capacity(upload: &Upload, start: u64) -> usize {
    let left = upload.declared_size.saturating_sub(start);
    usize::try_from(upload.part_size.min(left)).unwrap_or(0)
}

struct Writer<'a> {
    ctx: &'a UploadContext,
    lease: &'a Lease,
    upload: Upload,
    store: BlobStore,
    bucket: Bucket,
    /// `None` for a file stored whole at its last byte.
    multipart: Option<MultipartId>,
    /// A file stored whole by this request.
    stored_whole: Option<StoredWhole>,
    /// The upload was created by this request (`create_and_receive`).
    created_here: bool,
    part_size: u64,
    /// Start offset of the part being filled; `buf` holds its bytes.
    part_start: u64,
    buf: BytesMut,
    /// `buf`'s share of the part budget; it goes with the part when the part is sent.
    buf_share: Option<OwnedSemaphorePermit>,
    hasher: FileHasher,
    /// The durable offset.
    committed: u64,
    /// The tail this request started from, deleted once it is no longer referenced.
    old_tail: Option<(ObjectKey, u64)>,
    /// The tails still written down once the last byte was committed, for completion.
    tails: Option<Vec<u64>>,
    /// Parts being sent, or stored and not yet recorded.
    in_flight: InFlight<Result<PartInfo, StorageError>>,
    /// Sent but not recorded (checksum mode).
    unrecorded: Vec<StoredPart>,
    checksum: Option<ChunkHasher>,
    sniff: Option<(sniff::FileKind, usize)>,
}

async fn receive_with<S, E>(
    mut w: Writer<'_>,
    mut body: S,
    audited: &Audited,
    open_ended: bool,
) -> Result<Appended, AppError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let (ctx, lease) = (w.ctx, w.lease);
    let mut last_renew = std::time::Instant::now();
    let ended = loop {
        let chunk = match body.next().await {
            None => break Ended::Complete,
            Some(Err(e)) => break Ended::Interrupted(e.to_string()),
            Some(Ok(chunk)) => chunk,
        };
        if let Err(e) = w.take(chunk, audited).await {
            break Ended::Failed(e);
        }
        if last_renew.elapsed() > WRITE_RENEW_EVERY {
            if let Err(e) = lease.renew(ctx).await {
                break Ended::Failed(e);
            }
            last_renew = std::time::Instant::now();
        }
    };
    if open_ended {
        match ended {
            Ended::Complete => w.settle_size().await?,
            Ended::Interrupted(cause) => {
                return Err(AppError::BadRequest(format!(
                    "The file did not arrive completely ({cause}). Please try again."
                )));
            }
            Ended::Failed(e) => return Err(e),
        }
        return w.end(Ended::Complete, audited).await;
    }
    w.end(ended, audited).await
}

impl<'a> Writer<'a> {
    async fn open(
        ctx: &'a UploadContext,
        lease: &'a Lease,
        upload: Upload,
        checksum: Option<UploadChecksum>,
    ) -> Result<Self, AppError> {
        let bucket_id = upload.bucket_id.clone();
        let id = upload.id.clone();
        let (bucket, state) = ctx
            .db
            .run(move |conn| {
                let bucket = bucket_queries::get(conn, &bucket_id)?;
                let state = records::hash_state(conn, &id)?;
                Ok::<_, AppError>((bucket, state))
            })
            .await?;
        let hasher = state
            .as_deref()
            .and_then(FileHasher::restore)
            .ok_or_else(|| {
                AppError::internal(format!("upload {} has no digest state", upload.id))
            })?;
        Self::start(ctx, lease, upload, bucket, hasher, checksum).await
    }

    /// A writer for `upload` in `bucket`, whose digest so far is `hasher`.
    async fn start(
        ctx: &'a UploadContext,
        lease: &'a Lease,
        upload: Upload,
        bucket: Bucket,
        hasher: FileHasher,
        checksum: Option<UploadChecksum>,
    ) -> Result<Self, AppError> {
        let store = ctx.store_for(&bucket).await?;
        let multipart = upload.multipart();
        if multipart.is_none() && !upload.stored_whole() {
            return Err(AppError::Unavailable(
                "the upload is not ready in storage".into(),
            ));
        }
        let part_size = upload.part_size;
        let (whole, tail_len) = split(upload.offset, part_size);
        let capacity = part_capacity(&upload, whole * part_size);
        let buf_share = ctx.part_budget.reserve_to_fill(capacity as u64).await;
        let mut buf = ctx.part_buffers.take(capacity);
        let old_tail = if tail_len > 0 {
            let key = tail_key(&upload.object_key, upload.offset)
                .ok_or_else(|| AppError::internal("tail key"))?;
            read_small(&store, &key, &mut buf).await?;
            if buf.len() as u64 != tail_len {
                return Err(AppError::internal(format!(
                    "the stored tail of upload {} has {} bytes, expected {tail_len}",
                    upload.id,
                    buf.len()
                )));
            }
            Some((key, upload.offset))
        } else {
            None
        };
        let kind = sniff::FileKind::from_extension(&upload.extension)
            .ok_or_else(|| AppError::internal("unknown extension"))?;
        let needed = sniff::bytes_needed(kind);
        let sniff = (upload.offset < needed as u64).then_some((kind, needed));
        Ok(Self {
            ctx,
            lease,
            committed: upload.offset,
            part_start: whole * part_size,
            part_size,
            buf,
            buf_share,
            hasher,
            store,
            bucket,
            multipart,
            stored_whole: None,
            created_here: false,
            old_tail,
            tails: None,
            in_flight: InFlight::new(),
            unrecorded: Vec::new(),
            checksum: checksum.as_ref().map(ChunkHasher::new),
            sniff,
            upload,
        })
    }

    /// Open-ended uploads: the size is what arrived.
    async fn settle_size(&mut self) -> Result<(), AppError> {
        let size = self.received_end();
        let (id, token) = (self.upload.id.clone(), self.lease.token().to_string());
        self.ctx
            .db
            .run(move |conn| records::set_size(conn, &id, &token, size))
            .await?;
        self.upload.declared_size = size;
        self.upload.part_size = self.part_size;
        Ok(())
    }

    fn received_end(&self) -> u64 {
        self.part_start + self.buf.len() as u64
    }

    async fn take(&mut self, mut chunk: Bytes, audited: &Audited) -> Result<(), AppError> {
        let end = self.received_end().saturating_add(chunk.len() as u64);
        if end > self.upload.declared_size {
            return Err(AppError::refused(
                413,
                "More bytes arrived than the upload's declared length.",
            ));
        }
        if let Some(h) = &mut self.checksum {
            h.update(&chunk);
        }
        metrics().bytes_uploaded.inc_by(chunk.len() as u64);
        self.settle_finished().await?;
        while !chunk.is_empty() {
            let room = usize::try_from(self.part_size)
                .unwrap_or(usize::MAX)
                .saturating_sub(self.buf.len());
            let piece = chunk.split_to(room.min(chunk.len()));
            self.hasher.update(&piece);
            self.buf.extend_from_slice(&piece);
            self.check_type(audited).await?;
            // A file stored whole fits in its one buffer; `end` stores it.
            if self.buf.len() as u64 == self.part_size && self.multipart.is_some() {
                self.flush_part().await?;
            }
        }
        Ok(())
    }

    /// Checks the magic bytes once enough of the start has arrived (or the whole file).
    async fn check_type(&mut self, audited: &Audited) -> Result<(), AppError> {
        let Some((kind, needed)) = self.sniff else {
            return Ok(());
        };
        let whole_file = self.received_end() == self.upload.declared_size;
        if self.buf.len() < needed && !whole_file {
            return Ok(());
        }
        let head = &self.buf[..self.buf.len().min(needed)];
        // `head` is the complete file only when nothing was cut off it: a text file longer
        // than the sniffed prefix may have a character split at the cut.
        match sniff::check(kind, head, whole_file && head.len() == self.buf.len()) {
            Ok(()) => {
                self.sniff = None;
                Ok(())
            }
            Err(SniffError::NeedMoreBytes { .. }) => Ok(()),
            Err(e) if self.upload.extension == UNNAMED_DICOM => {
                Err(self.reject(&e.for_unnamed().to_string(), audited).await)
            }
            Err(e) => Err(self.reject(&e.to_string(), audited).await),
        }
    }

    /// Refuses the file: abort storage, mark `rejected`, audit; the answer is 415.
    async fn reject(&mut self, reason: &str, audited: &Audited) -> AppError {
        metrics().refused(Refused::Content);
        if let Some(multipart) = &self.multipart {
            abort_quietly(&self.store, &self.upload.object_key, multipart).await;
        }
        if let Some((tail, _)) = self.old_tail.take() {
            delete_quietly(&self.store, &tail).await;
        }
        leftovers::sweep_quietly(
            self.ctx,
            &self.store,
            &self.upload.id,
            &self.upload.object_key,
        )
        .await;
        let message = format!("The file was refused: {reason}.");
        let id = self.upload.id.clone();
        let token = self.lease.token().to_string();
        let now = self.ctx.clock.now_naive();
        let event = audited
            .on("upload.reject", Outcome::Denied, &id)
            .details(json!({ "reason": reason, "filename": self.upload.filename }));
        let stored_reason = message.clone();
        let marked = self
            .ctx
            .db
            .run(move |conn| {
                records::transition(
                    conn,
                    &id,
                    Some(&token),
                    &[UploadStatus::Active],
                    UploadStatus::Rejected,
                    Some(&stored_reason),
                    now,
                    Some(event),
                )
            })
            .await;
        if let Err(e) = marked {
            return e;
        }
        AppError::refused(415, message)
    }

    /// Sends the full part in `buf` to storage in the background. When the pipe is full
    /// the oldest part is settled first, so parts are recorded in order.
    async fn flush_part(&mut self) -> Result<(), AppError> {
        let number = next_part(self.part_start / self.part_size)
            .ok_or_else(|| AppError::internal("part number out of range"))?;
        // The whole buffer goes with the part (not a split of it), so it comes back
        // unshared once the part is stored.
        let bytes = std::mem::take(&mut self.buf).freeze();
        let part_end = self.part_start + bytes.len() as u64;
        let snapshot = self.hasher.save();
        self.make_room().await?;
        let room = self.buf_share.take();
        let store = self.store.clone();
        let key = self.upload.object_key.clone();
        let multipart = self
            .multipart
            .clone()
            .ok_or_else(|| AppError::internal("a part for an upload stored whole"))?;
        let buffers = self.ctx.part_buffers.clone();
        self.in_flight.spawn(part_end, snapshot, room, async move {
            let stored = put_part(&store, &key, &multipart, number, bytes.clone()).await;
            buffers.give_back(bytes);
            stored
        });
        self.part_start = part_end;
        self.settle_finished().await?;
        // Only now: a writer waiting for room above holds no second buffer meanwhile.
        let capacity = part_capacity(&self.upload, self.part_start);
        self.buf_share = self.ctx.part_budget.reserve_to_fill(capacity as u64).await;
        self.buf = self.ctx.part_buffers.take(capacity);
        Ok(())
    }

    /// Waits until fewer than [`PARTS_IN_FLIGHT`] parts are still being sent, recording
    /// stored parts in order meanwhile.
    async fn make_room(&mut self) -> Result<(), AppError> {
        loop {
            self.settle_finished().await?;
            if self.in_flight.sending() < PARTS_IN_FLIGHT {
                return Ok(());
            }
            self.in_flight.one_ended().await;
        }
    }

    /// Records the parts at the front of the pipe that are already stored, without waiting,
    /// so the offset follows storage closely (a crash then costs the client little to
    /// resend) even while the pipe is not full.
    async fn settle_finished(&mut self) -> Result<(), AppError> {
        while self.in_flight.oldest_finished() {
            self.settle_oldest().await?;
        }
        Ok(())
    }

    /// Waits for every part being sent and records them in order. After a failure the
    /// later parts are stopped: they were never recorded, so the offset stays before them.
    async fn settle_in_flight(&mut self) -> Result<(), AppError> {
        while !self.in_flight.is_empty() {
            if let Err(e) = self.settle_oldest().await {
                self.in_flight.abort_all();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Waits for the oldest part being sent and records it (or, in checksum mode, keeps it
    /// for the end).
    async fn settle_oldest(&mut self) -> Result<(), AppError> {
        let Some(Sending {
            task,
            end: part_end,
            digest: snapshot,
        }) = self.in_flight.pop_oldest()
        else {
            return Ok(());
        };
        let info = task
            .await
            .map_err(|e| AppError::internal(format!("part task failed: {e}")))??;
        let stored = StoredPart::ending_at(info, &snapshot);
        if self.checksum.is_some() {
            self.unrecorded.push(stored);
            return Ok(());
        }
        self.record(part_end, &snapshot, vec![stored]).await
    }

    async fn record(
        &mut self,
        to: u64,
        state: &[u8],
        parts: Vec<StoredPart>,
    ) -> Result<(), AppError> {
        let id = self.upload.id.clone();
        let token = self.lease.token().to_string();
        let from = self.committed;
        let state = state.to_vec();
        let now = self.ctx.clock.now_naive();
        let finished = to == self.upload.declared_size;
        let tails = self
            .ctx
            .db
            .run(move |conn| {
                let step = records::Progress {
                    id: &id,
                    token: &token,
                    from,
                    to,
                    hash_state: &state,
                    parts: &parts,
                    finished,
                    now,
                };
                records::commit(conn, &step)
            })
            .await?;
        self.committed = to;
        if finished {
            self.tails = Some(tails);
        }
        if let Some((tail, at)) = self.old_tail.take() {
            // Written down until it is gone, so a failed delete is swept later.
            match self.store.delete(&tail).await {
                Ok(()) => {
                    let forgot = leftovers::forget_tails(self.ctx, &self.upload.id, vec![at]).await;
                    match forgot {
                        Ok(()) => {
                            if let Some(tails) = &mut self.tails {
                                tails.retain(|&t| t != at);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(upload = %self.upload.id, error = %e, "could not forget a deleted tail");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(upload = %self.upload.id, error = %e, "could not delete the replaced tail; it is swept later");
                }
            }
        }
        Ok(())
    }

    /// Sends what is left in the buffer at the end of a request: the file's last part (or,
    /// for a file stored whole, the file) when the file is complete, otherwise a tail object
    /// the next request starts from. `state` is the file's digest state at `end`.
    async fn store_rest(
        &mut self,
        rest: Bytes,
        finished: bool,
        end: u64,
        state: &[u8],
    ) -> Result<Option<StoredPart>, AppError> {
        let Some(multipart) = self.multipart.clone() else {
            if !finished {
                self.store_tail(rest, end).await?;
                return Ok(None);
            }
            let put = self
                .store
                .put(&self.upload.object_key, rest.clone())
                .await?;
            self.stored_whole = Some(StoredWhole {
                info: put.object,
                bytes: rest,
            });
            return Ok(Some(StoredPart::ending_at(put.part, state)));
        };
        // A file that is an exact number of parts has none left to send; an empty file
        // still needs its one (empty) part.
        if finished && (!rest.is_empty() || end == 0) {
            let number = next_part(self.part_start / self.part_size)
                .ok_or_else(|| AppError::internal("part number out of range"))?;
            let info = put_part(
                &self.store,
                &self.upload.object_key,
                &multipart,
                number,
                rest,
            )
            .await?;
            return Ok(Some(StoredPart::ending_at(info, state)));
        }
        self.store_tail(rest, end).await?;
        Ok(None)
    }

    /// Keeps the bytes past the last whole part for the next request.
    async fn store_tail(&self, rest: Bytes, end: u64) -> Result<(), AppError> {
        if !rest.is_empty() {
            let key = tail_key(&self.upload.object_key, end)
                .ok_or_else(|| AppError::internal("tail key"))?;
            let id = self.upload.id.clone();
            self.ctx
                .db
                .run(move |conn| records::note_tail(conn, &id, end))
                .await?;
            self.store.put(&key, rest).await?;
        }
        Ok(())
    }

    async fn end(mut self, ended: Ended, audited: &Audited) -> Result<Appended, AppError> {
        // A part already on its way is good data whatever happened after it.
        let settled = self.settle_in_flight().await;
        match ended {
            Ended::Failed(e) => return Err(e),
            Ended::Interrupted(cause) if self.checksum.is_some() => {
                tracing::info!(upload = %self.upload.id, %cause, "body interrupted; checksummed chunk discarded");
                return Err(AppError::BadRequest(
                    "The request body was incomplete; the chunk was discarded.".into(),
                ));
            }
            Ended::Interrupted(cause) => {
                tracing::info!(upload = %self.upload.id, %cause, "body interrupted; keeping what arrived");
            }
            Ended::Complete => {}
        }
        settled?;
        if let Some(h) = self.checksum.take()
            && !h.matches()
        {
            return Err(AppError::refused(
                460,
                "The chunk did not match its Upload-Checksum and was discarded. Please send it again.",
            ));
        }
        let end = self.received_end();
        let finished = end == self.upload.declared_size;
        if finished {
            self.check_type(audited).await?;
        }
        let mut parts = std::mem::take(&mut self.unrecorded);
        let rest = std::mem::take(&mut self.buf).freeze();
        let state = self.hasher.save();
        let last = self.store_rest(rest.clone(), finished, end, &state).await;
        // The buffer goes back in every case, empty ones too (a PATCH that ends on a part
        // boundary); the copy sent is gone by now.
        self.ctx.part_buffers.give_back(rest);
        parts.extend(last?);
        // A file this request created and stored whole commits its last byte with its
        // verdict: until then it holds one object and no tail, which expiry removes like
        // that of a request cut short before its commit.
        let mut uncommitted = None;
        if finished && self.created_here && self.multipart.is_none() {
            uncommitted = Some(Uncommitted {
                from: self.committed,
                parts,
            });
            self.tails = Some(Vec::new());
        } else if end != self.committed || !parts.is_empty() {
            self.record(end, &state, parts).await?;
        }
        if finished {
            let received = Received {
                state: Some(state),
                tails: self.tails.take(),
                stored: self.stored_whole.take(),
                uncommitted,
            };
            finish::complete(
                self.ctx,
                self.lease,
                &self.upload,
                &self.bucket,
                &self.store,
                received,
                audited,
            )
            .await?;
            self.committed = end;
        }
        Ok(Appended {
            offset: self.committed,
            expires_at: self.upload.expires_at,
            finished,
        })
    }
}
