//! The account pages through HTTP: password change, sessions, two-factor enrolment,
//! recovery codes and turning two-factor off.

use std::time::Duration;

use data_encoding::{BASE64, BASE64URL_NOPAD};
use diesel::prelude::*;
use medport::app::accounts::{passwords, totp};
use medport::infra::db::schema::{login_throttles, sessions, users};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, extract_csrf, location, secret_from_page};

const PW: &str = "correct horse battery staple";
const NEW_PW: &str = "a brand new passphrase for me";

#[derive(Debug)]
struct UserState {
    password_hash: String,
    must_change_password: bool,
    totp_secret_sealed: Option<Vec<u8>>,
    totp_last_step: Option<i64>,
    recovery_codes: Option<String>,
}

fn user_state(app: &TestApp, id: &str) -> UserState {
    let mut conn = app.db.conn().unwrap();
    let (password_hash, must_change_password, totp_secret_sealed, totp_last_step, recovery_codes) =
        users::table
            .find(id)
            .select((
                users::password_hash,
                users::must_change_password,
                users::totp_secret_sealed,
                users::totp_last_step,
                users::recovery_codes,
            ))
            .first::<(String, bool, Option<Vec<u8>>, Option<i64>, Option<String>)>(&mut *conn)
            .unwrap();
    UserState {
        password_hash,
        must_change_password,
        totp_secret_sealed,
        totp_last_step,
        recovery_codes,
    }
}

fn session_hashes(app: &TestApp, user_id: &str) -> Vec<String> {
    let mut conn = app.db.conn().unwrap();
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .select(sessions::id_hash)
        .load(&mut *conn)
        .unwrap()
}

fn all_session_states(app: &TestApp) -> Vec<String> {
    let mut conn = app.db.conn().unwrap();
    sessions::table
        .select(sessions::state)
        .load(&mut *conn)
        .unwrap()
}

fn recovery_codes_left(app: &TestApp, id: &str) -> usize {
    user_state(app, id)
        .recovery_codes
        .as_deref()
        .and_then(medport::app::accounts::recovery_codes::StoredCodes::from_json)
        .map_or(0, |c| c.remaining())
}

fn actions(app: &TestApp, action: &str) -> Vec<(String, String)> {
    app.audit_actions()
        .into_iter()
        .filter(|a| a.0 == action)
        .map(|a| (a.1, a.2))
        .collect()
}

fn session_cookie(app: &TestApp) -> String {
    app.cookie_header()
        .split(';')
        .map(str::trim)
        .find_map(|c| c.strip_prefix("medport_session="))
        .unwrap_or_default()
        .to_string()
}

/// Whether this browser is signed in: "/" sends it to `/account`, otherwise to sign in.
async fn signed_in(app: &TestApp, client: &reqwest::Client) -> bool {
    let at = location(&client.get(app.url("/")).send().await.unwrap());
    assert!(at == "/uploads" || at.starts_with("/login"), "{at}");
    at == "/uploads"
}

async fn post_with(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let token = app.session_csrf(client).await;
    let mut all = fields.to_vec();
    all.push(("csrf_token", &token));
    client
        .post(app.url(path))
        .header("Accept", "text/html")
        .form(&all)
        .send()
        .await
        .unwrap()
}

async fn change_password(
    app: &TestApp,
    current: &str,
    new: &str,
    confirm: &str,
) -> reqwest::Response {
    app.post_form(
        "/account/password",
        &[
            ("current_password", current),
            ("new_password", new),
            ("confirm_password", confirm),
        ],
    )
    .await
}

async fn page(app: &TestApp, path: &str) -> String {
    let res = app.get_html(path).await;
    assert_eq!(res.status(), 200, "GET {path}");
    res.text().await.unwrap()
}

fn current_code(app: &TestApp, secret: &totp::TotpSecret) -> String {
    totp::code_for_step(secret, totp::step_at(app.clock.unix()))
}

/// A six-digit code that matches no step in the accepted window.
fn wrong_code(app: &TestApp, secret: &totp::TotpSecret) -> String {
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| totp::verify(secret, c, app.clock.unix()).is_none())
        .unwrap()
}

