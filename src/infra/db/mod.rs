//! Database access for both backends: one Diesel schema, a `MultiConnection` over
//! PostgreSQL and SQLite, an r2d2 pool, embedded migrations, and a readiness probe.
//! Blocking Diesel calls run on the blocking thread pool (`Database::run`), never on the
//! async workers.

pub mod repo;
pub mod schema;
pub mod timestamp;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, ManageConnection, PooledConnection, R2D2Connection};
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::{ExposeSecret, SecretString};

use crate::config::DatabaseSettings;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Several instances may start at once on one PostgreSQL; this lock makes them take turns
/// at migrating instead of racing on `CREATE TABLE`.
const MIGRATION_LOCK_KEY: i64 = 0x6d65_6470_6f72_7401;

/// A connection that answered this recently is handed out without a ping. A ping per
/// checkout was about a quarter of the statements of a small upload on PostgreSQL; one that
/// has sat idle longer (or whose last work failed) is still pinged first.
const ANSWERED_WITHIN: Duration = Duration::from_secs(1);

/// How long a request waits for a connection.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database pool: {0}")]
    Pool(#[from] r2d2::PoolError),
    #[error("database query: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database migration: {0}")]
    Migration(String),
    #[error("database connection: {0}")]
    Connect(String),
    #[error("blocking task was cancelled")]
    Cancelled,
}

impl DbError {
    /// True when the database could not be reached at all (answer 503, not 500).
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            Self::Pool(_) | Self::Connect(_) | Self::Cancelled => true,
            Self::Query(Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            )) => true,
            Self::Query(Error::DatabaseError(DatabaseErrorKind::Unknown, info)) => {
                // SQLite reports a locked or unreadable file this way.
                let m = info.message();
                m.contains("database is locked")
                    || m.contains("unable to open")
                    || m.contains("not a database")
                    || m.contains("disk I/O error")
            }
            _ => false,
        }
    }

    /// True when a lookup that must find a row found none.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Query(diesel::result::Error::NotFound))
    }

    /// True when the database could not write for lack of disk space (answer 507).
    pub fn is_full(&self) -> bool {
        use diesel::result::Error;
        match self {
            Self::Query(Error::DatabaseError(_, info)) => {
                let m = info.message();
                // SQLite's SQLITE_FULL; PostgreSQL's disk_full (53100).
                m.contains("database or disk is full") || m.contains("No space left on device")
            }
            _ => false,
        }
    }

    /// True when a write broke a unique constraint (another writer got there first).
    pub fn is_unique_violation(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        matches!(
            self,
            Self::Query(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
        )
    }

    /// True when a write broke a foreign key (a row still refers to the one deleted).
    pub fn is_foreign_key_violation(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        matches!(
            self,
            Self::Query(Error::DatabaseError(
                DatabaseErrorKind::ForeignKeyViolation,
                _
            ))
        )
    }
}

/// Opens connections of exactly one backend. (The derived `establish` would try each
/// backend in turn, so a down PostgreSQL could fall through to a SQLite file named after
/// the URL; this manager never guesses.)
pub struct Manager {
    backend: Backend,
    url: SecretString,
}

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        match self.backend {
            Backend::Postgres => PgConnection::establish(self.url.expose_secret())
                .map(DbConnection::Postgresql)
                .map_err(r2d2::Error::ConnectionError),
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(self.url.expose_secret())
                    .map_err(r2d2::Error::ConnectionError)?;
                // WAL lets readers work during a write; FULL sync because a committed upload
                // record must survive a power cut; foreign keys are off by default in SQLite.
                // Reads through a memory map rather than a copy per page read (writes still
                // go through the WAL).
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000;
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = FULL;
                     PRAGMA foreign_keys = ON;
                     PRAGMA mmap_size = 268435456;",
                )
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConn = PooledConnection<Manager>;

