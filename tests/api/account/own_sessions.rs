//! One's own sessions: listed and revoked one by one, never another user's.

use super::*;

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

both_backends!(
    sessions_are_listed_and_revoked_one_by_one,
    another_users_session_cannot_be_revoked,
);
