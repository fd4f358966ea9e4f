//! User administration through HTTP: creating accounts, role changes, disabling, one-time
//! passwords, ending sessions, two-factor resets, the last-administrator rule, and access
//! by role.

mod disable;

use diesel::prelude::*;
use medport::app::accounts::totp;
use medport::infra::db::schema::{api_keys, audit_events, sessions, users};
use medport::web::routes::admin::users::ROUTES;

use crate::both_backends;
use crate::helpers::{Backend, SignedIn, TestApp, browser_signed_in, extract_csrf, location};

const PW: &str = "correct horse battery staple";
const ONE_TIME: &str = "violet anchor midnight parade";
const LAST_ADMIN: &str = "There must always be at least one active administrator.";
const OWN_TWO_FACTOR: &str = "You cannot reset your own two-factor authentication: without it you would be locked out of the admin pages at once. Another administrator must do it.";

// ---------- Helpers ----------

#[derive(Debug)]
struct UserFacts {
    email: String,
    role: String,
    disabled: bool,
    must_change_password: bool,
    password_hash: String,
}

fn user_facts(app: &TestApp, id: &str) -> UserFacts {
    let mut conn = app.db.conn().unwrap();
    let (email, role, disabled, must_change_password, password_hash) = users::table
        .find(id)
        .select((
            users::email,
            users::role,
            users::disabled,
            users::must_change_password,
            users::password_hash,
        ))
        .first::<(String, String, bool, bool, String)>(&mut *conn)
        .unwrap();
    UserFacts {
        email,
        role,
        disabled,
        must_change_password,
        password_hash,
    }
}

fn user_count(app: &TestApp) -> i64 {
    let mut conn = app.db.conn().unwrap();
    users::table.count().get_result(&mut *conn).unwrap()
}

fn active_admins(app: &TestApp) -> i64 {
    let mut conn = app.db.conn().unwrap();
    medport::app::accounts::users::count_active_admins(&mut conn).unwrap()
}

/// The two-factor columns: sealed seed, last used step, stored recovery codes.
type TwoFactorColumns = (Option<Vec<u8>>, Option<i64>, Option<String>);

fn two_factor_columns(app: &TestApp, id: &str) -> TwoFactorColumns {
    let mut conn = app.db.conn().unwrap();
    users::table
        .find(id)
        .select((
            users::totp_secret_sealed,
            users::totp_last_step,
            users::recovery_codes,
        ))
        .first(&mut *conn)
        .unwrap()
}

fn session_count(app: &TestApp, id: &str) -> i64 {
    let mut conn = app.db.conn().unwrap();
    sessions::table
        .filter(sessions::user_id.eq(id))
        .count()
        .get_result(&mut *conn)
        .unwrap()
}

#[derive(Debug)]
struct AuditRow {
    actor: Option<String>,
    target: Option<String>,
    outcome: String,
    details: serde_json::Value,
}

fn audit_rows(app: &TestApp, action: &str) -> Vec<AuditRow> {
    let mut conn = app.db.conn().unwrap();
    let rows: Vec<(Option<String>, Option<String>, String, String)> = audit_events::table
        .filter(audit_events::action.eq(action))
        .order(audit_events::id.asc())
        .select((
            audit_events::actor_user_id,
            audit_events::target_id,
            audit_events::outcome,
            audit_events::details,
        ))
        .load(&mut *conn)
        .unwrap();
    rows.into_iter()
        .map(|(actor, target, outcome, details)| AuditRow {
            actor,
            target,
            outcome,
            details: serde_json::from_str(&details).unwrap(),
        })
        .collect()
}

/// The CSRF token of a browser's signed-in session, read from the session store (some roles
/// can reach no page that shows a form).
fn stored_csrf(app: &TestApp, user_id: &str) -> String {
    let mut conn = app.db.conn().unwrap();
    let states: Vec<String> = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .select(sessions::state)
        .load(&mut *conn)
        .unwrap();
    assert_eq!(states.len(), 1, "one session for {user_id}");
    let state: std::collections::HashMap<String, String> =
        serde_json::from_str(&states[0]).unwrap();
    serde_json::from_str(&state["csrf"]).unwrap()
}

/// POST a form from the main (admin) browser with the token shown on the admin pages.
async fn admin_post(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let token = app.csrf_token_with(&app.client, "/admin/users/new").await;
    post_with(app, &app.client, path, fields, &token).await
}