#[derive(Clone)]
pub struct Database {
    pool: Pool,
    backend: Backend,
    /// Declared after `pool` so that it is closed after the connections.
    sqlite_file: Option<Arc<SqliteFile>>,
    /// Set when the last attempt to get a connection failed, cleared by the next success.
    /// Lets the error layer answer 503 "temporarily unavailable" rather than 500 for
    /// failures in layers that cannot say why they failed (the session store).
    unavailable: Arc<AtomicBool>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens the pool and checks one connection (a wrong URL fails here, at start-up).
    pub fn open(settings: &DatabaseSettings, pool_size: u32) -> Result<Self, DbError> {
        let (backend, url, sqlite_path) = match settings {
            DatabaseSettings::Sqlite { path } => {
                // Created (or tightened) 0600 before SQLite opens it: its WAL and
                // shared-memory files take the database file's mode.
                crate::infra::data_dir::private_database_file(path).map_err(|e| {
                    DbError::Connect(format!("cannot prepare {}: {e}", path.display()))
                })?;
                let url = path
                    .to_str()
                    .ok_or_else(|| DbError::Connect("the SQLite path is not valid UTF-8".into()))?;
                (
                    Backend::Sqlite,
                    SecretString::from(url.to_string()),
                    Some(path.clone()),
                )
            }
            DatabaseSettings::Postgres { url } => (Backend::Postgres, url.clone(), None),
        };
        // No `min_idle`: r2d2 would open replacement connections on its own threads
        // whenever one is checked out, and a process exiting during such a libpq handshake
        // (every CLI command) can crash in libpq's exit-time cleanup. Connections are
        // opened on demand instead, and one is opened here to fail fast on a bad URL.
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(0))
            .connection_timeout(CHECKOUT_TIMEOUT)
            // `checkout` tests what needs testing (see `ANSWERED_WITHIN`).
            .test_on_check_out(false)
            .build(Manager { backend, url })
            .map_err(|e| DbError::Connect(e.to_string()))?;
        drop(pool.get().map_err(|e| DbError::Connect(e.to_string()))?);
        let sqlite_file = match sqlite_path {
            Some(path) => Some(Arc::new(SqliteFile::open(path)?)),
            None => None,
        };
        Ok(Self {
            pool,
            backend,
            sqlite_file,
            unavailable: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn conn(&self) -> Result<PooledConn, DbError> {
        checkout(&self.pool, &self.unavailable)
    }

    /// Connections of the pool: (in use, idle).
    pub fn pool_usage(&self) -> (u32, u32) {
        let state = self.pool.state();
        (
            state.connections.saturating_sub(state.idle_connections),
            state.idle_connections,
        )
    }

    /// True while connections cannot be had.
    pub fn is_unavailable(&self) -> bool {
        self.unavailable.load(Ordering::Relaxed)
    }

    /// Runs blocking database work on the blocking pool.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let unavailable = self.unavailable.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = checkout(&pool, &unavailable).map_err(E::from)?;
            let out = f(&mut conn);
            if out.is_ok() {
                answered(&mut conn);
            } else {
                // Work that failed may have failed for the connection: ping it next time.
                PooledConnection::extensions_mut(&mut conn).remove::<Answered>();
            }
            out
        })
        .await
        .map_err(|_| E::from(DbError::Cancelled))?
    }

    /// Applies pending migrations; returns the names of those applied.
    pub fn migrate(&self) -> Result<Vec<String>, DbError> {
        let mut conn = self.conn()?;
        let applied = match &mut *conn {
            DbConnection::Sqlite(c) => c
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|v| v.iter().map(ToString::to_string).collect())
                .map_err(|e| DbError::Migration(e.to_string()))?,
            DbConnection::Postgresql(c) => {
                diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                    .execute(c)?;
                let result = c
                    .run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
                    .map_err(|e| DbError::Migration(e.to_string()));
                diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                    .execute(c)?;
                result?
            }
        };
        Ok(applied)
    }

    /// The migrations this build has that the database has not applied, by name.
    pub fn pending_migrations(&self) -> Result<Vec<String>, DbError> {
        let mut conn = self.conn()?;
        let names = match &mut *conn {
            DbConnection::Sqlite(c) => c
                .pending_migrations(SQLITE_MIGRATIONS)
                .map(|v| v.iter().map(|m| m.name().to_string()).collect()),
            DbConnection::Postgresql(c) => c
                .pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.iter().map(|m| m.name().to_string()).collect()),
        };
        names.map_err(|e| DbError::Migration(e.to_string()))
    }

    /// Writes a consistent copy of the SQLite database to `to` (a new file) while the
    /// database stays in use: `VACUUM INTO` reads one snapshot, as a reader, and writes a
    /// compact database without a WAL.
    pub fn snapshot_sqlite_to(&self, to: &std::path::Path) -> Result<(), DbError> {
        let mut conn = self.conn()?;
        let DbConnection::Sqlite(c) = &mut *conn else {
            return Err(DbError::Connect(
                "a snapshot file is for SQLite; dump PostgreSQL with pg_dump".into(),
            ));
        };
        let target = to
            .to_str()
            .ok_or_else(|| DbError::Connect("the backup path is not valid UTF-8".into()))?;
        diesel::sql_query("VACUUM INTO ?")
            .bind::<diesel::sql_types::Text, _>(target)
            .execute(c)?;
        Ok(())
    }

    /// Reverts every migration (for tests and tooling that check down migrations).
    pub fn revert_all(&self) -> Result<usize, DbError> {
        let mut conn = self.conn()?;
        let reverted = match &mut *conn {
            DbConnection::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS),
            DbConnection::Postgresql(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS),
        }
        .map_err(|e| DbError::Migration(e.to_string()))?;
        Ok(reverted.len())
    }

    /// Readiness: the database answers a query within two seconds, and for SQLite the file
    /// on disk is still a readable database (open connections would otherwise keep
    /// answering from a file that was removed or overwritten).
    pub async fn check_ready(&self) -> Result<(), &'static str> {
        let pool = self.pool.clone();
        let unavailable = self.unavailable.clone();
        let sqlite_file = self.sqlite_file.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(file) = sqlite_file.as_deref() {
                file.check()?;
            }
            // Always pinged: readiness says whether the database answers now.
            let mut conn = match proven(&pool, Duration::from_secs(2), Duration::ZERO) {
                Ok(conn) => {
                    unavailable.store(false, Ordering::Relaxed);
                    conn
                }
                Err(_) => {
                    unavailable.store(true, Ordering::Relaxed);
                    return Err("database unreachable");
                }
            };
            diesel::sql_query("SELECT 1")
                .execute(&mut *conn)
                .map_err(|_| "database query failed")?;
            Ok(())
        })
        .await
        .map_err(|_| "readiness check cancelled")?
    }
}

