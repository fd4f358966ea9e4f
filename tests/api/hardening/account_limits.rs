//! Request limits follow the account: signed-in users and API keys behind one hospital NAT
//! address each have their own budget; anonymous traffic is counted per address.

use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp};

const GENERAL: u32 = 20;

async fn app_with_general_limit(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        Options {
            tweak: Box::new(|s| s.rate_limits.general_per_minute = GENERAL),
            ..Options::default()
        },
    )
    .await
}

/// GETs `path` until the first 429; the number of answers before it.
async fn answers_before_429(client: &reqwest::Client, url: &str, at_most: u32) -> u32 {
    for n in 0..at_most {
        let res = client.get(url).send().await.unwrap();
        if res.status() == 429 {
            return n;
        }
    }
    at_most
}

/// A new browser without an account on the same address still gets the sign-in page.
async fn assert_anonymous_browser_is_served(app: &TestApp) {
    let (anonymous, _) = app.new_browser();
    let res = anonymous.get(app.url("/login")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

async fn signed_in_users_behind_one_address_each_have_their_own_budget(backend: Backend) {
    let app = app_with_general_limit(backend).await;
    let mut clinicians = Vec::new();
    for i in 0..3 {
        let (browser, _) = app.new_browser();
        let email = format!("clin{i}@example.org");
        app.create_user(&email, "uploader", "a long enough test password");
        let res = app
            .login_with(&browser, &email, "a long enough test password")
            .await;
        assert_eq!(res.status(), 303);
        clinicians.push(browser);
    }
    let url = app.url("/uploads");
    // The first uses up their budget ...
    let used = answers_before_429(&clinicians[0], &url, GENERAL * 2).await;
    assert!(used <= GENERAL + 1, "{used}");
    // ... and the others, on the same address, are not held back by it.
    for other in &clinicians[1..] {
        let res = other.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    // Anonymous traffic from that address has a budget of its own too.
    assert_anonymous_browser_is_served(&app).await;
}

async fn anonymous_clients_behind_one_address_share_its_budget(backend: Backend) {
    let app = app_with_general_limit(backend).await;
    let url = app.url("/login");
    let (first, _) = app.new_browser();
    let used = answers_before_429(&first, &url, GENERAL * 2).await;
    assert!(used <= GENERAL, "{used}");
    let (second, _) = app.new_browser();
    assert_eq!(second.get(&url).send().await.unwrap().status(), 429);
    let (elsewhere, _) = app.browser_from("127.0.0.2");
    assert_eq!(elsewhere.get(&url).send().await.unwrap().status(), 200);
}

async fn an_api_key_counts_against_its_owner_not_the_address(backend: Backend) {
    let app = app_with_general_limit(backend).await;
    app.sign_in_as("uploader").await;
    let key = crate::tus_support::api_key(&app, &["read"]).await;
    let (script, _) = app.new_browser();
    let url = app.url("/api/v1/me");
    let mut used = 0;
    for _ in 0..GENERAL * 2 {
        let res = script.get(&url).bearer_auth(&key).send().await.unwrap();
        if res.status() == 429 {
            break;
        }
        assert_eq!(res.status(), 200);
        used += 1;
    }
    assert!(used < GENERAL * 2, "the key is limited");
    // Anonymous clients on the same address are not.
    assert_anonymous_browser_is_served(&app).await;
    // Nor is a refused key: it counts against its address.
    let (guesser, _) = app.new_browser();
    let bogus = format!("mp_{}_{}", "a".repeat(8), "b".repeat(40));
    let res = guesser.get(&url).bearer_auth(&bogus).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

async fn an_htmx_progress_poll_every_second_never_hits_the_default_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, Options::default_rate_limits()).await;
    app.sign_in_as("uploader").await;
    // Two minutes of one poll a second plus page loads, sent as fast as possible: well
    // within one account's budget, whatever else the address does.
    let (neighbour, _) = app.new_browser();
    for _ in 0..300 {
        let _ = neighbour.get(app.url("/login")).send().await.unwrap();
    }
    for _ in 0..120 {
        let res = app.get_html("/uploads").await;
        assert_eq!(res.status(), 200);
    }
}

both_backends!(
    signed_in_users_behind_one_address_each_have_their_own_budget,
    anonymous_clients_behind_one_address_share_its_budget,
    an_api_key_counts_against_its_owner_not_the_address,
    an_htmx_progress_poll_every_second_never_hits_the_default_limit,
);
