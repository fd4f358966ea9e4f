//! Sign-in, sessions, CSRF, throttling and the TOTP step, through HTTP.

use std::time::Duration;

use diesel::prelude::*;
use medport::app::accounts::totp;
use medport::infra::db::schema::{sessions, users};

use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp, location};

const PW: &str = "correct horse battery staple";

fn session_rows(app: &TestApp) -> i64 {
    let mut conn = app.db.conn().unwrap();
    sessions::table.count().get_result(&mut *conn).unwrap()
}

fn cookie_value(header: &str) -> String {
    header
        .split(';')
        .map(str::trim)
        .find_map(|c| c.strip_prefix("medport_session="))
        .unwrap_or_default()
        .to_string()
}

/// Where "/" sends this cookie: `/account` when signed in, `/login` when not.
async fn home_with_cookie(app: &TestApp, cookie: &str) -> String {
    let (client, _) = app.new_browser();
    let res = client
        .get(app.url("/"))
        .header("Cookie", format!("medport_session={cookie}"))
        .send()
        .await
        .unwrap();
    location(&res)
}

async fn login_rotates_the_session_and_logout_ends_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("clin@example.org", "uploader", PW);

    let _ = app.csrf_token_with(&app.client, "/login").await;
    let before = cookie_value(&app.cookie_header());
    assert!(
        !before.is_empty(),
        "the sign-in page starts a session for its CSRF token"
    );
    assert_eq!(home_with_cookie(&app, &before).await, "/login");

    app.sign_in("Clin@Example.org", PW).await;
    let after = cookie_value(&app.cookie_header());
    assert_ne!(before, after, "a new session id at sign-in");
    assert_eq!(home_with_cookie(&app, &after).await, "/uploads");
    assert_eq!(
        home_with_cookie(&app, &before).await,
        "/login",
        "old id is dead"
    );

    // The database holds only hashes of session ids.
    let mut conn = app.db.conn().unwrap();
    let hashes: Vec<String> = sessions::table
        .select(sessions::id_hash)
        .load(&mut *conn)
        .unwrap();
    drop(conn);
    assert!(hashes.iter().all(|h| h.len() == 64 && *h != after));

    let res = app.post_form("/logout", &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login?signed_out=1");
    assert_eq!(
        home_with_cookie(&app, &after).await,
        "/login",
        "id is dead after logout"
    );
    let actions: Vec<String> = app.audit_actions().into_iter().map(|a| a.0).collect();
    assert!(actions.contains(&"login".to_string()) && actions.contains(&"logout".to_string()));
}

async fn idle_and_absolute_expiry_are_enforced_by_the_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("clin@example.org", "uploader", PW);

    // Idle: 31 minutes without a request.
    app.sign_in("clin@example.org", PW).await;
    app.clock.advance(Duration::from_secs(31 * 60));
    let res = app.get("/").await;
    let to = location(&res);
    assert!(to.starts_with("/login?expired=1"), "{to}");
    let page = app.get_html(&to).await.text().await.unwrap();
    assert!(
        page.contains("session ended after a period of inactivity"),
        "{page}"
    );

    // Absolute: active every 20 minutes, still signed out after 12 hours.
    app.sign_in("clin@example.org", PW).await;
    let mut signed_in_for = Duration::ZERO;
    loop {
        app.clock.advance(Duration::from_secs(20 * 60));
        signed_in_for += Duration::from_secs(20 * 60);
        let at = location(&app.get("/").await);
        if signed_in_for < Duration::from_secs(12 * 3600) {
            assert_eq!(at, "/uploads", "still signed in after {signed_in_for:?}");
        } else {
            assert!(
                at.starts_with("/login"),
                "signed out after {signed_in_for:?}: {at}"
            );
            break;
        }
    }
}

async fn disabling_a_user_ends_their_live_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    app.sign_in("clin@example.org", PW).await;
    assert_eq!(location(&app.get("/").await), "/uploads");
    {
        let mut conn = app.db.conn().unwrap();
        diesel::update(users::table.find(&id))
            .set(users::disabled.eq(true))
            .execute(&mut *conn)
            .unwrap();
    }
    assert_eq!(location(&app.get("/").await), "/login");
    let mut conn = app.db.conn().unwrap();
    let left: i64 = sessions::table
        .filter(sessions::user_id.eq(&id))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(left, 0, "the session row is gone");
}

