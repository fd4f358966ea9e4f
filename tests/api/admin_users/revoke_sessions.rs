//! Ending a user's sessions everywhere.

use super::*;

async fn revoke_sessions_signs_a_user_out_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    let first = browser_signed_in(&app, "clin@example.org", PW).await;
    let second = browser_signed_in(&app, "clin@example.org", PW).await;
    assert_eq!(session_count(&app, &id), 2);

    let res = admin_post(&app, &format!("/admin/users/{id}/revoke-sessions"), &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(home(&app, &first).await, "/login");
    assert_eq!(home(&app, &second).await, "/login");
    assert_eq!(session_count(&app, &id), 0);
    let revoked = app.audit_rows("session.revoke");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(revoked[0].details["count"], 2);

    // On their own account an admin ends their other sessions and keeps this one.
    let elsewhere = app.admin_browser(&admin).await;
    let res = admin_post(
        &app,
        &format!("/admin/users/{}/revoke-sessions", admin.id),
        &[],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(home(&app, &elsewhere).await, "/login");
    assert_eq!(app.get_html("/admin/users").await.status(), 200);
    let revoked = app.audit_rows("session.revoke");
    assert_eq!(revoked[1].actor.as_deref(), Some(admin.id.as_str()));
    assert_eq!(revoked[1].details["count"], 1);
}

both_backends!(revoke_sessions_signs_a_user_out_everywhere,);
