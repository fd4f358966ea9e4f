//! The upload history shows a batch as one row that opens onto its files.

use super::support::{STUDY, cd, page, send_batch};
use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use crate::tus_support::{Tus, api_key, pdf};

async fn a_batch_is_one_history_row_that_opens_onto_its_files(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
    let key = api_key(&app, &["upload", "read"]).await;
    let (mut files, dir) = cd(STUDY, 1, 3);
    files.push(dir);
    let (batch, _) = send_batch(&app, &key, &files).await;
    let tus = Tus::with_key(&app, &key);
    let (status, _, _) = tus.send_in_batch(None, "letter.pdf", &pdf(300, 1)).await;
    assert_eq!(status, 201);

    let (status, html) = page(&app, "/uploads").await;
    assert_eq!(status, 200);
    assert_eq!(html.matches("class=\"batch-row\"").count(), 1, "{html}");
    assert!(html.contains(&format!("id=\"batch-{batch}\"")));
    assert!(html.contains("Folder of 4 files"));
    assert!(html.contains("4 stored"));
    let details = &html[html.find("<details").unwrap()..html.find("</details>").unwrap()];
    for (path, _) in &files {
        assert!(
            details.contains(path.as_str()),
            "{path} behind the disclosure"
        );
    }
    assert!(
        html.contains("letter.pdf"),
        "the lone upload keeps its own row"
    );
    assert_eq!(
        html.matches("<tr id=\"upload-").count(),
        1,
        "no file of the batch has its own row"
    );
}

both_backends!(a_batch_is_one_history_row_that_opens_onto_its_files);
