//! Until an administrator has enrolled TOTP, their password opens only the enrolment and
//! sign-out routes: no pages, no uploads, no API keys, in the browser or through a key.

use crate::both_backends;
use medport::app::accounts::totp;

use crate::helpers::{Backend, TestApp, api_get, location, secret_from_page};
use crate::tus_support::Tus;

const PASSWORD: &str = "a long enough test password";

/// An admin who has not enrolled TOTP, signed in in the main browser.
async fn admin_without_totp(app: &TestApp) -> String {
    let id = app.create_user("admin@example.org", "admin", PASSWORD);
    app.sign_in("admin@example.org", PASSWORD).await;
    id
}

/// A key issued straight in the database, as `medport apikey create` would.
fn key_for(app: &TestApp, user_id: &str) -> String {
    use medport::app::accounts::api_keys::{self, ChangedBy, KeyName, KeyRequest};
    use medport::domain::api_key::Scopes;
    let mut conn = app.db.conn().unwrap();
    let request = KeyRequest {
        name: KeyName::parse("script").unwrap(),
        scopes: Scopes::parse_list("upload,read").unwrap(),
        expires_in: None,
    };
    let issued = api_keys::create(
        &mut conn,
        &medport::domain::ids::UserId::parse(user_id).unwrap(),
        &request,
        chrono::Utc::now().naive_utc(),
        &ChangedBy {
            actor: medport::app::audit::Actor::system(),
            origin: medport::app::audit::Origin::default(),
            via: "command line",
        },
    )
    .unwrap();
    issued.secret.expose().to_string()
}

async fn an_admin_without_totp_reaches_only_enrolment_and_sign_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    admin_without_totp(&app).await;
    for path in [
        "/",
        "/account",
        "/account/api-keys",
        "/account/sessions",
        "/uploads",
        "/uploads/new",
        "/admin/users",
    ] {
        let res = app.get_html(path).await;
        assert_eq!(res.status(), 303, "{path}");
        let to = location(&res);
        assert!(
            to == "/account/totp" || (path == "/" && to.starts_with('/')),
            "{path} -> {to}"
        );
    }
    assert_eq!(app.get_html("/account/totp").await.status(), 200);

    // No key can be minted.
    let res = app
        .post_form(
            "/account/api-keys",
            &[
                ("name", "mine"),
                ("expires_days", "30"),
                ("scopes", "upload"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/account/totp");
    let mut conn = app.db.conn().unwrap();
    let keys: i64 = {
        use diesel::prelude::*;
        medport::infra::db::schema::api_keys::table
            .count()
            .get_result(&mut *conn)
            .unwrap()
    };
    assert_eq!(keys, 0);

    // No upload, from the page's tus client either.
    let res = Tus::with_session(&app)
        .await
        .create(10, &[("filename", "a.pdf")])
        .await;
    assert_eq!(res.status(), 403);

    // Signing out still works.
    let res = app.post_form("/logout", &[]).await;
    assert_eq!(location(&res), "/login?signed_out=1");
}

async fn the_keys_of_an_admin_without_totp_do_not_authenticate(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("admin@example.org", "admin", PASSWORD);
    let key = key_for(&app, &id);
    assert_eq!(api_get(&app, "/api/v1/me", &key).await.status(), 401);
    let res = Tus::with_key(&app, &key)
        .create(10, &[("filename", "a.pdf")])
        .await;
    assert_eq!(res.status(), 401);
    let refusals: Vec<_> = app
        .audit_actions()
        .into_iter()
        .filter(|(a, _, d)| a == "api_key.authenticate" && d.contains("two-factor"))
        .collect();
    assert_eq!(refusals.len(), 2, "each refusal is audited");

    // Enrolling does not bring it to life: it was minted with the password alone.
    app.sign_in("admin@example.org", PASSWORD).await;
    let enrol = app.get_html("/account/totp").await.text().await.unwrap();
    let (_, secret) = secret_from_page(&enrol);
    let code = totp::code_for_step(&secret, totp::step_at(app.clock.unix()));
    let res = app.post_form("/account/totp", &[("code", &code)]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(api_get(&app, "/api/v1/me", &key).await.status(), 401);
    let enrolled = app
        .audit_actions()
        .into_iter()
        .find(|(a, o, _)| a == "totp.enrol" && o == "success")
        .unwrap();
    let details: serde_json::Value = serde_json::from_str(&enrolled.2).unwrap();
    assert_eq!(details["api_keys_revoked"], 1);
}

both_backends!(
    an_admin_without_totp_reaches_only_enrolment_and_sign_out,
    the_keys_of_an_admin_without_totp_do_not_authenticate,
);
