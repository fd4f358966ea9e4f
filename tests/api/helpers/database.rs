//! Grepping the whole database for a value, to show that something is never stored in the
//! clear: on SQLite the database file and its write-ahead log byte for byte, on PostgreSQL
//! every text, JSON and bytea column of every table.

use diesel::sql_types::{Bool, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};

use super::TestApp;

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = Bool)]
    found: bool,
}

impl TestApp {
    /// Whether `needle` is stored anywhere in the database in the clear.
    pub fn database_contains(&self, needle: &str) -> bool {
        assert!(!needle.is_empty());
        if self.database_url.starts_with("postgres") {
            postgres_contains(&self.database_url, needle)
        } else {
            let main = self.sqlite_path();
            let mut wal = main.clone().into_os_string();
            wal.push("-wal");
            [main, wal.into()]
                .iter()
                .filter_map(|path| std::fs::read(path).ok())
                .any(|bytes| contains(&bytes, needle.as_bytes()))
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn postgres_contains(url: &str, needle: &str) -> bool {
    let mut conn = PgConnection::establish(url).unwrap();
    let columns: Vec<Column> = diesel::sql_query(
        "SELECT table_name::text AS table_name, column_name::text AS column_name, \
         data_type::text AS data_type FROM information_schema.columns \
         WHERE table_schema = 'public' \
         AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'bytea')",
    )
    .load(&mut conn)
    .unwrap();
    assert!(!columns.is_empty(), "no columns to search");
    columns.iter().any(|c| {
        let (table, column) = (quoted(&c.table_name), quoted(&c.column_name));
        let test = if c.data_type == "bytea" {
            format!("position(convert_to($1, 'UTF8') in {column}) > 0")
        } else {
            format!("strpos({column}::text, $1) > 0")
        };
        diesel::sql_query(format!(
            "SELECT EXISTS (SELECT 1 FROM {table} WHERE {test}) AS found"
        ))
        .bind::<Text, _>(needle)
        .get_result::<Found>(&mut conn)
        .unwrap()
        .found
    })
}

fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// Watches the database for writes from the moment it is made: on SQLite, `PRAGMA
/// data_version` of a connection of its own (it moves whenever another connection commits);
/// on PostgreSQL, each table's row count and newest row version (`xmin`: an insert or an
/// update, even one that leaves the values as they were, makes a newer one).
pub struct WriteWatch {
    conn: WatchConn,
    start: Vec<(String, i64, i64)>,
}

enum WatchConn {
    Sqlite(diesel::SqliteConnection),
    Postgres(PgConnection),
}

#[derive(QueryableByName)]
struct TableName {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Versions {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    rows: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    newest: i64,
}

impl TestApp {
    pub fn watch_writes(&self) -> WriteWatch {
        let mut conn = if self.database_url.starts_with("postgres") {
            WatchConn::Postgres(PgConnection::establish(&self.database_url).unwrap())
        } else {
            WatchConn::Sqlite(
                diesel::SqliteConnection::establish(self.sqlite_path().to_str().unwrap()).unwrap(),
            )
        };
        let start = conn.versions();
        WriteWatch { conn, start }
    }
}

impl WatchConn {
    fn versions(&mut self) -> Vec<(String, i64, i64)> {
        match self {
            Self::Sqlite(conn) => {
                let version: Versions = diesel::sql_query(
                    "SELECT 0 AS rows, data_version AS newest FROM pragma_data_version",
                )
                .get_result(conn)
                .unwrap();
                vec![("data_version".to_string(), version.rows, version.newest)]
            }
            Self::Postgres(conn) => {
                let tables: Vec<TableName> = diesel::sql_query(
                    "SELECT table_name::text AS name FROM information_schema.tables \
                     WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
                )
                .load(conn)
                .unwrap();
                tables
                    .into_iter()
                    .map(|t| {
                        let v: Versions = diesel::sql_query(format!(
                            "SELECT count(*) AS rows, \
                             coalesce(max(xmin::text::bigint), 0) AS newest FROM {}",
                            quoted(&t.name)
                        ))
                        .get_result(conn)
                        .unwrap();
                        (t.name, v.rows, v.newest)
                    })
                    .collect()
            }
        }
    }
}

impl WriteWatch {
    /// What changed since the watch began: the tables (or, on SQLite, the database) written.
    pub fn written(&mut self) -> Vec<String> {
        let now = self.conn.versions();
        now.iter()
            .filter(|v| !self.start.contains(v))
            .map(|(name, _, _)| name.clone())
            .collect()
    }
}
