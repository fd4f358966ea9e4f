//! The audit chain: verifies when intact, finds the first edited or removed row, and the
//! table refuses UPDATE/DELETE through normal SQL.

use diesel::prelude::*;
use medport::app::audit::{self, Actor, Event, Outcome};
use medport::infra::db::{Backend as DbBackend, DbConnection};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, medport};

fn record_three(conn: &mut DbConnection) -> Vec<i64> {
    let events = [
        Event::new(
            Actor::user("u1", "alice@example.org"),
            "login",
            Outcome::Success,
        ),
        Event::new(Actor::anonymous(), "login", Outcome::Failure)
            .details(json!({"email": "nobody@example.org"})),
        Event::new(Actor::system(), "bucket.create", Outcome::Success).target("bucket", "b1"),
    ];
    events
        .iter()
        .map(|e| audit::record(conn, e).unwrap())
        .collect()
}

/// Bypasses the append-only triggers the way someone with direct database access could.
pub(crate) fn tamper(conn: &mut DbConnection, backend: DbBackend, sql: &str) {
    match backend {
        DbBackend::Sqlite => {
            diesel::sql_query("DROP TRIGGER audit_events_no_update")
                .execute(conn)
                .unwrap();
            diesel::sql_query("DROP TRIGGER audit_events_no_delete")
                .execute(conn)
                .unwrap();
        }
        DbBackend::Postgres => {
            diesel::sql_query("ALTER TABLE audit_events DISABLE TRIGGER USER")
                .execute(conn)
                .unwrap();
        }
    }
    diesel::sql_query(sql).execute(conn).unwrap();
}

fn cli_verify(app: &TestApp) -> (i32, String) {
    let out = medport(app, &["audit", "verify"]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

async fn chain_verifies_and_detects_an_edited_row(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut conn = app.db.conn().unwrap();
    let ids = record_three(&mut conn);

    let v = audit::verify(&mut conn).unwrap();
    assert_eq!(v.checked, 3);
    assert!(v.broken.is_none(), "{v}");
    let (code, out) = cli_verify(&app);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("audit chain intact: 3 events verified"),
        "{out}"
    );

    // Normal SQL cannot change the trail.
    let blocked = diesel::sql_query(format!(
        "UPDATE audit_events SET actor_label = 'mallory' WHERE id = {}",
        ids[1]
    ))
    .execute(&mut *conn);
    assert!(blocked.is_err(), "UPDATE must be refused");
    let blocked = diesel::sql_query("DELETE FROM audit_events").execute(&mut *conn);
    assert!(blocked.is_err(), "DELETE must be refused");

    tamper(
        &mut conn,
        app.db.backend(),
        &format!(
            "UPDATE audit_events SET actor_label = 'mallory' WHERE id = {}",
            ids[1]
        ),
    );
    let v = audit::verify(&mut conn).unwrap();
    let broken = v.broken.clone().expect("edit must be detected");
    assert_eq!(broken.id, ids[1]);
    assert_eq!(v.checked, 1);
    drop(conn);
    let (code, out) = cli_verify(&app);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("BROKEN at event {}", ids[1])),
        "{out}"
    );
}

async fn chain_detects_a_removed_row(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut conn = app.db.conn().unwrap();
    let ids = record_three(&mut conn);
    tamper(
        &mut conn,
        app.db.backend(),
        &format!("DELETE FROM audit_events WHERE id = {}", ids[1]),
    );
    let v = audit::verify(&mut conn).unwrap();
    assert_eq!(v.broken.expect("removal must be detected").id, ids[2]);
}

async fn events_are_stored_with_their_fields(backend: Backend) {
    use medport::infra::db::schema::audit_events::dsl::*;
    let app = TestApp::spawn(backend).await;
    let mut conn = app.db.conn().unwrap();
    record_three(&mut conn);
    let rows: Vec<(String, String, Option<String>, String)> = audit_events
        .select((action, outcome, target_id, details))
        .order(id.asc())
        .load(&mut *conn)
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].0, "login");
    assert_eq!(rows[1].1, "failure");
    assert_eq!(rows[1].3, r#"{"email":"nobody@example.org"}"#);
    assert_eq!(rows[2].2.as_deref(), Some("b1"));
}

