//! The connection pool hands out a connection that answered within the last second without
//! pinging it, and pings any other first. A connection the server ended is replaced: at
//! once when it sat idle, and after the one piece of work that found it dead otherwise.

use std::time::Duration;

use diesel::RunQueryDsl;
use diesel::sql_types::Integer;
use medport::config::DatabaseSettings;
use medport::infra::db::{Database, DbConnection, DbError};
use secrecy::SecretString;

use crate::helpers::PgTestDb;

#[derive(diesel::QueryableByName)]
struct Backend {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

fn backend_pid(conn: &mut DbConnection) -> Result<i32, DbError> {
    let row: Backend = diesel::sql_query("SELECT pg_backend_pid() AS pid").get_result(conn)?;
    Ok(row.pid)
}

async fn pid_of_next_connection(db: &Database) -> Result<i32, DbError> {
    db.run(backend_pid).await
}

fn end_backend(pg: &PgTestDb, pid: i32) {
    use diesel::Connection;
    let mut admin = diesel::PgConnection::establish(&pg.url_via(None)).unwrap();
    diesel::sql_query(format!("SELECT pg_terminate_backend({pid})"))
        .execute(&mut admin)
        .unwrap();
}

/// One connection, so every piece of work gets the same one while it lives.
fn one_connection_pool(pg: &PgTestDb) -> Database {
    let settings = DatabaseSettings::Postgres {
        url: SecretString::from(pg.url_via(None)),
    };
    Database::open(&settings, 1).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_ended_while_idle_is_replaced_before_any_work_fails() {
    let pg = PgTestDb::create();
    let db = one_connection_pool(&pg);
    let first = pid_of_next_connection(&db).await.unwrap();
    assert_eq!(pid_of_next_connection(&db).await.unwrap(), first, "reused");

    end_backend(&pg, first);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = pid_of_next_connection(&db)
        .await
        .expect("pinged, found dead and replaced");
    assert_ne!(second, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_ended_in_use_costs_one_failed_piece_of_work_then_is_replaced() {
    let pg = PgTestDb::create();
    let db = one_connection_pool(&pg);
    let first = pid_of_next_connection(&db).await.unwrap();

    end_backend(&pg, first);
    // It answered a moment ago, so it is not pinged: the work finds it dead.
    let err = pid_of_next_connection(&db).await.unwrap_err();
    assert!(
        err.is_unavailable(),
        "a closed connection is 503, not 500: {err}"
    );
    let second = pid_of_next_connection(&db)
        .await
        .expect("the failed work made the pool ping it, find it dead and replace it");
    assert_ne!(second, first);
}
