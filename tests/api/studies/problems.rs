//! Problems on the study page: a second copy of an instance (a duplicate), another file
//! with the same SOP Instance UID (a conflict) and an unreadable header are listed, and
//! none of them counts in the study.

use super::support::{STUDY, api_json, cd, page, send_batch};
use crate::both_backends;
use crate::helpers::dicom::Instance;
use crate::helpers::{Backend, TestApp};
use crate::tus_support::{api_key, dicom};

async fn duplicates_conflicts_and_unreadable_files_are_shown_and_not_counted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
    let key = api_key(&app, &["upload", "read"]).await;
    let (files, _) = cd(STUDY, 1, 2);
    send_batch(&app, &key, &files).await;

    let mut other = Instance::of(STUDY, 1, 2);
    other.pixels = 1024;
    let again = vec![
        ("AGAIN/COPY1".to_string(), files[0].1.clone()),
        ("AGAIN/OTHER2".to_string(), other.bytes()),
        ("AGAIN/BROKEN".to_string(), dicom(700, 9)),
        (
            "AGAIN/SE1/IM3".to_string(),
            Instance::of(STUDY, 1, 3).bytes(),
        ),
    ];
    send_batch(&app, &key, &again).await;

    let (status, html) = page(&app, &format!("/studies/{STUDY}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("Files not counted in the study"));
    for (path, label) in [
        ("AGAIN/COPY1", "Duplicate instance"),
        ("AGAIN/OTHER2", "Conflicting instance"),
        ("AGAIN/BROKEN", "DICOM header unreadable"),
    ] {
        let at = html
            .find(path)
            .unwrap_or_else(|| panic!("{path} listed: {html}"));
        let row = &html[at..at + html[at..].find("</tr>").unwrap()];
        assert!(row.contains(label), "{path}: {row}");
    }
    assert!(html.contains("CD/SE1/IM1"), "the first copy stays");

    let one = api_json(&app, &format!("/api/v1/studies/{STUDY}"), &key).await;
    assert_eq!(one["instances"].as_array().unwrap().len(), 3);
    let paths: Vec<&str> = one["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["relative_path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["CD/SE1/IM1", "CD/SE1/IM2", "AGAIN/SE1/IM3"]);
}

both_backends!(duplicates_conflicts_and_unreadable_files_are_shown_and_not_counted);
