//! Disabling an account revokes its API keys for good: enabling it again restores sign-in,
//! not the keys.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use medport::infra::db::schema::api_keys;

use super::{PW, admin_post, body, user_facts};
use crate::api_keys::{assert_refused, key_id};
use crate::both_backends;
use crate::helpers::{Backend, TestApp, api_get, location, medport};

/// A read key for `email`, issued by `medport apikey create`.
fn new_key(app: &TestApp, email: &str) -> String {
    let out = medport(
        app,
        &["apikey", "create", "--email", email, "--scope", "read"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

fn revoked_at(app: &TestApp, key: &str) -> Option<NaiveDateTime> {
    let mut conn = app.db.conn().unwrap();
    api_keys::table
        .find(key_id(app, key))
        .select(api_keys::revoked_at)
        .first(&mut *conn)
        .unwrap()
}

/// Disables the account from the admin pages; returns the page it lands on (with the flash).
async fn disable(app: &TestApp, id: &str) -> String {
    let res = admin_post(app, &format!("/admin/users/{id}/disable"), &[]).await;
    assert_eq!(res.status(), 303);
    body(app.get_html(&location(&res)).await).await
}

async fn disabling_revokes_api_keys_and_enabling_does_not_restore_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.admin().await;
    let id = app.create_user("robot@example.org", "uploader", PW);
    let (first, second) = (
        new_key(&app, "robot@example.org"),
        new_key(&app, "robot@example.org"),
    );
    let retired = new_key(&app, "robot@example.org");
    let retired_at = chrono::DateTime::from_timestamp(1_700_000_000, 0)
        .unwrap()
        .naive_utc();
    {
        let mut conn = app.db.conn().unwrap();
        diesel::update(api_keys::table.find(key_id(&app, &retired)))
            .set(api_keys::revoked_at.eq(retired_at))
            .execute(&mut *conn)
            .unwrap();
    }
    app.create_user("colleague@example.org", "uploader", PW);
    let colleagues = new_key(&app, "colleague@example.org");
    assert_eq!(api_get(&app, "/api/v1/me", &first).await.status(), 200);

    let page = body(app.get_html(&format!("/admin/users/{id}")).await).await;
    assert!(
        page.contains("revokes their API keys at once; re-enabling does not restore the keys"),
        "the page says so where the button is: {page}"
    );
    let page = disable(&app, &id).await;
    assert!(
        page.contains(
            "robot@example.org is disabled and has been signed out everywhere. 2 API keys revoked."
        ),
        "{page}"
    );
    let res = admin_post(&app, &format!("/admin/users/{id}/enable"), &[]).await;
    assert_eq!(res.status(), 303);
    assert!(!user_facts(&app, &id).disabled);

    for key in [&first, &second] {
        assert_refused(&app, key).await;
        assert!(revoked_at(&app, key).is_some());
    }
    assert_eq!(
        revoked_at(&app, &retired),
        Some(retired_at),
        "an already revoked key keeps its date"
    );
    assert_eq!(
        api_get(&app, "/api/v1/me", &colleagues).await.status(),
        200,
        "other users' keys are untouched"
    );
    let disabled = app.audit_rows("user.disable");
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].details["api_keys_revoked"], 2);
    assert_eq!(disabled[0].details["sessions_ended"], 0);
    let refusals: Vec<_> = app
        .audit_actions()
        .into_iter()
        .filter(|(action, ..)| action == "api_key.authenticate")
        .collect();
    assert_eq!(refusals.len(), 2);
    assert!(
        refusals
            .iter()
            .all(|(_, _, details)| details.contains("key revoked")),
        "{refusals:?}"
    );
}

async fn disabling_an_account_without_keys_says_none_were_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.admin().await;
    let id = app.create_user("keyless@example.org", "auditor", PW);
    let page = disable(&app, &id).await;
    assert!(page.contains("They had no API keys to revoke."), "{page}");
    assert_eq!(
        app.audit_rows("user.disable")[0].details["api_keys_revoked"],
        0
    );
}

both_backends!(
    disabling_revokes_api_keys_and_enabling_does_not_restore_them,
    disabling_an_account_without_keys_says_none_were_revoked,
);