fn recovery_codes_on(html: &str) -> Vec<String> {
    let re = regex::Regex::new(r"<code>([a-z2-9]{5}-[a-z2-9]{5})</code>").unwrap();
    re.captures_iter(html).map(|c| c[1].to_string()).collect()
}

/// A field shown with its error: the class, the message and the link between them.
fn assert_field_error(body: &str, field: &str, message: &str) {
    assert!(
        body.contains(message),
        "{field}: {message} missing in {body}"
    );
    assert!(
        body.contains(&format!("aria-describedby=\"{field}-error\""))
            || body.contains(&format!(" {field}-error\"")),
        "{field} not linked to its error"
    );
    assert!(body.contains(&format!("id=\"{field}-error\"")));
    assert!(body.contains("field has-error"));
}

// ---------------------------------------------------------------------------------------
// Password
// ---------------------------------------------------------------------------------------

async fn wrong_current_password_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    app.sign_in("clin@example.org", PW).await;
    let before = user_state(&app, &id);

    let res = change_password(&app, "not my password at all", NEW_PW, NEW_PW).await;
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert_field_error(
        &body,
        "current_password",
        "Your current password is not correct.",
    );
    for secret in ["not my password at all", NEW_PW] {
        assert!(!body.contains(secret), "a password was echoed back");
    }

    assert_eq!(user_state(&app, &id).password_hash, before.password_hash);
    assert!(signed_in(&app, &app.client).await, "still signed in");
    let failures = actions(&app, "password.change");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, "failure");
    assert!(!failures[0].1.contains("not my password"), "{failures:?}");
    // It counts toward the sign-in throttle.
    let mut conn = app.db.conn().unwrap();
    let counted: i32 = login_throttles::table
        .select(login_throttles::failures)
        .first(&mut *conn)
        .unwrap();
    assert_eq!(counted, 1);
}

async fn wrong_current_passwords_are_throttled_like_sign_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    app.sign_in("clin@example.org", PW).await;
    let before = user_state(&app, &id).password_hash;
    for attempt in 1..=5 {
        let res = change_password(&app, "wrong password again", NEW_PW, NEW_PW).await;
        let expected = if attempt < 5 { 422 } else { 429 };
        assert_eq!(res.status(), expected, "attempt {attempt}");
    }
    // Now even the right password waits, and so does sign-in elsewhere.
    let res = change_password(&app, PW, NEW_PW, NEW_PW).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let body = res.text().await.unwrap();
    assert!(body.contains("Too many failed sign-in attempts"), "{body}");
    assert_eq!(user_state(&app, &id).password_hash, before);
    let (other, _) = app.new_browser();
    assert_eq!(
        app.login_with(&other, "clin@example.org", PW)
            .await
            .status(),
        429
    );
    assert_eq!(actions(&app, "login.throttled").len(), 1);

    app.clock.advance(Duration::from_secs(16));
    let res = change_password(&app, PW, NEW_PW, NEW_PW).await;
    assert_eq!(res.status(), 303);
    assert_ne!(user_state(&app, &id).password_hash, before);
}

async fn each_password_rule_has_its_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("dr.jane.doe@clinic.example", "uploader", PW);
    app.sign_in("dr.jane.doe@clinic.example", PW).await;
    let before = user_state(&app, &id).password_hash;

    let common = "1q2w3e4r5t6y7u8i9o0p";
    assert!(
        passwords::is_common(common),
        "the example must be on the bundled list"
    );
    let multibyte = "€".repeat(24); // 24 characters, 72 bytes
    let cases: [(&str, &str, &str, &str); 5] = [
        (
            "new_password",
            "too short",
            "too short",
            "must be at least 15 characters long",
        ),
        (
            "new_password",
            common,
            common,
            "is one of the most commonly used passwords",
        ),
        (
            "new_password",
            "Dr.Jane.Doe@clinic.example",
            "Dr.Jane.Doe@clinic.example",
            "must not be your email address",
        ),
        (
            "new_password",
            &multibyte,
            &multibyte,
            "is too long: at most 64 characters",
        ),
        (
            "confirm_password",
            NEW_PW,
            "a brand new passphrase for mE",
            "The two new passwords do not match.",
        ),
    ];
    for (field, new, confirm, message) in cases {
        let res = change_password(&app, PW, new, confirm).await;
        assert_eq!(res.status(), 422, "{message}");
        let body = res.text().await.unwrap();
        assert_field_error(&body, field, message);
        for secret in [PW, new, confirm] {
            assert!(
                !body.contains(&format!("value=\"{secret}\"")),
                "{message}: echoed"
            );
        }
        assert!(!body.contains(PW), "{message}: current password echoed");
    }
    assert_eq!(
        user_state(&app, &id).password_hash,
        before,
        "nothing changed"
    );
    assert!(actions(&app, "password.change").is_empty());
}

