//! Role checks over the whole admin router, and key checks over the whole `/api/v1`
//! router. The routes come from the route tables the app is built from
//! (`routes::admin::all_routes()`, `routes::api_routes()`), so a new admin page or API
//! route is covered the moment it is added.

use medport::web::routes::admin::all_routes;
use medport::web::routes::api_routes;

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

async fn send(app: &TestApp, method: &str, path: &str, token: &str) -> reqwest::Response {
    let url = app.url(&path.replace("{id}", "0195f7a4-0000-7000-8000-000000000000"));
    let req = match method {
        "GET" => app.client.get(url),
        "POST" => app
            .client
            .post(url)
            .header("X-CSRF-Token", token)
            .form(&[("csrf_token", token)]),
        other => panic!("route table has an unexpected method {other}"),
    };
    req.header("Accept", "text/html").send().await.unwrap()
}

fn denials(app: &TestApp) -> usize {
    app.audit_actions()
        .iter()
        .filter(|(action, outcome, details)| {
            action == "access.denied" && outcome == "denied" && !details.contains("CSRF")
        })
        .count()
}

async fn uploaders_get_403_on_every_admin_route(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let routes = all_routes();
    assert!(routes.len() >= 8, "admin routes: {routes:?}");
    app.sign_in_as("uploader").await;
    let token = app.session_csrf(&app.client).await;
    for (i, r) in routes.iter().enumerate() {
        let res = send(&app, r.method, r.path, &token).await;
        assert_eq!(res.status(), 403, "{} {}", r.method, r.path);
        // The refusal came from the role check (audited), not from a missing CSRF token.
        assert_eq!(denials(&app), i + 1, "{} {}", r.method, r.path);
    }
}

async fn auditors_read_the_audit_log_but_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("auditor").await;
    let token = app.session_csrf(&app.client).await;
    for r in all_routes() {
        let res = send(&app, r.method, r.path, &token).await;
        let status = res.status().as_u16();
        if r.path.starts_with("/admin/audit") {
            assert_ne!(status, 403, "{} {}", r.method, r.path);
        } else {
            assert_eq!(status, 403, "{} {}", r.method, r.path);
        }
        if r.method == "POST" {
            assert_eq!(status, 403, "auditors never change anything: {}", r.path);
        }
    }
}

async fn admins_pass_the_role_check_on_every_admin_route(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("admin").await;
    let token = app.session_csrf(&app.client).await;
    for r in all_routes() {
        let res = send(&app, r.method, r.path, &token).await;
        assert_ne!(res.status(), 403, "{} {}", r.method, r.path);
    }
    assert_eq!(denials(&app), 0);
}

async fn signed_out_visitors_are_sent_to_sign_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for r in all_routes().iter().filter(|r| r.method == "GET") {
        let res = send(&app, "GET", r.path, "").await;
        assert_eq!(res.status(), 303, "{}", r.path);
        let to = crate::helpers::location(&res);
        assert!(to.starts_with("/login?next=%2Fadmin"), "{} -> {to}", r.path);
    }
    // Scripts get a plain 401 rather than a redirect.
    let res = app.client.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

/// An API route with its placeholders filled in.
fn api_path(path: &str) -> String {
    path.replace("{id}", "0195f7a4-0000-7000-8000-000000000000")
        .replace("{uid}", "1.2.826.0.1.3680043.99.1")
}

/// The scope a route needs: reading needs `read`, anything else `upload`.
fn scope_needed(method: &str) -> &'static str {
    match method {
        "GET" => "read",
        "DELETE" | "POST" => "upload",
        other => panic!("route table has an unexpected method {other}"),
    }
}

async fn every_api_route_needs_a_key_with_its_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.sign_in_as("uploader").await;
    let routes = api_routes();
    assert!(routes.len() >= 9, "api routes: {routes:?}");
    let (anonymous, _) = app.new_browser();
    for r in &routes {
        let url = app.url(&api_path(r.path));
        let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
        let res = anonymous.request(method, url).send().await.unwrap();
        if r.path == "/api/v1/openapi.json" {
            assert_eq!(res.status(), 200, "public documentation");
            continue;
        }
        let body = crate::helpers::api_error(res, 401).await;
        assert_eq!(body["error"], "unauthorized", "{} {}", r.method, r.path);

        let other_scope = match scope_needed(r.method) {
            "read" => "upload",
            _ => "read",
        };
        let key = app.create_api_key(&me.id, other_scope);
        let denied = app.audit_rows("access.denied").len();
        let res = crate::helpers::api_send(&app, r.method, &api_path(r.path), &key).await;
        let body = crate::helpers::api_error(res, 403).await;
        assert_eq!(body["error"], "forbidden", "{} {}", r.method, r.path);
        assert_eq!(
            app.audit_rows("access.denied").len(),
            denied + 1,
            "{} {}",
            r.method,
            r.path
        );
    }
}

/// A DICOMweb route's path with its placeholders filled in.
pub fn dicomweb_path(path: &str, study: &str) -> String {
    path.replace("{study}", study)
        .replace("{series}", &format!("{study}.1"))
        .replace("{sop}", &format!("{study}.1.1"))
        .replace("{frames}", "1")
}

async fn every_dicomweb_route_needs_a_key_with_read(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let all = medport::web::routes::dicomweb::all_routes();
    // Storing (POST) needs `upload` instead: `dicomweb::stow::access` walks those routes.
    let (routes, stores): (Vec<_>, Vec<_>) = all.into_iter().partition(|r| r.method == "GET");
    assert!(routes.len() >= 12, "DICOMweb routes: {routes:?}");
    let stow: Vec<&str> = medport::web::routes::dicomweb::stow::ROUTES
        .iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(stores.iter().map(|r| r.path).collect::<Vec<_>>(), stow);
    let user = app.create_user(
        "dicomweb-scopes@example.org",
        "uploader",
        "a long enough password",
    );
    let upload_only = app.create_api_key(&user, "upload");
    for r in &routes {
        let path = dicomweb_path(r.path, "1.2.826.0.1.3680043.99.90");
        let res = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), 401, "{path}");
        assert!(res.headers().contains_key("www-authenticate"), "{path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized", "{path}");
        let res = crate::helpers::api_get(&app, &path, &upload_only).await;
        assert_eq!(res.status(), 403, "{path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "forbidden", "{path}");
    }
    assert_eq!(denials(&app), routes.len(), "each refusal is audited");
}

both_backends!(
    every_api_route_needs_a_key_with_its_scope,
    every_dicomweb_route_needs_a_key_with_read,
    uploaders_get_403_on_every_admin_route,
    auditors_read_the_audit_log_but_change_nothing,
    admins_pass_the_role_check_on_every_admin_route,
    signed_out_visitors_are_sent_to_sign_in,
);
