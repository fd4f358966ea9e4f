//! The account overview.

use super::*;

async fn account_overview_shows_the_user_and_their_settings(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
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
    let res = app
        .post_form_with(&anon, "/account/password", &[("current_password", PW)])
        .await;
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("/login"), "{}", location(&res));
}

both_backends!(account_overview_shows_the_user_and_their_settings,);
