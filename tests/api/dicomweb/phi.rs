//! PatientID and AccessionNumber are searchable without being stored: each row holds a
//! keyed HMAC of them (a blind index) under a key derived from the master key. Rows
//! indexed before the columns existed are filled by the cleanup pass; a key rotation
//! recomputes them all under the new key.

use diesel::prelude::*;
use medport::infra::db::schema::dicom_instances;

use super::support::{A, B, C, STUDY_UID, owner_with_studies, search, uids};
use crate::both_backends;
use crate::helpers::{Backend, TestApp, medport, serve_with_log};

type Blind = (Option<String>, Option<String>, Option<String>);

/// Every row's (patient_id_blind, accession_blind, blind_key_id), by study UID.
fn blind_rows(app: &TestApp) -> Vec<(String, Blind)> {
    dicom_instances::table
        .order(dicom_instances::sop_instance_uid.asc())
        .select((
            dicom_instances::study_uid.assume_not_null(),
            (
                dicom_instances::patient_id_blind,
                dicom_instances::accession_blind,
                dicom_instances::blind_key_id,
            ),
        ))
        .load(&mut *app.db.conn().unwrap())
        .unwrap()
}

fn is_hmac(value: &Option<String>) -> bool {
    value
        .as_deref()
        .is_some_and(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

async fn patient_ids_are_matched_through_blind_indexes_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (key, _) = owner_with_studies(&app).await;
    let rows = blind_rows(&app);
    assert_eq!(rows.len(), 6);
    let key_id = app.master_keyring().current().id().as_str().to_string();
    for (_, (pid, acc, kid)) in &rows {
        assert!(is_hmac(pid) && is_hmac(acc), "{pid:?} {acc:?}");
        assert_eq!(kid.as_deref(), Some(key_id.as_str()));
        assert!(app.database_contains(pid.as_deref().unwrap()));
    }
    let pid_of = |study: &str| rows.iter().find(|(s, _)| s == study).unwrap().1.0.clone();
    assert_eq!(pid_of(A), pid_of(C), "one patient, one index");
    assert_ne!(pid_of(A), pid_of(B));
    for clear in ["PID-ALPHA", "PID-BRAVO", "ACC-A", "ACC-B", "ACC-C"] {
        assert!(
            !app.database_contains(clear),
            "{clear} is stored in the clear"
        );
    }
    let found = search(&app, "/dicomweb/studies?PatientID=PID-ALPHA", &key).await;
    assert_eq!(uids(&found, STUDY_UID), [A, C]);
}

async fn rows_without_blind_indexes_are_filled_by_the_cleanup_pass(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (key, _) = owner_with_studies(&app).await;
    // As rows indexed before the blind index columns existed are.
    diesel::update(dicom_instances::table)
        .set((
            dicom_instances::patient_id_blind.eq(None::<String>),
            dicom_instances::accession_blind.eq(None::<String>),
            dicom_instances::blind_key_id.eq(None::<String>),
        ))
        .execute(&mut *app.db.conn().unwrap())
        .unwrap();
    let found = search(&app, "/dicomweb/studies?PatientID=PID-BRAVO", &key).await;
    assert!(found.is_empty(), "nothing to match yet");

    let out = medport(&app, &["cleanup", "--once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        blind_rows(&app)
            .iter()
            .all(|(_, (p, a, _))| is_hmac(p) && is_hmac(a))
    );
    let found = search(&app, "/dicomweb/studies?PatientID=PID-BRAVO", &key).await;
    assert_eq!(uids(&found, STUDY_UID), [B]);
    let found = search(&app, "/dicomweb/studies?AccessionNumber=ACC-C", &key).await;
    assert_eq!(uids(&found, STUDY_UID), [C]);
}

async fn key_rotation_recomputes_blind_indexes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (key, _) = owner_with_studies(&app).await;
    let before = blind_rows(&app);

    let out = medport(&app, &["keys", "rotate"]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("recomputed 6 DICOM blind indexes"), "{text}");
    let after = blind_rows(&app);
    for ((_, old), (_, new)) in before.iter().zip(&after) {
        assert_ne!(old.0, new.0, "the index moved to the new key");
        assert_ne!(old.2, new.2);
        assert!(is_hmac(&new.0) && is_hmac(&new.1));
    }

    // A server started with the new key finds the patient again.
    let (mut server, base, _log) = serve_with_log(&app, &[]);
    let res = reqwest::Client::new()
        .get(format!("{base}/dicomweb/studies?PatientID=PID-ALPHA"))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let found: Vec<serde_json::Value> = res.json().await.unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(status, 200);
    assert_eq!(uids(&found, STUDY_UID), [A, C]);
}

both_backends!(
    patient_ids_are_matched_through_blind_indexes_only,
    rows_without_blind_indexes_are_filled_by_the_cleanup_pass,
    key_rotation_recomputes_blind_indexes,
);
