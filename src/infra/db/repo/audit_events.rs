//! The audit_events table: the hash chain's head and appends (under a lock on PostgreSQL),
//! and the chain read back in id order for verification.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::audit_events;
use crate::infra::db::{DbConnection, DbError};

/// Serialises chain appends on PostgreSQL across every instance (held to transaction end).
const AUDIT_LOCK_KEY: i64 = 0x6d65_6470_6f72_7402;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_events)]
pub struct AuditRow {
    pub id: i64,
    pub occurred_at: NaiveDateTime,
    pub actor_user_id: Option<String>,
    pub actor_label: String,
    pub action: String,
    pub outcome: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Insertable)]
#[diesel(table_name = audit_events)]
pub struct NewRow<'a> {
    pub occurred_at: NaiveDateTime,
    pub actor_user_id: Option<&'a str>,
    pub actor_label: &'a str,
    pub action: &'a str,
    pub outcome: &'a str,
    pub target_type: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub details: &'a str,
    pub prev_hash: &'a str,
    pub hash: &'a str,
}

/// True when `conn` is inside a transaction.
pub fn in_transaction(conn: &mut DbConnection) -> bool {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    match conn {
        DbConnection::Sqlite(c) => AnsiTransactionManager::transaction_manager_status_mut(c)
            .transaction_depth()
            .is_ok_and(|d| d.is_some()),
        DbConnection::Postgresql(c) => AnsiTransactionManager::transaction_manager_status_mut(c)
            .transaction_depth()
            .is_ok_and(|d| d.is_some()),
    }
}

/// On PostgreSQL, waits for the chain's advisory lock, held until the transaction ends.
/// SQLite needs none: its write transaction (`BEGIN IMMEDIATE`) admits a single writer.
pub fn lock_chain(conn: &mut DbConnection) -> Result<(), DbError> {
    if let DbConnection::Postgresql(pg) = conn {
        diesel::sql_query(format!("SELECT pg_advisory_xact_lock({AUDIT_LOCK_KEY})")).execute(pg)?;
    }
    Ok(())
}

/// The hash of the newest event, if there is one.
pub fn head_hash(conn: &mut DbConnection) -> Result<Option<String>, DbError> {
    Ok(audit_events::table
        .select(audit_events::hash)
        .order(audit_events::id.desc())
        .first(conn)
        .optional()?)
}

/// Appends one row; returns its id.
pub fn insert(conn: &mut DbConnection, row: &NewRow<'_>) -> Result<i64, DbError> {
    Ok(diesel::insert_into(audit_events::table)
        .values(row)
        .returning(audit_events::id)
        .get_result(conn)?)
}

/// Up to `limit` events with an id above `after`, in id order.
pub fn page_after(
    conn: &mut DbConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<AuditRow>, DbError> {
    Ok(audit_events::table
        .filter(audit_events::id.gt(after))
        .order(audit_events::id.asc())
        .limit(limit)
        .select(AuditRow::as_select())
        .load(conn)?)
}
