//! Bad input (issue's list): each gets its status and a FailureReason per part, never a
//! 500, and nothing of a refused part stays in storage.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::support::{OTHER_STUDY, STUDY, instance, uploader_key};
use crate::both_backends;
use crate::helpers::dicomweb::{BOUNDARY, multipart_related, open_multipart, stow_content_type};
use crate::helpers::{Backend, Options, TestApp};
use crate::tus_support::{dicom, pdf, spawn_on_s3};

const NOT_DICOM: u64 = 0xA900;
const CANNOT_UNDERSTAND: u64 = 0xC000;
const OUT_OF_RESOURCES: u64 = 0xA700;
const OTHER_STUDY_REASON: u64 = 0xC409;

fn assert_json_error(res: &crate::helpers::dicomweb::Stowed, status: u16) {
    assert_eq!(res.status, status, "{:#}", res.body);
    assert!(
        res.content_type.starts_with("application/json"),
        "{}",
        res.content_type
    );
    assert!(res.body["error"].is_string(), "{:#}", res.body);
    assert!(!res.body["message"].as_str().unwrap().is_empty());
}

async fn requests_that_are_not_stow_requests_are_refused_before_any_upload(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = uploader_key(&app, &["upload"]).await;
    let body = || multipart_related(&[instance(STUDY, 1).bytes()]);
    for (content_type, status) in [
        ("application/dicom", 415),
        ("multipart/form-data; boundary=x", 415),
        (
            "multipart/related; type=\"application/dicom+json\"; boundary=x",
            415,
        ),
        ("multipart/related; boundary=x", 400),
        ("multipart/related; type=\"application/dicom\"", 400),
        (
            "multipart/related; type=\"application/dicom\"; boundary=\"\"",
            400,
        ),
    ] {
        let res = app
            .stow_raw("/dicomweb/studies", &key, content_type, body())
            .await;
        assert_json_error(&res, status);
    }
    // The boundary in the header is not the body's.
    let res = app
        .stow_raw(
            "/dicomweb/studies",
            &key,
            "multipart/related; type=\"application/dicom\"; boundary=not-the-one",
            body(),
        )
        .await;
    assert_json_error(&res, 400);
    // UIDs in the path: too long, or not digits and dots.
    let long = format!("1.{}", "2".repeat(63));
    for study in [long.as_str(), "1.2.abc", "1..2", "01.2"] {
        let res = app
            .stow_raw(
                &format!("/dicomweb/studies/{study}"),
                &key,
                &stow_content_type(),
                body(),
            )
            .await;
        assert_json_error(&res, 400);
    }
    // A bucket that does not exist (or is not the user's) is 404, as for tus.
    let res = app
        .stow_raw(
            "/dicomweb/studies?bucket=0190a5c4-0000-7000-8000-000000000000",
            &key,
            &stow_content_type(),
            body(),
        )
        .await;
    assert_json_error(&res, 404);
    let refused = app.audit_rows("dicomweb.store");
    assert_eq!(refused.len(), 1, "only the bucket refusal is audited here");
    assert_eq!(refused[0].outcome, "denied");
    assert_eq!(refused[0].details["reason"], "bucket not visible");
    assert!(app.upload_statuses().is_empty(), "no upload was started");
    assert!(app.objects_left(None).await.is_empty());
}

async fn parts_that_are_not_dicom_are_refused_and_leave_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = uploader_key(&app, &["upload"]).await;
    let mut executable = dicom(4096, 7);
    executable[..2].copy_from_slice(b"MZ");
    let parts = vec![
        pdf(2048, 1),
        executable,
        // DICM at 128, but no DICOM header after it.
        dicom(2048, 3),
        // The header stops in the middle of the patient's name.
        instance(STUDY, 1).cut_in_patient_name(4),
        b"tiny".to_vec(),
    ];
    let res = app.stow("/dicomweb/studies", &key, &parts).await;
    assert_eq!(res.status, 409, "{:#}", res.body);
    let reasons: Vec<u64> = res.failed().into_iter().map(|(_, r)| r).collect();
    assert_eq!(
        reasons,
        [
            NOT_DICOM,
            NOT_DICOM,
            CANNOT_UNDERSTAND,
            CANNOT_UNDERSTAND,
            NOT_DICOM
        ]
    );
    assert!(res.stored().is_empty());
    assert!(
        app.upload_statuses()
            .iter()
            .all(|(s, _)| s == "rejected" || s == "aborted"),
        "{:?}",
        app.upload_statuses()
    );
    let left = app.objects_left(None).await;
    assert!(left.is_empty(), "{left:?}");
    let store = app.audit_rows("dicomweb.store");
    assert_eq!(store[0].outcome, "failure");
    assert_eq!(store[0].details["failed"], 5);
}

async fn an_instance_of_another_study_than_the_path_is_not_kept(backend: Backend) {
    let (app, bucket) = spawn_on_s3(backend).await;
    let key = uploader_key(&app, &["upload"]).await;
    let ours = instance(STUDY, 1);
    let theirs = instance(OTHER_STUDY, 1);
    let res = app
        .stow(
            &format!("/dicomweb/studies/{STUDY}"),
            &key,
            &[ours.bytes(), theirs.bytes()],
        )
        .await;
    assert_eq!(res.status, 202, "{:#}", res.body);
    assert_eq!(res.stored(), [ours.sop]);
    assert_eq!(
        res.failed(),
        [(Some(theirs.sop.clone()), OTHER_STUDY_REASON)]
    );
    let statuses: Vec<String> = app.upload_statuses().into_iter().map(|(s, _)| s).collect();
    assert_eq!(statuses, ["completed", "aborted"]);
    assert_eq!(
        app.objects_left(Some(&bucket)).await,
        app.completed_object_keys()
    );
}

