//! Who may store: an API key with the `upload` scope, nothing else. The route table is
//! walked, so a new STOW route cannot skip the check.

use super::support::{STUDY, instance, uploader_key};
use crate::both_backends;
use crate::helpers::dicomweb::{multipart_related, stow_content_type};
use crate::helpers::{Backend, TestApp};

fn routes() -> Vec<String> {
    medport::web::routes::dicomweb::stow::ROUTES
        .iter()
        .map(|r| {
            assert_eq!(r.method, "POST");
            r.path.replace("{study}", STUDY)
        })
        .collect()
}

async fn only_keys_with_the_upload_scope_store(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let read_only = uploader_key(&app, &["read"]).await;
    let body = multipart_related(&[instance(STUDY, 1).bytes()]);
    for path in routes() {
        let res = app
            .stow_raw(&path, &read_only, &stow_content_type(), body.clone())
            .await;
        assert_eq!(res.status, 403, "{path}: {:#}", res.body);
        assert!(res.body["message"].as_str().unwrap().contains("upload"));
        // A key that is not one.
        let res = app
            .stow_raw(&path, "mp_notakey_x", &stow_content_type(), body.clone())
            .await;
        assert_eq!(res.status, 401, "{path}");
        // No key: a signed-in browser's session is not one, nor is nothing at all.
        let (anonymous, _) = app.new_browser();
        for client in [&app.client, &anonymous] {
            let res = client
                .post(app.url(&path))
                .header("Content-Type", stow_content_type())
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert!(
                matches!(res.status().as_u16(), 401 | 403),
                "{path}: {}",
                res.status()
            );
        }
    }
    assert!(app.upload_statuses().is_empty());
    assert!(
        !app.audit_rows("access.denied").is_empty(),
        "the refusals are audited"
    );
}

both_backends!(only_keys_with_the_upload_scope_store);
