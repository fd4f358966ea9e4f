//! QIDO-RS queries that cannot be answered: 400 with a JSON reason naming the parameter.

use super::support::{A, get, owner};
use crate::both_backends;
use crate::helpers::{Backend, TestApp};

async fn malformed_searches_are_400_with_a_json_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = owner(&app, "bad-queries@example.org");
    let long = format!("1.{}", "2".repeat(63));
    for (path, names) in [
        (
            "/dicomweb/studies?StudyDate=20260630-20260101".to_string(),
            "StudyDate",
        ),
        (
            "/dicomweb/studies?StudyDate=2026-06-30".to_string(),
            "StudyDate",
        ),
        (
            "/dicomweb/studies?StudyDate=20261341".to_string(),
            "StudyDate",
        ),
        (
            format!("/dicomweb/studies?StudyInstanceUID={long}"),
            "StudyInstanceUID",
        ),
        (
            "/dicomweb/studies?StudyInstanceUID=1.2.x3".to_string(),
            "StudyInstanceUID",
        ),
        (
            "/dicomweb/studies?StudyInstanceUID=1.2%2F..%2F3".to_string(),
            "StudyInstanceUID",
        ),
        (format!("/dicomweb/studies/{long}/series"), "study UID"),
        (
            format!("/dicomweb/studies/{A}/series/1.2.abc/instances"),
            "series UID",
        ),
        ("/dicomweb/studies?limit=ten".to_string(), "limit"),
        ("/dicomweb/studies?offset=-1".to_string(), "offset"),
        ("/dicomweb/studies?PatientID=PID*".to_string(), "PatientID"),
        ("/dicomweb/studies?Modality=ct%3B".to_string(), "Modality"),
        ("/dicomweb/studies?limit=1&limit=2".to_string(), "limit"),
        (
            "/dicomweb/studies?PatientName=DOE*".to_string(),
            "PatientName",
        ),
    ] {
        let res = get(&app, &path, &key, None).await;
        assert_eq!(res.status(), 400, "{path}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{path}"
        );
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "bad_request", "{path}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(names), "{path}: {message}");
    }
}

both_backends!(malformed_searches_are_400_with_a_json_reason);
