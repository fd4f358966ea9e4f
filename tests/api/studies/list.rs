//! The study list and the study page count series and instances from what was stored.

use super::support::{STUDY, api_json, page, uploader_sends_cd};
use crate::both_backends;
use crate::helpers::{Backend, TestApp};

fn cell_after(html: &str, marker: &str, nth: usize) -> String {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in page"));
    let cells = regex::Regex::new(r#"<td class="num"[^>]*>([^<]*)</td>"#).unwrap();
    cells
        .captures_iter(&html[at..])
        .nth(nth)
        .map(|c| c[1].to_string())
        .unwrap()
}

async fn the_list_and_the_page_show_the_series_and_instances_that_were_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (key, _) = uploader_sends_cd(&app, 2, 3).await;

    let (status, html) = page(&app, "/studies").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!(r#"href="/studies/{STUDY}""#)),
        "{html}"
    );
    assert!(html.contains("Synthetic study"));
    assert!(html.contains("CT, MR"), "modalities are listed");
    let row = format!(r#"<code class="uid muted">{STUDY}</code>"#);
    assert_eq!(cell_after(&html, &row, 0), "2", "series");
    assert_eq!(cell_after(&html, &row, 1), "6", "instances");
    assert!(html.contains("badge-ok\">Complete"));
    assert!(
        html.contains(r#"<a href="/studies" aria-current="page">Studies</a>"#),
        "the nav links to it"
    );

    let (status, html) = page(&app, &format!("/studies/{STUDY}")).await;
    assert_eq!(status, 200);
    for series in 1..=2 {
        let row = format!(r#"title="{STUDY}.{series}">{series}</th>"#);
        assert_eq!(
            cell_after(&html, &row, 0),
            "3",
            "instances of series {series}"
        );
    }
    for path in ["CD/SE1/IM1", "CD/SE2/IM3"] {
        assert!(html.contains(path), "{path} is listed");
    }
    assert!(html.contains(&format!(r#"href="/studies/{STUDY}/archive""#)));

    let listed = api_json(&app, "/api/v1/studies", &key).await;
    assert_eq!(listed["studies"][0]["series"], 2);
    assert_eq!(listed["studies"][0]["instances"], 6);
}

async fn a_uid_that_is_not_one_is_no_study(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
    for bad in ["1..2", "abc", "1.2.3%2F..%2Fx", "01.2"] {
        let (status, _) = page(&app, &format!("/studies/{bad}")).await;
        assert_eq!(status, 404, "{bad}");
    }
    let (status, html) = page(&app, "/studies").await;
    assert_eq!(status, 200);
    assert!(html.contains("No studies yet"));
}

both_backends!(
    the_list_and_the_page_show_the_series_and_instances_that_were_stored,
    a_uid_that_is_not_one_is_no_study,
);
