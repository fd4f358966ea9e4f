//! A study of 5,000 instances (rows written straight to the database: the point is the
//! queries, not the uploads) is listed, and shown over the API 1,000 instances at a time,
//! with its DICOMDIR checked, by eight clients at once; the study page shows its files a
//! page at a time. The time each answer took is printed; the target (p99 under 100 ms in
//! a release build) is measured with the release binary, not asserted here.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use medport::infra::db::repo::dicom_instances::{NewEntry, NewInstance, insert, insert_entries};

use super::support::{STUDY, api_json, page, write_batch, write_upload};
use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use crate::tus_support::api_key;

const INSTANCES: usize = 5_000;
const CLIENTS: usize = 8;
const ROUNDS: usize = 4;

/// Writes a completed batch of `INSTANCES` indexed instances in 10 series, and a DICOMDIR
/// listing them all plus one that never came.
fn write_study(app: &TestApp, user: &str) {
    let now = chrono::Utc::now().naive_utc();
    let batch = uuid::Uuid::now_v7().to_string();
    let mut pooled = app.db.conn().unwrap();
    let conn: &mut medport::infra::db::DbConnection = &mut pooled;
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        write_batch(conn, &batch, user, INSTANCES as i64 + 1, now)?;
        let mut entries: Vec<(String, String)> = Vec::new();
        for i in 0..=INSTANCES {
            let id = uuid::Uuid::now_v7().to_string();
            let path = if i == INSTANCES {
                "CD/DICOMDIR".to_string()
            } else {
                format!("CD/SE{}/IM{i}", i % 10)
            };
            write_upload(conn, &id, user, Some(&batch), &path, "completed", now)?;
            let sop = format!("{STUDY}.{}.{i}", i % 10);
            let series = format!("{STUDY}.{}", i % 10);
            let number = i32::try_from(i % 10).unwrap();
            let instance = i32::try_from(i).unwrap();
            let row = if i == INSTANCES {
                NewInstance {
                    upload_id: &id,
                    user_id: user,
                    state: "directory",
                    indexed_at: now,
                    ..NewInstance::default()
                }
            } else {
                NewInstance {
                    upload_id: &id,
                    user_id: user,
                    state: "indexed",
                    study_uid: Some(STUDY),
                    series_uid: Some(&series),
                    sop_instance_uid: Some(&sop),
                    modality: Some("CT"),
                    study_date: Some("20261201"),
                    study_description: Some("Large study"),
                    series_number: Some(number),
                    instance_number: Some(instance),
                    indexed_at: now,
                    ..NewInstance::default()
                }
            };
            insert(conn, &row).unwrap();
            if i == INSTANCES {
                entries.push((
                    format!("CD/SE0/IM{}", INSTANCES + 10),
                    format!("{STUDY}.0.x"),
                ));
                let rows: Vec<NewEntry<'_>> = entries
                    .iter()
                    .map(|(path, sop)| NewEntry {
                        directory_upload_id: &id,
                        referenced_path: path,
                        sop_instance_uid: Some(sop),
                        study_uid: Some(STUDY),
                    })
                    .collect();
                insert_entries(conn, &rows).unwrap();
            } else {
                entries.push((path.clone(), sop));
            }
        }
        Ok(())
    })
    .unwrap();
}

/// `ROUNDS` requests from each of `CLIENTS` clients at once; the answers' times, sorted.
async fn timed(app: &TestApp, path: &str, key: &str, clients: usize) -> Vec<Duration> {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, key) = (reqwest::Client::new(), app.url(path), key.to_string());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            for _ in 0..ROUNDS {
                let start = Instant::now();
                let res = client.get(&url).bearer_auth(&key).send().await.unwrap();
                assert_eq!(res.status(), 200);
                res.bytes().await.unwrap();
                times.push(start.elapsed());
            }
            times
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    all
}

