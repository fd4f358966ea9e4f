//! The chain banner turns red once the log has been tampered with.

use super::*;
use crate::audit::tamper;

async fn chain_banner_turns_red_after_tampering(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    record(
        &app,
        &[
            Event::new(Actor::system(), "one", Outcome::Success),
            Event::new(Actor::system(), "two", Outcome::Success),
            Event::new(Actor::system(), "three", Outcome::Success),
        ],
    );
    app.sign_in_as("auditor").await;
    let total = app.audit_actions().len();
    let (_, html) = page(&app, "").await;
    assert!(
        html.contains(&format!("Audit chain intact, {total} events verified")),
        "{html}"
    );
    let mut conn = app.db.conn().unwrap();
    let two: i64 = audit_events::table
        .filter(audit_events::action.eq("two"))
        .select(audit_events::id)
        .first(&mut *conn)
        .unwrap();
    tamper(
        &mut conn,
        app.db.backend(),
        &format!("UPDATE audit_events SET actor_label = 'mallory' WHERE id = {two}"),
    );
    drop(conn);
    let (status, html) = page(&app, "").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("Audit chain broken at event {two}")),
        "{html}"
    );
    assert!(!html.contains("Audit chain intact"));
}

both_backends!(chain_banner_turns_red_after_tampering,);
