//! Incident response: the admin page (sign everyone out, revoke API keys, revalidate every
//! bucket), each behind a typed phrase, and the same controls on the command line.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use medport::infra::db::schema::{api_keys, sessions};

use crate::both_backends;
use crate::buckets::{
    SYSTEM_ID, create_through_form, new_s3_bucket, s3_client, s3_env, s3_fields, s3_fields_sse_s3,
    spawn_loopback,
};
use crate::helpers::{Backend, TestApp, api_get, browser_signed_in, location, medport};

const PW: &str = "a long enough test password";

fn session_rows(app: &TestApp) -> i64 {
    let mut conn = app.db.conn().unwrap();
    sessions::table.count().get_result(&mut *conn).unwrap()
}

fn unrevoked_keys(app: &TestApp) -> i64 {
    let mut conn = app.db.conn().unwrap();
    api_keys::table
        .filter(api_keys::revoked_at.is_null())
        .count()
        .get_result(&mut *conn)
        .unwrap()
}

fn incident_events(app: &TestApp) -> usize {
    app.audit_actions()
        .iter()
        .filter(|(action, _, _)| action.starts_with("incident."))
        .count()
}

/// Where a browser's next page load goes: 200 while signed in, the sign-in page after.
async fn uploads_page(app: &TestApp, client: &reqwest::Client) -> (u16, String) {
    let res = client
        .get(app.url("/uploads"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), location(&res))
}

async fn me_status(app: &TestApp, key: &str) -> u16 {
    api_get(app, "/api/v1/me", key).await.status().as_u16()
}

/// An uploader signed in in a browser of their own, with an API key.
async fn uploader(app: &TestApp, name: &str) -> (String, reqwest::Client, String) {
    let email = format!("{name}@example.org");
    let id = app.create_user(&email, "uploader", PW);
    let browser = browser_signed_in(app, &email, PW).await;
    let key = app.create_api_key(&id, "read");
    (id, browser, key)
}

/// One row of the revalidation table: bucket id, each step's state, and the verdict cell.
fn result_rows(page: &str) -> Vec<(String, Vec<String>, String)> {
    let body = page
        .split("Revalidation results")
        .nth(1)
        .and_then(|rest| rest.split("<tbody>").nth(1))
        .and_then(|rest| rest.split("</tbody>").next())
        .unwrap_or_else(|| panic!("no results table: {page}"));
    let bucket = regex::Regex::new(r#"<th scope="row"><a href="/admin/buckets/([^"]+)">"#).unwrap();
    let cell = regex::Regex::new(r"(?s)<td[^>]*>(.*?)</td>").unwrap();
    let badge = regex::Regex::new(r#"<span class="badge [a-z-]+">([a-z ]+)</span>"#).unwrap();
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            let id = bucket.captures(row).unwrap()[1].to_string();
            let cells: Vec<&str> = cell
                .captures_iter(row)
                .map(|c| c.get(1).unwrap().as_str())
                .collect();
            let steps = cells[1..cells.len() - 1]
                .iter()
                .map(|c| badge.captures(c).unwrap()[1].to_string())
                .collect();
            (id, steps, cells[cells.len() - 1].to_string())
        })
        .collect()
}