async fn a_study_of_5000_instances_is_listed_and_shown_a_window_at_a_time_to_eight_clients(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let user = app.uploader().await;
    let key = api_key(&app, &["read"]).await;
    write_study(&app, &user.id);

    let one = api_json(&app, &format!("/api/v1/studies/{STUDY}"), &key).await;
    assert_eq!(one["instance_count"], INSTANCES);
    assert_eq!(
        (one["offset"].clone(), one["limit"].clone()),
        (0.into(), 1000.into())
    );
    assert_eq!(one["instances"].as_array().unwrap().len(), 1000);
    assert_eq!(one["series"].as_array().unwrap().len(), 10);
    // The windows, walked to the end, hold every instance once, in order.
    let mut walked: Vec<String> = Vec::new();
    for offset in (0..INSTANCES).step_by(1000) {
        let window = api_json(
            &app,
            &format!("/api/v1/studies/{STUDY}?offset={offset}"),
            &key,
        )
        .await;
        walked.extend(
            window["instances"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["upload_id"].as_str().unwrap().to_string()),
        );
    }
    assert_eq!(walked.len(), INSTANCES);
    let unique: std::collections::HashSet<&String> = walked.iter().collect();
    assert_eq!(unique.len(), INSTANCES);
    assert_eq!(
        one["missing"],
        serde_json::json!([format!("CD/SE0/IM{}", INSTANCES + 10)])
    );
    let listed = api_json(&app, "/api/v1/studies", &key).await;
    assert_eq!(listed["studies"][0]["instances"], INSTANCES);
    assert_eq!(listed["studies"][0]["complete"], false);
    the_page_shows_the_files_a_page_at_a_time(&app).await;

    for path in [
        "/api/v1/studies".to_string(),
        format!("/api/v1/studies/{STUDY}"),
    ] {
        for clients in [1, CLIENTS] {
            let times = timed(&app, &path, &key, clients).await;
            let p50 = times[times.len() / 2];
            let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
            println!("{backend:?} {path}: p50 {p50:?}, p99 {p99:?} ({clients} clients)");
        }
    }
}

/// 250 files a page, in series then instance order, with links to the neighbouring pages;
/// the summary and the series count the whole study on every page.
async fn the_page_shows_the_files_a_page_at_a_time(app: &TestApp) {
    let base = format!("/studies/{STUDY}");
    let rows = |html: &str| {
        html.matches(r#"<th scope="row" class="upload-name">"#)
            .count()
    };
    let (status, html) = page(app, &base).await;
    assert_eq!(status, 200);
    assert_eq!(rows(&html), 250);
    assert!(
        html.contains("Showing stored instances 1–250 of 5000."),
        "{html}"
    );
    assert!(html.contains(&format!(r#"href="{base}?page=2" rel="next""#)));
    assert!(!html.contains(r#"rel="prev""#));
    assert!(html.contains("<tr><th scope=\"row\">Instances</th><td>5000</td></tr>"));
    assert!(html.contains(r#">CD/SE0/IM0</a>"#), "series 0 comes first");

    let (status, html) = page(app, &format!("{base}?page=20")).await;
    assert_eq!(status, 200);
    assert_eq!(rows(&html), 250);
    assert!(html.contains("Showing stored instances 4751–5000 of 5000."));
    assert!(html.contains(&format!(r#"href="{base}?page=19" rel="prev""#)));
    assert!(!html.contains(r#"rel="next""#));
    assert!(
        html.contains(r#">CD/SE9/IM4999</a>"#),
        "the last instance is last"
    );

    let (status, html) = page(app, &format!("{base}?page=21")).await;
    assert_eq!(status, 200);
    assert_eq!(rows(&html), 0);
    assert!(html.contains("Page 21 is past the last of the 5000 stored instances."));
    for bad in ["0", "x", "-1", "1.5", "99999999999"] {
        let (status, html) = page(app, &format!("{base}?page={bad}")).await;
        assert_eq!(status, 400, "page={bad}");
        assert!(
            html.contains("The page must be a whole number from 1."),
            "{html}"
        );
    }
}

both_backends!(a_study_of_5000_instances_is_listed_and_shown_a_window_at_a_time_to_eight_clients);