fn set_cookie(res: &reqwest::Response) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn cookie_flags_over_http_and_https(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = set_cookie(&app.get_html("/login").await);
    assert!(c.starts_with("medport_session="), "{c}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(c.contains(flag), "{flag} missing: {c}");
    }
    assert!(!c.contains("Secure") && !c.contains("Domain"), "{c}");
    assert!(
        !c.contains("Max-Age") && !c.contains("Expires"),
        "a browser-session cookie: {c}"
    );

    let https = TestApp::spawn_with(
        backend,
        Options {
            tweak: Box::new(|s| {
                let env = [(
                    "MEDPORT_PUBLIC_URL".to_string(),
                    "https://medport.example.org".to_string(),
                )];
                s.public_url = medport::config::Settings::load_from(None, &env.into())
                    .unwrap()
                    .public_url;
            }),
            ..Options::default()
        },
    )
    .await;
    let c = set_cookie(&https.get_html("/login").await);
    assert!(c.starts_with("__Host-medport_session="), "{c}");
    for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(c.contains(flag), "{flag} missing: {c}");
    }
    assert!(!c.contains("Domain"), "{c}");
}

async fn csrf_missing_wrong_or_cross_site_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("clin@example.org", "uploader", PW);
    let token = app.csrf_token_with(&app.client, "/login").await;
    let form = |t: &str| {
        vec![
            ("email".to_string(), "clin@example.org".to_string()),
            ("password".to_string(), PW.to_string()),
            ("csrf_token".to_string(), t.to_string()),
        ]
    };
    let post = |fields: Vec<(String, String)>| {
        app.client
            .post(app.url("/login"))
            .header("Accept", "text/html")
            .form(&fields)
    };
    let mut no_token = form("");
    no_token.pop();
    for (name, req) in [
        ("missing", post(no_token)),
        ("wrong", post(form("not-the-token"))),
        (
            "foreign origin",
            post(form(&token)).header("Origin", "https://evil.example"),
        ),
        (
            "cross-site",
            post(form(&token)).header("Sec-Fetch-Site", "cross-site"),
        ),
        ("null origin", post(form(&token)).header("Origin", "null")),
    ] {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 403, "{name}");
        assert!(
            res.text().await.unwrap().contains("Access denied"),
            "{name}"
        );
    }
    // Nothing changed: no sign-in happened, no login was recorded.
    assert_eq!(location(&app.get("/").await), "/login");
    let actions = app.audit_actions();
    assert!(actions.iter().all(|a| a.0 != "login"), "{actions:?}");
    // Before sign-in, the first refusals of an address are recorded and the rest counted
    // (more in `hardening/audit_flood.rs`); a turning minute may record a few more.
    let recorded = actions.iter().filter(|a| a.0 == "access.denied").count();
    let first = medport::app::audit::refusals::PER_ADDRESS as usize;
    assert!((first..=5).contains(&recorded), "{recorded}");

    // The same form with the token works, as a browser sends it: Chromium says
    // `Origin: null` under `Referrer-Policy: no-referrer`, with `Sec-Fetch-Site: same-origin`.
    let res = post(form(&token))
        .header("Origin", "null")
        .header("Sec-Fetch-Site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    // Signed in now: sign-out without a token is refused and changes nothing.
    let res = app.client.post(app.url("/logout")).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(location(&app.get("/").await), "/uploads");
}

async fn failed_sign_ins_look_the_same(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    app.create_user("off@example.org", "uploader", PW);
    {
        let mut conn = app.db.conn().unwrap();
        diesel::update(users::table.filter(users::email.eq("off@example.org")))
            .set(users::disabled.eq(true))
            .execute(&mut *conn)
            .unwrap();
    }
    let mut bodies = Vec::new();
    for (email, pw) in [
        ("nobody@example.org", PW),
        ("clin@example.org", "wrong password entirely"),
        ("off@example.org", PW),
    ] {
        let (client, _) = app.new_browser();
        let res = app.login_with(&client, email, pw).await;
        assert_eq!(res.status(), 401, "{email}");
        let body = res.text().await.unwrap();
        assert!(body.contains("Email or password is incorrect."), "{body}");
        bodies.push(
            body.replace(email, "EMAIL")
                .replace(&extract(&body), "TOKEN"),
        );
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[1], bodies[2]);
    let failures: Vec<_> = app
        .audit_actions()
        .into_iter()
        .filter(|a| a.0 == "login" && a.1 == "failure")
        .collect();
    assert_eq!(failures.len(), 3);
    assert!(
        failures.iter().all(|f| !f.2.contains(PW)),
        "no password in the audit trail"
    );
    let _ = id;
}

fn extract(body: &str) -> String {
    crate::helpers::extract_csrf(body).unwrap_or_default()
}

