//! Refusals before sign-in are counted, not stored one by one.

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

const KIB: usize = 1024;

/// A refused POST without a CSRF token, as anyone on the network can send it.
async fn refused_post(app: &TestApp, path: &str) {
    let (client, _) = app.new_browser();
    let res = client.post(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), 403, "{path:.40}");
}

fn denied_rows(app: &TestApp) -> Vec<serde_json::Value> {
    app.audit_actions()
        .into_iter()
        .filter(|(action, _, _)| action == "access.denied")
        .map(|(_, _, details)| serde_json::from_str(&details).unwrap())
        .collect()
}

fn summaries(app: &TestApp) -> Vec<serde_json::Value> {
    app.audit_actions()
        .into_iter()
        .filter(|(action, _, _)| action == "access.denied.summary")
        .map(|(_, _, details)| serde_json::from_str(&details).unwrap())
        .collect()
}

async fn sixty_anonymous_posts_with_30_kib_paths_add_under_200_kib_to_the_audit_trail(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let before = app.audit_bytes();
    let path = format!("/{}", "a".repeat(30 * KIB));
    for _ in 0..60 {
        refused_post(&app, &path).await;
    }
    let added = app.audit_bytes() - before;
    assert!(added < 200 * KIB, "the audit trail grew by {added} bytes");

    let recorded = denied_rows(&app);
    // The first few from this address are recorded in full (two if the minute turned).
    assert!(
        (1..=2 * medport::app::audit::refusals::PER_ADDRESS as usize).contains(&recorded.len()),
        "{} recorded",
        recorded.len()
    );
    for row in &recorded {
        let stored = row["path"].as_str().unwrap();
        assert!(
            stored.len() <= 512,
            "a stored path is {} bytes",
            stored.len()
        );
        assert!(path.starts_with(stored));
    }

    // The flood still shows: the next minute's first refusal writes the summary.
    app.clock.advance(std::time::Duration::from_secs(61));
    refused_post(&app, "/logout").await;
    let left_out: u64 = summaries(&app)
        .iter()
        .map(|s| s["not_recorded"].as_u64().unwrap())
        .sum();
    assert_eq!(
        left_out + denied_rows(&app).len() as u64,
        61,
        "every refusal is either recorded or counted"
    );
    let summary = summaries(&app).pop().unwrap();
    assert_eq!(summary["busiest"][0]["address"], "127.0.0.1");
    assert!(
        summary["reasons"]["no CSRF token in session"]
            .as_u64()
            .unwrap()
            > 0
    );
}

async fn refusals_of_a_signed_in_session_are_recorded_in_full_with_a_capped_path(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let path = format!("/uploads/{}", "b".repeat(4 * KIB));
    for _ in 0..5 {
        let res = app.client.post(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), 403);
    }
    let recorded = denied_rows(&app);
    assert_eq!(recorded.len(), 5, "attributed refusals are each recorded");
    assert!(
        recorded
            .iter()
            .all(|r| r["path"].as_str().unwrap().len() <= 512)
    );
}

async fn guessing_the_secret_of_a_known_key_prefix_is_counted_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let key = crate::tus_support::api_key(&app, &["read"]).await;
    // The same prefix with another secret: anyone who saw the prefix can send this.
    let guess = format!("{}{}", &key[..12], "x".repeat(key.len() - 12));
    let (guesser, _) = app.new_browser();
    for _ in 0..30 {
        let res = guesser
            .get(app.url("/api/v1/me"))
            .bearer_auth(&guess)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let recorded = app
        .audit_actions()
        .iter()
        .filter(|(action, _, _)| action == "api_key.authenticate")
        .count();
    assert!(
        (1..=2 * medport::app::audit::refusals::PER_ADDRESS as usize).contains(&recorded),
        "{recorded} of 30 guesses recorded"
    );
}

both_backends!(
    guessing_the_secret_of_a_known_key_prefix_is_counted_too,
    sixty_anonymous_posts_with_30_kib_paths_add_under_200_kib_to_the_audit_trail,
    refusals_of_a_signed_in_session_are_recorded_in_full_with_a_capped_path,
);
