//! Every route that does not take files refuses bodies over 64 KiB with 413, whatever the
//! content type, with or without a `Content-Length`.

use medport::web::routes::admin::all_routes;

use super::KIB;
use crate::both_backends;
use crate::helpers::{Backend, TestApp};

/// The POST routes outside the admin tables (their `route_table!`s are private to
/// `routes`), uploads excepted: `POST /uploads` and the tus routes take files.
const PUBLIC_POSTS: &[&str] = &[
    "/login",
    "/login/totp",
    "/account/password",
    "/account/sessions/revoke-others",
    "/account/sessions/{id}/revoke",
    "/account/totp",
    "/account/totp/recovery-codes",
    "/account/totp/disable",
    "/account/api-keys",
    "/account/api-keys/{id}/revoke",
    "/account/api-keys/{id}/rotate",
    // Last: anything that does run signs the browser out.
    "/logout",
];

fn non_upload_posts() -> Vec<String> {
    let mut paths: Vec<String> = all_routes()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path.to_string())
        .collect();
    paths.extend(PUBLIC_POSTS.iter().map(|p| p.to_string()));
    paths
        .into_iter()
        .map(|p| {
            p.replace("{id}", "0195f7a4-0000-7000-8000-000000000000")
                .replace("{user_id}", "0195f7a4-0000-7000-8000-000000000001")
        })
        .collect()
}

const LIMIT: usize = 64 * KIB;

async fn every_non_upload_post_refuses_bodies_over_64_kib(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("admin").await;
    let token = app.session_csrf(&app.client).await;
    let paths = non_upload_posts();
    assert!(paths.len() >= 25, "{paths:?}");
    let mut wrong = Vec::new();
    for path in &paths {
        // A form, as a browser sends it (the token first, so it is found).
        let form = format!("csrf_token={token}&pad={}", "a".repeat(LIMIT));
        let cases: [(&str, &str, Vec<u8>); 3] = [
            (
                "form",
                "application/x-www-form-urlencoded",
                form.into_bytes(),
            ),
            ("octets", "application/octet-stream", vec![b'a'; LIMIT + 1]),
            (
                "json",
                "application/json",
                [b"\"".as_slice(), &[b'a'; LIMIT], b"\""].concat(),
            ),
        ];
        for (label, content_type, body) in cases {
            let res = app
                .client
                .post(app.url(path))
                .header("Accept", "text/html")
                .header("X-CSRF-Token", &token)
                .header("Content-Type", content_type)
                .body(body)
                .send()
                .await;
            let status = res.map(|r| r.status().as_u16()).unwrap_or(0);
            if status != 413 {
                wrong.push(format!("{path} ({label}): {status}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "not refused with 413:\n{}",
        wrong.join("\n")
    );
}

/// Without a `Content-Length` (chunked), the body is cut at the limit too.
async fn chunked_bodies_over_64_kib_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let token = app.session_csrf(&app.client).await;
    let form = format!("csrf_token={token}&name=x&pad={}", "a".repeat(LIMIT));
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = form
        .into_bytes()
        .chunks(8 * KIB)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let res = app
        .client
        .post(app.url("/account/api-keys"))
        .header("Accept", "text/html")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    // A body within the limit still works.
    assert_eq!(
        app.post_form(
            "/account/api-keys",
            &[("name", "ok"), ("expires_days", "30"), ("scopes", "upload")]
        )
        .await
        .status(),
        200
    );
}

both_backends!(
    every_non_upload_post_refuses_bodies_over_64_kib,
    chunked_bodies_over_64_kib_are_refused,
);
