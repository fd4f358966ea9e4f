//! Errors under `/api/` are JSON, `{"error": code, "message": sentence}`, with
//! `retry_after` (and the Retry-After header) on 429; pages keep their HTML error pages.

use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp, api_error, api_get};

use super::script;

async fn api_errors_are_json_and_pages_stay_html(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = script(&app, &["read"]).await;
    let (anonymous, _) = app.new_browser();

    // No key, or one the server does not know: 401 with the bearer challenge.
    let res = anonymous
        .get(app.url("/api/v1/uploads"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"medport\""
    );
    let body = api_error(res, 401).await;
    assert_eq!(body["error"], "unauthorized");
    assert!(body["message"].as_str().unwrap().contains("Bearer"));
    let other_last = if key.ends_with('A') { 'B' } else { 'A' };
    let forged = format!("{}{other_last}", &key[..key.len() - 1]);
    let body = api_error(api_get(&app, "/api/v1/uploads", &forged).await, 401).await;
    assert_eq!(body["error"], "unauthorized");

    // An address that is no route, under /api/ and exactly /api.
    for path in ["/api/v1/nothing-here", "/api"] {
        let body = api_error(api_get(&app, path, &key).await, 404).await;
        assert_eq!(body["error"], "not_found", "{path}");
    }
    // Only the JSON fields, and nothing of the server's insides.
    let body = api_error(api_get(&app, "/api/v1/uploads/not-an-id", &key).await, 404).await;
    let mut fields: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(fields, ["error", "message"]);

    // Pages: the HTML error page as before.
    let res = app
        .get_html("/uploads/0195f7a4-0000-7000-8000-000000000000")
        .await;
    assert_eq!(res.status(), 404);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let res = anonymous
        .get(app.url("/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
}

async fn over_the_limit_the_api_says_when_to_come_back(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            tweak: Box::new(|s| s.rate_limits.general_per_minute = 5),
            ..Options::default()
        },
    )
    .await;
    let (_, key) = script(&app, &["read"]).await;
    let mut refused = None;
    for _ in 0..20 {
        let res = api_get(&app, "/api/v1/uploads", &key).await;
        if res.status() == 429 {
            refused = Some(res);
            break;
        }
        assert_eq!(res.status(), 200);
    }
    let res = refused.expect("a 429 within 20 requests at 5 a minute");
    let header: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = api_error(res, 429).await;
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(body["retry_after"], header);
    assert!(header >= 1, "{header}");
}

both_backends!(
    api_errors_are_json_and_pages_stay_html,
    over_the_limit_the_api_says_when_to_come_back,
);
