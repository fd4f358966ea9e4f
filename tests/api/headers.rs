//! Security headers on every kind of response, and a CSP without unsafe sources.

use actix_web::web;
use medport::app::error::AppError;
use medport::web::security_headers::CONTENT_SECURITY_POLICY;

use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp};

const EXPECTED_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
base-uri 'none'; object-src 'none'";

fn assert_security_headers(res: &reqwest::Response, hsts: bool) {
    let h = res.headers();
    let get = |name: &str| {
        h.get(name)
            .unwrap_or_else(|| panic!("{name} missing on {} {}", res.status(), res.url()))
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(get("content-security-policy"), EXPECTED_CSP);
    assert_eq!(get("x-content-type-options"), "nosniff");
    assert_eq!(get("referrer-policy"), "no-referrer");
    assert_eq!(get("x-frame-options"), "DENY");
    assert_eq!(get("cross-origin-opener-policy"), "same-origin");
    let permissions = get("permissions-policy");
    for feature in ["camera=()", "microphone=()", "geolocation=()"] {
        assert!(permissions.contains(feature), "{permissions}");
    }
    match h.get("strict-transport-security") {
        Some(v) if hsts => assert_eq!(v, "max-age=31536000; includeSubDomains"),
        None if !hsts => {}
        other => panic!("unexpected HSTS {other:?} (wanted: {hsts})"),
    }
}

fn failing_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/__test/fail",
        web::get().to(|| async {
            Err::<actix_web::HttpResponse, _>(AppError::internal(
                "connection string postgres://admin:hunter2@db leaked?",
            ))
        }),
    )
    .route(
        "/__test/form",
        web::post().to(
            |form: web::Form<std::collections::HashMap<String, String>>| async move {
                format!("{}", form.len())
            },
        ),
    );
}

async fn headers_on_every_kind_of_response(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            hook: failing_routes,
            ..Options::default()
        },
    )
    .await;

    // A page, a redirect, a static file, a 404, a 405, a 500 and a 413.
    let page = app.get_html("/login").await;
    assert_eq!(page.status(), 200);
    assert_security_headers(&page, false);
    assert_eq!(page.headers()["cache-control"], "no-store");

    let redirect = app.get("/").await;
    assert_eq!(redirect.status(), 303);
    assert_security_headers(&redirect, false);

    let css = app.get("/static/app.css").await;
    assert_eq!(css.status(), 200);
    assert_security_headers(&css, false);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    let missing = app.get_html("/no/such/page").await;
    assert_eq!(missing.status(), 404);
    assert_security_headers(&missing, false);

    // (A state-changing method would meet the CSRF check first; OPTIONS is not routed.)
    let wrong_method = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_security_headers(&wrong_method, false);

    let failed = app.get_html("/__test/fail").await;
    assert_eq!(failed.status(), 500);
    assert_security_headers(&failed, false);
    let body = failed.text().await.unwrap();
    assert!(body.contains("Something went wrong"), "{body}");
    assert!(
        !body.contains("hunter2") && !body.contains("postgres://"),
        "{body}"
    );

    let big = "a=".to_string() + &"x".repeat(200 * 1024);
    let token = app.csrf_token_with(&app.client, "/login").await;
    let too_large = app
        .client
        .post(app.url("/__test/form"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "text/html")
        .header("X-CSRF-Token", token)
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    assert_security_headers(&too_large, false);
    let body = too_large.text().await.unwrap();
    assert!(body.contains("larger than this server accepts"), "{body}");
    // Without the header the CSRF layer would have to read the body to find the token:
    // an oversized form is refused as too large there too, not read whole.
    let too_large = app
        .client
        .post(app.url("/__test/form"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
}

async fn hsts_only_with_an_https_public_url(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            tweak: Box::new(|s| {
                s.public_url = Some(
                    medport::config::Settings::load_from(
                        None,
                        &[(
                            "MEDPORT_PUBLIC_URL".to_string(),
                            "https://medport.example.org".to_string(),
                        )]
                        .into(),
                    )
                    .unwrap()
                    .public_url
                    .unwrap(),
                );
            }),
            ..Options::default()
        },
    )
    .await;
    for path in ["/login", "/static/app.css", "/nope"] {
        let res = app.get_html(path).await;
        assert_security_headers(&res, true);
    }
}

both_backends!(
    headers_on_every_kind_of_response,
    hsts_only_with_an_https_public_url
);

#[test]
fn csp_has_no_unsafe_sources() {
    assert_eq!(CONTENT_SECURITY_POLICY, EXPECTED_CSP);
    for unsafe_source in [
        "unsafe-inline",
        "unsafe-eval",
        "unsafe-hashes",
        "*",
        "http:",
        "https:",
    ] {
        assert!(
            !CONTENT_SECURITY_POLICY.contains(unsafe_source),
            "CSP allows {unsafe_source}"
        );
    }
}

/// The CSP forbids inline script and style: no page may rely on them. Checks the shipped
/// templates and the pages the server renders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_templates_have_no_inline_script_or_style() {
    let inline = regex::Regex::new(
        r#"(?is)<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle\s*=|\son[a-z]+\s*=|javascript:"#,
    )
    .unwrap();
    let mut checked = 0;
    // Pages and the e-mail parts under templates/email/ alike.
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/templates"
    ))];
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !inline.is_match(&text),
            "inline script/style in {}",
            path.display()
        );
        for tag in text.match_indices("<script") {
            let end = text[tag.0..].find('>').unwrap();
            assert!(
                text[tag.0..tag.0 + end].contains("src="),
                "inline <script> in {}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 3);
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in ["/login", "/nope"] {
        let html = app.get_html(path).await.text().await.unwrap();
        assert!(html.contains("<html"), "{html}");
        assert!(!inline.is_match(&html), "inline script/style on {path}");
    }
}
