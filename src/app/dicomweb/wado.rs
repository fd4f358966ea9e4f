//! WADO-RS retrievals: a study, series or instance as `multipart/related;
//! type="application/dicom"`, each part one stored instance exactly as it was uploaded,
//! streamed from storage part by part (never an instance held in memory); and the same
//! levels' metadata as DICOM JSON. Transcoding is not offered: a request for another
//! transfer syntax than the stored one is refused (406), never answered with other bytes.
//! Each retrieval is audited once, before the first byte, with counts only.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt as _};
use serde_json::json;

use super::json::{self, DataSet};
use super::qido;
use crate::app::audit::{self, Actor, Event, Origin, Outcome};
use crate::app::buckets;
use crate::app::error::AppError;
use crate::app::uploads::UploadContext;
use crate::app::uploads::model::{self, Upload};
use crate::domain::DicomUid;
use crate::domain::ids::{BucketId, UploadId, UserId};
use crate::infra::db::repo::dicomweb::{self as repo, Filters, InstanceRow};
use crate::infra::storage::blob::BlobStore;

/// What a retrieval names: a study, or a series in it, or an instance in that.
#[derive(Debug, Clone)]
pub struct Target {
    pub study: DicomUid,
    pub series: Option<DicomUid>,
    pub instance: Option<DicomUid>,
}

impl Target {
    fn filters(&self) -> Filters {
        Filters {
            study_uids: vec![self.study.as_str().to_string()],
            series_uids: self.series.iter().map(|u| u.as_str().to_string()).collect(),
            sop_uids: self
                .instance
                .iter()
                .map(|u| u.as_str().to_string())
                .collect(),
            ..Filters::default()
        }
    }

    fn level(&self) -> &'static str {
        match (&self.series, &self.instance) {
            (_, Some(_)) => "instance",
            (Some(_), None) => "series",
            (None, None) => "study",
        }
    }

    fn audit_target(&self) -> (&'static str, String) {
        match (&self.series, &self.instance) {
            (_, Some(sop)) => ("instance", sop.to_string()),
            (Some(series), None) => ("series", series.to_string()),
            (None, None) => ("study", self.study.to_string()),
        }
    }
}

/// The transfer syntax the client accepts (from its Accept header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Syntax {
    /// Whatever is stored (`transfer-syntax=*`, or none named).
    Stored,
    /// Only this one; any instance stored in another cannot be sent as it is.
    Exactly(String),
}

/// A multipart body about to be sent.
pub struct Retrieval {
    pub boundary: String,
    pub instances: usize,
    pub body: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

/// One part: the upload to stream and the transfer syntax to label it with.
struct Part {
    upload: Upload,
    transfer_syntax: Option<String>,
}

/// The target's instances among `owner`'s, or 404 when there are none.
async fn rows(
    ctx: &UploadContext,
    owner: &UserId,
    target: &Target,
) -> Result<Vec<InstanceRow>, AppError> {
    let (owner, filters) = (owner.as_str().to_string(), target.filters());
    let rows = ctx
        .db
        .run(move |conn| repo::instances(conn, &owner, &filters))
        .await?;
    if rows.is_empty() {
        return Err(AppError::NotFound);
    }
    Ok(rows)
}

/// The target's instances as one multipart body, audited as `dicomweb.retrieve`.
pub async fn retrieve(
    ctx: &UploadContext,
    (owner, actor, origin): (&UserId, Actor, Origin),
    target: &Target,
    syntax: &Syntax,
) -> Result<Retrieval, AppError> {
    let rows = rows(ctx, owner, target).await?;
    if let Syntax::Exactly(wanted) = syntax
        && let Some(other) = rows
            .iter()
            .find(|r| r.transfer_syntax_uid.as_deref() != Some(wanted.as_str()))
    {
        return Err(AppError::refused(
            406,
            format!(
                "instances are sent as stored and this one is stored in transfer syntax \
                 {}, not {wanted}; ask with transfer-syntax=* (transcoding is not offered)",
                other.transfer_syntax_uid.as_deref().unwrap_or("unknown")
            ),
        ));
    }
    let ids: Vec<UploadId> = rows
        .iter()
        .map(|r| UploadId::from_db(r.upload_id.clone()))
        .collect();
    let syntaxes: BTreeMap<String, Option<String>> = rows
        .iter()
        .map(|r| (r.upload_id.clone(), r.transfer_syntax_uid.clone()))
        .collect();
    let (parts, stores) = ctx
        .db
        .run(move |conn| {
            let uploads = model::downloadable_in_order(conn, &ids)?;
            let bucket_ids: HashSet<BucketId> =
                uploads.iter().map(|u| u.bucket_id.clone()).collect();
            let stores = bucket_ids
                .into_iter()
                .map(|id| buckets::queries::get(conn, &id))
                .collect::<Result<Vec<_>, _>>()?;
            let parts: Vec<Part> = uploads
                .into_iter()
                .map(|upload| Part {
                    transfer_syntax: syntaxes.get(upload.id.as_str()).cloned().flatten(),
                    upload,
                })
                .collect();
            Ok::<_, AppError>((parts, stores))
        })
        .await?;
    if parts.is_empty() {
        return Err(AppError::NotFound);
    }
    let mut opened: BTreeMap<String, BlobStore> = BTreeMap::new();
    for bucket in &stores {
        opened.insert(bucket.id.to_string(), ctx.store_for(bucket).await?);
    }
    let (kind, id) = target.audit_target();
    let event = Event::new(actor, "dicomweb.retrieve", Outcome::Success)
        .origin(origin)
        .target(kind, id)
        .details(json!({
            "level": target.level(),
            "study": target.study.as_str(),
            "instances": parts.len(),
        }));
    audit::record_alone(&ctx.db, event).await?;
    let boundary = crate::infra::crypto::random_token().map_err(AppError::internal)?;
    Ok(Retrieval {
        instances: parts.len(),
        body: multipart(parts, opened, boundary.clone()),
        boundary,
    })
}

/// The parts one after the other: each object is opened only when its turn comes and
/// passed on chunk by chunk. A failure part-way ends the body with an error, so the client
/// sees a broken transfer, never a message that merely lacks instances.
fn multipart(
    parts: Vec<Part>,
    stores: BTreeMap<String, BlobStore>,
    boundary: String,
) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
    let stores = Arc::new(stores);
    let closing = Bytes::from(format!("--{boundary}--\r\n"));
    stream::iter(parts)
        .flat_map(move |part| one_part(part, stores.clone(), &boundary))
        .chain(stream::once(async move { Ok(closing) }))
        .boxed()
}

