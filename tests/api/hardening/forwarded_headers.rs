//! Forwarded headers count only from `MEDPORT_TRUSTED_PROXIES`: without it a client cannot
//! choose the address in the audit trail and the request log, the host the CSRF Origin
//! check compares with, or the host of a tus `Location`.

use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp, location, serve_with_log};

const SPOOFED: [(&str, &str); 4] = [
    ("X-Forwarded-For", "203.0.113.77"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Proto", "https"),
    (
        "Forwarded",
        "for=203.0.113.77;host=evil.example;proto=https",
    ),
];

fn spoofed(mut rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    for (name, value) in SPOOFED {
        rb = rb.header(name, value);
    }
    rb
}

/// A script creates an upload with every forwarded header spoofed.
async fn spoofed_tus_create(app: &TestApp) -> reqwest::Response {
    app.sign_in_as("uploader").await;
    let key = crate::tus_support::api_key(app, &["upload"]).await;
    let (client, _) = app.new_browser();
    spoofed(client.post(app.url("/tus/")))
        .bearer_auth(&key)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "10")
        .header("Upload-Metadata", "filename YS5wZGY=")
        .send()
        .await
        .unwrap()
}

async fn a_foreign_origin_is_refused_whatever_the_forwarded_host_says(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let token = app.session_csrf(&app.client).await;
    let res = spoofed(app.client.post(app.url("/logout")))
        .header("Origin", "https://evil.example")
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

async fn the_tus_location_names_this_server_not_a_forwarded_host(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = spoofed_tus_create(&app).await;
    assert_eq!(res.status(), 201);
    let to = location(&res);
    assert!(to.starts_with(&format!("{}/tus/", app.address)), "{to}");
}

async fn a_trusted_proxy_names_the_host_and_client(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            tweak: Box::new(|s| s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]),
            ..Options::default()
        },
    )
    .await;
    let res = spoofed_tus_create(&app).await;
    assert!(
        location(&res).starts_with("https://evil.example/tus/"),
        "{}",
        location(&res)
    );
}

async fn the_audit_trail_and_request_log_record_the_peer_address(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user(
        "clin@example.org",
        "uploader",
        "a long enough test password",
    );
    let (server, address, log) = serve_with_log(&app, &[]);
    let (client, _) = app.new_browser();
    let token = crate::helpers::csrf_token_at(&client, &format!("{address}/login")).await;
    let res = spoofed(client.post(format!("{address}/login")))
        .form(&[
            ("email", "clin@example.org"),
            ("password", "wrong"),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let ips: Vec<Option<String>> = {
        use diesel::prelude::*;
        use medport::infra::db::schema::audit_events::dsl::*;
        let mut conn = app.db.conn().unwrap();
        audit_events
            .filter(action.eq("login"))
            .select(ip)
            .load(&mut *conn)
            .unwrap()
    };
    assert_eq!(ips, [Some("127.0.0.1".to_string())]);
    // The request's log line is written as its answer completes, and read from the pipe
    // by another thread: wait for it before stopping the server.
    let is_sign_in = |l: &str| l.contains("http.method=POST") && l.contains("http.route=/login");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !log.lock().unwrap().lines().any(is_sign_in) && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut server = server;
    server.kill().unwrap();
    server.wait().unwrap();
    let log = log.lock().unwrap().clone();
    let line = log
        .lines()
        .find(|l| is_sign_in(l))
        .unwrap_or_else(|| panic!("no request log line for the sign-in: {log}"));
    assert!(line.contains("http.client_ip=127.0.0.1"), "{line}");
    assert!(line.contains("http.host=127.0.0.1:"), "{line}");
    assert!(!log.contains("203.0.113.77"), "{log}");
    assert!(!log.contains("evil.example"), "{log}");
}

both_backends!(
    a_foreign_origin_is_refused_whatever_the_forwarded_host_says,
    the_tus_location_names_this_server_not_a_forwarded_host,
    a_trusted_proxy_names_the_host_and_client,
    the_audit_trail_and_request_log_record_the_peer_address,
);
