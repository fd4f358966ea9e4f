//! Migrations: apply on empty databases, are idempotent, go down and up again, and leave a
//! schema that matches the one the code queries.

use diesel::prelude::*;
use medport::config::{DatabaseSettings, Settings};
use medport::infra::db::schema::*;
use medport::infra::db::{Database, DbConnection};
use secrecy::SecretString;

use crate::both_backends;
use crate::helpers::{Backend, PgTestDb};

struct EmptyDb {
    db: Database,
    _pg: Option<PgTestDb>,
    _dir: tempfile::TempDir,
}

fn empty_database(backend: Backend) -> EmptyDb {
    let dir = tempfile::tempdir().unwrap();
    let (settings, pg) = match backend {
        Backend::Sqlite => (
            DatabaseSettings::Sqlite {
                path: dir.path().join("fresh.db"),
            },
            None,
        ),
        Backend::Postgres => {
            let pg = PgTestDb::create();
            (
                DatabaseSettings::Postgres {
                    url: SecretString::from(pg.url_via(None)),
                },
                Some(pg),
            )
        }
    };
    let _ = Settings::defaults_for(dir.path());
    EmptyDb {
        db: Database::open(&settings, 2).unwrap(),
        _pg: pg,
        _dir: dir,
    }
}

/// Selecting every column the schema names, from every table, proves the database has them.
fn schema_matches(conn: &mut DbConnection) {
    // Selecting every column, zero rows, fails when a column is missing or mistyped.
    macro_rules! select_all {
        ($($table:ident),+) => {$(
            $table::table
                .select($table::all_columns)
                .limit(0)
                .execute(conn)
                .unwrap();
        )+};
    }
    select_all!(
        users,
        sessions,
        api_keys,
        buckets,
        bucket_grants,
        uploads,
        upload_parts,
        upload_tails,
        upload_batches,
        dicom_instances,
        dicomdir_entries,
        study_slices,
        audit_events,
        email_outbox,
        webhooks,
        webhook_deliveries
    );
}

fn table_count(conn: &mut DbConnection, backend: Backend) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' \
             AND name IN ('users','login_throttles','sessions','api_keys','buckets','bucket_grants','uploads','upload_parts','upload_tails','upload_batches','dicom_instances','dicomdir_entries','study_slices','audit_events')"
        }
        Backend::Postgres => {
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public' \
             AND table_name IN ('users','login_throttles','sessions','api_keys','buckets','bucket_grants','uploads','upload_parts','upload_tails','upload_batches','dicom_instances','dicomdir_entries','study_slices','audit_events')"
        }
    };
    diesel::sql_query(sql).get_result::<Count>(conn).unwrap().n
}

async fn migrations_apply_are_idempotent_and_reversible(backend: Backend) {
    let empty = empty_database(backend);
    let db = &empty.db;
    assert_eq!(table_count(&mut db.conn().unwrap(), backend), 0);

    // Every migration directory of the backend, so a new migration needs no edit here.
    let dir = match backend {
        Backend::Sqlite => "migrations/sqlite",
        Backend::Postgres => "migrations/postgres",
    };
    let shipped = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("up.sql").is_file())
        .count();
    assert!(shipped >= 6, "{dir}: {shipped}");
    let applied = db.migrate().unwrap();
    assert_eq!(applied.len(), shipped, "{applied:?}");
    assert_eq!(table_count(&mut db.conn().unwrap(), backend), 14);
    schema_matches(&mut db.conn().unwrap());

    assert!(
        db.migrate().unwrap().is_empty(),
        "second run applies nothing"
    );

    assert_eq!(db.revert_all().unwrap(), shipped);
    assert_eq!(table_count(&mut db.conn().unwrap(), backend), 0);
    assert_eq!(db.migrate().unwrap().len(), shipped);
    schema_matches(&mut db.conn().unwrap());
}

async fn sqlite_pragmas_and_foreign_keys_are_on(backend: Backend) {
    let empty = empty_database(backend);
    empty.db.migrate().unwrap();
    let mut conn = empty.db.conn().unwrap();
    // A grant pointing at no bucket and no user must be refused on both backends.
    let orphan = diesel::insert_into(bucket_grants::table)
        .values((
            bucket_grants::bucket_id.eq("no-such-bucket"),
            bucket_grants::user_id.eq("no-such-user"),
            bucket_grants::created_at.eq(chrono::Utc::now().naive_utc()),
        ))
        .execute(&mut *conn);
    assert!(orphan.is_err(), "foreign keys must be enforced");
    if backend == Backend::Sqlite {
        #[derive(QueryableByName)]
        struct Mode {
            #[diesel(sql_type = diesel::sql_types::Text)]
            journal_mode: String,
        }
        let mode: Mode = diesel::sql_query("PRAGMA journal_mode")
            .get_result(&mut *conn)
            .unwrap();
        assert_eq!(mode.journal_mode, "wal");
        #[derive(QueryableByName)]
        struct Timeout {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            timeout: i64,
        }
        let t: Timeout = diesel::sql_query("PRAGMA busy_timeout")
            .get_result(&mut *conn)
            .unwrap();
        assert_eq!(t.timeout, 5000);
    }
}

both_backends!(
    migrations_apply_are_idempotent_and_reversible,
    sqlite_pragmas_and_foreign_keys_are_on
);