async fn a_body_without_its_closing_boundary_keeps_only_whole_parts(backend: Backend) {
    let (app, bucket) = spawn_on_s3(backend).await;
    let key = uploader_key(&app, &["upload"]).await;
    let (first, second) = (instance(STUDY, 1), instance(STUDY, 2));
    let mut body = open_multipart(&[first.bytes()]);
    // The second part's bytes, and then nothing: no line break, no boundary.
    body.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(&second.bytes());
    let res = app
        .stow_raw("/dicomweb/studies", &key, &stow_content_type(), body)
        .await;
    assert_eq!(res.status, 202, "{:#}", res.body);
    assert_eq!(res.stored(), [first.sop]);
    assert_eq!(res.failed().len(), 1);
    assert_eq!(res.failed()[0].1, CANNOT_UNDERSTAND);
    assert_eq!(
        app.objects_left(Some(&bucket)).await,
        app.completed_object_keys()
    );
    assert_eq!(app.completed_object_keys().len(), 1);
}

/// The client stops sending in the middle of a part (its connection half-closes before the
/// Content-Length it announced).
async fn a_body_cut_off_mid_part_keeps_nothing_of_that_part(backend: Backend) {
    let (app, bucket) = spawn_on_s3(backend).await;
    let key = uploader_key(&app, &["upload"]).await;
    let (first, second) = (instance(STUDY, 1), instance(STUDY, 2));
    let mut big = second.clone();
    big.pixels = 64 * 1024;
    let whole = multipart_related(&[first.bytes(), big.bytes()]);
    let sent = whole.len() - 40 * 1024;
    let addr = app.address.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /dicomweb/studies HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        stow_content_type(),
        whole.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&whole[..sent]).await.unwrap();
    socket.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        socket.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    // Either the store response (the part failed) or the connection closed without one;
    // never a server error, and never a kept part.
    assert!(!answer.starts_with("HTTP/1.1 5"), "{answer}");
    if !answer.is_empty() {
        assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
        assert!(answer.contains("\"00081197\""), "{answer}");
    }
    // The pipeline settles the cut part (cancelled) even when no answer reached the client.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.upload_statuses().iter().any(|(s, _)| s == "active")
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let statuses: Vec<String> = app.upload_statuses().into_iter().map(|(s, _)| s).collect();
    assert_eq!(statuses, ["completed", "aborted"]);
    assert_eq!(
        app.objects_left(Some(&bucket)).await,
        app.completed_object_keys()
    );
}

async fn an_instance_over_the_size_limit_is_out_of_resources(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            tweak: Box::new(|s| s.uploads.max_size = 8 * 1024),
            ..Options::default()
        },
    )
    .await;
    let key = uploader_key(&app, &["upload"]).await;
    let small = instance(STUDY, 1);
    let mut large = instance(STUDY, 2);
    large.pixels = 16 * 1024;
    let res = app
        .stow("/dicomweb/studies", &key, &[large.bytes(), small.bytes()])
        .await;
    assert_eq!(res.status, 202, "{:#}", res.body);
    assert_eq!(res.stored(), [small.sop]);
    assert_eq!(res.failed(), [(None, OUT_OF_RESOURCES)]);
    let statuses: Vec<String> = app.upload_statuses().into_iter().map(|(s, _)| s).collect();
    assert_eq!(statuses, ["aborted", "completed"]);
}

/// Ten thousand tiny parts: each one is answered (the ones past the per-request limit as
/// out of resources), none starts an upload, and the request ends in bounded time.
async fn ten_thousand_tiny_parts_each_get_a_failure_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = uploader_key(&app, &["upload"]).await;
    let parts: Vec<Vec<u8>> = (0..10_000)
        .map(|i| format!("tiny {i}").into_bytes())
        .collect();
    let started = std::time::Instant::now();
    let res = app.stow("/dicomweb/studies", &key, &parts).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert_eq!(res.status, 409, "{}", res.status);
    let reasons: Vec<u64> = res.failed().into_iter().map(|(_, r)| r).collect();
    assert_eq!(reasons.len(), 10_000);
    let limit = medport::app::dicomweb::stow::MAX_PARTS;
    assert!(reasons[..limit].iter().all(|r| *r == NOT_DICOM));
    assert!(reasons[limit..].iter().all(|r| *r == OUT_OF_RESOURCES));
    assert!(
        app.upload_statuses().is_empty(),
        "no upload for a part that cannot be DICOM"
    );
    assert!(app.objects_left(None).await.is_empty());
}

both_backends!(
    requests_that_are_not_stow_requests_are_refused_before_any_upload,
    parts_that_are_not_dicom_are_refused_and_leave_nothing,
    an_instance_of_another_study_than_the_path_is_not_kept,
    a_body_without_its_closing_boundary_keeps_only_whole_parts,
    a_body_cut_off_mid_part_keeps_nothing_of_that_part,
    an_instance_over_the_size_limit_is_out_of_resources,
    ten_thousand_tiny_parts_each_get_a_failure_reason,
);
