//! Single sign-on through a real OpenID Provider (oidc-provider, `tests/oidc/provider.mjs`):
//! the whole code flow, the role mapping, the provider's second factor, break-glass
//! passwords, sign-out at the provider, and every way the answer can be wrong.

use diesel::prelude::*;
use medport::app::accounts::totp;
use medport::infra::db::schema::users;

use crate::both_backends;
use crate::helpers::oidc::{Account, followed_link, issuer};
use crate::helpers::{Backend, TestApp, location};

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

impl crate::helpers::oidc::Provider {
    /// A new account at the provider in the clinicians group; its id.
    async fn clinician(&self, prefix: &str) -> String {
        let id = unique(prefix);
        self.account(&Account::new(
            &id,
            &format!("{id}@example.org"),
            &["clinicians"],
        ))
        .await;
        id
    }
}

impl TestApp {
    fn role_of(&self, email: &str) -> Option<String> {
        let mut conn = self.db.conn().unwrap();
        users::table
            .filter(users::email.eq(email))
            .select(users::role)
            .first(&mut *conn)
            .optional()
            .unwrap()
    }

    fn users_with(&self, email: &str) -> i64 {
        let mut conn = self.db.conn().unwrap();
        users::table
            .filter(users::email.eq(email))
            .count()
            .get_result(&mut *conn)
            .unwrap()
    }

    /// Whether the browser is signed in (the account page answers instead of sending it
    /// to the sign-in page).
    async fn signed_in(&self, client: &reqwest::Client) -> bool {
        let res = client.get(self.url("/account")).send().await.unwrap();
        res.status() == 200
    }
}

async fn a_clinician_signs_in_with_the_role_the_provider_gives(backend: Backend) {
    let (app, provider) = TestApp::spawn_with_sso(backend, &[]).await;
    let page = app.get_html("/login").await.text().await.unwrap();
    assert!(page.contains("Sign in with your organisation"), "{page}");
    let id = unique("clinician");
    let email = format!("{id}@example.org");
    provider
        .account(&Account::new(&id, &email, &["nurses", "clinicians"]))
        .await;
    let res = app.sso_sign_in(&app.client, &id).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/");
    assert!(app.signed_in(&app.client).await);
    assert_eq!(app.role_of(&email).as_deref(), Some("uploader"));
    let created = app.audit_rows("user.create");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].details["method"], "single_sign_on");
    let logins = app.audit_rows("login");
    assert_eq!(logins.last().unwrap().outcome, "success");
    assert_eq!(logins.last().unwrap().details["method"], "single_sign_on");

    // A second sign-in, from another browser, is the same account.
    let (other, _) = app.new_browser();
    let res = app.sso_sign_in(&other, &id).await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.users_with(&email), 1);
}

async fn the_role_follows_the_provider_at_every_sign_in(backend: Backend) {
    let (app, provider) = TestApp::spawn_with_sso(backend, &[]).await;
    let id = unique("mover");
    let email = format!("{id}@example.org");
    provider
        .account(&Account::new(&id, &email, &["clinicians"]))
        .await;
    app.sso_sign_in(&app.client, &id).await;
    assert_eq!(app.role_of(&email).as_deref(), Some("uploader"));

    provider
        .account(&Account::new(&id, &email, &["auditors"]))
        .await;
    let (later, _) = app.new_browser();
    let res = app.sso_sign_in(&later, &id).await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.role_of(&email).as_deref(), Some("auditor"));
    let changes = app.audit_rows("user.role");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].details["to"], "auditor");
}

async fn someone_with_no_mapped_role_is_refused_with_a_clear_page(backend: Backend) {
    let (app, provider) = TestApp::spawn_with_sso(backend, &[]).await;
    let id = unique("visitor");
    let email = format!("{id}@example.org");
    provider
        .account(&Account::new(
            &id,
            &email,
            &["medport-admins-typo", "nurses"],
        ))
        .await;
    let res = app.sso_sign_in(&app.client, &id).await;
    assert_eq!(res.status(), 403);
    let page = res.text().await.unwrap();
    assert!(page.contains("no medport role"), "{page}");
    assert!(!app.signed_in(&app.client).await);
    assert_eq!(app.users_with(&email), 0, "no account for an unmapped user");
    let refused = app.audit_rows("login");
    assert_eq!(refused.last().unwrap().details["reason"], "no mapped role");
}

