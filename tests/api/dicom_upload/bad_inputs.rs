//! What clinicians' folders really hold: empty files, cut-off headers, a DICOMDIR without
//! its images, the same instance twice (with the same or other bytes), and paths that try
//! to climb out of the folder.

use diesel::prelude::*;
use medport::infra::db::schema::dicomdir_entries;

use super::{batch_file, index_row, index_state, problem_of, upload_count, upload_row, uploader};
use crate::both_backends;
use crate::helpers::dicom::{Instance, dicomdir};
use crate::helpers::{Backend, TestApp};

const STUDY: &str = "1.2.826.0.1.3680043.99.3";

async fn an_empty_file_is_refused_as_too_short_and_listed_as_a_problem(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tus = uploader(&app).await;
    let batch = tus.open_batch(None, 2).await;
    for path in ["CD/EMPTY", "CD/empty.dcm"] {
        let (status, _, body) = tus.send_in_batch(Some(&batch), path, &[]).await;
        assert_eq!(status, 415, "{path}: {body}");
        assert!(body.contains("too short (0 bytes)"), "{path}: {body}");
        assert!(body.contains("DICOM"), "{path}: {body}");
    }
    let summary = tus.batch_status(&batch).await;
    assert_eq!(summary["stored"], 0, "{summary}");
    assert_eq!(summary["problems"], 2, "{summary}");
    for path in ["CD/EMPTY", "CD/empty.dcm"] {
        assert_eq!(batch_file(&summary, path)["status"], "rejected");
        let problem = problem_of(&summary, path);
        assert!(problem.contains("too short"), "{path}: {problem}");
    }
}

async fn a_file_cut_off_in_its_header_is_kept_and_marked_unreadable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tus = uploader(&app).await;
    let batch = tus.open_batch(None, 1).await;
    // Starts like DICOM, ends in the middle of the patient's name.
    let cut = Instance::of(STUDY, 1, 1).cut_in_patient_name(10);
    let (status, id, body) = tus.send_in_batch(Some(&batch), "CD/IM_CUT", &cut).await;
    assert_eq!(status, 201, "{body}");
    let id = id.unwrap();
    assert_eq!(upload_row(&app, &id).status, "completed", "kept as a file");
    assert_eq!(index_state(&app, &id), "unreadable");
    let summary = tus.batch_status(&batch).await;
    assert_eq!(
        (&summary["stored"], &summary["problems"]),
        (&1.into(), &1.into())
    );
    assert_eq!(batch_file(&summary, "CD/IM_CUT")["dicom"], "unreadable");
    let problem = problem_of(&summary, "CD/IM_CUT");
    assert!(problem.starts_with("DICOM header unreadable"), "{problem}");
}

async fn a_dicomdir_is_kept_with_the_files_it_lists_even_when_they_never_come(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tus = uploader(&app).await;
    let batch = tus.open_batch(None, 3).await;
    let (first, second) = (format!("{STUDY}.1.1"), format!("{STUDY}.1.2"));
    let directory = dicomdir(
        STUDY,
        &[
            (vec!["PT0", "IM1"], first.as_str()),
            (vec!["PT0", "IM2"], second.as_str()),
        ],
    );
    let (status, id, body) = tus
        .send_in_batch(Some(&batch), "CD/DICOMDIR", &directory)
        .await;
    assert_eq!(status, 201, "{body}");
    let id = id.unwrap();
    assert_eq!(
        index_row(&app, &id),
        Some(("directory".to_string(), Some("lists 2 files".to_string())))
    );
    let entries: Vec<(String, Option<String>, Option<String>)> = dicomdir_entries::table
        .filter(dicomdir_entries::directory_upload_id.eq(&id))
        .order(dicomdir_entries::referenced_path.asc())
        .select((
            dicomdir_entries::referenced_path,
            dicomdir_entries::sop_instance_uid,
            dicomdir_entries::study_uid,
        ))
        .load(&mut *app.db.conn().unwrap())
        .unwrap();
    let study = Some(STUDY.to_string());
    assert_eq!(
        entries,
        [
            ("CD/PT0/IM1".to_string(), Some(first), study.clone()),
            ("CD/PT0/IM2".to_string(), Some(second), study),
        ]
    );
    let summary = tus.batch_status(&batch).await;
    let file = batch_file(&summary, "CD/DICOMDIR");
    assert_eq!(file["dicom"], "directory");
    assert!(file["problem"].is_null(), "{summary}");
    assert_eq!(summary["problems"], 0);
}

async fn the_same_instance_with_other_bytes_is_a_conflict_and_both_are_kept(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tus = uploader(&app).await;
    let batch = tus.open_batch(None, 2).await;
    let first = Instance::of(STUDY, 1, 1);
    let second = Instance {
        pixels: 600,
        ..first.clone()
    };
    let mut ids = Vec::new();
    for (path, instance) in [("CD/A/IM1", &first), ("CD/B/IM1", &second)] {
        let (status, id, body) = tus
            .send_in_batch(Some(&batch), path, &instance.bytes())
            .await;
        assert_eq!(status, 201, "{path}: {body}");
        ids.push(id.unwrap());
    }
    assert_eq!(index_state(&app, &ids[0]), "indexed");
    assert_eq!(index_state(&app, &ids[1]), "conflict");
    for id in &ids {
        assert_eq!(upload_row(&app, id).status, "completed", "both are kept");
    }
    let summary = tus.batch_status(&batch).await;
    assert_eq!(
        (&summary["stored"], &summary["problems"]),
        (&2.into(), &1.into())
    );
    assert_eq!(summary["duplicates"], 0);
    assert!(batch_file(&summary, "CD/A/IM1")["problem"].is_null());
    let problem = problem_of(&summary, "CD/B/IM1");
    assert!(problem.starts_with("Conflicting instance"), "{problem}");
    assert!(
        problem.contains("CD/A/IM1"),
        "names the first file: {problem}"
    );
}

