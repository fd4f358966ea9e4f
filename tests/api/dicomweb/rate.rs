//! DICOMweb requests spend the key owner's general request budget, as /api/v1 does: a
//! script that searches in a loop meets 429 with Retry-After.

use super::support::owner;
use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp};

const GENERAL: u32 = 20;

async fn a_key_searching_in_a_loop_meets_the_general_limit(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            tweak: Box::new(|s| s.rate_limits.general_per_minute = GENERAL),
            ..Options::default()
        },
    )
    .await;
    let key = owner(&app, "dicomweb-loop@example.org");
    let (script, _) = app.new_browser();
    let mut answered = 0;
    let limited = loop {
        let res = script
            .get(app.url("/dicomweb/studies"))
            .header("Authorization", format!("Bearer {key}"))
            .send()
            .await
            .unwrap();
        if res.status() == 429 || answered > GENERAL * 2 {
            break res;
        }
        assert_eq!(res.status(), 200);
        answered += 1;
    };
    assert_eq!(limited.status(), 429, "after {answered} answers");
    assert!(answered <= GENERAL + 1, "{answered}");
    assert!(limited.headers().contains_key("retry-after"));
}

both_backends!(a_key_searching_in_a_loop_meets_the_general_limit);