fn checkout(pool: &Pool, unavailable: &AtomicBool) -> Result<PooledConn, DbError> {
    let waiting = &crate::infra::metrics::metrics().db_waiting;
    waiting.inc();
    let got = proven(pool, CHECKOUT_TIMEOUT, ANSWERED_WITHIN);
    waiting.dec();
    match got {
        Ok(conn) => {
            unavailable.store(false, Ordering::Relaxed);
            Ok(conn)
        }
        Err(e) => {
            unavailable.store(true, Ordering::Relaxed);
            Err(DbError::Pool(e))
        }
    }
}

/// When a pooled connection last answered: a ping, or work that succeeded.
struct Answered(Instant);

fn answered(conn: &mut PooledConn) {
    PooledConnection::extensions_mut(conn).insert(Answered(Instant::now()));
}

/// A connection that answered within `trust`, or one that answers a ping now. One that
/// does not is marked broken, so the pool drops it when it is given back, and the next is
/// tried (as r2d2's own test on checkout does). Ends with the pool's own error when no
/// connection can be had within `timeout`.
fn proven(pool: &Pool, timeout: Duration, trust: Duration) -> Result<PooledConn, r2d2::PoolError> {
    loop {
        let mut conn = pool.get_timeout(timeout)?;
        let recent = PooledConnection::extensions(&conn)
            .get::<Answered>()
            .is_some_and(|a| a.0.elapsed() < trust);
        if recent {
            return Ok(conn);
        }
        if conn.ping().is_ok() {
            answered(&mut conn);
            return Ok(conn);
        }
        mark_broken(&mut conn);
    }
}

/// Makes `has_broken` true for the connection: Diesel counts a transaction manager in error
/// as broken, and r2d2 drops broken connections instead of pooling them again.
fn mark_broken(conn: &mut DbConnection) {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    match conn {
        DbConnection::Postgresql(c) => {
            AnsiTransactionManager::transaction_manager_status_mut(c).set_in_error()
        }
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::transaction_manager_status_mut(c).set_in_error()
        }
    }
}

