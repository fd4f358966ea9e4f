//! DICOMDIR completeness: a file the DICOMDIR lists that never arrived is named.

use super::support::{STUDY, api_json, cd, page, send_batch};
use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use crate::tus_support::api_key;

async fn a_file_the_dicomdir_lists_but_that_was_never_sent_is_named_as_missing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
    let key = api_key(&app, &["upload", "read"]).await;
    let (mut files, dir) = cd(STUDY, 2, 2);
    let left_out = files.remove(3);
    assert_eq!(left_out.0, "CD/SE2/IM2");
    files.push(dir);
    send_batch(&app, &key, &files).await;

    let one = api_json(&app, &format!("/api/v1/studies/{STUDY}"), &key).await;
    assert_eq!(one["complete"], false);
    assert_eq!(one["missing"], serde_json::json!(["CD/SE2/IM2"]));
    assert_eq!(one["instances"].as_array().unwrap().len(), 3);

    let (_, html) = page(&app, &format!("/studies/{STUDY}")).await;
    assert!(html.contains("Listed in the DICOMDIR but not stored"));
    assert!(html.contains("<li><code>CD/SE2/IM2</code></li>"), "{html}");
    let (_, list) = page(&app, "/studies").await;
    assert!(list.contains("1 missing"), "the list says so too");

    // Sending it later, in a batch of its own, completes the study.
    send_batch(&app, &key, &[left_out]).await;
    let one = api_json(&app, &format!("/api/v1/studies/{STUDY}"), &key).await;
    assert_eq!(one["complete"], true);
    assert_eq!(one["missing"], serde_json::json!([]));
}

both_backends!(a_file_the_dicomdir_lists_but_that_was_never_sent_is_named_as_missing);