async fn an_admin_needs_a_second_factor_from_the_provider_or_from_medport(backend: Backend) {
    let (app, provider) = TestApp::spawn_with_sso(backend, &[]).await;
    // The provider checked a second factor (amr "otp"): no medport TOTP is asked for.
    let strong = unique("admin-mfa");
    let strong_email = format!("{strong}@example.org");
    provider
        .account(&Account {
            amr: &["pwd", "otp"],
            ..Account::new(&strong, &strong_email, &["medport-admins"])
        })
        .await;
    let res = app.sso_sign_in(&app.client, &strong).await;
    assert_eq!(res.status(), 303);
    let admin_page = app
        .client
        .get(app.url("/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(admin_page.status(), 200);
    assert_eq!(
        app.audit_rows("login").last().unwrap().details["second_factor"],
        "provider"
    );

    // A password alone at the provider: the admin must enrol medport's TOTP first.
    let weak = unique("admin-pwd");
    let weak_email = format!("{weak}@example.org");
    provider
        .account(&Account::new(&weak, &weak_email, &["medport-admins"]))
        .await;
    let (browser, _) = app.new_browser();
    let res = app.sso_sign_in(&browser, &weak).await;
    assert_eq!(res.status(), 303);
    let admin_page = browser.get(app.url("/admin/users")).send().await.unwrap();
    assert_eq!(admin_page.status(), 303);
    assert_eq!(location(&admin_page), "/account/totp");

    // Once enrolled, the provider's single factor leads to medport's TOTP step.
    let user_id = {
        let mut conn = app.db.conn().unwrap();
        users::table
            .filter(users::email.eq(&weak_email))
            .select(users::id)
            .first::<String>(&mut *conn)
            .unwrap()
    };
    let (secret, _) = app.enrol_totp(&user_id, &weak_email);
    let (third, _) = app.new_browser();
    let res = app.sso_sign_in(&third, &weak).await;
    assert_eq!(location(&res), "/login/totp");
    assert!(
        !app.signed_in(&third).await,
        "not signed in before the code"
    );
    let token = app.csrf_token_with(&third, "/login/totp").await;
    let code = totp::code_for_step(&secret, totp::step_at(app.clock.unix()));
    let res = third
        .post(app.url("/login/totp"))
        .form(&[("code", code.as_str()), ("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(app.signed_in(&third).await);
}

async fn every_bad_id_token_is_refused_and_nobody_is_signed_in(backend: Backend) {
    let (app, provider) = TestApp::spawn_with_sso(backend, &[]).await;
    let id = unique("target");
    let email = format!("{id}@example.org");
    provider
        .account(&Account::new(&id, &email, &["clinicians"]))
        .await;
    for mode in [
        "tamper-signature",
        "tamper-payload",
        "wrong-audience",
        "expired",
        "no-nonce",
        "wrong-nonce",
        "wrong-issuer",
        "unknown-kid",
        "alg-none",
    ] {
        provider.fault(mode).await;
        let (browser, _) = app.new_browser();
        let res = app.sso_sign_in(&browser, &id).await;
        assert_eq!(res.status(), 403, "{mode}");
        let page = res.text().await.unwrap();
        assert!(page.contains("could not be verified"), "{mode}: {page}");
        assert!(!app.signed_in(&browser).await, "{mode}: signed in");
        let last = app.audit_rows("login").pop().unwrap();
        assert_eq!(last.outcome, "failure", "{mode}");
        assert_eq!(last.details["reason"], "not verified", "{mode}");
    }
    assert_eq!(app.users_with(&email), 0);

    // The same account, with nothing altered, signs in: the refusals were the token's.
    let res = app.sso_sign_in(&app.client, &id).await;
    assert_eq!(res.status(), 303);
}

async fn a_key_the_provider_rotated_in_is_fetched_and_trusted(backend: Backend) {
    let (app, provider) = TestApp::spawn_with_sso(backend, &[]).await;
    let id = provider.clinician("rotation").await;
    // Discovery (and the key set) is read at the first sign-in; the token after that names
    // a key the provider published only now.
    let res = app.sso_sign_in(&app.client, &id).await;
    assert_eq!(res.status(), 303);
    provider.fault("rotated-key").await;
    let (browser, _) = app.new_browser();
    let res = app.sso_sign_in(&browser, &id).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert!(app.signed_in(&browser).await);

    // Keys are fetched again at most once a minute: a second new key within it is refused.
    provider.fault("rotated-key").await;
    let (third, _) = app.new_browser();
    let res = app.sso_sign_in(&third, &id).await;
    assert_eq!(res.status(), 403);
}

async fn refusals_cannot_flood_the_audit_trail(backend: Backend) {
    // Someone the provider knows but medport gives no role can start again and again: the
    // provider's session makes each round quick. Each address gets a few rows a minute.
    let (app, provider) = TestApp::spawn_with_sso(backend, &[]).await;
    let id = unique("persistent");
    provider
        .account(&Account::new(
            &id,
            &format!("{id}@example.org"),
            &["nurses"],
        ))
        .await;
    let before = app.audit_rows("login").len();
    for _ in 0..12 {
        let res = app.sso_sign_in(&app.client, &id).await;
        assert_eq!(res.status(), 403);
    }
    let recorded = app.audit_rows("login").len() - before;
    assert!(
        recorded <= medport::app::audit::refusals::PER_ADDRESS as usize,
        "{recorded} rows for 12 refusals"
    );
    assert!(recorded >= 1, "the first refusals are recorded in full");
}

async fn a_provider_answering_500_gives_a_clear_page(backend: Backend) {
    let (app, provider) = TestApp::spawn_with_sso(backend, &[]).await;
    let id = provider.clinician("unlucky").await;
    provider.fault("token-500").await;
    let res = app.sso_sign_in(&app.client, &id).await;
    assert_eq!(res.status(), 503);
    let page = res.text().await.unwrap();
    assert!(page.contains("not answering"), "{page}");
    assert!(!page.contains("server_error"), "no internal detail: {page}");
}

async fn a_state_is_used_once_and_only_by_the_browser_that_started(backend: Backend) {
    let (app, provider) = TestApp::spawn_with_sso(backend, &[]).await;
    let id = provider.clinician("replay").await;
    let callback = app.sso_to_callback(&app.client, &id).await;

    // Another browser, with the victim's code and state: no session holds that state.
    let (other, _) = app.new_browser();
    other.get(app.url("/login")).send().await.unwrap();
    let res = app.finish_sso(&other, &callback).await;
    assert_eq!(res.status(), 400);
    assert!(!app.signed_in(&other).await);

    // The browser that started it signs in once; the same answer again is refused.
    let res = app.finish_sso(&app.client, &callback).await;
    assert_eq!(res.status(), 303);
    app.post_form("/logout", &[]).await;
    let res = app.finish_sso(&app.client, &callback).await;
    assert_eq!(res.status(), 400);
    let page = res.text().await.unwrap();
    assert!(page.contains("expired or was already used"), "{page}");
    assert!(!app.signed_in(&app.client).await);
}

async fn the_callback_page_writes_nothing(backend: Backend) {
    let (app, _provider) = TestApp::spawn_with_sso(backend, &[]).await;
    let mut watch = app.watch_writes();
    let (browser, jar) = app.new_browser();
    let res = browser
        .get(app.url("/auth/oidc/callback?code=abc&state=def"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("set-cookie").is_none());
    let refused = browser
        .get(app.url("/auth/oidc/callback?error=access_denied&state=def"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("cancelled"));
    assert_eq!(watch.written(), Vec::<String>::new());
    let _ = jar;
}

async fn sign_out_ends_the_session_at_the_provider_too(backend: Backend) {
    let (app, provider) = TestApp::spawn_with_sso(backend, &[]).await;
    let id = provider.clinician("leaver").await;
    app.sso_sign_in(&app.client, &id).await;
    let res = app.post_form("/logout", &[]).await;
    assert_eq!(
        res.status(),
        200,
        "a page that follows a link to the provider"
    );
    let to = url::Url::parse(&followed_link(&res.text().await.unwrap())).unwrap();
    assert!(
        to.as_str().starts_with(&provider.issuer),
        "RP-initiated logout: {to}"
    );
    let query: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], provider.client_id);
    assert_eq!(
        query["post_logout_redirect_uri"],
        format!("{}/login?signed_out=1", app.address)
    );
    assert!(!app.signed_in(&app.client).await);

    // A password sign-in signs out at medport only.
    let user = app.sign_in_as("uploader").await;
    let _ = user;
    let res = app.post_form("/logout", &[]).await;
    assert_eq!(location(&res), "/login?signed_out=1");
}

async fn a_disabled_account_stays_out_whatever_the_provider_says(backend: Backend) {
    let (app, provider) = TestApp::spawn_with_sso(backend, &[]).await;
    let id = provider.clinician("disabled").await;
    app.sso_sign_in(&app.client, &id).await;
    {
        let mut conn = app.db.conn().unwrap();
        diesel::update(users::table.filter(users::email.eq(format!("{id}@example.org"))))
            .set(users::disabled.eq(true))
            .execute(&mut *conn)
            .unwrap();
    }
    assert!(!app.signed_in(&app.client).await, "the session ends");
    let (browser, _) = app.new_browser();
    let res = app.sso_sign_in(&browser, &id).await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("disabled"));
    assert!(!app.signed_in(&browser).await);
}

async fn a_local_account_is_taken_over_only_when_allowed(backend: Backend) {
    // Not allowed (the default): the provider's user with a local account's address is
    // refused, and the local account is untouched.
    let (app, provider) = TestApp::spawn_with_sso(backend, &[]).await;
    let id = unique("local");
    let email = format!("{id}@example.org");
    let local = app.create_user(&email, "uploader", "a long local password");
    provider
        .account(&Account::new(&id, &email, &["clinicians"]))
        .await;
    let res = app.sso_sign_in(&app.client, &id).await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("already exists"));

    // Allowed, and the address verified: the same account signs in.
    let (app, provider) =
        TestApp::spawn_with_sso(backend, &[("MEDPORT_OIDC_LINK_BY_EMAIL", "true")]).await;
    let local = {
        let _ = local;
        app.create_user(&email, "uploader", "a long local password")
    };
    provider
        .account(&Account::new(&id, &email, &["clinicians"]))
        .await;
    let res = app.sso_sign_in(&app.client, &id).await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.users_with(&email), 1);
    assert_eq!(
        app.audit_rows("user.link")[0].target.as_deref(),
        Some(local.as_str())
    );

    // An unverified address is never enough.
    let other = unique("unverified");
    let other_email = format!("{other}@example.org");
    app.create_user(&other_email, "uploader", "a long local password");
    provider
        .account(&Account {
            email_verified: false,
            ..Account::new(&other, &other_email, &["clinicians"])
        })
        .await;
    let (browser, _) = app.new_browser();
    let res = app.sso_sign_in(&browser, &other).await;
    assert_eq!(res.status(), 403);
}

async fn a_provider_that_is_down_leaves_break_glass_sign_in_working(backend: Backend) {
    // Nothing listens on port 9 of this machine.
    let (app, _provider) = TestApp::spawn_with_sso_at(
        backend,
        "http://127.0.0.1:9",
        &[
            ("MEDPORT_PASSWORD_SIGN_IN", "break-glass"),
            ("MEDPORT_BREAK_GLASS_EMAILS", "glass@example.org"),
        ],
    )
    .await;
    let page = app.get_html("/login").await.text().await.unwrap();
    assert!(page.contains("emergency (break-glass) accounts only"));
    let res = app.start_sso(&app.client).await;
    assert_eq!(res.status(), 503);
    assert!(res.text().await.unwrap().contains("not answering"));

    app.create_user("glass@example.org", "uploader", "break glass password");
    app.create_user("everyday@example.org", "uploader", "everyday password");
    // Any other account's password is refused like an unknown address.
    let res = app.login("everyday@example.org", "everyday password").await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        app.audit_rows("login").last().unwrap().details["reason"],
        "password sign-in off for this account"
    );
    app.sign_in("glass@example.org", "break glass password")
        .await;
}

both_backends!(
    a_clinician_signs_in_with_the_role_the_provider_gives,
    the_role_follows_the_provider_at_every_sign_in,
    someone_with_no_mapped_role_is_refused_with_a_clear_page,
    an_admin_needs_a_second_factor_from_the_provider_or_from_medport,
    every_bad_id_token_is_refused_and_nobody_is_signed_in,
    a_key_the_provider_rotated_in_is_fetched_and_trusted,
    refusals_cannot_flood_the_audit_trail,
    a_provider_answering_500_gives_a_clear_page,
    a_state_is_used_once_and_only_by_the_browser_that_started,
    the_callback_page_writes_nothing,
    sign_out_ends_the_session_at_the_provider_too,
    a_disabled_account_stays_out_whatever_the_provider_says,
    a_local_account_is_taken_over_only_when_allowed,
    a_provider_that_is_down_leaves_break_glass_sign_in_working,
);

#[test]
fn the_test_provider_is_configured() {
    assert!(issuer().starts_with("http://127.0.0.1:"));
}
