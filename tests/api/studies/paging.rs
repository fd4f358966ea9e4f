//! The study list is read a page at a time, newest first: 50 studies on a page of the
//! list page, a `limit` and `offset` window over the API, never every study at once. A
//! study's instances come over the API in such windows too.

use chrono::Duration;

use super::support::{STUDY, api_json, page, write_batch, write_instance};
use crate::both_backends;
use crate::helpers::{Backend, TestApp, api_error, api_get};
use crate::tus_support::api_key;

const STUDIES: usize = 120;

fn study(i: usize) -> String {
    format!("{STUDY}.{i}")
}

/// `STUDIES` studies of one instance each, study `i` uploaded `i` seconds after the first.
fn write_studies(app: &TestApp, user: &str) {
    let start = chrono::Utc::now().naive_utc();
    let batch = uuid::Uuid::now_v7().to_string();
    let mut conn = app.db.conn().unwrap();
    write_batch(&mut conn, &batch, user, STUDIES as i64, start).unwrap();
    for i in 0..STUDIES {
        let at = start + Duration::seconds(i64::try_from(i).unwrap());
        write_instance(&mut conn, user, &batch, &study(i), i, 1, "completed", at);
    }
}

/// `field` of every item of the answer's `list`, in order.
fn listed(body: &serde_json::Value, list: &str, field: &str) -> Vec<String> {
    body[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap().to_string())
        .collect()
}

fn rows(html: &str) -> usize {
    html.matches(r#"<th scope="row" class="study-name">"#)
        .count()
}

async fn the_list_page_shows_fifty_studies_a_page_newest_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.uploader().await;
    write_studies(&app, &user.id);

    let (status, html) = page(&app, "/studies").await;
    assert_eq!(status, 200);
    assert_eq!(rows(&html), 50);
    assert!(html.contains("120 studies."), "{html}");
    assert!(html.contains("Showing studies 1–50 of 120."));
    assert!(html.contains(r#"href="/studies?page=2" rel="next""#));
    assert!(!html.contains(r#"rel="prev""#));
    let (newest, next) = (study(119), study(118));
    assert!(
        html.find(&newest).unwrap() < html.find(&next).unwrap(),
        "newest first"
    );
    assert!(!html.contains(&format!(">{}<", study(69))), "on page 2");

    let (status, html) = page(&app, "/studies?page=3").await;
    assert_eq!(status, 200);
    assert_eq!(rows(&html), 20);
    assert!(html.contains("Showing studies 101–120 of 120."));
    assert!(html.contains(r#"href="/studies?page=2" rel="prev""#));
    assert!(!html.contains(r#"rel="next""#));
    assert!(
        html.contains(&format!(">{}<", study(0))),
        "the oldest is last"
    );

    let (status, html) = page(&app, "/studies?page=4").await;
    assert_eq!(status, 200);
    assert_eq!(rows(&html), 0);
    assert!(html.contains("Page 4 is past the last of the 120 studies."));
    for bad in ["0", "x", "-1", "99999999999"] {
        let (status, _) = page(&app, &format!("/studies?page={bad}")).await;
        assert_eq!(status, 400, "page={bad}");
    }
}

async fn the_api_lists_a_window_of_studies_with_the_total(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.uploader().await;
    let key = api_key(&app, &["read"]).await;
    write_studies(&app, &user.id);

    let uids = |body: &serde_json::Value| listed(body, "studies", "study_instance_uid");
    let first = api_json(&app, "/api/v1/studies", &key).await;
    assert_eq!(first["total"], STUDIES);
    assert_eq!(
        (first["offset"].clone(), first["limit"].clone()),
        (0.into(), 100.into())
    );
    assert_eq!(uids(&first).len(), 100);
    assert_eq!(uids(&first)[0], study(119), "newest first");

    let tail = api_json(&app, "/api/v1/studies?limit=10&offset=115", &key).await;
    assert_eq!(
        uids(&tail),
        (0..5).rev().map(study).collect::<Vec<_>>(),
        "the window past 115, oldest last"
    );
    let wide = api_json(&app, "/api/v1/studies?limit=5000", &key).await;
    assert_eq!(wide["limit"], 1000, "lowered to the most one answer gives");
    assert_eq!(uids(&wide).len(), STUDIES);

    for bad in ["limit=0", "limit=x", "offset=-1", "limit=1.5"] {
        let res = api_get(&app, &format!("/api/v1/studies?{bad}"), &key).await;
        let body = api_error(res, 400).await;
        assert_eq!(body["error"], "bad_request", "{bad}: {body}");
        assert!(body["message"].as_str().unwrap().contains("whole number"));
    }
}

/// Seven instances in one series: the window says how many there are in all, and holds
/// the ones asked for, in instance order.
async fn the_api_shows_a_window_of_a_studys_instances_with_the_count(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.uploader().await;
    let key = api_key(&app, &["read"]).await;
    let at = chrono::Utc::now().naive_utc();
    let batch = uuid::Uuid::now_v7().to_string();
    {
        let mut conn = app.db.conn().unwrap();
        write_batch(&mut conn, &batch, &user.id, 7, at).unwrap();
        for i in 0..7 {
            write_instance(&mut conn, &user.id, &batch, STUDY, i, 1, "completed", at);
        }
    }
    let numbers = |body: &serde_json::Value| listed(body, "instances", "sop_instance_uid");
    let sop = |i: usize| format!("{STUDY}.1.{i}");

    let whole = api_json(&app, &format!("/api/v1/studies/{STUDY}"), &key).await;
    assert_eq!(whole["instance_count"], 7);
    assert_eq!(
        (whole["offset"].clone(), whole["limit"].clone()),
        (0.into(), 1000.into())
    );
    assert_eq!(numbers(&whole), (0..7).map(sop).collect::<Vec<_>>());

    let window = api_json(
        &app,
        &format!("/api/v1/studies/{STUDY}?limit=3&offset=2"),
        &key,
    )
    .await;
    assert_eq!(
        window["instance_count"], 7,
        "the count is the study's, not the window's"
    );
    assert_eq!(numbers(&window), (2..5).map(sop).collect::<Vec<_>>());
    assert_eq!(window["series"][0]["instances"], 7);

    let past = api_json(&app, &format!("/api/v1/studies/{STUDY}?offset=7"), &key).await;
    assert_eq!(numbers(&past), Vec::<String>::new());
    let wide = api_json(&app, &format!("/api/v1/studies/{STUDY}?limit=5000"), &key).await;
    assert_eq!(wide["limit"], 1000, "lowered to the most one answer gives");

    for bad in ["limit=0", "limit=x", "offset=-1", "offset=1.5"] {
        let res = api_get(&app, &format!("/api/v1/studies/{STUDY}?{bad}"), &key).await;
        let body = api_error(res, 400).await;
        assert_eq!(body["error"], "bad_request", "{bad}: {body}");
    }
}

both_backends!(
    the_list_page_shows_fifty_studies_a_page_newest_first,
    the_api_lists_a_window_of_studies_with_the_total,
    the_api_shows_a_window_of_a_studys_instances_with_the_count
);
