//! A study as one ZIP: its stored instances under the paths they were sent with, and the
//! DICOMDIR of their batch when one was sent, so the folder unpacks as the CD was.
//!
//! Written while it is sent, in constant memory: each object is streamed from storage
//! straight into the ZIP writer, whose output goes to the response as chunks through a
//! small bounded channel.
//! Entries are stored, not compressed (pixel data rarely shrinks, and CPU per byte is what
//! a large study costs); ZIP64 fields are written so a study past 4 GiB still opens.
//! Only files that may be downloaded one by one go in (`Upload::is_downloadable`), and the
//! download is audited once, before the first byte, with counts only.

use std::collections::{BTreeMap, HashSet};

use async_zip::base::write::ZipFileWriter;
use async_zip::{Compression, ZipDateTime, ZipDateTimeBuilder, ZipEntryBuilder};
use bytes::Bytes;
use futures_lite::io::AsyncWriteExt as _;
use futures_util::stream::{self, BoxStream, StreamExt as _};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use super::query::{FilePage, Problems, read_detail};
use super::scope::StudyScope;
use crate::app::audit::{self, Actor, Event, Origin, Outcome};
use crate::app::buckets;
use crate::app::error::AppError;
use crate::app::uploads::UploadContext;
use crate::app::uploads::model::{self, Upload};
use crate::domain::DicomUid;
use crate::domain::ids::{BucketId, UploadId};
use crate::infra::storage::blob::BlobStore;

/// Chunks held between the ZIP writer and the response: enough to keep both busy (a
/// chunk is one write of the ZIP writer, at most one block read from storage).
const CHANNEL_CHUNKS: usize = 8;

/// The ZIP as it will be sent.
pub struct Archive {
    /// `study-<uid>.zip`.
    pub filename: String,
    pub instances: usize,
    /// The ZIP's bytes; ends with an error (a cut-off response) if storage fails part-way.
    pub body: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

/// One file of the ZIP.
struct Member {
    name: String,
    upload: Upload,
}

/// The study's ZIP for `scope` (owners and administrators; anyone else finds no study).
pub async fn open(
    ctx: &UploadContext,
    scope: &StudyScope,
    actor: Actor,
    origin: Origin,
    uid: &DicomUid,
) -> Result<Archive, AppError> {
    if !scope.fetches_files() {
        return Err(AppError::NotFound);
    }
    let (scope_in, uid_in) = (scope.clone(), uid.clone());
    let (members, instances, stores) = ctx
        .db
        .run(move |conn| {
            let detail = read_detail(
                conn,
                &scope_in,
                uid_in.as_str(),
                FilePage::all(),
                Problems::Skipped,
            )?
            .ok_or(AppError::NotFound)?;
            let mut ids: Vec<UploadId> = detail
                .instances()
                .map(|f| UploadId::from_db(f.upload_id.clone()))
                .collect();
            let instances = ids.len();
            ids.extend(
                detail
                    .directories
                    .iter()
                    .map(|d| UploadId::from_db(d.upload_id.clone())),
            );
            let uploads = model::downloadable_in_order(conn, &ids)?;
            let order: BTreeMap<&str, usize> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.as_str(), i))
                .collect();
            let series: BTreeMap<&str, Option<i32>> = detail
                .files
                .iter()
                .map(|f| (f.upload_id.as_str(), f.series_number))
                .collect();
            let stored_instances = uploads
                .iter()
                .filter(|u| order.get(u.id.as_str()).is_some_and(|i| *i < instances))
                .count();
            let members = name_members(uploads, |u| series.get(u.id.as_str()).copied().flatten());
            let bucket_ids: HashSet<BucketId> =
                members.iter().map(|m| m.upload.bucket_id.clone()).collect();
            let stores = bucket_ids
                .into_iter()
                .map(|id| buckets::queries::get(conn, &id))
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, AppError>((members, stored_instances, stores))
        })
        .await?;
    if instances == 0 {
        return Err(AppError::NotFound);
    }
    let mut opened: BTreeMap<String, BlobStore> = BTreeMap::new();
    for bucket in &stores {
        opened.insert(bucket.id.to_string(), ctx.store_for(bucket).await?);
    }
    let event = Event::new(actor, "study.download", Outcome::Success)
        .origin(origin)
        .target("study", uid.as_str())
        .details(json!({
            "instances": instances,
            "files": members.len(),
        }));
    audit::record_alone(&ctx.db, event).await?;
    Ok(Archive {
        filename: format!("study-{uid}.zip"),
        instances,
        body: stream_zip(members, opened),
    })
}

/// Names inside the ZIP: the path the file was sent under, or `series-<n>/<filename>`;
/// a name already taken (ignoring case, as many file systems do) gets `-2`, `-3`...
fn name_members(uploads: Vec<Upload>, series: impl Fn(&Upload) -> Option<i32>) -> Vec<Member> {
    let mut taken: HashSet<String> = HashSet::new();
    uploads
        .into_iter()
        .map(|upload| {
            let wanted = match &upload.relative_path {
                Some(path) => path.as_str().to_string(),
                None if upload.is_dicom() && series(&upload).is_some() => format!(
                    "series-{}/{}",
                    series(&upload).unwrap_or_default(),
                    upload.filename
                ),
                None => upload.filename.clone(),
            };
            let mut name = wanted.clone();
            let mut n = 2;
            while !taken.insert(name.to_lowercase()) {
                name = numbered(&wanted, n);
                n += 1;
            }
            Member { name, upload }
        })
        .collect()
}

