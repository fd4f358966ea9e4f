//! Sending a study as a script does (a batch, then each file over tus) and reading what
//! comes back: JSON, pages and ZIPs.

use std::collections::BTreeMap;

use crate::helpers::TestApp;
use crate::helpers::dicom::{Instance, dicomdir};
use crate::tus_support::{Tus, api_key};

/// A study UID no other test file uses.
pub const STUDY: &str = "1.2.826.0.1.3680043.99.70";

/// One file to send: its path inside the dropped folder and its bytes.
pub type File = (String, Vec<u8>);

/// The instances of a CD: `series` of `per_series` instances each, under
/// `CD/SE<s>/IM<n>`, with the DICOMDIR that lists them at `CD/DICOMDIR`.
pub fn cd(study: &str, series: i32, per_series: i32) -> (Vec<File>, File) {
    let mut files = Vec::new();
    for s in 1..=series {
        for n in 1..=per_series {
            let path = format!("CD/SE{s}/IM{n}");
            files.push((path, Instance::of(study, s, n).bytes()));
        }
    }
    let listed: Vec<(Vec<String>, String)> = (1..=series)
        .flat_map(|s| {
            (1..=per_series).map(move |n| {
                (
                    vec![format!("SE{s}"), format!("IM{n}")],
                    Instance::of(study, s, n).sop,
                )
            })
        })
        .collect();
    let refs: Vec<(Vec<&str>, &str)> = listed
        .iter()
        .map(|(p, sop)| (p.iter().map(String::as_str).collect(), sop.as_str()))
        .collect();
    (files, ("CD/DICOMDIR".to_string(), dicomdir(study, &refs)))
}

/// A new uploader, signed in, sends a CD of `series` x `per_series` instances and its
/// DICOMDIR in one batch; returns their key (scopes `upload` and `read`) and the files.
pub async fn uploader_sends_cd(app: &TestApp, series: i32, per_series: i32) -> (String, Vec<File>) {
    app.uploader().await;
    let key = api_key(app, &["upload", "read"]).await;
    let (mut files, dir) = cd(STUDY, series, per_series);
    files.push(dir);
    send_batch(app, &key, &files).await;
    (key, files)
}