/// Appends from several threads at once still form one unbroken chain.
async fn concurrent_appends_keep_one_chain(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut handles = Vec::new();
    for t in 0..4 {
        let db = app.db.clone();
        handles.push(std::thread::spawn(move || {
            let mut conn = db.conn().unwrap();
            for i in 0..10 {
                let e = Event::new(Actor::system(), "test.concurrent", Outcome::Success)
                    .details(json!({ "thread": t, "i": i }));
                audit::record(&mut conn, &e).unwrap();
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let v = audit::verify(&mut app.db.conn().unwrap()).unwrap();
    assert_eq!(v.checked, 40, "{v}");
    assert!(v.broken.is_none(), "{v}");
}

/// Makes the database refuse audit events with `action`, as a full disk or a broken table
/// would.
fn refuse_audit_events(conn: &mut DbConnection, backend: DbBackend, action: &str) {
    let statements = match backend {
        DbBackend::Sqlite => vec![format!(
            "CREATE TRIGGER refuse_event BEFORE INSERT ON audit_events \
             WHEN NEW.action = '{action}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )],
        DbBackend::Postgres => vec![
            format!(
                "CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF NEW.action = '{action}' THEN RAISE EXCEPTION 'refused'; END IF; \
                 RETURN NEW; END $$"
            ),
            "CREATE TRIGGER refuse_event BEFORE INSERT ON audit_events \
             FOR EACH ROW EXECUTE FUNCTION refuse_event()"
                .to_string(),
        ],
    };
    for sql in statements {
        diesel::sql_query(sql).execute(conn).unwrap();
    }
}

/// A change is written with its audit event or not at all: an upload whose `upload.create`
/// cannot be recorded is refused with an error and leaves no row, and the next one, once
/// events are written again, goes through.
async fn a_change_whose_event_cannot_be_written_does_not_happen(backend: Backend) {
    use crate::tus_support::Tus;
    use medport::infra::db::schema::uploads;
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
    let tus = Tus::with_session(&app).await;
    let count = |app: &TestApp| -> i64 {
        uploads::table
            .count()
            .get_result(&mut *app.db.conn().unwrap())
            .unwrap()
    };
    refuse_audit_events(
        &mut app.db.conn().unwrap(),
        app.db.backend(),
        "upload.create",
    );
    let res = tus.create(100, &[("filename", "a.csv")]).await;
    assert_eq!(res.status(), 500);
    assert_eq!(count(&app), 0, "no upload without its upload.create event");

    accept_audit_events(&mut app.db.conn().unwrap(), app.db.backend());
    let res = tus.create(100, &[("filename", "a.csv")]).await;
    assert_eq!(res.status(), 201);
    assert_eq!(count(&app), 1);
}

/// Undoes [`refuse_audit_events`].
fn accept_audit_events(conn: &mut DbConnection, backend: DbBackend) {
    let drop = match backend {
        DbBackend::Sqlite => "DROP TRIGGER refuse_event",
        DbBackend::Postgres => "DROP TRIGGER refuse_event ON audit_events",
    };
    diesel::sql_query(drop).execute(conn).unwrap();
}

/// A file sent whole in the request that creates its upload is committed with its verdict.
/// When that commit cannot be written (here its `upload.complete` event), nothing of the
/// request's bytes counts: the answer gives offset 0, the upload stays open, and the same
/// bytes sent again complete it.
async fn a_file_whose_verdict_cannot_be_written_is_sent_again(backend: Backend) {
    use crate::tus_support::{Tus, id_from_location, sha256_hex, status_of, stored_sha256};
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
    let tus = Tus::with_session(&app).await;
    let data = b"patient,value\n1,2\n".to_vec();
    refuse_audit_events(
        &mut app.db.conn().unwrap(),
        app.db.backend(),
        "upload.complete",
    );
    let meta = [("filename", "notes.csv")];
    let res = tus
        .create_with_body(data.len() as u64, &meta, Some(data.clone()))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["upload-offset"], "0");
    let id = id_from_location(res.headers()["location"].to_str().unwrap());
    assert_eq!(status_of(&app, &id), "active");
    assert_eq!(stored_sha256(&app, &id), None);

    accept_audit_events(&mut app.db.conn().unwrap(), app.db.backend());
    let res = tus.patch(&id, 0, data.clone()).await;
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["upload-offset"], data.len().to_string());
    assert_eq!(status_of(&app, &id), "completed");
    assert_eq!(stored_sha256(&app, &id), Some(sha256_hex(&data)));
}

both_backends!(
    a_change_whose_event_cannot_be_written_does_not_happen,
    a_file_whose_verdict_cannot_be_written_is_sent_again,
    chain_verifies_and_detects_an_edited_row,
    chain_detects_a_removed_row,
    events_are_stored_with_their_fields,
    concurrent_appends_keep_one_chain
);

/// CLI commands on PostgreSQL must exit cleanly every time. A pool that opened connections
/// in the background once made ~1 in 5 runs crash in libpq's exit-time cleanup, after
/// printing a correct result; 20 runs catch that with near certainty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_exits_cleanly_every_time_on_postgres() {
    let app = TestApp::spawn(Backend::Postgres).await;
    record_three(&mut app.db.conn().unwrap());
    for run in 1..=20 {
        let (code, out) = cli_verify(&app);
        assert_eq!(code, 0, "run {run}: {out}");
    }
}
