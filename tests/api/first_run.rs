//! A new installation says how to create its first administrator: once in the start-up
//! log, and on the sign-in page to visitors on the same machine, until one exists.

use crate::both_backends;
use crate::helpers::{Backend, TestApp, serve_with_log};

const COMMAND: &str = "medport user create --email admin@example.org --role admin --password-stdin";

async fn start_up_logs_the_command_until_an_admin_exists(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (mut first, _, log) = serve_with_log(&app, &[]);
    first.kill().unwrap();
    first.wait().unwrap();
    let log = log.lock().unwrap().clone();
    let hints: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("no administrator yet"))
        .collect();
    assert_eq!(hints.len(), 1, "{log}");
    assert!(hints[0].contains(COMMAND), "{}", hints[0]);

    // An uploader is not an administrator.
    app.create_user(
        "someone@example.org",
        "uploader",
        "a long enough test password",
    );
    let (mut second, _, log) = serve_with_log(&app, &[]);
    second.kill().unwrap();
    second.wait().unwrap();
    assert!(log.lock().unwrap().contains("no administrator yet"));

    app.create_user("admin@example.org", "admin", "a long enough test password");
    let (mut third, _, log) = serve_with_log(&app, &[]);
    third.kill().unwrap();
    third.wait().unwrap();
    let log = log.lock().unwrap().clone();
    assert!(!log.contains("no administrator yet"), "{log}");
}

async fn the_sign_in_page_shows_it_only_on_this_machine(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    let page = app.get_html("/login").await.text().await.unwrap();
    assert!(page.contains("data-first-run"), "{page}");
    assert!(page.contains(COMMAND), "{page}");

    // Through a reverse proxy on this host the socket peer is loopback too, but the
    // visitor is elsewhere: the forwarded header says so, trusted or not.
    for header in ["X-Forwarded-For", "Forwarded", "X-Real-IP"] {
        let value = if header == "Forwarded" {
            "for=203.0.113.9"
        } else {
            "203.0.113.9"
        };
        let page = app
            .get_html_with("/login", &[(header, value)])
            .await
            .text()
            .await
            .unwrap();
        assert!(!page.contains("data-first-run"), "{header}: {page}");
        assert!(!page.contains("--password-stdin"), "{header}");
    }

    app.create_user("admin@example.org", "admin", "a long enough test password");
    let page = app.get_html("/login").await.text().await.unwrap();
    assert!(!page.contains("data-first-run"), "{page}");
}

both_backends!(
    start_up_logs_the_command_until_an_admin_exists,
    the_sign_in_page_shows_it_only_on_this_machine,
);