async fn the_same_instance_twice_is_a_duplicate_and_no_problem(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tus = uploader(&app).await;
    let batch = tus.open_batch(None, 2).await;
    let data = Instance::of(STUDY, 1, 1).bytes();
    let mut ids = Vec::new();
    for path in ["CD/A/IM1", "CD/COPY/IM1"] {
        let (status, id, body) = tus.send_in_batch(Some(&batch), path, &data).await;
        assert_eq!(status, 201, "{path}: {body}");
        ids.push(id.unwrap());
    }
    assert_eq!(index_state(&app, &ids[0]), "indexed");
    assert_eq!(index_state(&app, &ids[1]), "duplicate");
    let summary = tus.batch_status(&batch).await;
    assert_eq!(summary["stored"], 2, "{summary}");
    assert_eq!(summary["duplicates"], 1, "{summary}");
    assert_eq!(summary["problems"], 0, "{summary}");
    let copy = batch_file(&summary, "CD/COPY/IM1");
    assert_eq!(copy["dicom"], "duplicate");
    assert!(copy["problem"].is_null());
}

async fn relative_paths_that_climb_or_hide_things_are_refused_before_any_upload(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tus = uploader(&app).await;
    let long = format!("{}IM1", "a/".repeat(2049));
    for (path, says) in [
        ("CD/../IM1", "must not contain `..`"),
        ("../../etc/x", "must not contain `..`"),
        ("/etc/x", "must be relative to the folder"),
        ("C:\\x", "must be relative to the folder"),
        ("CD/IM\u{1}1", "contains control characters"),
        ("CD/\nIM1", "contains control characters"),
        (long.as_str(), "is longer than 4096 bytes"),
    ] {
        let data = Instance::of(STUDY, 1, 1).bytes();
        let res = tus
            .create_with_body(
                data.len() as u64,
                &[("filename", "IM1"), ("relativePath", path)],
                Some(data),
            )
            .await;
        assert_eq!(res.status(), 400, "{path:?}");
        let text = res.text().await.unwrap();
        assert!(text.contains("relativePath"), "{path:?}: {text}");
        assert!(text.contains(says), "{path:?}: {text}");
    }
    // Bytes that are not text are refused too, not dropped (the file would land outside
    // its folder or batch).
    let not_text = data_encoding::BASE64.encode(&[b'C', b'D', b'/', 0xff, 0xfe]);
    let batch = tus.open_batch(None, 1).await;
    for meta in [
        format!("filename SU0x,relativePath {not_text}"),
        format!("filename SU0x,relativePath SU0x,batch {not_text}"),
    ] {
        let res = tus
            .request(reqwest::Method::POST, "/tus/")
            .header("Upload-Length", "10")
            .header("Upload-Metadata", meta.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{meta}");
        let text = res.text().await.unwrap();
        assert!(text.contains("must be UTF-8 text"), "{meta}: {text}");
    }
    assert!(
        tus.batch_status(&batch).await["files"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(upload_count(&app), 0, "no upload row was created");
}

async fn backslashes_are_normalised_long_paths_kept_and_none_becomes_a_storage_key(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let tus = uploader(&app).await;
    let data = Instance::of(STUDY, 1, 1).bytes();
    let (status, id, body) = tus.send_in_batch(None, "CD\\PT0\\IM1", &data).await;
    assert_eq!(status, 201, "{body}");
    let row = upload_row(&app, &id.unwrap());
    assert_eq!(row.relative_path.as_deref(), Some("CD/PT0/IM1"));
    for part in ["CD", "PT0", "IM1"] {
        assert!(
            !row.object_key.contains(part),
            "{part} in {}",
            row.object_key
        );
    }
    // A path of nearly the longest length allowed gets through the tus metadata whole.
    let deep = format!("{}/IM2", vec!["D".repeat(200); 20].join("/"));
    assert!(deep.len() > 4000 && deep.len() <= 4096);
    let data = Instance::of(STUDY, 1, 2).bytes();
    let (status, id, body) = tus.send_in_batch(None, &deep, &data).await;
    assert_eq!(status, 201, "{body}");
    let row = upload_row(&app, &id.unwrap());
    assert_eq!(row.relative_path.as_deref(), Some(deep.as_str()));
    assert!(!row.object_key.contains("DDD"));
}

both_backends!(
    an_empty_file_is_refused_as_too_short_and_listed_as_a_problem,
    a_file_cut_off_in_its_header_is_kept_and_marked_unreadable,
    a_dicomdir_is_kept_with_the_files_it_lists_even_when_they_never_come,
    the_same_instance_with_other_bytes_is_a_conflict_and_both_are_kept,
    the_same_instance_twice_is_a_duplicate_and_no_problem,
    relative_paths_that_climb_or_hide_things_are_refused_before_any_upload,
    backslashes_are_normalised_long_paths_kept_and_none_becomes_a_storage_key,
);
