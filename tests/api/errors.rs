//! Error answers: friendly pages for browsers, short text for scripts, never internals.

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

async fn not_found_is_a_friendly_page_or_plain_text(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let html = app.get_html("/definitely/missing").await;
    assert_eq!(html.status(), 404);
    assert_eq!(html.headers()["content-type"], "text/html; charset=utf-8");
    let body = html.text().await.unwrap();
    assert!(body.contains("Page not found"));
    assert!(
        body.contains("Reference:"),
        "the page gives a request reference"
    );

    let plain = app.get("/definitely/missing").await;
    assert_eq!(plain.status(), 404);
    assert_eq!(plain.headers()["content-type"], "text/plain; charset=utf-8");
    assert!(
        plain
            .text()
            .await
            .unwrap()
            .starts_with("404 Page not found")
    );
}

async fn malformed_query_gets_a_clean_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // `next` appears twice with invalid percent-encoding: the extractor fails.
    let res = app.get_html("/login?next=%zz&next=%").await;
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    // Either the value is ignored (200, safe default) or refused (400); never a parser
    // message in the page.
    assert!(status == 200 || status == 400, "{status}");
    assert!(!body.to_lowercase().contains("deserialize"), "{body}");
}

async fn open_redirects_are_refused_in_next(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (next, expected) in [
        ("%2Fuploads", "/uploads"),
        ("%2F%2Fevil.example", "/"),
        ("https%3A%2F%2Fevil.example", "/"),
        ("%2F%5Cevil.example", "/"),
    ] {
        let body = app
            .get_html(&format!("/login?next={next}"))
            .await
            .text()
            .await
            .unwrap();
        assert!(
            body.contains(&format!("name=\"next\" value=\"{expected}\"")),
            "next={next}: {body}"
        );
    }
}

both_backends!(
    not_found_is_a_friendly_page_or_plain_text,
    malformed_query_gets_a_clean_400,
    open_redirects_are_refused_in_next
);
