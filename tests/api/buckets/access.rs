//! Who sees which bucket: grants added and removed by admins (audited), `visible_to` for
//! the upload pages, and uploaders refused on every bucket admin page of a real bucket.

use diesel::prelude::*;
use medport::app::buckets::{visible_bucket, visible_to};
use medport::domain::ids::{BucketId, UserId};
use medport::domain::role::Role;
use medport::infra::db::schema::bucket_grants;
use medport::web::routes::admin::buckets::ROUTES;

use super::{SYSTEM_ID, admin_post, insert_bucket};
use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp, location};

const PW: &str = "a long enough test password";

fn grant_rows(app: &TestApp, bucket: &str) -> Vec<(String, Option<String>)> {
    let mut conn = app.db.conn().unwrap();
    bucket_grants::table
        .filter(bucket_grants::bucket_id.eq(bucket))
        .select((bucket_grants::user_id, bucket_grants::granted_by))
        .order(bucket_grants::user_id.asc())
        .load(&mut *conn)
        .unwrap()
}

fn visible(app: &TestApp, user: &str, role: Role) -> Vec<String> {
    let mut conn = app.db.conn().unwrap();
    visible_to(&mut conn, &UserId::parse(user).unwrap(), role)
        .unwrap()
        .into_iter()
        .map(|b| b.id.into_string())
        .collect()
}

fn can_see(app: &TestApp, user: &str, role: Role, bucket: &str) -> bool {
    let mut conn = app.db.conn().unwrap();
    visible_bucket(
        &mut conn,
        &UserId::parse(user).unwrap(),
        role,
        &BucketId::parse(bucket).unwrap(),
    )
    .unwrap()
    .is_some()
}

async fn grants_are_added_and_removed_with_their_audit_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.sign_in_as("admin").await;
    let bucket = insert_bucket(&app, "Oncology");
    let clinician = app.create_user("onc@example.org", "uploader", PW);
    let auditor = app.create_user("aud@example.org", "auditor", PW);

    let (_, page) = app.page(&format!("/admin/buckets/{bucket}")).await;
    assert!(page.contains(&format!(
        r#"<option value="{clinician}">onc@example.org</option>"#
    )));
    assert!(
        !page.contains("aud@example.org"),
        "only uploaders are offered"
    );

    let grants = format!("/admin/buckets/{bucket}/grants");
    let res = admin_post(&app, &grants, &[("user_id", &clinician)]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("/admin/buckets/{bucket}#grants"));
    assert_eq!(
        grant_rows(&app, &bucket),
        vec![(clinician.clone(), Some(admin.id.clone()))]
    );
    let granted = app.audit_rows("bucket.grant");
    assert_eq!(granted.len(), 1);
    assert_eq!(granted[0].outcome, "success");
    assert_eq!(granted[0].target.as_deref(), Some(bucket.as_str()));
    assert_eq!(granted[0].details["user_id"], clinician.as_str());

    let (_, page) = app.page(&format!("/admin/buckets/{bucket}")).await;
    assert!(page.contains("onc@example.org can now upload to this bucket."));
    assert!(page.contains(&format!(
        "/admin/buckets/{bucket}/grants/{clinician}/remove"
    )));
    let (_, list) = app.page("/admin/buckets").await;
    assert!(
        list.contains(r#"<td class="num">1</td>"#),
        "grant count on the list"
    );

    // Again: nothing new. An auditor or a made-up id: refused with a message.
    assert_eq!(
        admin_post(&app, &grants, &[("user_id", &clinician)])
            .await
            .status(),
        303
    );
    assert_eq!(app.audit_rows("bucket.grant").len(), 1);
    let res = admin_post(&app, &grants, &[("user_id", &auditor)]).await;
    assert_eq!(res.status(), 409);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Only uploaders can be given a bucket")
    );
    let res = admin_post(&app, &grants, &[("user_id", "not-an-id")]).await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Choose a user from the list.")
    );
    assert_eq!(grant_rows(&app, &bucket).len(), 1);
    assert_eq!(
        app.audit_rows("bucket.grant").last().unwrap().outcome,
        "denied"
    );

    let remove = format!("/admin/buckets/{bucket}/grants/{clinician}/remove");
    let res = admin_post(&app, &remove, &[]).await;
    assert_eq!(res.status(), 303);
    assert!(grant_rows(&app, &bucket).is_empty());
    let revoked = app.audit_rows("bucket.revoke_grant");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].details["user_id"], clinician.as_str());
    // Removing again changes nothing and records nothing.
    assert_eq!(admin_post(&app, &remove, &[]).await.status(), 303);
    assert_eq!(app.audit_rows("bucket.revoke_grant").len(), 1);
}

async fn uploaders_see_only_granted_buckets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("admin").await;
    let (granted, other) = (insert_bucket(&app, "Granted"), insert_bucket(&app, "Other"));
    let clinician = app.create_user("clin@example.org", "uploader", PW);
    let admin_id = app.create_user("boss@example.org", "admin", PW);
    let res = admin_post(
        &app,
        &format!("/admin/buckets/{granted}/grants"),
        &[("user_id", &clinician)],
    )
    .await;
    assert_eq!(res.status(), 303);

    // The default bucket is open to all unless configured otherwise.
    let seen = visible(&app, &clinician, Role::Uploader);
    assert_eq!(seen, vec![SYSTEM_ID.to_string(), granted.clone()]);
    assert!(can_see(&app, &clinician, Role::Uploader, &granted));
    assert!(!can_see(&app, &clinician, Role::Uploader, &other));
    assert_eq!(visible(&app, &admin_id, Role::Admin).len(), 3);

    // Guessing the admin pages of a real bucket: 403 on every route, for GET and POST.
    let (browser, _) = app.new_browser();
    let res = app.login_with(&browser, "clin@example.org", PW).await;
    assert_eq!(res.status(), 303);
    let token = app.session_csrf(&browser).await;
    for route in ROUTES {
        let path = route
            .path
            .replace("{id}", &other)
            .replace("{user_id}", &clinician);
        let req = match route.method {
            "GET" => browser.get(app.url(&path)),
            _ => browser
                .post(app.url(&path))
                .form(&[("csrf_token", token.as_str())]),
        };
        let res = req.header("Accept", "text/html").send().await.unwrap();
        assert_eq!(res.status(), 403, "{} {path}", route.method);
    }
    assert_eq!(grant_rows(&app, &other), vec![], "nothing changed");
}

async fn a_closed_default_bucket_needs_a_grant(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            tweak: Box::new(|s| s.default_bucket_open_to_all = false),
            ..Options::default()
        },
    )
    .await;
    app.sign_in_as("admin").await;
    let clinician = app.create_user("clin@example.org", "uploader", PW);
    assert!(visible(&app, &clinician, Role::Uploader).is_empty());
    assert!(!can_see(&app, &clinician, Role::Uploader, SYSTEM_ID));
    let (_, page) = app.page(&format!("/admin/buckets/{SYSTEM_ID}")).await;
    assert!(page.contains("Only the uploaders below."));
    // The system bucket takes grants like any other.
    let res = admin_post(
        &app,
        &format!("/admin/buckets/{SYSTEM_ID}/grants"),
        &[("user_id", &clinician)],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        visible(&app, &clinician, Role::Uploader),
        vec![SYSTEM_ID.to_string()]
    );
}

both_backends!(
    grants_are_added_and_removed_with_their_audit_events,
    uploaders_see_only_granted_buckets,
    a_closed_default_bucket_needs_a_grant,
);