async fn signing_everyone_out_ends_other_sessions_but_not_the_admins(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.sign_in_as("admin").await;
    let (_, clinician, _) = uploader(&app, "clinician").await;
    assert_eq!(uploads_page(&app, &clinician).await.0, 200);

    let page = app.get_html("/admin/security").await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains(r#"href="/admin/security" aria-current="page""#),
        "{page}"
    );
    assert!(
        page.contains("Your own session in this browser is kept"),
        "{page}"
    );
    let others = session_rows(&app) - 1;
    assert!(others >= 1);

    let res = app
        .post_form(
            "/admin/security/sessions",
            &[("confirm", "sign out everyone")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/admin/security");
    assert_eq!(session_rows(&app), 1, "only the admin's session is left");

    let (status, to) = uploads_page(&app, &clinician).await;
    assert_eq!(status, 303);
    assert!(to.starts_with("/login"), "{to}");
    let page = app.get_html("/admin/security").await;
    assert_eq!(page.status(), 200, "the admin is still signed in");
    let page = page.text().await.unwrap();
    assert!(
        page.contains(&format!("Ended {others} session(s)")),
        "{page}"
    );

    let events = app.audit_rows("incident.sessions_revoked");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome, "success");
    assert_eq!(events[0].details["count"], others);
    assert_eq!(events[0].details["via"], "web");
    let mut conn = app.db.conn().unwrap();
    let actor: String = medport::infra::db::schema::audit_events::table
        .filter(medport::infra::db::schema::audit_events::action.eq("incident.sessions_revoked"))
        .select(medport::infra::db::schema::audit_events::actor_label)
        .first(&mut *conn)
        .unwrap();
    assert_eq!(actor, admin.email);
}

async fn revoking_every_key_refuses_them_all(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("admin").await;
    let (_, _, first) = uploader(&app, "first").await;
    let (_, _, second) = uploader(&app, "second").await;
    assert_eq!(me_status(&app, &first).await, 200);
    assert_eq!(me_status(&app, &second).await, 200);

    let res = app
        .post_form(
            "/admin/security/api-keys",
            &[("scope", "all"), ("confirm", "revoke api keys")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(me_status(&app, &first).await, 401);
    assert_eq!(me_status(&app, &second).await, 401);
    assert_eq!(unrevoked_keys(&app), 0);
    let page = app.get_html("/admin/security").await.text().await.unwrap();
    assert!(
        page.contains("Revoked 2 API key(s) of every user"),
        "{page}"
    );

    let events = app.audit_rows("incident.api_keys_revoked");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].details["count"], 2);
    assert_eq!(events[0].details["scope"], "all");
    assert_eq!(events[0].target, None);
}

async fn revoking_one_users_keys_leaves_another_users_key_working(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("admin").await;
    let (leaked, _, first) = uploader(&app, "leaked").await;
    let spare = app.create_api_key(&leaked, "upload");
    let (_, _, other) = uploader(&app, "other").await;

    // The select offers each user with keys, with how many.
    let page = app.get_html("/admin/security").await.text().await.unwrap();
    assert!(
        page.contains(&format!(
            r#"<option value="{leaked}">leaked@example.org (2)</option>"#
        )),
        "{page}"
    );
    let res = app
        .post_form(
            "/admin/security/api-keys",
            &[("scope", &leaked), ("confirm", "revoke api keys")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(me_status(&app, &first).await, 401);
    assert_eq!(me_status(&app, &spare).await, 401);
    assert_eq!(me_status(&app, &other).await, 200);
    let page = app.get_html("/admin/security").await.text().await.unwrap();
    assert!(
        page.contains("Revoked 2 API key(s) of leaked@example.org"),
        "{page}"
    );
    assert!(!page.contains("leaked@example.org (2)"), "{page}");

    let events = app.audit_rows("incident.api_keys_revoked");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].details["count"], 2);
    assert_eq!(events[0].details["scope"], "user");
    assert_eq!(events[0].details["user_id"], leaked.as_str());
    assert_eq!(events[0].target.as_deref(), Some(leaked.as_str()));
}

async fn revalidating_shows_every_bucket_and_fails_an_unreachable_one_quickly(backend: Backend) {
    let app = spawn_loopback(backend).await;
    app.sign_in_as("admin").await;
    let env = s3_env();
    let bucket = new_s3_bucket().await;
    let fields = s3_fields_sse_s3("Imaging", &bucket, &env);
    let imaging = create_through_form(&app, &fields).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port())
    };
    let mut fields = s3_fields("Nowhere", "nowhere-bucket", &env);
    fields.retain(|(k, _)| *k != "endpoint");
    fields.push(("endpoint", &closed));
    let nowhere = create_through_form(&app, &fields).await;

    let started = Instant::now();
    let res = app
        .post_form(
            "/admin/security/buckets",
            &[("confirm", "revalidate buckets")],
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(res.status(), 200);
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    let page = res.text().await.unwrap();
    assert!(page.contains("1 bucket(s) failed, 2 passed"), "{page}");

    let rows = result_rows(&page);
    let ids: Vec<&str> = rows.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, [SYSTEM_ID, imaging.as_str(), nowhere.as_str()]);
    for (id, steps, verdict) in &rows[..2] {
        assert_eq!(steps, &["ok"; 4], "{id}");
        assert!(verdict.contains(">passed<"), "{id}: {verdict}");
    }
    let (_, steps, verdict) = &rows[2];
    assert_eq!(steps, &["failed", "skipped", "skipped", "skipped"]);
    assert!(
        verdict.contains(">failed<") && verdict.contains("Reach the bucket: "),
        "{verdict}"
    );

    // The probe objects are gone.
    let listed = s3_client()
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(".medport-probe/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count().unwrap_or(0), 0);

    let events = app.audit_rows("incident.buckets_revalidated");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome, "failure");
    assert_eq!(events[0].details["passed"], 2);
    assert_eq!(events[0].details["failed"], 1);
    assert_eq!(
        events[0].details["failed_buckets"][0]["id"],
        nowhere.as_str()
    );
    assert!(app.audit_rows("bucket.test").is_empty());
}