/// `dir/name.ext` -> `dir/name-n.ext`.
fn numbered(name: &str, n: u32) -> String {
    let (dir, file) = match name.rsplit_once('/') {
        Some((dir, file)) => (format!("{dir}/"), file),
        None => (String::new(), name),
    };
    match file.split_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{dir}{stem}-{n}.{ext}"),
        _ => format!("{dir}{file}-{n}"),
    }
}

/// The ZIP as a byte stream: a task writes it as chunks into a channel, the response
/// sends them. A failure part-way ends the stream with an error, so the client sees a
/// broken transfer rather than a ZIP that merely lacks files.
fn stream_zip(
    members: Vec<Member>,
    stores: BTreeMap<String, BlobStore>,
) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
    let (tx, mut rx) = mpsc::channel(CHANNEL_CHUNKS);
    let writer = ChunkWriter(PollSender::new(tx));
    let task = tokio::spawn(async move {
        let result = write_zip(writer, &members, &stores).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "study ZIP stopped part-way");
        }
        result
    });
    let ending = stream::once(async move {
        let end: Option<Result<Bytes, std::io::Error>> = match task.await {
            Ok(Ok(())) => None,
            _ => Some(Err(std::io::Error::other("the ZIP could not be completed"))),
        };
        end
    })
    .filter_map(|end| async move { end });
    stream::poll_fn(move |cx| rx.poll_recv(cx))
        .map(Ok)
        .chain(ending)
        .boxed()
}

/// The writing end of the ZIP's stream: each write becomes one chunk of the response. A
/// pipe copied every byte twice more (into the pipe, then out of it into a read buffer);
/// this copies it once.
struct ChunkWriter(PollSender<Bytes>);

impl tokio::io::AsyncWrite for ChunkWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if buf.is_empty() {
            return std::task::Poll::Ready(Ok(0));
        }
        let gone = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        if std::task::ready!(self.0.poll_reserve(cx)).is_err() {
            return std::task::Poll::Ready(Err(gone()));
        }
        self.0
            .send_item(Bytes::copy_from_slice(buf))
            .map_err(|_| gone())?;
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.0.close();
        std::task::Poll::Ready(Ok(()))
    }
}

async fn write_zip(
    writer: ChunkWriter,
    members: &[Member],
    stores: &BTreeMap<String, BlobStore>,
) -> Result<(), AppError> {
    let mut zip = ZipFileWriter::with_tokio(writer);
    for member in members {
        let store = stores
            .get(member.upload.bucket_id.as_str())
            .ok_or_else(|| AppError::internal("bucket of a study file not opened"))?;
        let (_, mut object) = store.get(&member.upload.object_key, None).await?;
        let entry = ZipEntryBuilder::new(member.name.clone().into(), Compression::Stored)
            .unix_permissions(0o644)
            .last_modification_date(zip_date(&member.upload));
        let mut out = zip.write_entry_stream(entry).await.map_err(zip_error)?;
        let mut written: u64 = 0;
        while let Some(chunk) = object.next().await {
            let chunk = chunk?;
            written += chunk.len() as u64;
            crate::infra::metrics::metrics()
                .bytes_downloaded
                .inc_by(chunk.len() as u64);
            out.write_all(&chunk).await.map_err(AppError::internal)?;
        }
        if written != member.upload.declared_size {
            // Verified at completion; a different length now is damage, never sent as fine.
            return Err(AppError::internal(format!(
                "stored object of upload {} is {written} bytes, expected {}",
                member.upload.id, member.upload.declared_size
            )));
        }
        out.close().await.map_err(zip_error)?;
    }
    let mut inner = zip.close().await.map_err(zip_error)?.into_inner();
    tokio::io::AsyncWriteExt::shutdown(&mut inner)
        .await
        .map_err(AppError::internal)?;
    Ok(())
}

/// When the file was stored (UTC), so unpacked files carry a meaningful date.
fn zip_date(upload: &Upload) -> ZipDateTime {
    use chrono::{Datelike as _, Timelike as _};
    let at = upload.completed_at.unwrap_or(upload.created_at);
    ZipDateTimeBuilder::new()
        .year(at.year())
        .month(at.month())
        .day(at.day())
        .hour(at.hour())
        .minute(at.minute())
        .second(at.second())
        .build()
}

fn zip_error(e: async_zip::error::ZipError) -> AppError {
    AppError::internal(format!("ZIP writer: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_name_gets_a_number_before_its_extension() {
        assert_eq!(numbered("CD/IM0001", 2), "CD/IM0001-2");
        assert_eq!(numbered("series-1/a.dcm", 3), "series-1/a-3.dcm");
        assert_eq!(numbered(".hidden", 2), ".hidden-2");
    }
}
