//! Which names and contents are taken as DICOM: any name for DICOM content (no extension,
//! `DICOMDIR`, a SOP instance UID, `.dcm` in any case), nothing else without an extension,
//! and never a program, whatever it is called.

use diesel::prelude::*;
use medport::infra::db::schema::{buckets, dicom_instances};

use super::{index_state, upload_count, upload_named, upload_row, uploader};
use crate::both_backends;
use crate::helpers::dicom::{Instance, PATIENT};
use crate::helpers::{Backend, TestApp, s3_client};
use crate::tus_support::{bytes, dicom, pdf, spawn_on_s3};

const STUDY: &str = "1.2.826.0.1.3680043.99.1";

async fn a_dicom_file_without_an_extension_is_accepted_and_indexed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tus = uploader(&app).await;
    let instance = Instance::of(STUDY, 1, 1);
    let (status, id, body) = tus
        .send_in_batch(
            None,
            "CD/PT000000/ST000000/SE000000/IM000000",
            &instance.bytes(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = id.unwrap();
    let (state, study, sealed): (String, Option<String>, Option<Vec<u8>>) = dicom_instances::table
        .find(&id)
        .select((
            dicom_instances::state,
            dicom_instances::study_uid,
            dicom_instances::patient_sealed,
        ))
        .first(&mut *app.db.conn().unwrap())
        .unwrap();
    assert_eq!(state, "indexed");
    assert_eq!(study.as_deref(), Some(instance.study.as_str()));
    let sealed = sealed.expect("patient attributes are sealed");
    let surname = PATIENT.split('^').nth(1).unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains(surname));
}

async fn dicom_content_is_accepted_whatever_the_file_is_called(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tus = uploader(&app).await;
    let names = [
        "IM000001",
        "DICOMDIR",
        "1.2.840.113619.2.55.3.604688119.969.1268071029.320",
        "SCAN.DCM",
        "scan.dcm",
        "Scan.Dcm",
    ];
    for (n, name) in (1..).zip(names) {
        let instance = Instance::of(STUDY, 1, n);
        let (status, id, body) = tus
            .send_in_batch(None, &format!("CD/{name}"), &instance.bytes())
            .await;
        assert_eq!(status, 201, "{name}: {body}");
        let id = id.unwrap();
        assert_eq!(upload_row(&app, &id).status, "completed", "{name}");
        assert_eq!(index_state(&app, &id), "indexed", "{name}");
    }
}

fn allow_only(app: &TestApp, types: &str) {
    diesel::update(buckets::table.find(crate::buckets::SYSTEM_ID))
        .set(buckets::allowed_extensions.eq(Some(types)))
        .execute(&mut *app.db.conn().unwrap())
        .unwrap();
}

async fn a_bucket_takes_extensionless_files_only_when_it_takes_dicom(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tus = uploader(&app).await;
    let instance = Instance::of(STUDY, 1, 1);

    allow_only(&app, "pdf,zip");
    let (status, id, body) = tus.send_in_batch(None, "IM000001", &instance.bytes()).await;
    assert_eq!(status, 415, "{body}");
    assert!(id.is_none());
    assert!(body.contains("does not accept DICOM files"), "{body}");
    assert!(body.contains(".pdf, .zip"), "{body}");
    assert_eq!(upload_count(&app), 0);
    let refusals = app.audit_rows("upload.reject");
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].details["reason"], "type not allowed in bucket");

    allow_only(&app, "dcm");
    let (status, id, body) = tus.send_in_batch(None, "IM000001", &instance.bytes()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(index_state(&app, &id.unwrap()), "indexed");
    // Only DICOM: a PDF is still refused there.
    let (status, _, _) = tus.send_in_batch(None, "report.pdf", &pdf(500, 1)).await;
    assert_eq!(status, 415);
}

