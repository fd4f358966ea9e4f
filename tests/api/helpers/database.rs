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