/// The SQLite database file as readiness sees it. SQLite's locks are POSIX record locks,
/// which the kernel drops for the whole process as soon as *any* descriptor of that file is
/// closed, so readiness must never open and close the file: that would silently unlock it
/// under the live connections (another process could then checkpoint and delete the WAL).
/// One descriptor is opened at start-up and kept; checks use `stat` on the path and
/// positioned reads on that descriptor.
struct SqliteFile {
    path: PathBuf,
    file: std::fs::File,
}

impl SqliteFile {
    fn open(path: PathBuf) -> Result<Self, DbError> {
        let file = std::fs::File::open(&path)
            .map_err(|e| DbError::Connect(format!("cannot open {}: {e}", path.display())))?;
        Ok(Self { path, file })
    }

    fn check(&self) -> Result<(), &'static str> {
        use std::os::unix::fs::{FileExt as _, MetadataExt as _};
        let on_disk = std::fs::metadata(&self.path).map_err(|_| "database file unreadable")?;
        let held = self
            .file
            .metadata()
            .map_err(|_| "database file unreadable")?;
        if (on_disk.dev(), on_disk.ino()) != (held.dev(), held.ino()) {
            // Removed and recreated, or replaced by a rename (a restore while running):
            // the connections still use the old file.
            return Err("database file was replaced; restart medport");
        }
        let mut header = [0u8; 16];
        self.file
            .read_exact_at(&mut header, 0)
            .map_err(|_| "database file unreadable")?;
        if &header != b"SQLite format 3\0" {
            return Err("database file is not a SQLite database");
        }
        Ok(())
    }
}

/// Runs `f` in a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so the write lock is
/// taken up front and a read-then-write cannot fail half-way with a busy snapshot.
pub fn write_tx<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<DbError>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let db = |e: diesel::result::Error| E::from(DbError::from(e));
    let DbConnection::Sqlite(sqlite) = conn else {
        return conn
            .transaction::<T, TxError<E>, _>(|c| f(c).map_err(TxError::Caller))
            .map_err(|e| match e {
                TxError::Db(e) => db(e),
                TxError::Caller(e) => e,
            });
    };
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE").map_err(db)?;
    let out = f(conn);
    let DbConnection::Sqlite(sqlite) = conn else {
        return Err(db(diesel::result::Error::BrokenTransactionManager));
    };
    match out {
        Ok(value) => match AnsiTransactionManager::commit_transaction(sqlite) {
            Ok(()) => Ok(value),
            Err(e) => {
                let _ = AnsiTransactionManager::rollback_transaction(sqlite);
                Err(db(e))
            }
        },
        Err(e) => {
            AnsiTransactionManager::rollback_transaction(sqlite).map_err(db)?;
            Err(e)
        }
    }
}

/// A failure inside `write_tx` on PostgreSQL: Diesel's own (begin, commit) or the caller's.
/// Diesel's transaction needs an error it can convert its own into; callers only need one
/// that takes a `DbError`.
enum TxError<E> {
    Db(diesel::result::Error),
    Caller(E),
}

impl<E> From<diesel::result::Error> for TxError<E> {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_sqlite_file_and_its_wal_and_shm_are_private_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("medport.db");
        let db = Database::open(&DatabaseSettings::Sqlite { path }, 2).unwrap();
        db.migrate().unwrap();
        // While the pool is open, so the WAL and shared-memory files exist.
        for name in ["medport.db", "medport.db-wal", "medport.db-shm"] {
            let meta = std::fs::metadata(dir.path().join(name)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        }
    }

    /// Kept in `.cargo/config.toml`: without the planner's stability guarantee, SQLite plans
    /// a statement with a bound `LIMIT` again on every run, and no prepared statement is
    /// ever reused.
    #[test]
    fn the_bundled_sqlite_plans_a_statement_once_whatever_its_bound_values() {
        use diesel::dsl::sql;
        use diesel::sql_types::BigInt;
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let with: i64 = diesel::select(sql::<BigInt>(
            "(SELECT count(*) FROM pragma_compile_options WHERE compile_options = 'ENABLE_QPSG')",
        ))
        .get_result(&mut conn)
        .unwrap();
        assert_eq!(with, 1);
    }
}