async fn post_with(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    fields: &[(&str, &str)],
    token: &str,
) -> reqwest::Response {
    let mut all = fields.to_vec();
    all.push(("csrf_token", token));
    client
        .post(app.url(path))
        .header("Accept", "text/html")
        .form(&all)
        .send()
        .await
        .unwrap()
}

async fn body(res: reqwest::Response) -> String {
    res.text().await.unwrap()
}

/// A second browser signed in as an administrator, through the TOTP step.
async fn admin_browser(app: &TestApp, admin: &SignedIn) -> reqwest::Client {
    let (client, _) = app.new_browser();
    let res = app.login_with(&client, &admin.email, &admin.password).await;
    assert_eq!(location(&res), "/login/totp");
    app.clock.advance(std::time::Duration::from_secs(30));
    let secret = admin.totp.as_ref().unwrap();
    let code = totp::code_for_step(secret, totp::step_at(app.clock.unix()));
    let token = app.csrf_token_with(&client, "/login/totp").await;
    let res = post_with(app, &client, "/login/totp", &[("code", &code)], &token).await;
    assert_eq!(res.status(), 303, "TOTP step failed for {}", admin.email);
    client
}

/// Where "/" sends a browser: `/account` when signed in, `/login` when not.
async fn home(app: &TestApp, client: &reqwest::Client) -> String {
    location(&client.get(app.url("/")).send().await.unwrap())
}

fn h1_count(html: &str) -> usize {
    html.matches("<h1").count()
}

// ---------- Tests ----------

