//! Only the key owner's downloadable instances exist for DICOMweb: another user's key, an
//! administrator's included, finds nothing to search and gets 404 for every retrieval, and
//! a quarantined instance is neither found nor sent.

use diesel::prelude::*;
use medport::infra::db::schema::{dicom_instances, uploads};
use medport::web::routes::dicomweb::all_routes;

use super::support::{A, B, C, STUDY_UID, get, owner, owner_with_studies, search, uids};
use crate::access::dicomweb_path;
use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use crate::tus_support::api_key;

async fn other_users_find_nothing_and_retrieve_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner_key, _) = owner_with_studies(&app).await;
    let stranger = owner(&app, "stranger@example.org");
    app.admin().await;
    let admin_key = api_key(&app, &["read"]).await;
    for key in [&stranger, &admin_key] {
        for r in all_routes() {
            let path = dicomweb_path(r.path, A);
            let res = get(&app, &path, key, None).await;
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap();
            let is_search = r.path.ends_with("/series")
                || r.path.ends_with("/instances")
                || r.path == "/dicomweb/studies";
            let transcoding = ["/rendered", "/thumbnail", "/frames/"]
                .iter()
                .any(|p| r.path.contains(p));
            if is_search {
                assert_eq!((status, body), (200, serde_json::json!([])), "{path}");
            } else if transcoding {
                assert_eq!(status, 406, "{path}");
            } else {
                assert_eq!(status, 404, "{path}");
                assert_eq!(body["error"], "not_found", "{path}");
            }
        }
    }
    assert!(app.audit_rows("dicomweb.retrieve").is_empty());
    assert!(app.audit_rows("dicomweb.metadata").is_empty());
    // The owner, for contrast, finds the same paths.
    let res = get(
        &app,
        &format!("/dicomweb/studies/{A}/metadata"),
        &owner_key,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
}

async fn quarantined_instances_are_neither_found_nor_sent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (key, _) = owner_with_studies(&app).await;
    // B's one instance is quarantined, as a scan that finds it infected leaves it.
    let ids: Vec<String> = dicom_instances::table
        .filter(dicom_instances::study_uid.eq(B))
        .select(dicom_instances::upload_id)
        .load(&mut *app.db.conn().unwrap())
        .unwrap();
    assert_eq!(ids.len(), 1);
    diesel::update(uploads::table.filter(uploads::id.eq_any(&ids)))
        .set(uploads::status.eq("quarantined"))
        .execute(&mut *app.db.conn().unwrap())
        .unwrap();
    let found = search(&app, "/dicomweb/studies", &key).await;
    assert_eq!(uids(&found, STUDY_UID), [A, C]);
    assert!(
        search(&app, "/dicomweb/instances?PatientID=PID-BRAVO", &key)
            .await
            .is_empty()
    );
    for path in [
        format!("/dicomweb/studies/{B}"),
        format!("/dicomweb/studies/{B}/metadata"),
        format!("/dicomweb/studies/{B}/series/{B}.1/instances/{B}.1.1"),
    ] {
        assert_eq!(get(&app, &path, &key, None).await.status(), 404, "{path}");
    }
    assert!(app.audit_rows("dicomweb.retrieve").is_empty());
}

both_backends!(
    other_users_find_nothing_and_retrieve_nothing,
    quarantined_instances_are_neither_found_nor_sent,
);
