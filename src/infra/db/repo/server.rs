//! What the database server itself is set to, where it matters to medport.

use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::infra::db::{DbConnection, DbError};

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    setting: String,
}

/// Whether PostgreSQL's autovacuum is on; `None` on SQLite, which has no such thing.
pub fn autovacuum(conn: &mut DbConnection) -> Result<Option<bool>, DbError> {
    match conn {
        DbConnection::Postgresql(pg) => {
            let s: Setting = diesel::sql_query("SELECT current_setting('autovacuum') AS setting")
                .get_result(pg)?;
            Ok(Some(s.setting == "on"))
        }
        _ => Ok(None),
    }
}