async fn admin_creates_a_user_who_must_choose_their_own_password(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.sign_in_as("admin").await;

    let form = app.get_html("/admin/users/new").await;
    assert_eq!(form.status(), 200);
    let form = body(form).await;
    assert_eq!(h1_count(&form), 1);
    for field in [
        r#"name="email""#,
        r#"name="role""#,
        r#"name="password""#,
        r#"name="csrf_token""#,
    ] {
        assert!(form.contains(field), "{field} missing");
    }
    assert!(form.contains(r#"<label for="password">One-time password</label>"#));

    let res = admin_post(
        &app,
        "/admin/users",
        &[
            ("email", "New.Clinician@Example.org"),
            ("role", "uploader"),
            ("password", ONE_TIME),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    let page = location(&res);
    let id = page.strip_prefix("/admin/users/").unwrap().to_string();

    let row = user_facts(&app, &id);
    assert_eq!(row.email, "new.clinician@example.org");
    assert_eq!(row.role, "uploader");
    assert!(row.must_change_password);
    assert!(!row.disabled);
    assert!(row.password_hash.starts_with("$2b$"));

    let created = audit_rows(&app, "user.create");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].outcome, "success");
    assert_eq!(created[0].actor.as_deref(), Some(admin.id.as_str()));
    assert_eq!(created[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(created[0].details["email"], "new.clinician@example.org");
    assert_eq!(created[0].details["role"], "uploader");
    assert!(!created[0].details.to_string().contains(ONE_TIME));

    let shown = body(app.get_html(&page).await).await;
    assert!(shown.contains("Account created for new.clinician@example.org"));
    let list = body(app.get_html("/admin/users").await).await;
    assert!(list.contains("new.clinician@example.org") && list.contains("Uploader (clinician)"));

    // The new user signs in with the one-time password and must choose their own first.
    let clinician = browser_signed_in(&app, "new.clinician@example.org", ONE_TIME).await;
    let res = clinician.get(app.url("/admin/users")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account/password");
}

async fn create_form_reports_each_problem_and_keeps_what_was_typed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("admin").await;
    app.create_user("taken@example.org", "uploader", PW);
    let users_before = user_count(&app);

    // A malformed address: its message under the field, the role kept, no password echoed.
    let res = admin_post(
        &app,
        "/admin/users",
        &[
            ("email", "not an email"),
            ("role", "auditor"),
            ("password", ONE_TIME),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    let html = body(res).await;
    assert!(html.contains(r#"<div class="field has-error">"#), "{html}");
    assert!(html.contains(r#"aria-describedby="email-error""#));
    assert!(
        html.contains(
            r#"<p class="field-error" id="email-error">Email address must not contain spaces.</p>"#
        ),
        "{html}"
    );
    assert!(html.contains(r#"value="not an email""#));
    assert!(html.contains(r#"<option value="auditor" selected>"#));
    assert!(!html.contains(ONE_TIME));
    assert_eq!(h1_count(&html), 1);

    // The same address in other letter case is taken.
    let res = admin_post(
        &app,
        "/admin/users",
        &[
            ("email", "Taken@Example.ORG"),
            ("role", "admin"),
            ("password", ONE_TIME),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    let html = body(res).await;
    assert!(html.contains("An account with this email address already exists."));
    assert!(html.contains(r#"value="Taken@Example.ORG""#));
    assert!(html.contains(r#"<option value="admin" selected>"#));
    assert!(!html.contains(ONE_TIME));

    // Too short: the password's own message, the other values kept.
    let res = admin_post(
        &app,
        "/admin/users",
        &[
            ("email", "short@example.org"),
            ("role", "uploader"),
            ("password", "too short"),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    let html = body(res).await;
    assert!(html.contains("Password must be at least 15 characters long (yours has 9)."));
    assert!(html.contains(r#"aria-describedby="password-hint password-error""#));
    assert!(html.contains(r#"value="short@example.org""#));
    assert!(!html.contains("too short"));

    // A role that does not exist.
    let res = admin_post(
        &app,
        "/admin/users",
        &[
            ("email", "role@example.org"),
            ("role", "root"),
            ("password", ONE_TIME),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    let html = body(res).await;
    assert!(html.contains("Role must be one of: admin, uploader, auditor."));
    assert!(!html.contains(ONE_TIME));

    assert_eq!(user_count(&app), users_before, "nothing was created");
    assert!(audit_rows(&app, "user.create").is_empty());
}

async fn role_change_ends_the_users_sessions_and_is_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.sign_in_as("admin").await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    let clinician = browser_signed_in(&app, "clin@example.org", PW).await;
    assert_eq!(home(&app, &clinician).await, "/uploads");

    let path = format!("/admin/users/{id}/role");
    let res = admin_post(&app, &path, &[("role", "auditor")]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("/admin/users/{id}"));
    assert_eq!(user_facts(&app, &id).role, "auditor");
    assert_eq!(session_count(&app, &id), 0);
    assert_eq!(home(&app, &clinician).await, "/login", "signed out at once");

    let changes = audit_rows(&app, "user.role_change");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].outcome, "success");
    assert_eq!(changes[0].actor.as_deref(), Some(admin.id.as_str()));
    assert_eq!(changes[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(changes[0].details["from"], "uploader");
    assert_eq!(changes[0].details["to"], "auditor");
    assert_eq!(changes[0].details["sessions_ended"], 1);
    let page = body(app.get_html(&format!("/admin/users/{id}")).await).await;
    assert!(page.contains("clin@example.org is now Auditor."));

    // An unknown role is refused on the page; nothing changes.
    let res = admin_post(&app, &path, &[("role", "superuser")]).await;
    assert_eq!(res.status(), 422);
    assert!(body(res).await.contains("Role must be one of"));
    assert_eq!(user_facts(&app, &id).role, "auditor");
    assert_eq!(audit_rows(&app, "user.role_change").len(), 1);
}

async fn disable_ends_the_live_session_and_enable_restores_access(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.sign_in_as("admin").await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    let clinician = browser_signed_in(&app, "clin@example.org", PW).await;
    assert_eq!(home(&app, &clinician).await, "/uploads");

    let res = admin_post(&app, &format!("/admin/users/{id}/disable"), &[]).await;
    assert_eq!(res.status(), 303);
    assert!(user_facts(&app, &id).disabled);
    assert_eq!(
        session_count(&app, &id),
        0,
        "sessions deleted with the change"
    );
    assert_eq!(home(&app, &clinician).await, "/login");
    let (other, _) = app.new_browser();
    let res = app.login_with(&other, "clin@example.org", PW).await;
    assert_eq!(res.status(), 401);
    assert!(body(res).await.contains("Email or password is incorrect."));
    let list = body(app.get_html("/admin/users").await).await;
    assert!(list.contains(r#"<span class="badge badge-bad">Disabled</span>"#));

    let disabled = audit_rows(&app, "user.disable");
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].actor.as_deref(), Some(admin.id.as_str()));
    assert_eq!(disabled[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(disabled[0].details["sessions_ended"], 1);

    let res = admin_post(&app, &format!("/admin/users/{id}/enable"), &[]).await;
    assert_eq!(res.status(), 303);
    assert!(!user_facts(&app, &id).disabled);
    browser_signed_in(&app, "clin@example.org", PW).await;
    let enabled = audit_rows(&app, "user.enable");
    assert_eq!(enabled.len(), 1);
    assert_eq!(enabled[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(enabled[0].outcome, "success");
}

async fn reset_password_sets_a_one_time_password_and_ends_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.sign_in_as("admin").await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    let clinician = browser_signed_in(&app, "clin@example.org", PW).await;
    let path = format!("/admin/users/{id}/reset-password");
    let old_hash = user_facts(&app, &id).password_hash;

    // Too short: refused on the page, nothing echoed, nothing changed.
    let res = admin_post(&app, &path, &[("password", "short one")]).await;
    assert_eq!(res.status(), 422);
    let html = body(res).await;
    assert!(html.contains("Password must be at least 15 characters long (yours has 9)."));
    assert!(!html.contains("short one"));
    assert_eq!(user_facts(&app, &id).password_hash, old_hash);
    assert_eq!(home(&app, &clinician).await, "/uploads");

    let res = admin_post(&app, &path, &[("password", ONE_TIME)]).await;
    assert_eq!(res.status(), 303);
    let row = user_facts(&app, &id);
    assert!(row.must_change_password);
    assert_ne!(row.password_hash, old_hash);
    assert_eq!(home(&app, &clinician).await, "/login", "signed out at once");

    let (old, _) = app.new_browser();
    assert_eq!(
        app.login_with(&old, "clin@example.org", PW).await.status(),
        401
    );
    let fresh = browser_signed_in(&app, "clin@example.org", ONE_TIME).await;
    let res = fresh.get(app.url("/admin/users")).send().await.unwrap();
    assert_eq!(location(&res), "/account/password");

    let resets = audit_rows(&app, "user.password_reset");
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].actor.as_deref(), Some(admin.id.as_str()));
    assert_eq!(resets[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(resets[0].details["sessions_ended"], 1);
    assert!(!resets[0].details.to_string().contains(ONE_TIME));
}

async fn revoke_sessions_signs_a_user_out_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.sign_in_as("admin").await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    let first = browser_signed_in(&app, "clin@example.org", PW).await;
    let second = browser_signed_in(&app, "clin@example.org", PW).await;
    assert_eq!(session_count(&app, &id), 2);

    let res = admin_post(&app, &format!("/admin/users/{id}/revoke-sessions"), &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(home(&app, &first).await, "/login");
    assert_eq!(home(&app, &second).await, "/login");
    assert_eq!(session_count(&app, &id), 0);
    let revoked = audit_rows(&app, "session.revoke");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(revoked[0].details["count"], 2);

    // On their own account an admin ends their other sessions and keeps this one.
    let elsewhere = admin_browser(&app, &admin).await;
    let res = admin_post(
        &app,
        &format!("/admin/users/{}/revoke-sessions", admin.id),
        &[],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(home(&app, &elsewhere).await, "/login");
    assert_eq!(app.get_html("/admin/users").await.status(), 200);
    let revoked = audit_rows(&app, "session.revoke");
    assert_eq!(revoked[1].actor.as_deref(), Some(admin.id.as_str()));
    assert_eq!(revoked[1].details["count"], 1);
}

async fn reset_two_factor_clears_it_and_ends_the_users_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.sign_in_as("admin").await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    let (secret, codes) = app.enrol_totp(&id, "clin@example.org");
    let clinician = SignedIn {
        id: id.clone(),
        email: "clin@example.org".into(),
        password: PW.into(),
        totp: Some(secret),
    };
    // Two browsers through the TOTP step: the last used step is stored.
    let first = admin_browser(&app, &clinician).await;
    let second = admin_browser(&app, &clinician).await;
    assert_eq!(session_count(&app, &id), 2);
    let (seed, last_step, stored_codes) = two_factor_columns(&app, &id);
    assert!(seed.is_some() && last_step.is_some() && stored_codes.is_some());

    // The button, with its explanation, on the page of a user who has two-factor on.
    let page = format!("/admin/users/{id}");
    let action = format!(r#"action="/admin/users/{id}/reset-totp""#);
    let html = body(app.get_html(&page).await).await;
    assert!(html.contains(&action), "{html}");
    assert!(html.contains("Reset two-factor"));
    assert!(html.contains("lost their authenticator"));

    let res = admin_post(&app, &format!("/admin/users/{id}/reset-totp"), &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), page);
    assert_eq!(two_factor_columns(&app, &id), (None, None, None));
    assert_eq!(session_count(&app, &id), 0);
    assert_eq!(home(&app, &first).await, "/login", "signed out at once");
    assert_eq!(home(&app, &second).await, "/login", "signed out at once");

    let resets = audit_rows(&app, "user.totp_reset");
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].outcome, "success");
    assert_eq!(resets[0].actor.as_deref(), Some(admin.id.as_str()));
    assert_eq!(resets[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(resets[0].details["sessions_ended"], 2);
    assert_eq!(resets[0].details["role"], "uploader");
    let details = resets[0].details.to_string();
    assert!(codes.iter().all(|code| !details.contains(code.as_str())));

    // The page says so, and the button is gone with the second factor.
    let html = body(app.get_html(&page).await).await;
    assert!(html.contains("Two-factor authentication is reset for clin@example.org"));
    assert!(html.contains("Two-factor authentication</th><td>Off"));
    assert!(!html.contains(&action));
    assert_eq!(
        app.get_html("/admin/users").await.status(),
        200,
        "the admin stays signed in"
    );

    // The next sign-in has no TOTP step, and the password (which may be as short as two-
    // factor allowed) must be replaced first.
    let fresh = browser_signed_in(&app, "clin@example.org", PW).await;
    assert_eq!(home(&app, &fresh).await, "/account/password");

    // Again: nothing to reset, nothing audited.
    let res = admin_post(&app, &format!("/admin/users/{id}/reset-totp"), &[]).await;
    assert_eq!(res.status(), 303);
    let html = body(app.get_html(&page).await).await;
    assert!(html.contains("clin@example.org does not use two-factor authentication."));
    assert_eq!(audit_rows(&app, "user.totp_reset").len(), 1);
    assert_eq!(session_count(&app, &id), 1, "their new session is kept");
}

async fn an_admin_whose_two_factor_was_reset_must_enrol_again(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("admin").await;
    let email = "other-admin@example.org";
    let id = app.create_user(email, "admin", PW);
    let (secret, _) = app.enrol_totp(&id, email);
    let other = SignedIn {
        id: id.clone(),
        email: email.into(),
        password: PW.into(),
        totp: Some(secret),
    };
    let browser = admin_browser(&app, &other).await;
    let res = browser.get(app.url("/admin/users")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    let res = admin_post(&app, &format!("/admin/users/{id}/reset-totp"), &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(home(&app, &browser).await, "/login");
    let row = user_facts(&app, &id);
    assert_eq!((row.role.as_str(), row.disabled), ("admin", false));
    assert_eq!(active_admins(&app), 2);

    // Password alone signs them in; first they must replace the password (it may be as
    // short as two-factor allowed), then the admin pages send them to enrolment.
    let fresh = browser_signed_in(&app, email, PW).await;
    let res = fresh.get(app.url("/admin/users")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account/password");
    {
        use diesel::prelude::*;
        use medport::infra::db::schema::users;
        let mut conn = app.db.conn().unwrap();
        diesel::update(users::table.find(&id))
            .set(users::must_change_password.eq(false))
            .execute(&mut *conn)
            .unwrap();
    }
    let res = fresh.get(app.url("/admin/users")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account/totp");
    let resets = audit_rows(&app, "user.totp_reset");
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].details["role"], "admin");
    assert_eq!(resets[0].details["sessions_ended"], 1);
}

async fn admins_cannot_reset_their_own_two_factor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.sign_in_as("admin").await;
    let before = two_factor_columns(&app, &me.id);
    assert!(before.0.is_some());

    // Their own page explains it and offers no button.
    let page = format!("/admin/users/{}", me.id);
    let html = body(app.get_html(&page).await).await;
    assert!(html.contains("ask another administrator"), "{html}");
    assert!(!html.contains("/reset-totp"));

    let res = admin_post(&app, &format!("{page}/reset-totp"), &[]).await;
    assert_eq!(res.status(), 409);
    let html = body(res).await;
    assert!(
        html.contains(&format!(
            r#"<div class="flash flash-error" role="alert">{OWN_TWO_FACTOR}</div>"#
        )),
        "{html}"
    );
    assert_eq!(h1_count(&html), 1);
    assert_eq!(two_factor_columns(&app, &me.id), before);
    assert_eq!(session_count(&app, &me.id), 1);
    assert_eq!(
        app.get_html("/admin/users").await.status(),
        200,
        "still signed in"
    );

    let resets = audit_rows(&app, "user.totp_reset");
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].outcome, "denied");
    assert_eq!(resets[0].actor.as_deref(), Some(me.id.as_str()));
    assert_eq!(resets[0].target.as_deref(), Some(me.id.as_str()));
    assert_eq!(resets[0].details["reason"], "own two-factor authentication");
}

async fn the_last_active_admin_can_be_neither_demoted_nor_disabled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.sign_in_as("admin").await;
    let other = app.create_user("other-admin@example.org", "admin", PW);

    // Two active admins: demoting one works.
    let res = admin_post(
        &app,
        &format!("/admin/users/{other}/role"),
        &[("role", "uploader")],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(user_facts(&app, &other).role, "uploader");
    assert_eq!(active_admins(&app), 1);

    // Now the remaining one cannot be demoted or disabled.
    let res = admin_post(
        &app,
        &format!("/admin/users/{}/role", me.id),
        &[("role", "auditor")],
    )
    .await;
    assert_eq!(res.status(), 409);
    let html = body(res).await;
    assert!(html.contains(LAST_ADMIN), "{html}");
    assert!(html.contains(r#"<div class="field has-error">"#));
    let res = admin_post(&app, &format!("/admin/users/{}/disable", me.id), &[]).await;
    assert_eq!(res.status(), 409);
    assert!(body(res).await.contains(LAST_ADMIN));
    let row = user_facts(&app, &me.id);
    assert_eq!(row.role, "admin");
    assert!(!row.disabled);
    assert_eq!(
        app.get_html("/admin/users").await.status(),
        200,
        "still signed in"
    );

    // The refusals are audited; the successful change once.
    let changes = audit_rows(&app, "user.role_change");
    assert_eq!(
        changes
            .iter()
            .map(|c| c.outcome.as_str())
            .collect::<Vec<_>>(),
        ["success", "denied"]
    );
    assert_eq!(changes[1].details["reason"], "last active administrator");
    let disables = audit_rows(&app, "user.disable");
    assert_eq!(disables.len(), 1);
    assert_eq!(disables[0].outcome, "denied");
    assert_eq!(disables[0].target.as_deref(), Some(me.id.as_str()));

    // A disabled admin does not count; an enabled one does, and then self-demotion works
    // and ends the demoted admin's own session.
    let third = app.create_user("third-admin@example.org", "admin", PW);
    assert_eq!(
        admin_post(&app, &format!("/admin/users/{third}/disable"), &[])
            .await
            .status(),
        303
    );
    let res = admin_post(
        &app,
        &format!("/admin/users/{}/role", me.id),
        &[("role", "uploader")],
    )
    .await;
    assert_eq!(res.status(), 409);
    assert_eq!(
        admin_post(&app, &format!("/admin/users/{third}/enable"), &[])
            .await
            .status(),
        303
    );
    let res = admin_post(
        &app,
        &format!("/admin/users/{}/role", me.id),
        &[("role", "uploader")],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login");
    assert_eq!(user_facts(&app, &me.id).role, "uploader");
    assert_eq!(session_count(&app, &me.id), 0);
    assert_eq!(active_admins(&app), 1);
}

async fn admins_demoting_each_other_at_once_leave_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admins = Vec::new();
    for name in ["first", "second"] {
        let email = format!("{name}@example.org");
        let id = app.create_user(&email, "admin", PW);
        let (secret, _) = app.enrol_totp(&id, &email);
        admins.push(SignedIn {
            id,
            email,
            password: PW.into(),
            totp: Some(secret),
        });
    }
    // A few rounds, as a lost race only shows when both requests overlap.
    for round in 0..3 {
        {
            let mut conn = app.db.conn().unwrap();
            diesel::update(users::table)
                .set(users::role.eq("admin"))
                .execute(&mut *conn)
                .unwrap();
        }
        let first = admin_browser(&app, &admins[0]).await;
        let second = admin_browser(&app, &admins[1]).await;
        let first_token = app.csrf_token_with(&first, "/admin/users/new").await;
        let second_token = app.csrf_token_with(&second, "/admin/users/new").await;
        let demote_second = format!("/admin/users/{}/role", admins[1].id);
        let demote_first = format!("/admin/users/{}/role", admins[0].id);
        let (a, b) = tokio::join!(
            post_with(
                &app,
                &first,
                &demote_second,
                &[("role", "uploader")],
                &first_token
            ),
            post_with(
                &app,
                &second,
                &demote_first,
                &[("role", "uploader")],
                &second_token
            ),
        );
        // The loser is refused by the rule (409), or finds its session already ended (a
        // redirect to sign in, or a CSRF refusal as its session and token are gone).
        for res in [&a, &b] {
            assert!(
                [303, 403, 409].contains(&res.status().as_u16()),
                "round {round}: {}",
                res.status()
            );
        }
        assert_eq!(
            active_admins(&app),
            1,
            "round {round}: one administrator is left"
        );
        let done = audit_rows(&app, "user.role_change")
            .into_iter()
            .filter(|c| c.outcome == "success")
            .count();
        assert_eq!(done, round + 1, "round {round}: one demotion succeeded");
    }
}

async fn unknown_malformed_and_foreign_ids_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("admin").await;
    let real = app.create_user("clin@example.org", "uploader", PW);
    // The id of a row in another table is not a user.
    let key_id = uuid::Uuid::now_v7().to_string();
    {
        let mut conn = app.db.conn().unwrap();
        diesel::insert_into(api_keys::table)
            .values((
                api_keys::id.eq(&key_id),
                api_keys::user_id.eq(&real),
                api_keys::name.eq("script"),
                api_keys::prefix.eq("abcd1234"),
                api_keys::key_hash.eq("0".repeat(64)),
                api_keys::scopes.eq("upload"),
                api_keys::created_at.eq(chrono::Utc::now().naive_utc()),
            ))
            .execute(&mut *conn)
            .unwrap();
    }
    let unknown = uuid::Uuid::now_v7().to_string();
    let simple = real.replace('-', "");
    let ids = [
        unknown.as_str(),
        key_id.as_str(),
        "not-a-uuid",
        simple.as_str(),
        "%7B00000000-0000-0000-0000-000000000000%7D",
        "..%2F..%2Fetc",
    ];
    for id in ids {
        let res = app.get_html(&format!("/admin/users/{id}")).await;
        assert_eq!(res.status(), 404, "GET {id}");
        for action in [
            "role",
            "disable",
            "enable",
            "reset-password",
            "revoke-sessions",
            "reset-totp",
        ] {
            let res = admin_post(
                &app,
                &format!("/admin/users/{id}/{action}"),
                &[("role", "auditor"), ("password", ONE_TIME)],
            )
            .await;
            assert_eq!(res.status(), 404, "POST {action} {id}");
        }
    }
    assert_eq!(
        app.get_html(&format!("/admin/users/{real}")).await.status(),
        200
    );
    let changed = app
        .audit_actions()
        .into_iter()
        .filter(|a| a.0.starts_with("user.") || a.0 == "session.revoke")
        .count();
    assert_eq!(changed, 0);
    assert_eq!(user_facts(&app, &real).role, "uploader");
}

async fn other_roles_are_refused_on_every_route(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let target = app.create_user("target@example.org", "uploader", PW);
    app.enrol_totp(&target, "target@example.org");
    let target_two_factor = two_factor_columns(&app, &target);
    let denied = || {
        app.audit_actions()
            .into_iter()
            .filter(|a| a.0 == "access.denied")
            .count()
    };
    let fields = [
        ("email", "made-by-wrong-role@example.org"),
        ("role", "admin"),
        ("password", ONE_TIME),
    ];
    assert!(ROUTES.len() >= 10, "{ROUTES:?}");
    assert!(
        ROUTES
            .iter()
            .any(|r| (r.method, r.path) == ("POST", "/admin/users/{id}/reset-totp")),
        "{ROUTES:?}"
    );

    for role in ["uploader", "auditor"] {
        let email = format!("{role}@example.org");
        let id = app.create_user(&email, role, PW);
        let browser = browser_signed_in(&app, &email, PW).await;
        let token = stored_csrf(&app, &id);
        for route in ROUTES {
            let path = route.path.replace("{id}", &target);
            let before = denied();
            let res = match route.method {
                "GET" => browser.get(app.url(&path)).send().await.unwrap(),
                _ => post_with(&app, &browser, &path, &fields, &token).await,
            };
            assert_eq!(res.status(), 403, "{role} {} {path}", route.method);
            assert_eq!(
                denied(),
                before + 1,
                "{role} {} {path} audited",
                route.method
            );
        }
    }
    let row = user_facts(&app, &target);
    assert_eq!((row.role.as_str(), row.disabled), ("uploader", false));
    assert_eq!(two_factor_columns(&app, &target), target_two_factor);
    assert!(audit_rows(&app, "user.totp_reset").is_empty());
    assert_eq!(user_count(&app), 3, "no account was created");

    // The same requests from an administrator get past the role check.
    app.sign_in_as("admin").await;
    let token = app.csrf_token_with(&app.client, "/admin/users/new").await;
    for route in ROUTES {
        let path = route.path.replace("{id}", &target);
        let res = match route.method {
            "GET" => app.get_html(&path).await,
            _ => post_with(&app, &app.client, &path, &fields, &token).await,
        };
        let status = res.status().as_u16();
        assert!(
            status != 403 && status < 500,
            "admin {} {path}: {status}",
            route.method
        );
    }
}

async fn pages_never_show_secrets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("admin").await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    let (secret, codes) = app.enrol_totp(&id, "clin@example.org");
    let hash = user_facts(&app, &id).password_hash;
    let key_hash = "f".repeat(64);
    {
        let mut conn = app.db.conn().unwrap();
        diesel::insert_into(api_keys::table)
            .values((
                api_keys::id.eq(uuid::Uuid::now_v7().to_string()),
                api_keys::user_id.eq(&id),
                api_keys::name.eq("script"),
                api_keys::prefix.eq("wxyz9876"),
                api_keys::key_hash.eq(&key_hash),
                api_keys::scopes.eq("upload"),
                api_keys::created_at.eq(chrono::Utc::now().naive_utc()),
            ))
            .execute(&mut *conn)
            .unwrap();
    }
    let stored_codes: String = {
        let mut conn = app.db.conn().unwrap();
        users::table
            .find(&id)
            .select(users::recovery_codes)
            .first::<Option<String>>(&mut *conn)
            .unwrap()
            .unwrap()
    };
    for path in [
        "/admin/users".to_string(),
        format!("/admin/users/{id}"),
        "/admin/users/new".to_string(),
    ] {
        let res = app.get_html(&path).await;
        assert_eq!(res.status(), 200, "{path}");
        let html = body(res).await;
        assert_eq!(h1_count(&html), 1, "{path}");
        assert!(!html.contains(&hash), "{path} shows the password hash");
        assert!(!html.contains(&hash[7..]), "{path} shows the password hash");
        assert!(
            !html.contains(&secret.to_base32()),
            "{path} shows the TOTP seed"
        );
        assert!(!html.contains(&key_hash), "{path} shows an API key hash");
        assert!(!html.contains(&stored_codes), "{path} shows recovery codes");
        for code in &codes {
            assert!(
                !html.contains(code.as_str()),
                "{path} shows a recovery code"
            );
        }
    }
    let detail = body(app.get_html(&format!("/admin/users/{id}")).await).await;
    assert!(detail.contains("Two-factor authentication</th><td>On"));
    // Every form on the page carries the session's CSRF token.
    let token = extract_csrf(&detail).unwrap();
    let forms = detail.matches("<form").count();
    let tokens = detail
        .matches(&format!(r#"name="csrf_token" value="{token}""#))
        .count();
    assert_eq!(forms, tokens);
    assert!(forms >= 5);
}

both_backends!(
    admin_creates_a_user_who_must_choose_their_own_password,
    create_form_reports_each_problem_and_keeps_what_was_typed,
    role_change_ends_the_users_sessions_and_is_audited,
    disable_ends_the_live_session_and_enable_restores_access,
    reset_password_sets_a_one_time_password_and_ends_sessions,
    revoke_sessions_signs_a_user_out_everywhere,
    reset_two_factor_clears_it_and_ends_the_users_sessions,
    an_admin_whose_two_factor_was_reset_must_enrol_again,
    admins_cannot_reset_their_own_two_factor,
    the_last_active_admin_can_be_neither_demoted_nor_disabled,
    admins_demoting_each_other_at_once_leave_one,
    unknown_malformed_and_foreign_ids_are_not_found,
    other_roles_are_refused_on_every_route,
    pages_never_show_secrets,
);