async fn a_wrong_phrase_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("admin").await;
    let (clinician_id, clinician, key) = uploader(&app, "clinician").await;
    let sessions_before = session_rows(&app);
    let events_before = app.audit_actions().len();

    // The page itself writes nothing.
    assert_eq!(app.get_html("/admin/security").await.status(), 200);
    assert_eq!(app.audit_actions().len(), events_before);

    let attempts = [
        (
            "/admin/security/sessions",
            &[("confirm", "Sign out everyone")][..],
            "sessions-error",
        ),
        ("/admin/security/sessions", &[], "sessions-error"),
        (
            "/admin/security/api-keys",
            &[("scope", "all"), ("confirm", "revoke keys")],
            "keys-error",
        ),
        (
            "/admin/security/api-keys",
            &[("scope", "not-a-user"), ("confirm", "revoke api keys")],
            "keys-error",
        ),
        (
            "/admin/security/buckets",
            &[("confirm", "sign out everyone")],
            "buckets-error",
        ),
    ];
    for (path, fields, error_id) in attempts {
        let res = app.post_form(path, fields).await;
        assert_eq!(res.status(), 422, "{path} {fields:?}");
        let page = res.text().await.unwrap();
        assert!(
            page.contains(&format!(
                r#"<p class="field-error" id="{error_id}" role="alert">"#
            )),
            "{path} {fields:?}: {page}"
        );
        assert!(!page.contains("Revalidation results"), "{page}");
    }
    // A scope typed by hand keeps its choice when the form comes back.
    let res = app
        .post_form(
            "/admin/security/api-keys",
            &[("scope", &clinician_id), ("confirm", "nope")],
        )
        .await;
    let page = res.text().await.unwrap();
    assert!(
        page.contains(&format!(r#"<option value="{clinician_id}" selected>"#)),
        "{page}"
    );

    assert_eq!(session_rows(&app), sessions_before);
    assert_eq!(uploads_page(&app, &clinician).await.0, 200);
    assert_eq!(me_status(&app, &key).await, 200);
    assert_eq!(incident_events(&app), 0);
}

async fn the_command_line_ends_sessions_and_revokes_keys(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, first_browser, first) = uploader(&app, "first").await;
    let (_, second_browser, second) = uploader(&app, "second").await;

    let out = medport(
        &app,
        &["apikey", "revoke-all", "--email", "First@Example.org"],
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "api keys: 1 revoked for first@example.org\n");
    assert_eq!(me_status(&app, &first).await, 401);
    assert_eq!(me_status(&app, &second).await, 200);

    let out = medport(&app, &["apikey", "revoke-all"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "api keys: 1 revoked\n"
    );
    assert_eq!(me_status(&app, &second).await, 401);

    let out = medport(
        &app,
        &["apikey", "revoke-all", "--email", "nobody@example.org"],
    );
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("--email no account has this email"),
        "{stderr}"
    );

    let live = session_rows(&app);
    let out = medport(&app, &["sessions", "revoke-all"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("sessions: {live} ended\n")
    );
    assert_eq!(session_rows(&app), 0);
    for browser in [&first_browser, &second_browser] {
        let (status, to) = uploads_page(&app, browser).await;
        assert_eq!(status, 303);
        assert!(to.starts_with("/login"), "{to}");
    }

    let keys = app.audit_rows("incident.api_keys_revoked");
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].details["scope"], "user");
    assert_eq!(keys[0].details["count"], 1);
    assert_eq!(keys[1].details["scope"], "all");
    let ended = app.audit_rows("incident.sessions_revoked");
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].details["count"], live);
    for event in keys.iter().chain(&ended) {
        assert_eq!(event.details["via"], "command line");
    }
    let labels: Vec<(String, String)> = app
        .audit_actions()
        .into_iter()
        .filter(|(action, _, _)| action.starts_with("incident."))
        .map(|(action, outcome, _)| (action, outcome))
        .collect();
    assert_eq!(labels.len(), 3, "{labels:?}");
    let mut conn = app.db.conn().unwrap();
    let actors: Vec<String> = medport::infra::db::schema::audit_events::table
        .filter(medport::infra::db::schema::audit_events::action.like("incident.%"))
        .select(medport::infra::db::schema::audit_events::actor_label)
        .load(&mut *conn)
        .unwrap();
    assert_eq!(actors, ["system"; 3]);
}

