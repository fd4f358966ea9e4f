//! A GET never writes. Pages and API reads leave every row as it was; the one exception,
//! the session's last-seen stamp, is written at most once a minute per session, and the
//! views here all fall within the minute after sign-in.

use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use crate::studies::support::{STUDY, uploader_sends_cd};

async fn a_hundred_views_of_the_history_within_a_minute_write_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (key, _) = uploader_sends_cd(&app, 2, 3).await;
    // The first view after the uploads settles what a page view may: nothing is pending.
    assert_eq!(app.get_html("/uploads").await.status(), 200);

    let mut watch = app.watch_writes();
    for _ in 0..100 {
        assert_eq!(app.get_html("/uploads").await.status(), 200);
    }
    assert_eq!(watch.written(), Vec::<String>::new());

    for path in [
        "/".to_string(),
        "/uploads?status=completed".to_string(),
        "/studies".to_string(),
        format!("/studies/{STUDY}"),
        "/account".to_string(),
        "/healthz".to_string(),
        "/readyz".to_string(),
    ] {
        let res = app.get_html(&path).await;
        assert!(res.status().as_u16() < 400, "{path}: {}", res.status());
        assert_eq!(watch.written(), Vec::<String>::new(), "GET {path}");
    }
    let listed: serde_json::Value = app
        .client
        .get(app.url("/api/v1/uploads"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let one = listed["uploads"][0]["id"].as_str().unwrap().to_string();
    for path in [
        "/api/v1/uploads".to_string(),
        format!("/api/v1/uploads/{one}"),
        "/api/v1/studies".to_string(),
        format!("/api/v1/studies/{STUDY}"),
        "/api/v1/openapi.json".to_string(),
    ] {
        let res = app
            .client
            .get(app.url(&path))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(watch.written(), Vec::<String>::new(), "GET {path}");
    }
}

both_backends!(a_hundred_views_of_the_history_within_a_minute_write_nothing);