async fn password_change_ends_other_sessions_and_renews_this_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    app.sign_in("clin@example.org", PW).await;
    let (laptop, _) = app.new_browser();
    assert_eq!(
        app.login_with(&laptop, "clin@example.org", PW)
            .await
            .status(),
        303
    );
    assert!(signed_in(&app, &laptop).await);
    assert_eq!(session_hashes(&app, &id).len(), 2);
    let cookie_before = session_cookie(&app);

    let res = change_password(&app, PW, NEW_PW, NEW_PW).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account");

    assert_ne!(session_cookie(&app), cookie_before, "a new session id");
    assert!(signed_in(&app, &app.client).await, "this browser continues");
    assert!(
        !signed_in(&app, &laptop).await,
        "the other one is signed out"
    );
    assert_eq!(session_hashes(&app, &id).len(), 1);
    let page = page(&app, "/account").await;
    assert!(page.contains("Your password has been changed."), "{page}");

    let event = actions(&app, "password.change");
    assert_eq!(event.len(), 1);
    assert_eq!(event[0].0, "success");
    assert!(
        event[0].1.contains("\"other_sessions_ended\":1"),
        "{event:?}"
    );
    assert!(!event[0].1.contains(NEW_PW) && !event[0].1.contains(PW));

    let (fresh, _) = app.new_browser();
    assert_eq!(
        app.login_with(&fresh, "clin@example.org", PW)
            .await
            .status(),
        401
    );
    let res = app.login_with(&fresh, "clin@example.org", NEW_PW).await;
    assert_eq!(res.status(), 303);
    assert!(signed_in(&app, &fresh).await);
}

async fn a_one_time_password_must_be_replaced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    {
        let mut conn = app.db.conn().unwrap();
        diesel::update(users::table.find(&id))
            .set(users::must_change_password.eq(true))
            .execute(&mut *conn)
            .unwrap();
    }
    app.sign_in("clin@example.org", PW).await;
    for path in ["/account", "/account/sessions", "/account/totp"] {
        let res = app.get_html(path).await;
        assert_eq!(res.status(), 303, "{path}");
        assert_eq!(location(&res), "/account/password", "{path}");
    }
    let form = page(&app, "/account/password").await;
    assert!(
        form.contains(
            "Your administrator set a one-time password. Choose your own password to continue."
        ),
        "{form}"
    );

    // The one-time password itself is not accepted as the new one.
    let res = change_password(&app, PW, PW, PW).await;
    assert_eq!(res.status(), 422);
    assert!(user_state(&app, &id).must_change_password);

    let res = change_password(&app, PW, NEW_PW, NEW_PW).await;
    assert_eq!(res.status(), 303);
    assert!(!user_state(&app, &id).must_change_password, "flag cleared");
    assert_eq!(app.get_html("/account").await.status(), 200);
    let event = actions(&app, "password.change");
    assert!(event[0].1.contains("\"was_required\":true"), "{event:?}");
}

// ---------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------

