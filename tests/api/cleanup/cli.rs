//! `medport cleanup --once` against a real data directory and database.

use chrono::TimeDelta;
use diesel::prelude::*;
use medport::infra::db::schema::uploads;

use super::support::{context, default_store, multipart_left, row, seed};
use crate::both_backends;
use crate::helpers::{Backend, TestApp, medport, medport_in};

fn cleanup_once(app: &TestApp) -> (Option<i32>, String, String) {
    let out = medport(app, &["cleanup", "--once"]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

both_backends!(the_cleanup_command_runs_one_pass);

async fn the_cleanup_command_runs_one_pass(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ctx = context(&app, None);
    let store = default_store(&ctx).await;
    let expired = seed(&app, &ctx, "active", TimeDelta::days(7)).await;
    let fresh = seed(&app, &ctx, "active", TimeDelta::days(7)).await;
    {
        // The command reads the real clock: make one upload expired by it.
        let past = chrono::Utc::now().naive_utc() - TimeDelta::minutes(1);
        let mut conn = app.db.conn().unwrap();
        diesel::update(uploads::table.find(&expired.id))
            .set(uploads::expires_at.eq(past))
            .execute(&mut *conn)
            .unwrap();
    }
    let (code, stdout, stderr) = cleanup_once(&app);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "cleanup: 1 expired, 0 failed\n", "{stderr}");
    assert_eq!(row(&app, &expired.id).status, "expired");
    assert!(!multipart_left(&store, &expired.key).await);
    assert!(store.head(&expired.tail).await.unwrap().is_none());
    assert_eq!(row(&app, &fresh.id).status, "active");
    assert!(multipart_left(&store, &fresh.key).await);

    let (code, stdout, _) = cleanup_once(&app);
    assert_eq!(
        (code, stdout.as_str()),
        (Some(0), "cleanup: 0 expired, 0 failed\n")
    );
}

#[test]
fn the_cleanup_command_fails_when_the_database_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let out = medport_in(
        dir.path(),
        &["cleanup", "--once"],
        &[(
            "DATABASE_URL",
            "postgres://postgres:pw-xyz@127.0.0.1:1/medport",
        )],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot open the database"), "{stderr}");
    assert!(!stderr.contains("pw-xyz"), "{stderr}");
    assert!(out.stdout.is_empty());

    // Without --once it does nothing and says how to use it.
    let out = medport_in(dir.path(), &["cleanup"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--once"));
}