/// Declares a batch of `files` with `key` and sends them all in it; returns the batch id
/// and the upload ids, in order.
pub async fn send_batch(app: &TestApp, key: &str, files: &[File]) -> (String, Vec<String>) {
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    let (client, _) = app.new_browser();
    let res = client
        .post(app.url("/batches"))
        .header("Authorization", format!("Bearer {key}"))
        .json(&serde_json::json!({ "files": files.len(), "bytes": bytes }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let batch: serde_json::Value = res.json().await.unwrap();
    let batch = batch["id"].as_str().unwrap().to_string();
    let tus = Tus::with_key(app, key);
    let mut ids = Vec::new();
    for (path, data) in files {
        let (status, id, body) = tus.send_in_batch(Some(&batch), path, data).await;
        assert_eq!(status, 201, "{path}: {body}");
        ids.push(id.unwrap());
    }
    (batch, ids)
}

/// GET with an API key, as JSON (asserting 200).
pub async fn api_json(app: &TestApp, path: &str, key: &str) -> serde_json::Value {
    let res = crate::helpers::api_get(app, path, key).await;
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

/// A page in the main browser, with its status.
pub async fn page(app: &TestApp, path: &str) -> (u16, String) {
    let res = app.get_html(path).await;
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Every entry of a ZIP, by name, each checked against its CRC-32.
// The in-memory reader is deprecated for a lower-level one; it reads what a test needs.
#[allow(deprecated)]
pub async fn unzip(bytes: Vec<u8>) -> BTreeMap<String, Vec<u8>> {
    use async_zip::base::read::mem::ZipFileReader;
    let reader = ZipFileReader::new(bytes).await.expect("a readable ZIP");
    let mut out = BTreeMap::new();
    for i in 0..reader.file().entries().len() {
        let entry = &reader.file().entries()[i];
        assert_eq!(entry.compression(), async_zip::Compression::Stored);
        let name = entry.filename().as_str().unwrap().to_string();
        let mut data = Vec::new();
        reader
            .reader_with_entry(i)
            .await
            .unwrap()
            .read_to_end_checked(&mut data)
            .await
            .unwrap();
        out.insert(name, data);
    }
    out
}

/// Writes an upload row of 7,000 bytes straight to the database, as the pipeline leaves it
/// in `status` (completed ones with their time and digest), for tests about the queries
/// rather than the uploads.
pub fn write_upload(
    conn: &mut medport::infra::db::DbConnection,
    id: &str,
    user: &str,
    batch: Option<&str>,
    path: &str,
    status: &str,
    now: chrono::NaiveDateTime,
) -> diesel::QueryResult<()> {
    use diesel::prelude::*;
    use medport::infra::db::repo::uploads::{NewUpload, insert};
    use medport::infra::db::schema::uploads;

    let key = format!("uploads/{id}");
    insert(
        conn,
        &NewUpload {
            id,
            user_id: user,
            bucket_id: medport::app::buckets::SYSTEM_BUCKET_ID,
            api_key_id: None,
            filename: path.rsplit('/').next().unwrap(),
            content_type: None,
            extension: "dcm",
            declared_size: 7000,
            upload_offset: 7000,
            part_size: 8 << 20,
            object_key: &key,
            status,
            hash_state: None,
            client_checksum: None,
            expires_at: now,
            created_at: now,
            updated_at: now,
            batch_id: batch,
            relative_path: Some(path),
            request_id: None,
            submission_id: None,
            lease_token: None,
            lease_until: None,
        },
    )
    .unwrap();
    if status == "completed" {
        diesel::update(uploads::table.find(id))
            .set((
                uploads::completed_at.eq(now),
                uploads::sha256.eq("00".repeat(32)),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Writes a batch row straight to the database (see [`write_upload`]).
pub fn write_batch(
    conn: &mut medport::infra::db::DbConnection,
    id: &str,
    user: &str,
    files: i64,
    now: chrono::NaiveDateTime,
) -> diesel::QueryResult<()> {
    use diesel::prelude::*;
    use medport::infra::db::schema::upload_batches;

    diesel::insert_into(upload_batches::table)
        .values((
            upload_batches::id.eq(id),
            upload_batches::user_id.eq(user),
            upload_batches::bucket_id.eq(medport::app::buckets::SYSTEM_BUCKET_ID),
            upload_batches::declared_files.eq(files),
            upload_batches::declared_bytes.eq(0),
            upload_batches::started_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// One DICOM upload of `study` in `status` with its index row, written straight to the
/// database (`series` 0 stands for none: no series UID, number or modality).
#[allow(clippy::too_many_arguments)]
pub fn write_instance(
    conn: &mut medport::infra::db::DbConnection,
    user: &str,
    batch: &str,
    study: &str,
    i: usize,
    series: usize,
    status: &str,
    at: chrono::NaiveDateTime,
) -> String {
    use medport::infra::db::repo::dicom_instances::{NewInstance, insert};

    let id = uuid::Uuid::now_v7().to_string();
    let path = format!("CD/SE{series}/IM{i}");
    write_upload(conn, &id, user, Some(batch), &path, status, at).unwrap();
    let (series_uid, sop) = (format!("{study}.{series}"), format!("{study}.{series}.{i}"));
    let description = format!("Series {}", i % 3);
    let date = format!("2026120{}", i % 9);
    let number = i32::try_from(series).unwrap();
    insert(
        conn,
        &NewInstance {
            upload_id: &id,
            user_id: user,
            state: "indexed",
            study_uid: Some(study),
            series_uid: (series > 0).then_some(series_uid.as_str()),
            sop_instance_uid: Some(&sop),
            modality: (series > 0).then_some(if series == 1 { "CT" } else { "SEG" }),
            study_date: Some(&date),
            study_description: Some(&description),
            series_description: Some(&description),
            series_number: (series > 0).then_some(number),
            instance_number: Some(i32::try_from(i).unwrap()),
            indexed_at: at,
            ..NewInstance::default()
        },
    )
    .unwrap();
    id
}
