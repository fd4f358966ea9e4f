//! The audit log page: what auditors see, its filters and pagination, and that uploaders
//! can neither read nor export it.

use super::*;

async fn sign_in_and_out_events_appear_for_an_auditor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("clin@example.org", "uploader", PW);
    let (browser, _) = app.new_browser();
    assert_eq!(
        app.login_with(&browser, "clin@example.org", "not the password")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.login_with(&browser, "clin@example.org", PW)
            .await
            .status(),
        303
    );
    let token = app.session_csrf(&browser).await;
    let res = browser
        .post(app.url("/logout"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);

    app.sign_in_as("auditor").await;
    let (status, html) = page(&app, "").await;
    assert_eq!(status, 200);
    let events = rows(&html);
    let clin: Vec<_> = events
        .iter()
        .filter(|e| e.1 == "clin@example.org")
        .map(|e| (e.2.as_str(), e.3.as_str()))
        .collect();
    assert_eq!(
        clin,
        [
            ("logout", "success"),
            ("login", "success"),
            ("login", "failure")
        ],
        "newest first"
    );
    assert!(
        events.windows(2).all(|w| w[0].0 > w[1].0),
        "ordered newest first"
    );
    assert!(html.contains("Audit chain intact"), "{html}");
    assert_eq!(html.matches("<h1").count(), 1);

    // A TOTP-enrolled administrator may read it too.
    assert_eq!(app.post_form("/logout", &[]).await.status(), 303);
    app.sign_in_as("admin").await;
    assert_eq!(page(&app, "").await.0, 200);
}

async fn filters_narrow_the_log(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = Actor::user("0192f3a4-aaaa-7d8e-9fa0-b1c2d3e4f506", "alice@example.org");
    let bob = Actor::user("0192f3a4-bbbb-7d8e-9fa0-b1c2d3e4f506", "bob@example.org");
    record(
        &app,
        &[
            Event::new(alice.clone(), "login", Outcome::Success),
            Event::new(alice, "login.totp", Outcome::Failure),
            Event::new(bob, "login", Outcome::Denied),
            Event::new(Actor::anonymous(), "login", Outcome::Failure),
        ],
    );
    insert_at(&app, at("2025-03-10", "00:00:00"), "test.dated");
    insert_at(&app, at("2025-03-10", "23:59:59.999999"), "test.dated");
    insert_at(&app, at("2025-03-11", "00:00:00"), "test.dated");
    insert_at(&app, at("2025-03-12", "12:00:00"), "test.dated");
    app.sign_in_as("auditor").await;

    let (status, html) = page(&app, "?action=login").await;
    assert_eq!(status, 200);
    let found = rows(&html);
    assert_eq!(found.len(), count_where_action(&app, "login"));
    assert!(found.iter().all(|r| r.2 == "login"), "exact: {found:?}");
    assert!(
        html.contains(r#"<option value="login.totp">"#),
        "actions offered"
    );
    assert!(html.contains(r#"<option value="login" selected>"#));

    let found = rows(&page(&app, "?outcome=denied").await.1);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1, "bob@example.org");

    let found = rows(&page(&app, "?user=ALICE%40").await.1);
    let actions: Vec<&str> = found.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(actions, ["login.totp", "login"]);
    let found = rows(&page(&app, "?user=bbbb-7d8e").await.1);
    assert_eq!(found.len(), 1, "by user id");
    assert_eq!(found[0].1, "bob@example.org");
    assert!(
        rows(&page(&app, "?user=%25").await.1).is_empty(),
        "% is literal"
    );
    let found = rows(&page(&app, "?user=alice&outcome=failure").await.1);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].2, "login.totp");

    // Dates are UTC days, both ends inclusive.
    for (dates, expected) in [
        ("from=2025-03-10&to=2025-03-10", 2),
        ("from=2025-03-11", 2),
        ("to=2025-03-11", 3),
        ("from=2025-03-11&to=2025-03-11", 1),
        ("from=2025-03-13", 0),
    ] {
        let found = rows(&page(&app, &format!("?action=test.dated&{dates}")).await.1);
        assert_eq!(found.len(), expected, "{dates}");
    }

    for (query, message) in [
        (
            "?outcome=maybe",
            "Outcome must be success, failure or denied.",
        ),
        (
            "?from=2025-02-30",
            "From date must be a date written YYYY-MM-DD",
        ),
        ("?to=10%2F03%2F2025", "To date must be a date written"),
        (
            "?from=2025-03-12&to=2025-03-11",
            "To date must not be before the",
        ),
        ("?page=0", "Page must be a whole number"),
        ("?action=%3Cscript%3E", "Action is not an action name."),
    ] {
        let (status, html) = page(&app, query).await;
        assert_eq!(status, 400, "{query}");
        assert!(html.contains(message), "{query}: {html}");
        assert!(rows(&html).is_empty());
        assert!(!html.contains("<script>"), "echoed values are escaped");
    }
}

async fn pagination_keeps_the_filters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let events: Vec<Event> = (0..120)
        .map(|i| {
            Event::new(Actor::system(), "bulk.test", Outcome::Success).details(json!({ "n": i }))
        })
        .collect();
    record(&app, &events);
    app.sign_in_as("auditor").await;

    let (_, first) = page(&app, "?action=bulk.test").await;
    let p1 = rows(&first);
    assert_eq!(p1.len(), 50);
    assert!(first.contains("120 matching"));
    // `&` is escaped in the attribute, as HTML requires.
    assert!(
        first.contains(r#"href="/admin/audit?action=bulk.test&#38;page=2""#),
        "{first}"
    );
    assert!(!first.contains(r#"rel="prev""#));

    let (_, second) = page(&app, "?action=bulk.test&page=2").await;
    let p2 = rows(&second);
    assert_eq!(p2.len(), 50);
    assert!(second.contains(r#"rel="prev""#) && second.contains(r#"rel="next""#));
    assert!(second.contains("page=3") && second.contains("page=1"));

    let (_, third) = page(&app, "?action=bulk.test&page=3").await;
    let p3 = rows(&third);
    assert_eq!(p3.len(), 20);
    assert!(!third.contains(r#"rel="next""#));

    let ids: Vec<i64> = [p1, p2, p3].concat().iter().map(|r| r.0).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first across pages"
    );
    assert_eq!(ids.len(), 120);
    assert!(rows(&page(&app, "?action=bulk.test&page=4").await.1).is_empty());
}

async fn uploaders_cannot_read_or_export(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (anon, _) = app.new_browser();
    let res = anon.get(app.url("/admin/audit")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("/login"));

    app.sign_in_as("uploader").await;
    for path in [
        "/admin/audit",
        "/admin/audit.csv",
        "/admin/audit.csv?action=login",
    ] {
        let res = app.get_html(path).await;
        assert_eq!(res.status(), 403, "{path}");
        let body = res.text().await.unwrap();
        assert!(!body.contains("login.password") && !body.contains("event-"));
    }
    assert_eq!(count_where_action(&app, "access.denied"), 3);
    assert_eq!(count_where_action(&app, "audit.export"), 0);
}

both_backends!(
    sign_in_and_out_events_appear_for_an_auditor,
    filters_narrow_the_log,
    pagination_keeps_the_filters,
    uploaders_cannot_read_or_export,
);