async fn an_extensionless_file_that_is_not_dicom_is_refused_and_nothing_is_kept(backend: Backend) {
    let (app, bucket) = spawn_on_s3(backend).await;
    let tus = uploader(&app).await;
    let text = "Notes from the clinic, plain text.\n"
        .repeat(20)
        .into_bytes();
    for (name, data) in [("REPORT", pdf(4096, 2)), ("README", text)] {
        let (status, _, body) = tus.send_in_batch(None, name, &data).await;
        assert_eq!(status, 415, "{name}: {body}");
        assert!(
            body.contains("has no extension of an accepted type"),
            "{body}"
        );
        assert!(body.contains("content is not DICOM"), "{body}");
        let id = upload_named(&app, name);
        let row = upload_row(&app, &id);
        assert_eq!(row.status, "rejected", "{name}");
        assert!(
            row.status_reason.unwrap().contains("not DICOM"),
            "{name}: the reason is kept for the history page"
        );
        assert_eq!(tus.head(&id).await.status(), 404, "{name}");
        let refusal = app
            .audit_rows("upload.reject")
            .into_iter()
            .find(|r| r.target.as_deref() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("{name}: no upload.reject"));
        assert_eq!(refusal.outcome, "denied");
    }
    let s3 = s3_client();
    let pending = s3
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(pending.uploads().is_empty(), "storage was aborted");
    let objects = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert!(objects.contents().is_empty(), "nothing is left stored");
}

async fn a_program_in_the_preamble_is_refused_whatever_the_name(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tus = uploader(&app).await;
    let mut program = dicom(4096, 6);
    program[..2].copy_from_slice(b"MZ");
    for name in ["IM000002", "scan.dcm"] {
        let (status, _, body) = tus.send_in_batch(None, name, &program).await;
        assert_eq!(status, 415, "{name}: {body}");
        assert!(body.contains("a Windows executable"), "{name}: {body}");
        assert_eq!(
            upload_row(&app, &upload_named(&app, name)).status,
            "rejected"
        );
    }
}

async fn programs_and_autorun_files_are_refused_before_anything_is_created(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tus = uploader(&app).await;
    for name in ["evil.exe", "autorun.inf", "setup.exe", "AUTORUN.INF"] {
        let res = tus.create(100, &[("filename", name)]).await;
        assert_eq!(res.status(), 415, "{name}");
        let res = tus
            .create_with_body(
                100,
                &[("filename", name), ("relativePath", &format!("CD/{name}"))],
                Some(bytes(100, 1)),
            )
            .await;
        assert_eq!(res.status(), 415, "{name}");
    }
    assert_eq!(upload_count(&app), 0);
}

async fn a_header_left_unread_at_completion_is_indexed_by_the_next_cleanup_pass(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tus = uploader(&app).await;
    let instance = Instance::of(STUDY, 1, 7);
    let (status, id, body) = tus
        .send_in_batch(None, "CD/IM000007", &instance.bytes())
        .await;
    assert_eq!(status, 201, "{body}");
    let id = id.unwrap();
    // As when storage could not be read back at completion: the file is complete, its
    // header is not indexed.
    diesel::delete(dicom_instances::table.find(&id))
        .execute(&mut *app.db.conn().unwrap())
        .unwrap();

    let ctx = crate::cleanup::support::context(&app, None);
    medport::app::uploads::cleanup::run_once(&ctx)
        .await
        .unwrap();
    assert_eq!(index_state(&app, &id), "indexed");
    // Nothing is indexed twice.
    medport::app::uploads::cleanup::run_once(&ctx)
        .await
        .unwrap();
    let rows: i64 = dicom_instances::table
        .count()
        .get_result(&mut *app.db.conn().unwrap())
        .unwrap();
    assert_eq!(rows, 1);
}

both_backends!(
    a_dicom_file_without_an_extension_is_accepted_and_indexed,
    dicom_content_is_accepted_whatever_the_file_is_called,
    a_bucket_takes_extensionless_files_only_when_it_takes_dicom,
    an_extensionless_file_that_is_not_dicom_is_refused_and_nothing_is_kept,
    a_program_in_the_preamble_is_refused_whatever_the_name,
    programs_and_autorun_files_are_refused_before_anything_is_created,
    a_header_left_unread_at_completion_is_indexed_by_the_next_cleanup_pass,
);