async fn uploaders_and_auditors_are_refused_even_with_the_right_phrase(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, _, key) = uploader(&app, "bystander").await;
    let posts = [
        ("/admin/security/sessions", "sign out everyone"),
        ("/admin/security/api-keys", "revoke api keys"),
        ("/admin/security/buckets", "revalidate buckets"),
    ];
    for role in ["uploader", "auditor"] {
        let email = format!("{role}@example.org");
        app.create_user(&email, role, PW);
        let browser = browser_signed_in(&app, &email, PW).await;
        let get = |path: &'static str| {
            browser
                .get(app.url(path))
                .header("Accept", "text/html")
                .send()
        };
        let account = get("/account").await.unwrap().text().await.unwrap();
        assert!(!account.contains("/admin/security"), "{role}: {account}");
        assert_eq!(get("/admin/security").await.unwrap().status(), 403);
        let token = app.session_csrf(&browser).await;
        let sessions_before = session_rows(&app);
        for (path, phrase) in posts {
            let res = browser
                .post(app.url(path))
                .header("Accept", "text/html")
                .form(&[
                    ("confirm", phrase),
                    ("scope", "all"),
                    ("csrf_token", &token),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 403, "{role} {path}");
        }
        assert_eq!(session_rows(&app), sessions_before, "{role}");
    }
    assert_eq!(me_status(&app, &key).await, 200);
    assert_eq!(incident_events(&app), 0);
}

both_backends!(
    signing_everyone_out_ends_other_sessions_but_not_the_admins,
    revoking_every_key_refuses_them_all,
    revoking_one_users_keys_leaves_another_users_key_working,
    revalidating_shows_every_bucket_and_fails_an_unreachable_one_quickly,
    a_wrong_phrase_changes_nothing,
    the_command_line_ends_sessions_and_revokes_keys,
    uploaders_and_auditors_are_refused_even_with_the_right_phrase,
);
