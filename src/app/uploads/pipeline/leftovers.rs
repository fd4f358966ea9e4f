//! What an upload may leave in storage besides its object: multipart uploads nobody names
//! (a crash between creating one and writing down its id, or during a tail's own one-part
//! upload) and partial-tail objects (a crash between storing a tail and moving the offset,
//! or before the tail it replaced was deleted). Tails are written down before they are
//! stored (`upload_tails`), and every multipart upload of an upload sits under its object
//! key, so both can be found without listing the bucket.

use crate::app::error::AppError;
use crate::app::uploads::UploadContext;
use crate::app::uploads::layout::tail_key;
use crate::domain::ids::UploadId;
use crate::infra::storage::blob::{BlobStore, ObjectKey, StorageError};

use super::records;

/// Tail offsets written down for the upload.
pub async fn recorded_tails(ctx: &UploadContext, id: &UploadId) -> Result<Vec<u64>, AppError> {
    let id = id.clone();
    ctx.db.run(move |conn| records::tails(conn, &id)).await
}

/// Forgets tails whose objects are gone.
pub async fn forget_tails(
    ctx: &UploadContext,
    id: &UploadId,
    offsets: Vec<u64>,
) -> Result<(), AppError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let id = id.clone();
    ctx.db
        .run(move |conn| records::forget_tails(conn, &id, &offsets))
        .await
}

/// Aborts every multipart upload under `key` and deletes the tails at `offsets`. Missing
/// ones count as done, so this can be repeated until it succeeds.
pub async fn sweep(
    store: &BlobStore,
    key: &ObjectKey,
    offsets: &[u64],
) -> Result<(), StorageError> {
    for (under, multipart) in store.list_multipart_uploads_under(key).await? {
        store.abort(&under, &multipart).await?;
    }
    for &offset in offsets {
        if let Some(tail) = tail_key(key, offset) {
            store.delete(&tail).await?;
        }
    }
    Ok(())
}

/// After an upload finished (completed, cancelled or refused): sweep what it left, best
/// effort. A failure leaves unused objects, never a wrong file; it is logged and the rows
/// stay, so nothing is forgotten.
pub async fn sweep_quietly(ctx: &UploadContext, store: &BlobStore, id: &UploadId, key: &ObjectKey) {
    let Some(offsets) = tails_quietly(ctx, id).await else {
        return;
    };
    sweep_and_forget(ctx, store, id, key, offsets).await;
}

/// The same after a verified completion, where only a tail can have left anything: the
/// upload's own multipart upload was named before its first byte and is now the object,
/// and a tail is written down before it is stored. With no tail written down there is
/// nothing to list, which spares a small file one storage request. `known`: the tails
/// written down, when the caller read them with the last byte's commit.
pub async fn sweep_completed(
    ctx: &UploadContext,
    store: &BlobStore,
    id: &UploadId,
    key: &ObjectKey,
    known: Option<Vec<u64>>,
) {
    let tails = match known {
        Some(tails) => Some(tails),
        None => tails_quietly(ctx, id).await,
    };
    match tails {
        Some(offsets) if !offsets.is_empty() => {
            sweep_and_forget(ctx, store, id, key, offsets).await;
        }
        _ => {}
    }
}

async fn tails_quietly(ctx: &UploadContext, id: &UploadId) -> Option<Vec<u64>> {
    match recorded_tails(ctx, id).await {
        Ok(offsets) => Some(offsets),
        Err(e) => {
            tracing::warn!(upload = %id, error = %e, "could not read the upload's tails");
            None
        }
    }
}

async fn sweep_and_forget(
    ctx: &UploadContext,
    store: &BlobStore,
    id: &UploadId,
    key: &ObjectKey,
    offsets: Vec<u64>,
) {
    if let Err(e) = sweep(store, key, &offsets).await {
        tracing::warn!(upload = %id, error = %e, "could not remove the upload's leftovers");
        return;
    }
    if let Err(e) = forget_tails(ctx, id, offsets).await {
        tracing::warn!(upload = %id, error = %e, "could not forget the upload's tails");
    }
}