async fn sessions_are_listed_and_revoked_one_by_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    app.sign_in("clin@example.org", PW).await;
    let (laptop, _) = app.new_browser();
    app.login_with(&laptop, "clin@example.org", PW).await;
    let (tablet, _) = app.new_browser();
    app.login_with(&tablet, "clin@example.org", PW).await;
    // Someone else's session never shows up.
    let (stranger, _) = app.new_browser();
    app.create_user("other@example.org", "uploader", PW);
    app.login_with(&stranger, "other@example.org", PW).await;

    let list = page(&app, "/account/sessions").await;
    let hashes = session_hashes(&app, &id);
    assert_eq!(hashes.len(), 3);
    let listed: Vec<&String> = hashes
        .iter()
        .filter(|h| list.contains(&format!("/account/sessions/{h}/revoke")))
        .collect();
    assert_eq!(listed.len(), 3, "{list}");
    assert_eq!(list.matches("This device").count(), 1);
    assert!(
        list.contains("127.0.0.1") && list.contains(" UTC"),
        "{list}"
    );

    // Sign out the laptop: find its row as the one that goes when it is revoked.
    let laptop_hash = {
        let res = laptop
            .get(app.url("/account/sessions"))
            .send()
            .await
            .unwrap();
        let html = res.text().await.unwrap();
        let re = regex::Regex::new(r"/account/sessions/([0-9a-f]{64})/revoke").unwrap();
        let own_row = html
            .split("<tr>")
            .find(|row| row.contains("This device"))
            .unwrap()
            .to_string();
        re.captures(&own_row).unwrap()[1].to_string()
    };
    let res = app
        .post_form(&format!("/account/sessions/{laptop_hash}/revoke"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account/sessions");
    assert!(!signed_in(&app, &laptop).await);
    assert!(signed_in(&app, &tablet).await);
    assert!(signed_in(&app, &app.client).await);
    assert!(!session_hashes(&app, &id).contains(&laptop_hash));
    let revoked = actions(&app, "session.revoke");
    assert_eq!(revoked.len(), 1);
    assert!(revoked[0].1.contains("\"count\":1"), "{revoked:?}");

    // Everywhere else: the tablet goes, this browser and the stranger stay.
    let res = app.post_form("/account/sessions/revoke-others", &[]).await;
    assert_eq!(res.status(), 303);
    assert!(!signed_in(&app, &tablet).await);
    assert!(signed_in(&app, &app.client).await);
    assert!(signed_in(&app, &stranger).await);
    assert_eq!(session_hashes(&app, &id).len(), 1);
    let revoked = actions(&app, "session.revoke");
    assert_eq!(revoked.len(), 2);
    assert!(revoked[1].1.contains("\"count\":1"), "{revoked:?}");
    let list = page(&app, "/account/sessions").await;
    assert!(list.contains("Signed out 1 other session."), "{list}");
    assert!(!list.contains("Sign out everywhere else"));

    // The button on this device's own row signs out.
    let own = session_hashes(&app, &id).remove(0);
    let res = app
        .post_form(&format!("/account/sessions/{own}/revoke"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login?signed_out=1");
    assert!(!signed_in(&app, &app.client).await);
    assert!(session_hashes(&app, &id).is_empty());
}

async fn another_users_session_cannot_be_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("clin@example.org", "uploader", PW);
    let other = app.create_user("other@example.org", "uploader", PW);
    app.sign_in("clin@example.org", PW).await;
    let (browser, _) = app.new_browser();
    app.login_with(&browser, "other@example.org", PW).await;
    let theirs = session_hashes(&app, &other).remove(0);

    let res = app
        .post_form(&format!("/account/sessions/{theirs}/revoke"), &[])
        .await;
    assert_eq!(res.status(), 404);
    let res = app
        .post_form("/account/sessions/not-a-session-id/revoke", &[])
        .await;
    assert_eq!(res.status(), 404);

    assert_eq!(session_hashes(&app, &other), vec![theirs]);
    assert!(signed_in(&app, &browser).await);
    assert!(actions(&app, "session.revoke").is_empty());
}

// ---------------------------------------------------------------------------------------
// Two-factor
// ---------------------------------------------------------------------------------------

async fn totp_enrolment_end_to_end(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    app.sign_in("clin@example.org", PW).await;
    // A session opened with the password alone, before enrolment.
    let (earlier, _) = app.new_browser();
    app.login_with(&earlier, "clin@example.org", PW).await;
    assert!(
        page(&app, "/account")
            .await
            .contains("Turn on two-factor authentication")
    );

    let enrol = page(&app, "/account/totp").await;
    assert!(enrol.contains("alt=\"QR code for your authenticator app\""));
    assert!(enrol.contains("src=\"data:image/svg+xml;base64,"));
    let (base32, secret) = secret_from_page(&enrol);
    // Reloading shows the same key until it is confirmed.
    assert_eq!(
        secret_from_page(&page(&app, "/account/totp").await).0,
        base32
    );

    // The pending seed is in the session only sealed.
    let states = all_session_states(&app);
    assert!(
        states.iter().any(|s| s.contains("pending_totp")),
        "{states:?}"
    );
    assert_no_seed_in_sessions(&app, &base32, &secret);

    // A wrong code stores nothing.
    let res = app
        .post_form("/account/totp", &[("code", &wrong_code(&app, &secret))])
        .await;
    assert_eq!(res.status(), 422);
    assert_field_error(
        &res.text().await.unwrap(),
        "code",
        "That code is not right.",
    );
    assert!(user_state(&app, &id).totp_secret_sealed.is_none());

    let cookie_before = session_cookie(&app);
    let step = totp::step_at(app.clock.unix());
    let code = current_code(&app, &secret);
    let res = app.post_form("/account/totp", &[("code", &code)]).await;
    assert_eq!(res.status(), 200);
    let shown = res.text().await.unwrap();
    let codes = recovery_codes_on(&shown);
    assert_eq!(codes.len(), 10, "{shown}");
    assert!(shown.contains("only time they are shown"));
    assert_ne!(session_cookie(&app), cookie_before, "a new session id");

    let state = user_state(&app, &id);
    let sealed = state.totp_secret_sealed.clone().expect("seed stored");
    assert!(
        !sealed.windows(20).any(|w| w == secret.expose()),
        "seed stored sealed"
    );
    assert_eq!(state.totp_last_step, Some(step));
    assert_eq!(recovery_codes_left(&app, &id), 10);
    assert_eq!(actions(&app, "totp.enrol").last().unwrap().0, "success");
    assert_no_seed_in_sessions(&app, &base32, &secret);
    assert!(
        !all_session_states(&app)
            .iter()
            .any(|s| s.contains("pending_totp"))
    );
    assert!(
        !signed_in(&app, &earlier).await,
        "password-only session ended"
    );

    // Shown once: not on the pages that follow.
    let manage = page(&app, "/account/totp").await;
    assert!(manage.contains("Turn off two-factor authentication"));
    assert!(recovery_codes_on(&manage).is_empty());
    assert!(!manage.contains(&codes[0]));

    // Sign out; signing in now needs a code, and the enrolment code is a replay.
    app.post_form("/logout", &[]).await;
    let res = app.login("clin@example.org", PW).await;
    assert_eq!(location(&res), "/login/totp");
    let res = app.submit_totp(&code).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("already been used"));
    app.clock.advance(Duration::from_secs(30));
    let res = app.submit_totp(&current_code(&app, &secret)).await;
    assert_eq!(res.status(), 303);
    assert!(signed_in(&app, &app.client).await);
}

fn assert_no_seed_in_sessions(app: &TestApp, base32: &str, secret: &totp::TotpSecret) {
    let seed = secret.expose();
    let forms = [
        base32.to_string(),
        base32.to_lowercase(),
        hex::encode(seed),
        BASE64.encode(seed),
        BASE64URL_NOPAD.encode(seed),
    ];
    for state in all_session_states(app) {
        for form in &forms {
            assert!(
                !state.contains(form.as_str()),
                "seed found in a session: {form}"
            );
        }
        assert!(!state.as_bytes().windows(seed.len()).any(|w| w == seed));
    }
}

async fn admins_cannot_turn_two_factor_off(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.sign_in_as("admin").await;
    let secret = admin.totp.as_ref().unwrap();
    let before = user_state(&app, &admin.id);

    let manage = page(&app, "/account/totp").await;
    assert!(manage.contains("Administrators must use two-factor authentication"));
    assert!(!manage.contains("action=\"/account/totp/disable\""));

    app.clock.advance(Duration::from_secs(30));
    let code = current_code(&app, secret);
    let res = app
        .post_form(
            "/account/totp/disable",
            &[("password", &admin.password), ("code", &code)],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Administrators must keep two-factor authentication on")
    );
    let after = user_state(&app, &admin.id);
    assert_eq!(after.totp_secret_sealed, before.totp_secret_sealed);
    assert_eq!(after.recovery_codes, before.recovery_codes);
    let denied = actions(&app, "totp.disable");
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].0, "denied");
}

