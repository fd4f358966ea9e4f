//! Bodies that stall or trickle: a tus PATCH keeps what arrived and resumes; a sign-in form
//! is answered 408; a plain form upload is refused and cancelled.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{BODY_IDLE, BODY_WINDOW, KIB, answers_quickly, connect, parse_head, read_answer};
use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use crate::tus_support::{Tus, api_key, dicom, sha256_hex, status_of, stored_sha256};

/// An upload of `len` bytes through the API, and the raw PATCH head that sends it all.
async fn stalled_patch_setup(app: &TestApp, len: usize) -> (Tus, String, String, Vec<u8>) {
    app.sign_in_as("uploader").await;
    let key = api_key(app, &["upload", "read"]).await;
    let tus = Tus::with_key(app, &key);
    let data = dicom(len, 7);
    let id = tus.create_ok("slow.dcm", data.len() as u64, None).await;
    let head = format!(
        "PATCH /tus/{id} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n\
         Authorization: Bearer {key}\r\nContent-Type: application/offset+octet-stream\r\n\
         Upload-Offset: 0\r\nContent-Length: {len}\r\n\r\n"
    );
    (tus, id, head, data)
}

async fn a_patch_that_stalls_is_cut_off_and_keeps_what_arrived(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (tus, id, head, data) = stalled_patch_setup(&app, 300 * KIB).await;
    let sent = 100 * KIB + 17;
    let mut stream = connect(&app).await;
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&data[..sent]).await.unwrap();
    let stalled_at = Instant::now();

    // While the PATCH hangs: the worker answers other requests, and the upload can be
    // asked for (nothing is committed yet: the bytes are still in the request).
    tokio::time::sleep(Duration::from_secs(2)).await;
    answers_quickly(&app).await;
    let head_res = tus.head(&id).await;
    assert_eq!(head_res.status(), 200);
    // Another upload goes through from start to end on the same worker.
    let other = dicom(40 * KIB, 8);
    let other_id = tus.upload("other.dcm", &other, None, 16 * KIB).await;
    assert_eq!(status_of(&app, &other_id), "completed");

    let answer = read_answer(&mut stream, BODY_IDLE + Duration::from_secs(15))
        .await
        .expect("the stalled PATCH was never cut off");
    let waited = stalled_at.elapsed();
    assert!(
        waited >= BODY_IDLE - Duration::from_secs(1)
            && waited < BODY_IDLE + Duration::from_secs(10),
        "cut after {waited:?}"
    );
    // The pipeline keeps what arrived and says how far it got.
    assert_eq!(answer.status, Some(204), "{answer:?}");
    assert_eq!(
        answer.header("upload-offset"),
        Some(sent.to_string().as_str())
    );
    assert_eq!(tus.offset(&id).await, sent as u64);

    // The client resumes from there and the file completes byte for byte.
    tus.send_from(&id, &data, sent, 128 * KIB).await;
    assert_eq!(status_of(&app, &id), "completed");
    assert_eq!(stored_sha256(&app, &id), Some(sha256_hex(&data)));
}

async fn a_patch_that_trickles_is_cut_off_at_the_end_of_a_slow_window(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (tus, id, head, data) = stalled_patch_setup(&app, 64 * KIB).await;
    let mut stream = connect(&app).await;
    let start = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    // Enough for the type check, then one byte every 500 ms: never idle, far too slow.
    let first = 200;
    stream.write_all(&data[..first]).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let trickle_data = data.clone();
    let trickle = tokio::spawn(async move {
        let mut sent = first;
        while sent < trickle_data.len() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if writer.write_all(&trickle_data[sent..=sent]).await.is_err() {
                break;
            }
            sent += 1;
        }
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(BODY_WINDOW + Duration::from_secs(15), async {
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let waited = start.elapsed();
    assert!(read.is_ok(), "the trickling PATCH was never cut off");
    assert!(
        waited >= BODY_WINDOW - Duration::from_secs(1)
            && waited < BODY_WINDOW + Duration::from_secs(10),
        "cut after {waited:?}"
    );
    trickle.abort();
    let answer = parse_head(&buf);
    assert_eq!(answer.status, Some(204), "{answer:?}");
    let kept: u64 = answer.header("upload-offset").unwrap().parse().unwrap();
    assert!((first as u64..first as u64 + 60).contains(&kept), "{kept}");
    assert_eq!(tus.offset(&id).await, kept);
    tus.send_from(&id, &data, kept as usize, 64 * KIB).await;
    assert_eq!(stored_sha256(&app, &id), Some(sha256_hex(&data)));
}

/// Bodies of the other routes get the same deadline: a sign-in form that stops half-way
/// is answered 408, and a plain form upload that stops is refused and leaves no upload
/// behind (a form upload cannot be resumed).
async fn form_bodies_that_stall_are_cut_off(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let csrf = app.session_csrf(&app.client).await;
    let cookie = app.cookie_header();

    let mut login = connect(&app).await;
    login
        .write_all(
            b"POST /login HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n\
              email=someone%40example.org&pass",
        )
        .await
        .unwrap();

    let boundary = "abuse-boundary";
    let file = crate::tus_support::pdf(64 * KIB, 3);
    let part_head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n"
    );
    let total = part_head.len() + file.len() + format!("\r\n--{boundary}--\r\n").len();
    let head = format!(
        "POST /uploads?csrf_token={csrf} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {total}\r\n\r\n"
    );
    let mut upload = connect(&app).await;
    upload.write_all(head.as_bytes()).await.unwrap();
    upload.write_all(part_head.as_bytes()).await.unwrap();
    upload.write_all(&file[..20 * KIB]).await.unwrap();
    let stalled_at = Instant::now();

    tokio::time::sleep(Duration::from_secs(2)).await;
    answers_quickly(&app).await;

    let limit = BODY_IDLE + Duration::from_secs(15);
    let (login_answer, upload_answer) = tokio::join!(
        read_answer(&mut login, limit),
        read_answer(&mut upload, limit)
    );
    let waited = stalled_at.elapsed();
    assert!(
        waited < BODY_IDLE + Duration::from_secs(10),
        "cut after {waited:?}"
    );
    let login_answer = login_answer.expect("the stalled sign-in was never cut off");
    assert_eq!(login_answer.status, Some(408), "{login_answer:?}");
    let upload_answer = upload_answer.expect("the stalled form upload was never cut off");
    assert_eq!(upload_answer.status, Some(400), "{upload_answer:?}");

    // The half-sent upload was cancelled, not left active.
    use diesel::prelude::*;
    use medport::infra::db::schema::uploads;
    let statuses: Vec<String> = uploads::table
        .select(uploads::status)
        .load(&mut *app.db.conn().unwrap())
        .unwrap();
    assert_eq!(statuses, vec!["aborted".to_string()]);
}

both_backends!(
    a_patch_that_stalls_is_cut_off_and_keeps_what_arrived,
    a_patch_that_trickles_is_cut_off_at_the_end_of_a_slow_window,
    form_bodies_that_stall_are_cut_off,
);