async fn login_rate_limit_answers_429(backend: Backend) {
    let app = TestApp::spawn_with(backend, Options::default_rate_limits()).await;
    let token = app.csrf_token_with(&app.client, "/login").await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        // A different address each time, so the per-account throttle stays out of it.
        let email = format!("x{i}@example.org");
        let res = app
            .client
            .post(app.url("/login"))
            .form(&[
                ("email", email.as_str()),
                ("password", "nope"),
                ("csrf_token", &token),
            ])
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            assert!(
                res.headers().contains_key("retry-after"),
                "{:?}",
                res.headers()
            );
            assert!(res.headers().contains_key("x-ratelimit-after"));
        }
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    // Reading the sign-in page is not limited by the sign-in limit.
    assert_eq!(app.get_html("/login").await.status(), 200);
}

async fn account_throttle_after_five_failures(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("clin@example.org", "uploader", PW);
    for email in ["clin@example.org", "ghost@example.org"] {
        for i in 1..=5 {
            let res = app.login(email, "wrong password again").await;
            let expected = if i < 5 { 401 } else { 429 };
            assert_eq!(res.status(), expected, "{email} attempt {i}");
        }
        // Even the right password waits now: same answer for real and unknown accounts.
        let res = app.login(email, PW).await;
        assert_eq!(res.status(), 429, "{email}");
        assert!(res.headers().contains_key("retry-after"));
        let body = res.text().await.unwrap();
        assert!(body.contains("Too many failed sign-in attempts"), "{body}");
    }
    app.clock.advance(Duration::from_secs(16));
    app.sign_in("clin@example.org", PW).await;
    let throttled = app
        .audit_actions()
        .into_iter()
        .filter(|a| a.0 == "login.throttled")
        .count();
    assert_eq!(throttled, 2);
}

async fn totp_codes_are_single_use(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("admin@example.org", "admin", PW);
    let (secret, recovery) = app.enrol_totp(&id, "admin@example.org");

    let res = app.login("admin@example.org", PW).await;
    assert_eq!(location(&res), "/login/totp");
    assert_eq!(
        location(&app.get("/").await),
        "/login",
        "password alone grants nothing"
    );

    let res = app.submit_totp("000000").await;
    let wrong = if totp::verify(&secret, "000000", app.clock.unix()).is_some() {
        303
    } else {
        401
    };
    assert_eq!(res.status(), wrong);

    let code = totp::code_for_step(&secret, totp::step_at(app.clock.unix()));
    let res = app.submit_totp(&code).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&app.get("/").await), "/uploads");

    // The same code again, in a new sign-in: refused as a replay.
    app.post_form("/logout", &[]).await;
    assert_eq!(
        location(&app.login("admin@example.org", PW).await),
        "/login/totp"
    );
    let res = app.submit_totp(&code).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("already been used"));

    // A recovery code works once.
    let res = app.submit_totp(&recovery[0].to_uppercase()).await;
    assert_eq!(res.status(), 303);
    app.post_form("/logout", &[]).await;
    assert_eq!(
        location(&app.login("admin@example.org", PW).await),
        "/login/totp"
    );
    let res = app.submit_totp(&recovery[0]).await;
    assert_eq!(res.status(), 401);

    let actions: Vec<String> = app.audit_actions().into_iter().map(|a| a.0).collect();
    assert!(actions.contains(&"login.totp".to_string()), "{actions:?}");
}

both_backends!(
    login_rotates_the_session_and_logout_ends_it,
    idle_and_absolute_expiry_are_enforced_by_the_server,
    disabling_a_user_ends_their_live_session,
    cookie_flags_over_http_and_https,
    csrf_missing_wrong_or_cross_site_is_refused,
    failed_sign_ins_look_the_same,
    login_rate_limit_answers_429,
    account_throttle_after_five_failures,
    totp_codes_are_single_use,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_table_holds_no_raw_ids() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.create_user("clin@example.org", "uploader", PW);
    app.sign_in("clin@example.org", PW).await;
    let raw = cookie_value(&app.cookie_header());
    assert!(session_rows(&app) >= 1);
    // The cookie is `signature + id`; neither part appears in the database file.
    let db_bytes = std::fs::read(app.sqlite_path()).unwrap();
    let wal = std::fs::read(app.sqlite_path().with_extension("db-wal")).unwrap_or_default();
    let id_part = &raw[raw.len().saturating_sub(43)..];
    for hay in [&db_bytes, &wal] {
        assert!(
            !hay.windows(id_part.len()).any(|w| w == id_part.as_bytes()),
            "raw session id found in the database"
        );
    }
}

/// A Bearer header does not excuse a cookie-carrying request from the CSRF token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_header_with_a_session_cookie_still_needs_the_token() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.sign_in_as("uploader").await;
    let res = app
        .client
        .post(app.url("/logout"))
        .header("Authorization", "Bearer mp_junk")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(location(&app.get("/").await), "/uploads", "still signed in");
}
