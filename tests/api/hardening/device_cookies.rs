//! OWASP's device cookies: a browser that signed in to an account before keeps signing in
//! while failures from elsewhere throttle the account; other browsers keep the throttle.

use crate::both_backends;
use crate::helpers::{Backend, TestApp, location};

const PASSWORD: &str = "a long enough test password";

async fn sign_out(app: &TestApp, client: &reqwest::Client) {
    let token = app.session_csrf(client).await;
    let res = client
        .post(app.url("/logout"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/login?signed_out=1");
}

async fn failures_from(app: &TestApp, source: &str, email: &str, n: usize) -> Vec<u16> {
    let (attacker, _) = app.browser_from(source);
    let mut statuses = Vec::new();
    for _ in 0..n {
        let res = app.login_with(&attacker, email, "not the password").await;
        statuses.push(res.status().as_u16());
    }
    statuses
}

async fn a_browser_that_signed_in_before_still_signs_in_after_failures_from_elsewhere(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let email = "clinician@example.org";
    app.create_user(email, "uploader", PASSWORD);
    app.sign_in(email, PASSWORD).await;
    sign_out(&app, &app.client).await;

    let statuses = failures_from(&app, "127.0.0.2", email, 8).await;
    assert_eq!(
        statuses,
        [401, 401, 401, 401, 429, 429, 429, 429],
        "the account is throttled for every other browser"
    );
    let (stranger, _) = app.browser_from("127.0.0.3");
    let res = app.login_with(&stranger, email, PASSWORD).await;
    assert_eq!(
        res.status(),
        429,
        "a new browser waits, even with the password"
    );

    let res = app.login(email, PASSWORD).await;
    assert_eq!(res.status(), 303, "the clinician's own browser signs in");
    assert_eq!(location(&res), "/");
}

async fn the_device_cookie_is_signed_http_only_and_names_no_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = "clinician@example.org";
    app.create_user(email, "uploader", PASSWORD);
    let res = app.login(email, PASSWORD).await;
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("medport_device="))
        .expect("a device cookie after sign-in");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Max-Age="), "{cookie}");
    assert!(!cookie.contains("clinician"), "{cookie}");
}

async fn a_trusted_browser_guessing_is_throttled_under_its_own_entry(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = "clinician@example.org";
    app.create_user(email, "uploader", PASSWORD);
    app.sign_in(email, PASSWORD).await;
    sign_out(&app, &app.client).await;

    let mut statuses = Vec::new();
    for _ in 0..6 {
        let res = app.login(email, "not the password").await;
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 429, 429], "guessing is slow");
    let (elsewhere, _) = app.browser_from("127.0.0.2");
    let res = app.login_with(&elsewhere, email, PASSWORD).await;
    assert_eq!(
        res.status(),
        303,
        "a cookie's own failures do not throttle the account for others"
    );
}

async fn a_forged_device_cookie_is_ignored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = "clinician@example.org";
    app.create_user(email, "uploader", PASSWORD);
    failures_from(&app, "127.0.0.2", email, 6).await;
    let (forger, jar) = app.browser_from("127.0.0.3");
    jar.add_cookie_str(
        "medport_device=AAAAAAAAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA.AAAA",
        &app.address.parse().unwrap(),
    );
    let res = app.login_with(&forger, email, PASSWORD).await;
    assert_eq!(res.status(), 429);
}

both_backends!(
    a_browser_that_signed_in_before_still_signs_in_after_failures_from_elsewhere,
    the_device_cookie_is_signed_http_only_and_names_no_account,
    a_trusted_browser_guessing_is_throttled_under_its_own_entry,
    a_forged_device_cookie_is_ignored,
);