fn one_part(
    part: Part,
    stores: Arc<BTreeMap<String, BlobStore>>,
    boundary: &str,
) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
    let content_type = match &part.transfer_syntax {
        Some(ts) => format!("application/dicom; transfer-syntax={ts}"),
        None => "application/dicom".to_string(),
    };
    let head = Bytes::from(format!(
        "--{boundary}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        part.upload.declared_size
    ));
    let expected = part.upload.declared_size;
    let written = Arc::new(AtomicU64::new(0));
    let counted = written.clone();
    let body = stream::once(async move {
        let store = stores
            .get(part.upload.bucket_id.as_str())
            .ok_or_else(|| std::io::Error::other("bucket of an instance not opened"))?;
        let (_, object) = store
            .get(&part.upload.object_key, None)
            .await
            .map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>(object.map(|chunk| chunk.map_err(std::io::Error::other)))
    })
    .map(|opened| match opened {
        Ok(object) => object.boxed(),
        Err(e) => stream::once(async move { Err(e) }).boxed(),
    })
    .flatten()
    .inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            crate::infra::metrics::metrics()
                .bytes_downloaded
                .inc_by(chunk.len() as u64);
        }
    });
    // Verified at completion; a different length now is damage, never sent as fine.
    let check = stream::once(async move {
        let n = written.load(Ordering::Relaxed);
        if n == expected {
            Ok(Bytes::from_static(b"\r\n"))
        } else {
            tracing::error!(sent = n, expected, "stored instance changed length");
            Err(std::io::Error::other("stored instance is damaged"))
        }
    });
    stream::once(async move { Ok(head) })
        .chain(body)
        .chain(check)
        .boxed()
}

/// The target's instances as DICOM JSON (what the index holds and the opened patient
/// attributes), audited as `dicomweb.metadata`.
pub async fn metadata(
    ctx: &UploadContext,
    (owner, actor, origin): (&UserId, Actor, Origin),
    target: &Target,
    base: &str,
) -> Result<Vec<DataSet>, AppError> {
    let rows = rows(ctx, owner, target).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut ds = qido::instance_set(row, base);
        qido::study_into(&mut ds, row);
        qido::series_into(&mut ds, row);
        // RetrieveURL and availability are search attributes, not an instance's metadata.
        ds.retain(|a| a != json::RETRIEVE_URL && a != json::INSTANCE_AVAILABILITY);
        let patient = qido::patient_of(ctx, &[row])?;
        qido::patient_into(&mut ds, &patient);
        out.push(ds);
    }
    let (kind, id) = target.audit_target();
    let event = Event::new(actor, "dicomweb.metadata", Outcome::Success)
        .origin(origin)
        .target(kind, id)
        .details(json!({
            "level": target.level(),
            "study": target.study.as_str(),
            "instances": out.len(),
        }));
    audit::record_alone(&ctx.db, event).await?;
    Ok(out)
}