async fn uploaders_can_turn_two_factor_off_with_password_and_code(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    let (secret, _) = app.enrol_totp(&id, "clin@example.org");
    app.sign_in_existing("clin@example.org", PW, Some(&secret))
        .await;
    app.clock.advance(Duration::from_secs(30));
    let code = current_code(&app, &secret);

    // Wrong password: nothing changes, even with a right code.
    let res = app
        .post_form(
            "/account/totp/disable",
            &[("password", "not my password at all"), ("code", &code)],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert_field_error(
        &res.text().await.unwrap(),
        "disable_password",
        "Your password is not correct.",
    );
    assert!(user_state(&app, &id).totp_secret_sealed.is_some());

    // Wrong code: nothing changes.
    let res = app
        .post_form(
            "/account/totp/disable",
            &[("password", PW), ("code", &wrong_code(&app, &secret))],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert_field_error(
        &res.text().await.unwrap(),
        "disable_code",
        "That code is not right.",
    );
    assert!(user_state(&app, &id).totp_secret_sealed.is_some());

    let res = app
        .post_form(
            "/account/totp/disable",
            &[("password", PW), ("code", &code)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account");
    let state = user_state(&app, &id);
    assert!(state.totp_secret_sealed.is_none());
    assert!(state.totp_last_step.is_none() && state.recovery_codes.is_none());
    assert!(
        !state.must_change_password,
        "a 28-character password stays valid"
    );
    let events: Vec<String> = actions(&app, "totp.disable")
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(events, ["failure", "failure", "success"]);

    // Signing in no longer asks for a code.
    app.post_form("/logout", &[]).await;
    app.sign_in("clin@example.org", PW).await;
}

async fn turning_two_factor_off_with_a_short_password_requires_a_new_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Eight characters: enough with two-factor on, too short without it.
    let short = "tulip-42";
    let id = app.create_user("clin@example.org", "uploader", short);
    let (secret, _) = app.enrol_totp(&id, "clin@example.org");
    app.sign_in_existing("clin@example.org", short, Some(&secret))
        .await;
    app.clock.advance(Duration::from_secs(30));
    let res = app
        .post_form(
            "/account/totp/disable",
            &[("password", short), ("code", &current_code(&app, &secret))],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account/password");
    let state = user_state(&app, &id);
    assert!(state.totp_secret_sealed.is_none());
    assert!(state.must_change_password, "a new password is required");
    assert_eq!(
        location(&app.get_html("/account").await),
        "/account/password"
    );
    let form = page(&app, "/account/password").await;
    assert!(form.contains("at least 15 characters"), "{form}");
    let event = actions(&app, "totp.disable");
    assert!(
        event[0].1.contains("\"password_change_required\":true"),
        "{event:?}"
    );
}

async fn recovery_codes_are_shown_once_and_work_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.sign_in_as("admin").await;
    let secret = admin.totp.as_ref().unwrap();
    let before = user_state(&app, &admin.id).recovery_codes;

    // A code already used (the sign-in's) is refused as a replay.
    let used = current_code(&app, secret);
    let res = app
        .post_form("/account/totp/recovery-codes", &[("code", &used)])
        .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("already been used"));
    assert_eq!(user_state(&app, &admin.id).recovery_codes, before);

    app.clock.advance(Duration::from_secs(30));
    let res = app
        .post_form(
            "/account/totp/recovery-codes",
            &[("code", &current_code(&app, secret))],
        )
        .await;
    assert_eq!(res.status(), 200);
    let shown = res.text().await.unwrap();
    let codes = recovery_codes_on(&shown);
    assert_eq!(codes.len(), 10);
    assert_ne!(user_state(&app, &admin.id).recovery_codes, before);
    assert_eq!(
        actions(&app, "totp.recovery_codes").last().unwrap().0,
        "success"
    );
    for path in ["/account", "/account/totp"] {
        let html = page(&app, path).await;
        assert!(
            codes.iter().all(|c| !html.contains(c.as_str())),
            "{path} shows a code"
        );
    }

    // A new code signs in once.
    app.post_form("/logout", &[]).await;
    assert_eq!(
        location(&app.login(&admin.email, &admin.password).await),
        "/login/totp"
    );
    assert_eq!(app.submit_totp(&codes[4]).await.status(), 303);
    assert_eq!(recovery_codes_left(&app, &admin.id), 9);
    app.post_form("/logout", &[]).await;
    assert_eq!(
        location(&app.login(&admin.email, &admin.password).await),
        "/login/totp"
    );
    assert_eq!(app.submit_totp(&codes[4]).await.status(), 401);
    assert_eq!(recovery_codes_left(&app, &admin.id), 9);
}

async fn admins_without_two_factor_are_sent_to_enrol(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("boss@example.org", "admin", PW);
    app.sign_in("boss@example.org", PW).await;

    let res = app.get_html("/admin/users").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account/totp");
    let enrol = page(&app, "/account/totp").await;
    assert!(
        enrol.contains("Administrators must turn on two-factor authentication"),
        "{enrol}"
    );

    let (_, secret) = secret_from_page(&enrol);
    let res = app
        .post_form("/account/totp", &[("code", &current_code(&app, &secret))])
        .await;
    assert_eq!(res.status(), 200);
    assert!(user_state(&app, &id).totp_secret_sealed.is_some());
    let res = app.get_html("/admin/users").await;
    assert_ne!(
        location(&res),
        "/account/totp",
        "admin pages open after enrolment"
    );
    assert_eq!(res.status(), 200);
}

async fn account_overview_shows_the_user_and_their_settings(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.sign_in_as("admin").await;
    let html = page(&app, "/account").await;
    assert!(html.contains(&admin.email));
    assert!(html.contains("Administrator"));
    assert!(html.contains("Manage two-factor authentication"));
    assert!(html.contains("10 left"), "{html}");
    for link in [
        "/account/password",
        "/account/sessions",
        "/account/api-keys",
        "/account/totp",
    ] {
        assert!(html.contains(&format!("href=\"{link}\"")), "{link}");
    }
    assert_eq!(html.matches("<h1").count(), 1);
    assert!(extract_csrf(&html).is_some());

    // Signed out: every account page sends the browser to sign in.
    let (anon, _) = app.new_browser();
    for path in [
        "/account",
        "/account/password",
        "/account/sessions",
        "/account/totp",
    ] {
        let res = anon.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 303, "{path}");
        assert!(location(&res).starts_with("/login?next="), "{path}");
    }
    let res = post_with(
        &app,
        &anon,
        "/account/password",
        &[("current_password", PW)],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("/login"), "{}", location(&res));
}

both_backends!(
    wrong_current_password_changes_nothing,
    wrong_current_passwords_are_throttled_like_sign_in,
    each_password_rule_has_its_message,
    password_change_ends_other_sessions_and_renews_this_one,
    a_one_time_password_must_be_replaced,
    sessions_are_listed_and_revoked_one_by_one,
    another_users_session_cannot_be_revoked,
    totp_enrolment_end_to_end,
    admins_cannot_turn_two_factor_off,
    uploaders_can_turn_two_factor_off_with_password_and_code,
    turning_two_factor_off_with_a_short_password_requires_a_new_one,
    recovery_codes_are_shown_once_and_work_once,
    admins_without_two_factor_are_sent_to_enrol,
    account_overview_shows_the_user_and_their_settings,
);
